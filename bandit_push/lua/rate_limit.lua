-- rate_limit: take tokens from an API key's bucket (ratelimit.py; decide takes its token itself).
-- KEYS[1] = the API key's token bucket hash (BUCKET fields)
-- ARGV[1] = rate (tokens per second)   ARGV[2] = burst (bucket size)   ARGV[3] = cost (tokens)
-- returns {allowed 1|0, milliseconds until the cost is available (0 when allowed)}
--- @include "bucket"

local allowed, wait = take_token(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
return {allowed, wait}
