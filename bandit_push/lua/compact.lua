-- compact: re-set an interaction chunk at its exact size (interactions.py).
-- KEYS[1] = an interaction chunk (string)
-- returns its length in bytes
-- APPEND grows a string greedily (up to twice its size, or +1 MB); re-setting it allocates it exactly.
-- One script, so no event appended meanwhile can be lost.

local v = redis.call('GET', KEYS[1])
if not v then return 0 end
redis.call('SET', KEYS[1], v, 'KEEPTTL')
return string.len(v)
