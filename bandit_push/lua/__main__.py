"""``python -m bandit_push.lua``: the library's text on stdout, for luacheck (.ci/run) and for reading."""
from bandit_push.lua import library

print(library("bandit_push"), end="")
