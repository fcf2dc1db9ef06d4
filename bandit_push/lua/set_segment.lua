-- set_segment: move a user to a segment, keeping the segment sizes (bandit_push/segmentation.py).
-- KEYS[1] = user hash   KEYS[2] = segment sizes
-- ARGV[1] = the new segment   ARGV[2] = the segment the user must still be in ('' = any)
-- returns 1 if the user moved, 0 otherwise (unknown user, already there, or not in ARGV[2])
--- @include "schema"

local old = redis.call('HGET', KEYS[1], USER.segment)
if not old or old == ARGV[1] or (ARGV[2] ~= '' and old ~= ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], USER.segment, ARGV[1])
redis.call('HINCRBY', KEYS[2], old, -1)
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return 1
