-- event_popular: the weights of a batch's events of one UTC day in that day's popularity of their items, per
-- segment and overall (bandit_push/events.py, after event.lua), an event with an id counted once per (user, id).
-- KEYS[1] = popular counts of the day   KEYS[2..] = the count-once markers of the events with an id (same slot)
-- ARGV[1] = the counts' TTL (s)   ARGV[2] = the markers' TTL (s: the event dedup's)
-- ARGV[3..] = per event 4 values: segment, item id (stored form), weight, its marker's KEYS index ('0': no id)
-- returns how many events counted now (the others were already)
--- @include "schema"

local n = 0
for j = 3, #ARGV, 4 do
  local m = tonumber(ARGV[j + 3])
  if m == 0 or redis.call('SET', KEYS[m], '1', 'NX', 'EX', ARGV[2]) then
    redis.call('HINCRBYFLOAT', KEYS[1], ARGV[j] .. '|' .. ARGV[j + 1], ARGV[j + 2])
    redis.call('HINCRBYFLOAT', KEYS[1], POPULAR.all .. '|' .. ARGV[j + 1], ARGV[j + 2])
    n = n + 1
  end
end
if n > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
