"""Lua sources, one per atomic read-modify-write. Each has a KEYS/ARGV/returns header.

Every key arrives through KEYS; scripts build only hash *field* names. Numbers
cross the boundary as strings formatted ``%.17g`` so that Python and Lua see
the same doubles. :mod:`bandit_push.policies.base` and :mod:`bandit_push.tzrule`
hold the numpy/Python references that the tests compare these against.
"""
from __future__ import annotations

# Shared helpers, prepended to the scripts that need them.
PRELUDE = r"""
local pow, sqrt, floor = math.pow, math.sqrt, math.floor
local function fmt(x) return string.format('%.17g', x) end

-- an arm is {t, n, outcome_1, ..., outcome_m}: reference time, decayed sends, decayed outcome counts.
-- Stored as 'B' and its numbers as little-endian doubles: exact, and one C call to read or write (text,
-- "t n ..." at %.17g, cost ten times as much per arm); arms stored as text by earlier versions are still read.
local arm_fmts = {}
local function arm_fmt(size)
  local f = arm_fmts[size]
  if not f then f = '<' .. string.rep('d', size); arm_fmts[size] = f end
  return f
end
local function arm_load(raw, size)
  local a
  if raw and #raw == 1 + 8 * size and string.byte(raw, 1) == 66 then
    a = {struct.unpack(arm_fmt(size), raw, 2)}
    a[size + 1] = nil  -- (unpack's next position)
    return a
  end
  a = {}
  if raw then for x in string.gmatch(raw, '%S+') do a[#a + 1] = tonumber(x) end end
  if #a ~= size then a = {0}; for i = 2, size do a[i] = 0 end end
  return a
end
local function arm_dump(a)
  return 'B' .. struct.pack(arm_fmt(#a), unpack(a))
end
-- a user's evidence {t, E, X} (engagement.py) as text "t E X" (the user hash is read as text; 10 and 6
-- significant digits: under 30 bytes); what is stored is what decide and its reference read
-- then, while a Thompson episode is open, its draw u and floor m: "t E X u m" (see the decide script)
local function pe_load(raw)
  local a = {}
  if raw then for x in string.gmatch(raw, '%S+') do a[#a + 1] = tonumber(x) end end
  if #a == 5 then return {a[1], a[2], a[3]}, {a[4], a[5]} end
  if #a ~= 3 then a = {0, 0, 0} end
  return a, nil
end
local function pe_dump(a, ep)
  if ep then return string.format('%.10g %.5g %.5g %.5g %.5g', a[1], a[2], a[3], ep[1], ep[2]) end
  return string.format('%.10g %.5g %.5g', a[1], a[2], a[3])
end
-- move the reference time forward to t, decaying every count (never backwards)
local function arm_decay_to(a, t, hl)
  if t > a[1] then
    local f = pow(2, -(t - a[1]) / hl)
    for i = 2, #a do a[i] = a[i] * f end
    a[1] = t
  end
end
-- add x to slot i for an event at time t (an event older than the reference time weighs less)
local function arm_add(a, i, t, hl, x)
  if t >= a[1] then arm_decay_to(a, t, hl); a[i] = a[i] + x
  else a[i] = a[i] + x * pow(2, -(a[1] - t) / hl) end
end

-- time zones: see bandit_push/tzrule.py for the rule format
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy - 719468
end
local function civil_year(days)
  local z = days + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local y = yoe + era * 400
  if floor((5 * doy + 2) / 153) >= 10 then y = y + 1 end
  return y
end
local function rule_day(y, m, w, d)
  local first = days_from_civil(y, m, 1)
  local day = first + (d - (first + 4) % 7) % 7 + (w - 1) * 7
  local ny, nm = y, m + 1
  if m == 12 then ny, nm = y + 1, 1 end
  local nxt = days_from_civil(ny, nm, 1)
  while day >= nxt do day = day - 7 end
  return day
end
local TZ_DST = '^' .. string.rep('([^,]+),', 9) .. '([^,]+)$'
-- a rule's offset holds between its transitions: per rule, the last answer and the UTC interval [lo, hi) it holds
-- in. In a Redis Function this table outlives the call (the library's top level runs once, at load), so a decide
-- reads its user's offset from it instead of evaluating the rule (a sixteenth of the script's instructions); as
-- an EVALSHA script it lives for one call. Bounded: emptied when it names more rules than any zone database has.
local tz_memo, tz_memo_n = {}, 0
local function utc_offset(rule, ts)
  local m = tz_memo[rule]
  if m and ts >= m[1] and ts < m[2] then return m[3] end
  -- (one match, not a gmatch loop)
  local std, dst, sm, sw, sd, st, em, ew, ed, et = string.match(rule, TZ_DST)
  local off, lo, hi
  if not std then
    off, lo, hi = tonumber(rule), -math.huge, math.huge
  else
    std, dst = tonumber(std), tonumber(dst)
    -- the year by standard local time, and its bounds in UTC: every instant between them evaluates this year
    local y = civil_year(floor((ts + std) / 86400))
    local s = rule_day(y, tonumber(sm), tonumber(sw), tonumber(sd)) * 86400 + tonumber(st) - std
    local e = rule_day(y, tonumber(em), tonumber(ew), tonumber(ed)) * 86400 + tonumber(et) - dst
    lo, hi = days_from_civil(y, 1, 1) * 86400 - std, days_from_civil(y + 1, 1, 1) * 86400 - std
    -- the interval of the year that holds ts, cut by the two transitions
    for _, b in ipairs({s, e}) do
      if b > ts and b < hi then hi = b elseif b <= ts and b > lo then lo = b end
    end
    local in_dst
    if s < e then in_dst = (ts >= s and ts < e) else in_dst = not (ts >= e and ts < s) end
    if in_dst then off = dst else off = std end
  end
  if not m then
    if tz_memo_n >= 2048 then tz_memo, tz_memo_n = {}, 0 end
    tz_memo_n = tz_memo_n + 1
  end
  tz_memo[rule] = {lo, hi, off}
  return off
end

-- standard normal CDF, Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7); policies/base.py has the same
local function phi(z)
  local x = math.abs(z) / sqrt(2)
  local t = 1 / (1 + 0.3275911 * x)
  local y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
                 + 0.254829592) * t * math.exp(-x * x)
  if z >= 0 then return 0.5 * (1 + y) end
  return 0.5 * (1 - y)
end

-- the Beta prior of each weighted outcome rate, as two lists pa, pb in the order of cfg.nz (the outcomes with
-- a non-zero weight, 1-based): the configured one, or with cfg.pool > 0 and the parents given (sg: the segment's
-- totals, al: the whole space's, decayed like the arm) the pooled one; policies/base.py (pooled_prior) is the
-- reference, operation for operation. The same for every arm of a segment.
local function prior_of(cfg, i, sg, al)
  local pool = cfg.pool or 0
  local a, b = cfg.pa[i], cfg.pb[i]
  if pool > 0 and sg then
    local an, ac, sn, sc = al[2], al[2 + i], sg[2], sg[2 + i]
    if ac > an then an = ac end  -- math.max(an, ac) and math.min(r, 0.999999) below, without the calls
    if sc > sn then sn = sc end
    local g = (pool + ac) / (pool / (a / (a + b)) + an)
    local r = (pool + sc) / (pool / g + sn)
    if r > 0.999999 then r = 0.999999 end
    a, b = pool, pool * (1 - r) / r
  end
  return a, b
end
local function prior(cfg, sg, al)
  local nz, pa, pb = cfg.nz, {}, {}
  for j = 1, #nz do pa[j], pb[j] = prior_of(cfg, nz[j], sg, al) end
  return pa, pb
end

-- mean and variance of the net value of a push: sum of w_i * rate_i, independent Beta posteriors (pa, pb: the
-- prior, see above); the arm's counts are taken times f (default 1): the arm as arm_decay_to would leave it
-- with that factor, the same products, without writing to it
-- split by the sign of the weights: (mean, variance) of the engagement part (w > 0) and of the rest; the user's
-- engagement multiplier scales the first (policies/base.py, net_value_parts and user_net_value)
local function posterior_parts(a, cfg, pa, pb, f)
  f = f or 1
  local n, mp, vp, mn, vn, nz, w = a[2] * f, 0, 0, 0, 0, cfg.nz, cfg.w
  for j = 1, #nz do
    local i = nz[j]
    local wi, s = w[i], a[2 + i] * f
    local d = n - s
    if d < 0 then d = 0 end  -- (math.max(n - s, 0))
    local al_ = pa[j] + s
    local be = pb[j] + d
    local ab = al_ + be
    if wi > 0 then
      mp = mp + wi * al_ / ab
      vp = vp + wi * wi * al_ * be / (ab * ab * (ab + 1))
    else
      mn = mn + wi * al_ / ab
      vn = vn + wi * wi * al_ * be / (ab * ab * (ab + 1))
    end
  end
  return mp, vp, mn, vn
end
-- the net value for a user whose engagement multiplier has mean th and variance vth (independent of the rates)
local function posterior(a, cfg, pa, pb, f, th, vth)
  local mp, vp, mn, vn = posterior_parts(a, cfg, pa, pb, f)
  th, vth = th or 1, vth or 0
  return th * mp + mn, th * th * vp + vth * (mp * mp + vp) + vn
end
-- the context's rate of engagement that a user's evidence counts: the highest posterior mean of cfg.eo's
-- outcomes (opened, clicked): what one engaged decision is expected to be, whichever a gateway reports
local function engage_rate(a, cfg, sg, al)
  local best = 0
  for _, i in ipairs(cfg.eo) do
    local pa_, pb_ = prior_of(cfg, i, sg, al)
    local s = a[2 + i]
    local d = a[2] - s
    if d < 0 then d = 0 end
    local r = (pa_ + s) / (pa_ + s + pb_ + d)
    if r > best then best = r end
  end
  return best
end
-- the user's engagement multiplier theta ~ Gamma(shape, rate), mean and variance: prior Gamma(kappa, kappa / g)
-- with g = exp(b0 + b1 x1 + b2 x2) from organic activity (x1: log(1 + events per 30 days), x2: the same of
-- purchases, over the tenure, at least 30 days), then the user's decayed evidence pe = {t, E, X}: E engaged
-- decisions against X, their expected number (policies/base.py, user_theta)
local function user_theta(um, pe, ff, evs, purchases, now, hl)
  local kappa = um[1]
  local ten = 30
  if ff then ten = (now - ff) / 86400; if ten < 30 then ten = 30 end end
  local g = math.exp(um[2] + um[3] * math.log(1 + evs * 30 / ten) + um[4] * math.log(1 + purchases * 30 / ten))
  local e, x = 0, 0
  if pe then
    local fd = 1
    if now > pe[1] then fd = pow(2, -(now - pe[1]) / hl) end
    e, x = pe[2] * fd, pe[3] * fd
  end
  local shape, rate = kappa + e, kappa / g + x
  return shape / rate, shape / (rate * rate), g
end

-- pacing (policies/base.py, pacing_load): the load with the best steady rate. means[1]: the arm of users not
-- pushed within ll seconds, means[j + 2]: of users with j pushes in the last lw seconds (the last one: j or more).
-- Per lw seconds, a cadence held at load j earns (mean - cost) * (j + 1); one push per ll, (mean - cost) * lw / ll.
-- returns the best load, -1 for 'not pushed within ll' (the first on ties)
local function pace_load(means, cost, lw, ll)
  local best, bj = (means[1] - cost) * lw / ll, -1
  for j = 0, #means - 2 do
    local r = (means[j + 2] - cost) * (j + 1)
    if r > best then best, bj = r, j end
  end
  return bj
end

-- pacing_caution c (policies/base.py, pacing_choice): whether to push within ll at all by the means, which load
-- by lower bounds (mean - c * sd), the 'not pushed within ll' arm left out of that ranking; vars: the variances
local function pace_choice(means, vars, cost, lw, ll, c)
  local bj = pace_load(means, cost, lw, ll)
  if bj >= 0 and c > 0 then
    local lows = {-math.huge}
    for i = 2, #means do lows[i] = means[i] - c * sqrt(vars[i]) end
    bj = pace_load(lows, cost, lw, ll)
  end
  return bj
end
"""

