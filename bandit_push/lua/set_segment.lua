-- set_segment: move a user to a segment (bandit_push/segmentation.py, which then updates the segment sizes).
-- KEYS[1] = user hash
-- ARGV[1] = the new segment   ARGV[2] = the segment the user must still be in ('' = any)
-- returns the segment the user left, or '' if the user did not move (unknown, already there, or not in ARGV[2])
--- @include "schema"

local old = redis.call('HGET', KEYS[1], USER.segment)
if not old or old == ARGV[1] or (ARGV[2] ~= '' and old ~= ARGV[2]) then return '' end
redis.call('HSET', KEYS[1], USER.segment, ARGV[1])
return old
