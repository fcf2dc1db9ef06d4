-- Guardrails and the context of a decide: the user's local time (daypart, quiet hours), the recency bucket, the
-- pushes of the last 24 h (the cap) and of pacing's window (the load), whatever the policy.
--- @include "base"
--- @include "tz"

-- the user's recent pushes, a string "<push ts> <push ts> ...\n<item> <ts> <item> <ts> ...": kept are the push
-- times of the last 24 h and of pacing's window; recent: pushes in the last 24 h; load: pushes in the window
-- (capped at the last load arm), or 'L' when the user was not pushed within ll (or never); pi_raw: the items part
local function recent_pushes(cfg, raw, now, lp)
  local nl = string.find(raw, '\n', 1, true)
  local pt_raw, pi_raw = raw, ''
  if nl then pt_raw, pi_raw = string.sub(raw, 1, nl - 1), string.sub(raw, nl + 1) end
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
  return pushes, recent, load, pi_raw
end

-- the second of the user's local day (by the user's time zone rule, else the default one), the recency bucket
-- (0-based: the first edge the time since the last push is under; the last bucket if never pushed), the daypart
local function local_context(cfg, rule, now, lp)
  local lsec = (now + utc_offset(rule or cfg.tz, now)) % 86400
  local dp = cfg.dp[floor(lsec / 3600) + 1]
  local rec = #cfg.rec
  if lp then
    for i, e in ipairs(cfg.rec) do if now - lp < e then rec = i - 1; break end end
  end
  return lsec, rec, dp
end

-- the guardrail that refuses (its reason), or nil: opted out, quiet hours, the daily cap, the minimum gap
local function guardrail(cfg, opted_out, lsec, recent, lp, now)
  if opted_out == '1' then return 'opted_out' end
  if cfg.quiet then
    local qs, qe = cfg.quiet[1], cfg.quiet[2]
    -- the window may wrap midnight (22:00-08:00)
    if qs < qe then
      if lsec >= qs and lsec < qe then return 'quiet_hours' end
    elseif lsec >= qs or lsec < qe then return 'quiet_hours' end
  end
  if recent >= cfg.cap then return 'daily_cap' end
  if lp and now - lp < cfg.min_gap then return 'min_gap' end
  return nil
end

-- the times of the pushes in (now - window, now], oldest first
local function pushes_within(pushes, now, window)
  local out = {}
  for _, x in ipairs(pushes) do
    local t = tonumber(x)
    if t <= now and t > now - window then out[#out + 1] = t end
  end
  return out
end

-- when a pacing refusal lifts: when the load falls to bj, the best one (-1: not pushed within ll), i.e. when the
-- (count - bj)-th oldest push of the window leaves it
local function pacing_lifts(cfg, pushes, now, lp, bj)
  if bj < 0 then return lp + cfg.ll end
  local win = pushes_within(pushes, now, cfg.lw)
  return win[#win - bj] + cfg.lw
end

-- a refusal about the moment (quiet hours, the cap, the minimum gap, pacing): when the refusals of the moment
-- lift, as %.17g text (quiet hours aside: the caller knows them); '' for any other answer. paced: when pacing's
-- refusal lifts, or nil
local function ready_at(cfg, reason, now, lp, recent, pushes, paced)
  if reason ~= 'quiet_hours' and reason ~= 'daily_cap' and reason ~= 'min_gap' and reason ~= 'pacing' then
    return ''
  end
  local r = now
  if lp and now - lp < cfg.min_gap then r = lp + cfg.min_gap end
  if recent >= cfg.cap then  -- the (recent - cap + 1)-th oldest push of the last 24 h leaves the cap's window
    local day = pushes_within(pushes, now, 86400)
    if day[recent - cfg.cap + 1] + 86400 > r then r = day[recent - cfg.cap + 1] + 86400 end
  end
  if paced and paced > r then r = paced end
  return fmt(r)
end
