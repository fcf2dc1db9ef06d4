-- upsert_user: create a user (in segment 'new') if absent, and set the time zone and the opt-out (users.py).
-- KEYS[1] = user hash (the user's slot alone: the caller counts a created user in the segment sizes)
-- ARGV[1] = time zone name ('' = unchanged)   ARGV[2] = its rule   ARGV[3] = opted out '1'|'0'|'' (unchanged)
-- returns 1 if the user was created
--- @include "schema"

local created = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], USER.segment, 'new')
  created = 1
end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], USER.tz_name, ARGV[1], USER.tz_rule, ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], USER.opted_out, ARGV[3]) end
return created
