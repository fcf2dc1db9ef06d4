-- luacheck on the Lua library as Redis loads it (.ci/run: python -m bandit_push.lua | luacheck -)
std = "lua51"
read_globals = {"redis", "struct", "cjson"}
max_line_length = 120
-- every command is registered as function(KEYS, ARGV): a command without arguments leaves ARGV unused
ignore = {"212/ARGV"}
