-- credit: one (decision, outcome) credited to the decision's arms once (bandit_push/feedback.py, after
-- feedback.lua answered what to credit): a marker per (decision, event) set first, so a repeat counts nothing.
-- KEYS[1] = arms hash of the decision's policy space   KEYS[2] = the marker (same slot, expires)
-- ARGV[1] = outcome slot (1-based among the outcomes)   ARGV[2] = the decision's time   ARGV[3] = half-life (s)
-- ARGV[4] = number of outcomes   ARGV[5] = segment   ARGV[6] = context   ARGV[7] = load arm ('' none)
-- ARGV[8] = the marker's expiry (s: the decision's)
-- returns 1 if credited now, 0 if it was already
--- @include "base"
--- @include "schema"
--- @include "arms"

if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[8]) then return 0 end
-- the context's arm, its segment's totals and the whole space's (the pooled prior's parents), and the load
-- arm of a decision made with pacing
local seg = ARGV[5]
local fields = {seg .. '|' .. ARGV[6], seg .. ARM.segment_totals, ARM.space_totals}
if ARGV[7] ~= '' then fields[4] = seg .. ARM.load .. ARGV[7] end
local raw = redis.call('HMGET', KEYS[1], unpack(fields))
local t, set = tonumber(ARGV[2]), {}
for j = 1, #fields do
  local arm = arm_load(raw[j], 2 + tonumber(ARGV[4]))
  -- credit at the decision's time, so outcome counts and send counts decay together
  arm_add(arm, 2 + tonumber(ARGV[1]), t, tonumber(ARGV[3]), 1)
  set[#set + 1] = fields[j]; set[#set + 1] = arm_dump(arm)
end
redis.call('HSET', KEYS[1], unpack(set))
return 1
