-- Time zones: the user's UTC offset at an instant from a POSIX TZ rule (bandit_push/tzrule.py has the rule
-- format and the Python reference, which the tests compare this against).
--- @include "base"

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
-- std offset, dst offset, then start and end (month, week, weekday, seconds): ten comma-separated fields
local TZ_DST = '^([^,]+),([^,]+),([^,]+),([^,]+),([^,]+),([^,]+),([^,]+),([^,]+),([^,]+),([^,]+)$'
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
