-- feedback: one (decision, event), attributed to its decision and counted once, credited to the decision's arms
-- (bandit_push/feedback.py).
-- KEYS[1] = decision record   KEYS[2] = arms hash of the decision's policy space
-- KEYS[3] = the experiment's per-user counters (xrec.lua) when the space is an experiment variant's
-- ARGV[1] = outcome slot (1-based among the outcomes)   ARGV[2] = event name   ARGV[3] = ts
-- ARGV[4] = attribution window (s)   ARGV[5] = half-life (s)   ARGV[6] = number of outcomes
-- ARGV[7] = value ('' if none)   ARGV[8] = policy space named by the decision id
-- ARGV[9] = '1' if KEYS[3] applies   ARGV[10] = counter column in XREC (clicks, conversions,
--   unsubscribed; 0 none)   ARGV[11] = the event's weight in the net value
-- returns {status, user id, policy space}: status accepted | duplicate | late | unknown | not_sent
--- @include "base"
--- @include "schema"
--- @include "arms"
--- @include "xrec"

if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown', '', ''} end
local r = redis.call('HMGET', KEYS[1], DECISION.sent, DECISION.segment, DECISION.context, DECISION.time,
                     DECISION.user, DECISION.space, DECISION.load)
if r[6] ~= ARGV[8] then return {'unknown', '', ''} end
if r[1] ~= '1' then return {'not_sent', r[5], r[6]} end
local ts, t = tonumber(ARGV[3]), tonumber(r[4])
local late = ts - t > tonumber(ARGV[4])
-- the event's flag: "<ts>[ late][ v=<value>]"
local flag = fmt(ts)
if late then flag = flag .. ' late' end
if ARGV[7] ~= '' then flag = flag .. ' v=' .. ARGV[7] end
if redis.call('HSETNX', KEYS[1], DECISION.event .. ARGV[2], flag) == 0 then return {'duplicate', r[5], r[6]} end
if late then return {'late', r[5], r[6]} end
-- the context's arm, its segment's totals and the whole space's (the pooled prior's parents), and the load
-- arm of a decision made with pacing
local fields = {r[2] .. '|' .. r[3], r[2] .. ARM.segment_totals, ARM.space_totals}
if r[7] then fields[4] = r[2] .. ARM.load .. r[7] end
local raw = redis.call('HMGET', KEYS[2], unpack(fields))
local set = {}
for j = 1, #fields do
  local arm = arm_load(raw[j], 2 + tonumber(ARGV[6]))
  -- credit at the decision's time, so outcome counts and send counts decay together
  arm_add(arm, 2 + tonumber(ARGV[1]), t, tonumber(ARGV[5]), 1)
  set[#set + 1] = fields[j]; set[#set + 1] = arm_dump(arm)
end
redis.call('HSET', KEYS[2], unpack(set))
if ARGV[9] == '1' then
  local counters = redis.call('HGET', KEYS[3], r[5])
  if counters then
    local m, col = xrec_load(counters), tonumber(ARGV[10])
    if col == XREC.unsubscribed then m[col] = 1 elseif col > 0 then m[col] = m[col] + 1 end
    m[XREC.net_value] = m[XREC.net_value] + tonumber(ARGV[11])
    redis.call('HSET', KEYS[3], r[5], xrec_dump(m))
  end
end
return {'accepted', r[5], r[6]}