# The item choice shared by DECIDE and ITEMS: GET /v1/users/<id>/items serves exactly what decide would.
PICK_ITEMS = r"""
-- the items pushed within the exclusion window: a set of ids, and the "<item> <ts>" pairs to keep
local function recent_items(pi_raw, now, excl)
  local excluded, kept = {}, {}
  for item, t in string.gmatch(pi_raw, '(%S+) (%S+)') do
    if tonumber(t) > now - excl then excluded[item] = true; kept[#kept + 1] = item .. ' ' .. t end
  end
  return excluded, kept
end

-- k items: the packed list at recs_key (header <I f f: MF version, lowest and highest score; then per item
-- 3 bytes of dense item index and a 16-bit quantised score), named through the ixmap hash; then the segment's
-- popular list and the global one from the pop hash. excluded (a set of ids) is extended with the picks.
-- returns {item, score, item, score, ...}, the source of the first item, the model label for the record
-- item index -> its decimal text: like tz_memo, it outlives the call in a Redis Function (bounded: emptied at 65,536)
local ix_text, ix_text_n = {}, 0
local function pick_items(recs_key, ixmap_key, pop_key, seg, k, excluded)
  local items, chosen, source, model = {}, 0, 'none', 'popular'
  local raw = redis.call('GET', recs_key)
  if raw and #raw >= 12 then
    local ver, lo, hi = struct.unpack('<Iff', raw)
    local n = math.floor((#raw - 12) / 5)
    local want = k
    for _ in pairs(excluded) do want = want + 1 end
    if want > n then want = n end
    if want > 0 then
      local ixs, qs = {}, {}
      for j = 0, want - 1 do
        -- the entry's five bytes in one call (struct.unpack parses its format on every call); the index as the
        -- hash field's text, from ix_text (an integer handed to redis.call is formatted with a sprintf)
        local b1, b2, b3, q1, q2 = string.byte(raw, 13 + 5 * j, 17 + 5 * j)
        local ix = b1 + 256 * b2 + 65536 * b3
        local t = ix_text[ix]
        if not t then
          if ix_text_n >= 65536 then ix_text, ix_text_n = {}, 0 end
          t = tostring(ix); ix_text[ix] = t; ix_text_n = ix_text_n + 1
        end
        ixs[#ixs + 1] = t; qs[#qs + 1] = q1 + 256 * q2
      end
      local ids = redis.call('HMGET', ixmap_key, unpack(ixs))
      for j = 1, #ixs do
        local id = ids[j]
        if id and not excluded[id] then
          excluded[id] = true
          -- 6 significant digits, as the popular lists' (the score is quantised to 16 bits of its range)
          items[#items + 1] = id; items[#items + 1] = string.format('%.6g', lo + (hi - lo) * qs[j] / 65535)
          chosen = chosen + 1
          if chosen >= k then break end
        end
      end
      if chosen > 0 then source = 'model'; model = 'mf:' .. ver end
    end
  end
  if chosen < k then
    local lists = redis.call('HMGET', pop_key, seg, '*')
    for li, list in ipairs(lists) do
      if list and chosen < k then
        for item, score in string.gmatch(list, '(%S+) (%S+)') do
          if not excluded[item] then
            excluded[item] = true
            items[#items + 1] = item; items[#items + 1] = score
            chosen = chosen + 1
            if source == 'none' then if li == 1 then source = 'popular_segment' else source = 'popular' end end
            if chosen >= k then break end
          end
        end
      end
    end
  end
  return items, source, model
end
"""

