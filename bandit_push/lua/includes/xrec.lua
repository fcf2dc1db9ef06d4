-- Per-user experiment counters (keys.experiment_users): one text value per user, the columns of XREC in order
-- (variant, first exposure ts, sends, clicks, conversions, unsubscribed 0|1, net value, events, purchases).

local function xrec_load(raw)
  local m = {}
  for x in string.gmatch(raw, '%S+') do m[#m + 1] = tonumber(x) end
  return m
end
local function xrec_dump(m)
  local out = {}
  for i = 1, #m do out[i] = string.format('%.12g', m[i]) end
  return table.concat(out, ' ')
end
