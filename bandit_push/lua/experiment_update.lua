-- experiment_update: replace a draft experiment's definition (experiments.py).
-- KEYS[1] = experiment hash   ARGV[1] = new definition (JSON)
-- returns the status: the definition is replaced only when it is 'draft'
--- @include "schema"

local st = redis.call('HGET', KEYS[1], EXPERIMENT.status)
if st == 'draft' then redis.call('HSET', KEYS[1], EXPERIMENT.definition, ARGV[1]) end
return st or ''
