-- experiment_transition: start, pause or stop an experiment, on its own hash (experiments.py then keeps the
-- running and active sets and bumps the registry version that decide's snapshot reads: keys of other slots).
-- KEYS[1] = experiment hash
-- ARGV[1] = start | pause | stop   ARGV[2] = now
-- returns {1 if done else 0, status before ('' if no such experiment), its start order (its first start; '' never)}
--- @include "schema"

local st = redis.call('HGET', KEYS[1], EXPERIMENT.status)
if not st then return {0, '', ''} end
local a = ARGV[1]
local ok = (a == 'start' and (st == 'draft' or st == 'paused')) or (a == 'pause' and st == 'running')
  or (a == 'stop' and st ~= 'stopped')
if ok and a == 'start' then
  -- the first start orders overlapping experiments: the older one wins, paused or not in between
  redis.call('HSETNX', KEYS[1], EXPERIMENT.started, ARGV[2])
  redis.call('HSET', KEYS[1], EXPERIMENT.status, 'running')
elseif ok and a == 'pause' then
  redis.call('HSET', KEYS[1], EXPERIMENT.status, 'paused')
elseif ok then
  redis.call('HSET', KEYS[1], EXPERIMENT.status, 'stopped', EXPERIMENT.stopped, ARGV[2])
end
return {ok and 1 or 0, st, redis.call('HGET', KEYS[1], EXPERIMENT.started) or ''}
