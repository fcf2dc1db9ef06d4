-- decide's constant settings (decide.py, script_config: the policy kernel's parameters, priors, guardrails,
-- context edges; and per running experiment its variants' overrides), as a JSON object
-- {base = <cfg of the default policy>, xs = {{segs = {<segment>...} | false, v = {<what variant i changes>...}}}},
-- decoded once per digest. In a Functions library this table outlives the call: a decide passes only the
-- digest, and the client sends the JSON when the library answers that it does not know it. An EVALSHA script
-- starts empty on every call, so the client always sends it there.
local configs, configs_n = {}, 0
local function config_for(digest, blob)
  local c = configs[digest]
  if c or blob == '' then return c end
  c = cjson.decode(blob)
  -- a variant's config holds only what it changes of the base one (false: a setting it removes)
  local inherit = {__index = c.base}
  for _, x in ipairs(c.xs) do
    for _, v in ipairs(x.v) do setmetatable(v, inherit) end
  end
  if configs_n >= 64 then configs, configs_n = {}, 0 end  -- bounded: a few per deployment's processes
  configs[digest], configs_n = c, configs_n + 1
  return c
end