# The token bucket of one API key, shared by RATE_LIMIT and (folded into its one round trip) DECIDE.
TOKEN_BUCKET = r"""
-- take `cost` tokens from the bucket hash at `key` {k = tokens, t = time}, refilled at `rate`/s up to `burst`;
-- returns 1, 0 when allowed, else 0 and the milliseconds until it would be.
-- Time is the server's own clock (TIME), so web hosts with skewed clocks share one bucket correctly.
local function take_token(key, rate, burst, cost)
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
  local b = redis.call('HMGET', key, 'k', 't')
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
  redis.call('HSET', key, 'k', string.format('%.17g', tokens), 't', string.format('%.17g', math.max(now, last)))
  -- an idle bucket refills completely within burst / rate seconds: then it need not exist
  redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
  return allowed, wait
end
"""

# Per-user experiment counters (keys.experiment_users): "<variant> <first exposure ts> <sends> <clicks>
# <conversions> <unsubscribed 0|1> <net value> <events> <purchases>"; prepended to the scripts that update them.
XREC = r"""
local function xrec_load(raw)
  local m = {}
  for x in string.gmatch(raw, '%S+') do m[#m + 1] = tonumber(x) end
  return m
end
local function xrec_dump(m)
  local out = {}
  for i = 1, #m do out[i] = string.format('%.12g', m[i]) end
  return table.concat(out, ' ')
end
"""

