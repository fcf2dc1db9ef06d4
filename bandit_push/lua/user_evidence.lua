-- user_evidence: credit a pushed decision's engagement to its user's evidence (USER.evidence, see user_theta in
-- includes/evidence.lua) once per decision: the first engagement feedback (opened, clicked or converted)
-- accepted in time (its flag is in the record, without 'late'), marked DECISION.evidence_credited. Run after
-- feedback for accepted and duplicate engagement events, so a retry completes what a crash cut short.
-- KEYS[1] = decision record   KEYS[2] = the decision's user hash
-- ARGV[1] = half-life (s)
-- returns 1 if credited now, else 0
--- @include "base"
--- @include "schema"
--- @include "arms"
--- @include "evidence"

local r = redis.call('HMGET', KEYS[1], DECISION.sent, DECISION.time, DECISION.evidence_credited,
                     DECISION.event .. 'opened', DECISION.event .. 'clicked', DECISION.event .. 'converted')
if r[1] ~= '1' or r[3] then return 0 end
local ok = false
for i = 4, 6 do if r[i] and not string.find(r[i], 'late', 1, true) then ok = true end end
if not ok then return 0 end
redis.call('HSET', KEYS[1], DECISION.evidence_credited, '1')
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end  -- a deleted user is not recreated
local pe, ep = pe_load(redis.call('HGET', KEYS[2], USER.evidence))
arm_add(pe, 2, tonumber(r[2]), tonumber(ARGV[1]), 1)
redis.call('HSET', KEYS[2], USER.evidence, pe_dump(pe, ep))
return 1
