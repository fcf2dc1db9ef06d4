-- The user's own evidence (user <- segment context <- policy space): engagement.py holds the model and the
-- Python reference (user_theta, user_net_value), operation for operation.
--- @include "base"
--- @include "posterior"

-- a user's evidence {t, E, X} as text "t E X" (the user hash is read as text; 10 and 6 significant digits:
-- under 30 bytes); then, while a Thompson episode is open, its draw u and floor m: "t E X u m" (kernels.lua).
-- returns the evidence and the episode {u, m} (nil if none)
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

-- the user's engagement multiplier theta ~ Gamma(shape, rate), mean and variance, and g: prior Gamma(kappa,
-- kappa / g) with g = exp(b0 + b1 x1 + b2 x2) from organic activity (x1: log(1 + events per 30 days), x2: the same
-- of purchases, over the tenure, at least 30 days), then the user's decayed evidence pe = {t, E, X}: E engaged
-- decisions against X, their expected number. um = {kappa, b0, b1, b2}: the engagement model's snapshot.
-- Also returns the inputs e, x (decayed to now), x1, x2: the record keeps them so that another version of the model
-- can be scored on the decision (the policy refit's gate, engagement_gate.py)
local function user_theta(um, pe, ff, evs, purchases, now, hl)
  local kappa = um[1]
  local ten = 30
  if ff then ten = (now - ff) / 86400; if ten < 30 then ten = 30 end end
  local x1, x2 = math.log(1 + evs * 30 / ten), math.log(1 + purchases * 30 / ten)
  local g = math.exp(um[2] + um[3] * x1 + um[4] * x2)
  local e, x = 0, 0
  if pe then
    local fd = 1
    if now > pe[1] then fd = pow(2, -(now - pe[1]) / hl) end
    e, x = pe[2] * fd, pe[3] * fd
  end
  local shape, rate = kappa + e, kappa / g + x
  return shape / rate, shape / (rate * rate), g, e, x, x1, x2
end
