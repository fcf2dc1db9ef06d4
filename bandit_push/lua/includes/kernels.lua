-- Policy kernels, by the policy's kind (bandit_push/policies: each class's `kind` names its kernel here, and its
-- send_probabilities is the numpy reference). A kernel sees the policy's config (its lua_params among the
-- decide config) and what the policy sees of the moment: mu, var, the net value's posterior mean and variance
-- for this user; n, the segment's decayed sends; lp, the user's last push (nil if never); now; u, a uniform draw
-- in [0, 1); user = {pe, ep}: the user's evidence and open Thompson episode (evidence.lua), nil for a user not
-- yet known. It returns whether to send, the probability with which it chose that, and an episode to keep with
-- a refusal (or nil). A new policy is one function here and its Python class.
--- @include "base"
--- @include "posterior"

local KERNELS = {}
function KERNELS.cadence(cfg, _, _, _, lp, now)
  return (not lp) or (now - lp >= cfg.gap), 1
end
function KERNELS.thompson(cfg, mu, var, _, _, now, u, user)
  local p = phi((mu - cfg.cost) / (cfg.thompson_scale * sqrt(var)))
  -- with episodes: one draw per user and push episode (until their next push, at most ll after the last one)
  -- for the asks where p < 1/2 (exploration): the draw is held and each ask it refuses raises its floor m, so
  -- an episode explores with the largest such p, however often a gateway asks (a draw per ask would push an
  -- uncertain user with their sum). The propensity is the draw's probability given the asks it already
  -- refused: (p - m) / (1 - m).
  -- (asks the policy more likely sends than not take a fresh draw, as without episodes: they reveal nothing of
  -- the held one, so its floor stays exact)
  if not cfg.episodes or p >= 0.5 then
    if u < p then return true, p end
    return false, 1 - p
  end
  local ep = user.ep
  if not ep or now - user.pe[1] >= cfg.ll then ep = {u, 0} end
  local m = ep[2]
  if ep[1] < p then return true, (p - m) / (1 - m) end
  local prop = 1
  if p > m then prop = (1 - p) / (1 - m); ep[2] = p end
  return false, prop, ep
end
function KERNELS.ucb(cfg, mu, var, n)
  return mu + cfg.ucb_c * sqrt(var * 2 * math.log(n + 2)) > cfg.cost, 1
end
-- (never reached: the holdout's config refuses before the guardrails, see cfg.refuse)
function KERNELS.holdout()
  return false, 1
end
