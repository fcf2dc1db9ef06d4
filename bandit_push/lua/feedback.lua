-- feedback: one (decision, event) on the decision's record, counted once (bandit_push/feedback.py); the arms'
-- and the experiment's credit are separate commands on their own slots (credit.lua, experiment_credit.lua),
-- idempotent per (decision, event), so a retry of a report completes a credit a crash cut short.
-- KEYS[1] = decision record
-- ARGV[1] = event name   ARGV[2] = ts   ARGV[3] = attribution window (s)   ARGV[4] = value ('' if none)
-- ARGV[5] = policy space named by the decision id
-- returns {status, user id, policy space, segment, context, decision time, load arm}: status accepted | duplicate
--   | late | unknown | not_sent; the last four ('' each when there is nothing to credit: not sent, late, or a
--   duplicate of a late report) name the arms to credit
--- @include "base"
--- @include "schema"

if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown', '', ''} end
local r = redis.call('HMGET', KEYS[1], DECISION.sent, DECISION.segment, DECISION.context, DECISION.time,
                     DECISION.user, DECISION.space, DECISION.load)
if r[6] ~= ARGV[5] then return {'unknown', '', ''} end
if r[1] ~= '1' then return {'not_sent', r[5], r[6]} end
local ts = tonumber(ARGV[2])
local late = ts - tonumber(r[4]) > tonumber(ARGV[3])
-- the event's flag: "<ts>[ late][ v=<value>]"
local flag = fmt(ts)
if late then flag = flag .. ' late' end
if ARGV[4] ~= '' then flag = flag .. ' v=' .. ARGV[4] end
local status = 'accepted'
if redis.call('HSETNX', KEYS[1], DECISION.event .. ARGV[1], flag) == 0 then
  status = 'duplicate'
  -- the first report's lateness decides (its credit is what a retry completes)
  late = string.find(redis.call('HGET', KEYS[1], DECISION.event .. ARGV[1]), 'late', 1, true) ~= nil
elseif late then return {'late', r[5], r[6]} end
if late then return {status, r[5], r[6]} end
return {status, r[5], r[6], r[2], r[3], r[4], r[7] or ''}
