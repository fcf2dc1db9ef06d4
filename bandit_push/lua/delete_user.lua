-- delete_user: a user's own keys, all in the user's slot (users.py then updates the segment sizes and the user id
-- list, which live in slots of their own, with what this returns).
-- KEYS[1] = user hash   KEYS[2] = the user's recent pushes   KEYS[3] = the user's precomputed items
-- KEYS[4] = the user's interactions since the MF version (fold-in)
-- returns {keys removed, the user's segment or '' (no user), the user's dense index or ''}
--- @include "schema"

local st = redis.call('HMGET', KEYS[1], USER.segment, USER.index)
local removed = redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return {removed, st[1] or '', st[2] or ''}