DECIDE = PRELUDE + TOKEN_BUCKET + XREC + PICK_ITEMS + r"""
-- KEYS[1] = user hash            KEYS[2] = decision record (new)
-- KEYS[3] = arms hash of the policy space   KEYS[4] = popular lists hash   KEYS[5] = segment sizes
-- KEYS[6] = the user's recent pushes: "<push ts> ...\n<item> <ts> <item> <ts> ..." (expires)
-- KEYS[7] = experiments registry version
-- then per running experiment j = 1..n (oldest first): KEYS[5 + 3j] = the decision record if decided under it,
--   KEYS[6 + 3j] = arms of the user's variant in it, KEYS[7 + 3j] = its per-user counters (XREC)
-- then KEYS[8 + 3n] = the decision log's index of the decision's hour: "<decision id> <decision id> ..." (expires)
-- then KEYS[9 + 3n] = the user's precomputed items (packed, see toplists.py), KEYS[10 + 3n] = item index -> id hash
-- optional, last: KEYS[11 + 3n] = the caller's API key token bucket (the rate limit, in the same round trip)
-- ARGV[1] = user id   ARGV[2] = decision id   ARGV[3] = now (epoch s, formatted %.17g: the record's text of it)
-- ARGV[4] = u ~ U[0,1) times 2^53 (an integer: u exactly, without formatting a float)
-- ARGV[5] = k (items)   ARGV[6] = channel ('' if none)   ARGV[7] = the registry version the process compiled
-- ARGV[8] = the engagement model serving: "kappa b0 b1 b2" (see user_theta)
-- ARGV[8 + j] = the user's variant index (0-based) in running experiment j
-- with the bucket: ARGV[9 + n], ARGV[10 + n] = its rate/s and burst
-- returns {send 0|1, reason, segment, propensity, recency bucket, daypart, items "id score ...",
--          experiment j (0: none), 1 on the user's first exposure to it else 0, items source,
--          when a refusal about the moment lifts ('' for none), the user's UTC offset (s, modulo a day),
--          the user's last push ('' if never)},
--   or {'stale'}, writing nothing, when the registry moved since the process compiled this script,
--   or {-1, milliseconds to wait} when the key's bucket is empty (nothing else is read or written).
-- CONFIG is replaced by the engine's constant settings as a Lua table (see decide.py): {base = <cfg of the
-- default policy>, xs = {{segs = {<segment>...} | false, v = {<what variant 0 changes of base>, ...}}, ...}},
-- so that no call pays for decoding them.
local conf = CONFIG
local nx = #conf.xs
if (redis.call('GET', KEYS[7]) or '0') ~= ARGV[7] then return {'stale'} end
local bucket = KEYS[11 + 3 * nx]
if bucket then
  local allowed, wait = take_token(bucket, tonumber(ARGV[9 + nx]), tonumber(ARGV[10 + nx]), 1)
  if allowed == 0 then return {-1, wait} end
end
local uid, did, now, u, k = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]) / 9007199254740992, tonumber(ARGV[5])
local st = redis.call('HMGET', KEYS[1], 'sg', 'tzr', 'oo', 'lp', 'pe', 'ff', 'f:view', 'f:search', 'f:add_to_cart',
  'f:purchase', 'f:app_open')
local seg = st[1] or 'new'

-- the experiment: the oldest running one the user was already exposed to, else the oldest covering the segment
local cfg, xi, xrec = conf.base, 0, nil
for j = 1, #conf.xs do
  local r = redis.call('HGET', KEYS[7 + 3 * j], uid)
  if r then xi, xrec = j, r; break end
end
if xi == 0 then
  for j, x in ipairs(conf.xs) do
    if not x.segs then xi = j else
      for _, s in ipairs(x.segs) do if s == seg then xi = j; break end end
    end
    if xi > 0 then break end
  end
end
local dkey, akey = KEYS[2], KEYS[3]
if xi > 0 then
  -- a variant's config holds only what it changes of the base one (false: a setting it removes)
  cfg = setmetatable(conf.xs[xi].v[tonumber(ARGV[8 + xi]) + 1], {__index = conf.base})
  dkey, akey = KEYS[5 + 3 * xi], KEYS[6 + 3 * xi]
end
local lp = tonumber(st[4])
local recent_raw = redis.call('GET', KEYS[6]) or ''
local nl = string.find(recent_raw, '\n', 1, true)
local pt_raw, pi_raw = recent_raw, ''
if nl then pt_raw, pi_raw = string.sub(recent_raw, 1, nl - 1), string.sub(recent_raw, nl + 1) end

-- kept: the pushes of the last 24 h (the cap) and of pacing's window; load: pushes in the window (capped at
-- the last load arm), or 'L' when the user was not pushed within ll (or never)
local pushes, recent, load = {}, 0, 0
local keep_s = math.max(86400, cfg.lw)
for x in string.gmatch(pt_raw, '%S+') do
  local t = tonumber(x)
  if t > now - keep_s then
    pushes[#pushes + 1] = x
    if t <= now then
      if t > now - 86400 then recent = recent + 1 end
      if t > now - cfg.lw then load = load + 1 end
    end
  end
end
load = math.min(load, cfg.lj - 1)
if not lp or now - lp >= cfg.ll then load = 'L' end
local lsec = (now + utc_offset(st[2] or cfg.tz, now)) % 86400
local dp = cfg.dp[floor(lsec / 3600) + 1]
local rec = #cfg.rec
if lp then
  for i, e in ipairs(cfg.rec) do if now - lp < e then rec = i - 1; break end end
end

local reason, send, prop, seen = 'policy', false, 1, nil
local pe, pe_x  -- the user's evidence {t, E, X}, and what a send adds to X
local pace_ready, why, ep
local ctx = rec .. '|' .. dp  -- (once: each number's conversion to text is a sprintf)
local arm_field = seg .. '|' .. ctx
local arm, tot, all, larm, lfs
local quiet = false
if cfg.quiet then
  local qs, qe = cfg.quiet[1], cfg.quiet[2]
  if qs < qe then quiet = lsec >= qs and lsec < qe else quiet = lsec >= qs or lsec < qe end
end
if cfg.kind == 'holdout' then reason = 'holdout'
elseif st[3] == '1' then reason = 'opted_out'
elseif quiet then reason = 'quiet_hours'
elseif recent >= cfg.cap then reason = 'daily_cap'
elseif lp and now - lp < cfg.min_gap then reason = 'min_gap'
else
  -- the context's arm, its segment's totals and the whole space's ('*|N'): the pooled prior's parents;
  -- with pacing (Thompson sampling and UCB), also the segment's load arms ('<seg>|FL', '<seg>|F0', ...)
  local fields = {arm_field, seg .. '|N', '*|N'}
  local pace = (cfg.pacing or 0) > 0
  if pace then  -- at 'L' only its own arm (a send credits it): nothing to wait for there
    local fs = cfg.fs  -- the load arms' field suffixes ('|FL', '|F0', ...): no number formatting per call
    fields[4] = seg .. fs[1]
    if load ~= 'L' then for j = 2, #fs do fields[3 + j] = seg .. fs[j] end end
  end
  local raw = redis.call('HMGET', akey, unpack(fields))
  local size, hl = 2 + #cfg.w, cfg.hl
  arm = arm_load(raw[1], size)
  tot = arm_load(raw[2], size)
  all = arm_load(raw[3], size)
  -- decayed to now in place (a send below adds to them as they are), the arm as every policy sees it now;
  -- recorded whatever the policy, so the log can evaluate others
  arm_decay_to(arm, now, hl); arm_decay_to(tot, now, hl); arm_decay_to(all, now, hl)
  local pa, pb = prior(cfg, tot, all)
  -- the user's own evidence (user <- segment context <- policy space)
  local um = {}
  for x in string.gmatch(ARGV[8], '%S+') do um[#um + 1] = tonumber(x) end
  local evs = 0
  for i = 7, 11 do evs = evs + (tonumber(st[i]) or 0) end
  pe, ep = pe_load(st[5])
  local th, vth, g = user_theta(um, st[5] and pe, tonumber(st[6]), evs, tonumber(st[10]) or 0, now, cfg.hl)
  -- what drove it, for GET /v1/decisions/<id>: the context's value (engagement and the rest), the user's multiplier
  -- and whether it was applied (setting user_evidence)
  local mp, vp, mn, vn = posterior_parts(arm, cfg, pa, pb)
  why = struct.pack('<ddddddd', mp, mn, vp + vn, th, vth, g, cfg.nouser and 0 or 1)
  if cfg.nouser then th, vth = 1, 0 end
  local mu, var = th * mp + mn, th * th * vp + vth * (mp * mp + vp) + vn  -- (posterior's arithmetic)
  pe_x = engage_rate(arm, cfg, tot, all)
  if pace and load == 'L' then
    larm = arm_load(raw[4], size)
    arm_decay_to(larm, now, hl)
  elseif pace then
    -- wait while the user's load is above the one whose steady cadence earns most: the load arms' posteriors
    -- at now, decayed on the fly (the user's own load arm is decayed when a send credits it, by arm_add)
    local means, vars = {}, {}
    for i = 4, #fields do
      local a = arm_load(raw[i], size)
      local f = 1
      if now > a[1] then f = pow(2, -(now - a[1]) / hl) end  -- (arm_decay_to's factor)
      means[i - 3], vars[i - 3] = posterior(a, cfg, pa, pb, f)
      if i == 5 + load then larm = a end
    end
    local bj = pace_choice(means, vars, cfg.cost, cfg.lw, cfg.ll, cfg.pacing_caution or 0)
    if load > bj then
      reason = 'pacing'
      -- pacing lifts when the load falls to bj: the (count - bj)-th oldest push of the window leaves it
      if bj < 0 then pace_ready = lp + cfg.ll else
        local win = {}
        for _, x in ipairs(pushes) do
          local t = tonumber(x)
          if t <= now and t > now - cfg.lw then win[#win + 1] = t end
        end
        pace_ready = win[#win - bj] + cfg.lw
      end
    end
  end
  local n = tot[2]
  local gap = 0 / 0  -- NaN: never pushed
  if lp then gap = now - lp end
  -- a pacing refusal is logged like a guardrail's (the gap, no arm): off-policy evaluation keeps it a refusal
  if reason ~= 'pacing' then
    seen = struct.pack('<dddd', mu, var, n, gap)
    if cfg.kind == 'cadence' then
      send = (not lp) or (now - lp >= cfg.gap)
    elseif cfg.kind == 'thompson' then
      local p = phi((mu - cfg.cost) / (cfg.thompson_scale * sqrt(var)))
      -- with episodes: one draw per user and push episode (until their next push, at most ll after the last one)
      -- for the asks where p < 1/2 (exploration): the draw is held and each ask it refuses raises its floor m, so
      -- an episode explores with the largest such p, however often a gateway asks (a draw per ask would push an
      -- uncertain user with their sum). The propensity is the draw's probability given the asks it already
      -- refused: (p - m) / (1 - m).
      -- (asks the policy more likely sends than not take a fresh draw, as without episodes: they reveal nothing of
      -- the held one, so its floor stays exact)
      if not cfg.episodes or p >= 0.5 then
        send = u < p
        if send then prop = p else prop = 1 - p end
      else
        if not ep or now - pe[1] >= cfg.ll then ep = {u, 0} end
        local m = ep[2]
        send = ep[1] < p
        if send then prop = (p - m) / (1 - m)
        elseif p > m then prop = (1 - p) / (1 - m); ep[2] = p
        else prop = 1 end
        if not send and st[1] then  -- (an unknown user keeps no episode: each ask is a fresh draw)
          if now - pe[1] >= cfg.ll then arm_decay_to(pe, now, cfg.hl) end
          redis.call('HSET', KEYS[1], 'pe', pe_dump(pe, ep))
        end
      end
    else
      send = mu + cfg.ucb_c * sqrt(var * 2 * math.log(n + 2)) > cfg.cost
    end
  end
end

-- items: the user's precomputed list, then the segment's popular list, then the global one,
-- minus items pushed recently (see PICK_ITEMS)
local excluded, kept_pi = recent_items(pi_raw, now, cfg.excl)
local items, source, model = pick_items(KEYS[9 + 3 * nx], KEYS[10 + 3 * nx], KEYS[4], seg, k, excluded)

local ts = ARGV[3]
if send then
  -- a user with a segment field exists; only one without may need creating
  if not st[1] and redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('HSET', KEYS[1], 'sg', 'new')
    redis.call('HINCRBY', KEYS[5], 'new', 1)
  end
  pushes[#pushes + 1] = ts
  for i = 1, #items, 2 do kept_pi[#kept_pi + 1] = items[i] .. ' ' .. ts end
  if pe then
    arm_add(pe, 3, now, cfg.hl, pe_x)
    redis.call('HSET', KEYS[1], 'lp', ts, 'pe', pe_dump(pe))
  else
    redis.call('HSET', KEYS[1], 'lp', ts)
  end
  redis.call('SET', KEYS[6], table.concat(pushes, ' ') .. '\n' .. table.concat(kept_pi, ' '), 'EX', cfg.keep)
  arm_add(arm, 2, now, cfg.hl, 1)
  arm_add(tot, 2, now, cfg.hl, 1)
  arm_add(all, 2, now, cfg.hl, 1)
  local set = {arm_field, arm_dump(arm), seg .. '|N', arm_dump(tot), '*|N', arm_dump(all)}
  if larm then
    arm_add(larm, 2, now, cfg.hl, 1)
    lfs = cfg.fs[load == 'L' and 1 or load + 2]  -- '|F' .. load, without formatting the number
    set[7] = seg .. lfs; set[8] = arm_dump(larm)
  end
  redis.call('HSET', akey, unpack(set))
end
local item_ids = {}
for i = 1, #items, 2 do item_ids[#item_ids + 1] = items[i] end
local qtext = fmt(prop)  -- (the record's and the answer's: one formatting)
-- feedback reads u s a x t v f; four that only the log reads are one field, d = "q r p m" tab-separated (none
-- holds whitespace; under 60 bytes: a value over 64 would turn the record's listpack into a hash table), the
-- channel only when there is one: a hash field costs every decide its own insertion (three fewer: 9k of the
-- script's 450k instructions) and the record its own bytes
local record = {'u', uid, 's', seg, 'a', ctx, 'x', send and '1' or '0', 't', ts, 'v', cfg.space,
  'd', qtext .. '\t' .. reason .. '\t' .. cfg.policy .. '\t' .. model, 'i', table.concat(item_ids, ' ')}
if ARGV[6] ~= '' then record[#record + 1] = 'c'; record[#record + 1] = ARGV[6] end
-- the load arm a pushed decision's feedback also credits
if send and larm then record[#record + 1] = 'f'; record[#record + 1] = string.sub(lfs, 3) end
-- for off-policy evaluation: what the policy saw, as four little-endian doubles (exact, 32 bytes):
-- the net value's posterior mean and variance, the segment's decayed sends, the seconds since the
-- user's last push (NaN if never). A guardrail refusal records only that gap, as text ('l').
if seen then record[#record + 1] = 'z'; record[#record + 1] = seen; record[#record + 1] = 'y'; record[#record + 1] = why
elseif lp then record[#record + 1] = 'l'; record[#record + 1] = fmt(now - lp) end
redis.call('HSET', dkey, unpack(record))
redis.call('EXPIRE', dkey, cfg.ttl)
-- the decision log's index of this hour: the id of the record written ("<token>.<space>")
local lkey = KEYS[8 + 3 * nx]
local entry = string.sub(did, 1, string.find(did, '.', 1, true)) .. cfg.space .. ' '
-- the hour's first entry sets the expiry (later decides of the hour need not: saves a call per decide)
if redis.call('APPEND', lkey, entry) == #entry then redis.call('EXPIRE', lkey, cfg.lttl) end
-- the first exposure creates the user's counters (that is the exposure log); a send counts in them
local first = 0
if xi > 0 then
  local m
  if xrec then m = xrec_load(xrec) else m = {tonumber(ARGV[8 + xi]), floor(now), 0, 0, 0, 0, 0, 0, 0}; first = 1 end
  if send then m[3] = m[3] + 1 end
  if send or first == 1 then redis.call('HSET', KEYS[7 + 3 * xi], uid, xrec_dump(m)) end
end
-- a refusal about the moment: when the refusals of the moment lift (quiet hours aside: the caller knows them)
local ready = ''
if reason == 'quiet_hours' or reason == 'daily_cap' or reason == 'min_gap' or reason == 'pacing' then
  local r = now
  if lp and now - lp < cfg.min_gap then r = lp + cfg.min_gap end
  if recent >= cfg.cap then  -- the (recent - cap + 1)-th oldest push of the last 24 h leaves the cap's window
    local day = {}
    for _, x in ipairs(pushes) do
      local t = tonumber(x)
      if t <= now and t > now - 86400 then day[#day + 1] = t end
    end
    if day[recent - cfg.cap + 1] + 86400 > r then r = day[recent - cfg.cap + 1] + 86400 end
  end
  if pace_ready and pace_ready > r then r = pace_ready end
  ready = fmt(r)
end
return {send and 1 or 0, reason, seg, qtext, rec, dp, table.concat(items, ' '), xi, first, source, ready,
  fmt(lsec - now % 86400), lp and fmt(lp) or ''}
"""

