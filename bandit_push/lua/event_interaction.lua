-- event_interaction: the records of a batch's events of one UTC day appended to that day's interaction chunk
-- (bandit_push/events.py, after event.lua and the index claims), an event with an id once per (user, id).
-- KEYS[1] = interaction chunk of the day   KEYS[2..] = the count-once markers of the events with an id (same slot)
-- ARGV[1] = the chunk's TTL (s)   ARGV[2] = the markers' TTL (s: the event dedup's)
-- ARGV[3..] = per event 5 values: dense user index, dense item index (2^32 - 1: no item), type code (0..254), ts,
--   its marker's KEYS index ('0': no id)
-- returns how many records were appended now (the others were already)
--- @include "schema"

local out = {}
for j = 3, #ARGV, 5 do
  local m = tonumber(ARGV[j + 4])
  if m == 0 or redis.call('SET', KEYS[m], '1', 'NX', 'EX', ARGV[2]) then
    out[#out + 1] = struct.pack(INTERACTION, tonumber(ARGV[j]), tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2]),
                                math.floor(tonumber(ARGV[j + 3])))
  end
end
if #out > 0 then
  redis.call('APPEND', KEYS[1], table.concat(out))
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return #out
