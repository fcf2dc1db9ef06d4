-- delete_user: a user's keys, their place in the segment sizes and in the user id list (users.py).
-- KEYS[1] = user hash   KEYS[2] = the user's recent pushes   KEYS[3] = segment sizes
-- KEYS[4] = the user's precomputed items   KEYS[5] = the user's interactions since the MF version (fold-in)
-- KEYS[6] = user id list (by dense index)
-- returns the number of keys removed
--- @include "schema"

local st = redis.call('HMGET', KEYS[1], USER.segment, USER.index)
if st[1] then redis.call('HINCRBY', KEYS[3], st[1], -1) end
if st[2] and tonumber(st[2]) < redis.call('LLEN', KEYS[6]) then redis.call('LSET', KEYS[6], st[2], '') end
return redis.call('DEL', KEYS[1], KEYS[2], KEYS[4], KEYS[5])