ITEMS = r"""
local function fmt(x) return string.format('%.17g', x) end
""" + PICK_ITEMS + r"""
-- KEYS[1] = user hash   KEYS[2] = the user's recent pushes   KEYS[3] = the user's precomputed items
-- KEYS[4] = item index -> id hash   KEYS[5] = popular lists hash
-- ARGV[1] = now (epoch s)   ARGV[2] = k   ARGV[3] = exclusion window (s)
-- returns {items "id score ...", items source, segment, model label}; reads only, writes nothing
local seg = redis.call('HGET', KEYS[1], 'sg') or 'new'
local recent_raw = redis.call('GET', KEYS[2]) or ''
local nl = string.find(recent_raw, '\n', 1, true)
local pi_raw = ''
if nl then pi_raw = string.sub(recent_raw, nl + 1) end
local excluded = recent_items(pi_raw, tonumber(ARGV[1]), tonumber(ARGV[3]))
local items, source, model = pick_items(KEYS[3], KEYS[4], KEYS[5], seg, tonumber(ARGV[2]), excluded)
return {table.concat(items, ' '), source, seg, model}
"""

FEEDBACK = PRELUDE + XREC + r"""
-- KEYS[1] = decision record   KEYS[2] = arms hash of the decision's policy space
-- KEYS[3] = the experiment's per-user counters (XREC) when the space is an experiment variant's
-- ARGV[1] = outcome slot (1-based among the outcomes)   ARGV[2] = event name   ARGV[3] = ts
-- ARGV[4] = attribution window (s)   ARGV[5] = half-life (s)   ARGV[6] = number of outcomes
-- ARGV[7] = value ('' if none)   ARGV[8] = policy space named by the decision id
-- ARGV[9] = '1' if KEYS[3] applies   ARGV[10] = counter slot in XREC (4 clicks, 5 conversions,
--   6 unsubscribed, 0 none)   ARGV[11] = the event's weight in the net value
-- returns {status, user id, policy space}: status accepted | duplicate | late | unknown | not_sent
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown', '', ''} end
local r = redis.call('HMGET', KEYS[1], 'x', 's', 'a', 't', 'u', 'v', 'f')
if r[6] ~= ARGV[8] then return {'unknown', '', ''} end
if r[1] ~= '1' then return {'not_sent', r[5], r[6]} end
local ts, t = tonumber(ARGV[3]), tonumber(r[4])
local late = ts - t > tonumber(ARGV[4])
local flag = fmt(ts)
if late then flag = flag .. ' late' end
if ARGV[7] ~= '' then flag = flag .. ' v=' .. ARGV[7] end
if redis.call('HSETNX', KEYS[1], 'e:' .. ARGV[2], flag) == 0 then return {'duplicate', r[5], r[6]} end
if late then return {'late', r[5], r[6]} end
-- the context's arm, its segment's totals and the whole space's (the pooled prior's parents), and the load
-- arm of a decision made with pacing
local fields = {r[2] .. '|' .. r[3], r[2] .. '|N', '*|N'}
if r[7] then fields[4] = r[2] .. '|F' .. r[7] end
local raw = redis.call('HMGET', KEYS[2], unpack(fields))
local set = {}
for j = 1, #fields do
  local arm = arm_load(raw[j], 2 + tonumber(ARGV[6]))
  -- credit at the decision's time, so outcome counts and send counts decay together
  arm_add(arm, 2 + tonumber(ARGV[1]), t, tonumber(ARGV[5]), 1)
  set[#set + 1] = fields[j]; set[#set + 1] = arm_dump(arm)
end
redis.call('HSET', KEYS[2], unpack(set))
if ARGV[9] == '1' then
  local raw = redis.call('HGET', KEYS[3], r[5])
  if raw then
    local m, slot = xrec_load(raw), tonumber(ARGV[10])
    if slot == 6 then m[6] = 1 elseif slot > 0 then m[slot] = m[slot] + 1 end
    m[7] = m[7] + tonumber(ARGV[11])
    redis.call('HSET', KEYS[3], r[5], xrec_dump(m))
  end
end
return {'accepted', r[5], r[6]}
"""

