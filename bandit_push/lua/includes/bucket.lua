-- The token bucket of one API key, for rate_limit and (folded into its one round trip) decide.
--- @include "schema"

-- take `cost` tokens from the bucket hash at `key` (BUCKET fields: tokens, time), refilled at `rate`/s up to
-- `burst`; returns 1, 0 when allowed, else 0 and the milliseconds until it would be.
-- Time is the server's own clock (TIME), so web hosts with skewed clocks share one bucket correctly.
local function take_token(key, rate, burst, cost)
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
  local b = redis.call('HMGET', key, BUCKET.tokens, BUCKET.time)
  local tokens, last = tonumber(b[1]), tonumber(b[2])
  if not tokens then tokens, last = burst, now end
  if now > last then tokens = math.min(burst, tokens + (now - last) * rate) end
  local allowed, wait = 0, 0
  if tokens >= cost then
    tokens = tokens - cost
    allowed = 1
  else
    wait = math.ceil((cost - tokens) / rate * 1000)
  end
  redis.call('HSET', key, BUCKET.tokens, string.format('%.17g', tokens),
             BUCKET.time, string.format('%.17g', math.max(now, last)))
  -- an idle bucket refills completely within burst / rate seconds: then it need not exist
  redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
  return allowed, wait
end
