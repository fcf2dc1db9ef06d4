-- experiment_transition: start, pause or stop an experiment, keeping the running and active sets and the
-- registry version that decide checks (experiments.py).
-- KEYS[1] = experiment hash   KEYS[2] = running ids (zset)   KEYS[3] = active ids (zset)   KEYS[4] = registry version
-- ARGV[1] = start | pause | stop   ARGV[2] = now   ARGV[3] = experiment id
-- returns {1 if done else 0, status before ('' if no such experiment)}
--- @include "schema"

local st = redis.call('HGET', KEYS[1], EXPERIMENT.status)
if not st then return {0, ''} end
local a = ARGV[1]
local ok = (a == 'start' and (st == 'draft' or st == 'paused')) or (a == 'pause' and st == 'running')
  or (a == 'stop' and st ~= 'stopped')
if not ok then return {0, st} end
if a == 'start' then
  redis.call('HSETNX', KEYS[1], EXPERIMENT.started, ARGV[2])
  -- the first start orders overlapping experiments: the older one wins, paused or not in between
  local order = tonumber(redis.call('HGET', KEYS[1], EXPERIMENT.started))
  redis.call('HSET', KEYS[1], EXPERIMENT.status, 'running')
  redis.call('ZADD', KEYS[2], order, ARGV[3])
  redis.call('ZADD', KEYS[3], order, ARGV[3])
elseif a == 'pause' then
  redis.call('HSET', KEYS[1], EXPERIMENT.status, 'paused')
  redis.call('ZREM', KEYS[2], ARGV[3])
else
  redis.call('HSET', KEYS[1], EXPERIMENT.status, 'stopped', EXPERIMENT.stopped, ARGV[2])
  redis.call('ZREM', KEYS[2], ARGV[3])
  redis.call('ZREM', KEYS[3], ARGV[3])
end
redis.call('INCR', KEYS[4])
return {1, st}