USER_EVIDENCE = PRELUDE + r"""
-- KEYS[1] = decision record   KEYS[2] = the decision's user hash
-- ARGV[1] = half-life (s)
-- credits the user's engagement evidence (the 'pe' field, see user_theta) once per decision: the first engagement
-- feedback (opened, clicked or converted) accepted in time (its flag is in the record, without 'late'), marked 'ue'.
-- Run after FEEDBACK for accepted and duplicate engagement events, so a retry completes what a crash cut short.
-- returns 1 if credited now, else 0
local r = redis.call('HMGET', KEYS[1], 'x', 't', 'ue', 'e:opened', 'e:clicked', 'e:converted')
if r[1] ~= '1' or r[3] then return 0 end
local ok = false
for i = 4, 6 do if r[i] and not string.find(r[i], 'late', 1, true) then ok = true end end
if not ok then return 0 end
redis.call('HSET', KEYS[1], 'ue', '1')
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end  -- a deleted user is not recreated
local pe, ep = pe_load(redis.call('HGET', KEYS[2], 'pe'))
arm_add(pe, 2, tonumber(r[2]), tonumber(ARGV[1]), 1)
redis.call('HSET', KEYS[2], 'pe', pe_dump(pe, ep))
return 1
"""

EVENT = XREC + r"""
-- KEYS[1] = user hash   KEYS[2] = segment sizes   KEYS[3] = popular counts of the event's day
-- KEYS[4] = interaction chunk of the event's day   KEYS[5] = item index hash   KEYS[6] = item id list
-- KEYS[7] = counters hash   KEYS[8] = set of interaction days   KEYS[9] = set of compacted days
-- KEYS[10] = the event id's count-once marker (unused when ARGV[10] is '0')
-- KEYS[11] = experiments registry version   KEYS[12] = user id list (by dense index)
-- KEYS[13..] = per-user counters (XREC) of each active experiment
-- ARGV[1] = ts   ARGV[2] = event type   ARGV[3] = type code (0..254)   ARGV[4] = item id ('' if none)
-- ARGV[5] = value   ARGV[6] = popularity weight   ARGV[7] = popularity TTL (s)
-- ARGV[8] = interaction TTL (s)   ARGV[9] = day number   ARGV[10] = dedup TTL (s), '0' if no event id
-- ARGV[11] = the registry version the process read its active experiments at   ARGV[12] = user id
-- returns the user's segment, or false if this event id was already recorded, or -1 (nothing written)
-- when the registry moved since
if (redis.call('GET', KEYS[11]) or '0') ~= ARGV[11] then return -1 end
if ARGV[10] ~= '0' and not redis.call('SET', KEYS[10], '1', 'NX', 'EX', ARGV[10]) then return false end
local ts = tonumber(ARGV[1])
local st = redis.call('HMGET', KEYS[1], 'sg', 'ix', 'ff', 'fl', 'fp')
local seg = st[1]
if not seg then  -- a user first seen through an event starts in 'new'; segmentation.assign_new moves them
  redis.call('HINCRBY', KEYS[2], 'new', 1)
  seg = 'new'
  redis.call('HSET', KEYS[1], 'sg', seg)
end
local uix = st[2]
if not uix then
  uix = redis.call('HINCRBY', KEYS[7], 'users', 1) - 1
  redis.call('HSET', KEYS[1], 'ix', uix)
  -- index -> id; a list that does not line up with the counter (kept from before it existed) is left alone
  if redis.call('LLEN', KEYS[12]) == uix then redis.call('RPUSH', KEYS[12], ARGV[12]) end
end
redis.call('HINCRBY', KEYS[1], 'f:' .. ARGV[2], 1)
if not st[3] or ts < tonumber(st[3]) then redis.call('HSET', KEYS[1], 'ff', ARGV[1]) end
if not st[4] or ts > tonumber(st[4]) then redis.call('HSET', KEYS[1], 'fl', ARGV[1]) end
if ARGV[2] == 'purchase' then
  redis.call('HINCRBYFLOAT', KEYS[1], 'fm', ARGV[5])
  if not st[5] or ts > tonumber(st[5]) then redis.call('HSET', KEYS[1], 'fp', ARGV[1]) end
end
local iix = 4294967295
local item = ARGV[4]
if item ~= '' then
  iix = redis.call('HGET', KEYS[5], item)
  if not iix then
    iix = redis.call('RPUSH', KEYS[6], item) - 1
    redis.call('HSET', KEYS[5], item, iix)
  end
  local w = tonumber(ARGV[6])
  if w > 0 then
    redis.call('HINCRBYFLOAT', KEYS[3], seg .. '|' .. item, ARGV[6])
    redis.call('HINCRBYFLOAT', KEYS[3], '*|' .. item, ARGV[6])
    redis.call('EXPIRE', KEYS[3], ARGV[7])
  end
end
redis.call('APPEND', KEYS[4], struct.pack('<IIBI', tonumber(uix), tonumber(iix), tonumber(ARGV[3]), math.floor(ts)))
redis.call('EXPIRE', KEYS[4], ARGV[8])
redis.call('ZADD', KEYS[8], ARGV[9], ARGV[9])
redis.call('SREM', KEYS[9], ARGV[9])
-- organic activity after exposure, per active experiment the user is in
for j = 13, #KEYS do
  local raw = redis.call('HGET', KEYS[j], ARGV[12])
  if raw then
    local m = xrec_load(raw)
    if ts >= m[2] then
      m[8] = m[8] + 1
      if ARGV[2] == 'purchase' then m[9] = m[9] + 1 end
      redis.call('HSET', KEYS[j], ARGV[12], xrec_dump(m))
    end
  end
end
return seg
"""

