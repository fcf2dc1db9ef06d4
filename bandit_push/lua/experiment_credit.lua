-- experiment_credit: one (decision, outcome) counted once in the user's counters of the experiment the decision
-- was made under (bandit_push/feedback.py, after feedback.lua accepted it): a marker per (decision, event) first.
-- KEYS[1] = the experiment's per-user counters (xrec.lua)   KEYS[2] = the marker (same slot, expires)
-- ARGV[1] = user id (stored form)   ARGV[2] = counter column in XREC (clicks, conversions, unsubscribed; 0 none)
-- ARGV[3] = the event's weight in the net value   ARGV[4] = the marker's expiry (s: the decision's)
-- returns 1 if counted now, 0 if it was already (or the user has no counters)
--- @include "base"
--- @include "schema"
--- @include "xrec"

if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then return 0 end
local counters = redis.call('HGET', KEYS[1], ARGV[1])
if not counters then return 0 end
local m, col = xrec_load(counters), tonumber(ARGV[2])
if col == XREC.unsubscribed then m[col] = 1 elseif col > 0 then m[col] = m[col] + 1 end
m[XREC.net_value] = m[XREC.net_value] + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], xrec_dump(m))
return 1
