-- Posteriors: the net value of a push from an arm, as a mean and a variance. policies/base.py holds the numpy
-- reference of each function here, operation for operation (the tests compare them bit for bit).
--- @include "base"

-- standard normal CDF, Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7); policies/base.py has the same
local function phi(z)
  local x = math.abs(z) / sqrt(2)
  local t = 1 / (1 + 0.3275911 * x)
  local y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
                 + 0.254829592) * t * math.exp(-x * x)
  if z >= 0 then return 0.5 * (1 + y) end
  return 0.5 * (1 - y)
end

-- the Beta prior (a, b) of outcome i's rate: the configured one, or with cfg.pool > 0 and the parents given (sg:
-- the segment's totals, al: the whole space's, decayed like the arm) the pooled one; policies/base.py
-- (pooled_prior) is the reference, operation for operation. The same for every arm of a segment.
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
-- the priors of the weighted outcomes, as two lists pa, pb in the order of cfg.nz (the outcomes with a non-zero
-- weight, 1-based)
local function prior(cfg, sg, al)
  local nz, pa, pb = cfg.nz, {}, {}
  for j = 1, #nz do pa[j], pb[j] = prior_of(cfg, nz[j], sg, al) end
  return pa, pb
end

-- mean and variance of the net value of a push: sum of w_i * rate_i, independent Beta posteriors (pa, pb: the
-- prior, see above); the arm's counts are taken times f (default 1): the arm as arm_decay_to would leave it
-- with that factor, the same products, without writing to it.
-- Split by the sign of the weights: (mean, variance) of the engagement part (w > 0) and of the rest; the user's
-- engagement multiplier scales the first (policies/base.py, net_value_posterior)
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
-- the net value for a user whose engagement multiplier has mean th and variance vth (default: the context's own)
local function posterior(a, cfg, pa, pb, f, th, vth)
  local mp, vp, mn, vn = posterior_parts(a, cfg, pa, pb, f)
  th, vth = th or 1, vth or 0
  return th * mp + mn, th * th * vp + vth * (mp * mp + vp) + vn
end