SET_SEGMENT = r"""
-- KEYS[1] = user hash   KEYS[2] = segment sizes
-- ARGV[1] = the new segment   ARGV[2] = the segment the user must still be in ('' = any)
-- returns 1 if the user moved, 0 otherwise (unknown user, already there, or not in ARGV[2])
local old = redis.call('HGET', KEYS[1], 'sg')
if not old or old == ARGV[1] or (ARGV[2] ~= '' and old ~= ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'sg', ARGV[1])
redis.call('HINCRBY', KEYS[2], old, -1)
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return 1
"""

UPSERT_USER = r"""
-- KEYS[1] = user hash   KEYS[2] = segment sizes
-- ARGV[1] = time zone name ('' = unchanged)   ARGV[2] = its rule   ARGV[3] = opted out '1'|'0'|'' (unchanged)
-- returns 1 if the user was created
local created = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'sg', 'new')
  redis.call('HINCRBY', KEYS[2], 'new', 1)
  created = 1
end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'tzn', ARGV[1], 'tzr', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'oo', ARGV[3]) end
return created
"""

COMPACT = r"""
-- KEYS[1] = an interaction chunk (string)
-- returns its length in bytes
-- APPEND grows a string greedily (up to twice its size, or +1 MB); re-setting it allocates it exactly.
-- One script, so no event appended meanwhile can be lost.
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
redis.call('SET', KEYS[1], v, 'KEEPTTL')
return string.len(v)
"""

RATE_LIMIT = TOKEN_BUCKET + r"""
-- KEYS[1] = the API key's token bucket hash {k = tokens, t = time}
-- ARGV[1] = rate (tokens per second)   ARGV[2] = burst (bucket size)   ARGV[3] = cost (tokens)
-- returns {allowed 1|0, milliseconds until the cost is available (0 when allowed)}
local allowed, wait = take_token(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
return {allowed, wait}
"""

DELETE_USER = r"""
-- KEYS[1] = user hash   KEYS[2] = the user's recent pushes   KEYS[3] = segment sizes
-- KEYS[4] = the user's precomputed items   KEYS[5] = the user's interactions since the MF version (fold-in)
-- KEYS[6] = user id list (by dense index)
-- returns the number of keys removed
local st = redis.call('HMGET', KEYS[1], 'sg', 'ix')
if st[1] then redis.call('HINCRBY', KEYS[3], st[1], -1) end
if st[2] and tonumber(st[2]) < redis.call('LLEN', KEYS[6]) then redis.call('LSET', KEYS[6], st[2], '') end
return redis.call('DEL', KEYS[1], KEYS[2], KEYS[4], KEYS[5])
"""

EXPERIMENT_TRANSITION = r"""
-- KEYS[1] = experiment hash   KEYS[2] = running ids (zset)   KEYS[3] = active ids (zset)   KEYS[4] = registry version
-- ARGV[1] = start | pause | stop   ARGV[2] = now   ARGV[3] = experiment id
-- returns {1 if done else 0, status before ('' if no such experiment)}
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {0, ''} end
local a = ARGV[1]
local ok = (a == 'start' and (st == 'draft' or st == 'paused')) or (a == 'pause' and st == 'running')
  or (a == 'stop' and st ~= 'stopped')
if not ok then return {0, st} end
if a == 'start' then
  redis.call('HSETNX', KEYS[1], 'started', ARGV[2])
  -- the first start orders overlapping experiments: the older one wins, paused or not in between
  local order = tonumber(redis.call('HGET', KEYS[1], 'started'))
  redis.call('HSET', KEYS[1], 'status', 'running')
  redis.call('ZADD', KEYS[2], order, ARGV[3])
  redis.call('ZADD', KEYS[3], order, ARGV[3])
elseif a == 'pause' then
  redis.call('HSET', KEYS[1], 'status', 'paused')
  redis.call('ZREM', KEYS[2], ARGV[3])
else
  redis.call('HSET', KEYS[1], 'status', 'stopped', 'stopped', ARGV[2])
  redis.call('ZREM', KEYS[2], ARGV[3])
  redis.call('ZREM', KEYS[3], ARGV[3])
end
redis.call('INCR', KEYS[4])
return {1, st}
"""

EXPERIMENT_UPDATE = r"""
-- KEYS[1] = experiment hash   ARGV[1] = new definition (JSON)
-- returns the status: the definition is replaced only when it is 'draft'
local st = redis.call('HGET', KEYS[1], 'status')
if st == 'draft' then redis.call('HSET', KEYS[1], 'def', ARGV[1]) end
return st or ''
"""
