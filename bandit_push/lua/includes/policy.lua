-- What the policy sees: the context's arm with its parents (the pooled prior), decayed to now, and with pacing
-- the segment's load arms; decide then adds the user's evidence (evidence.lua) and the kernel decides (kernels.lua).
--- @include "base"
--- @include "schema"
--- @include "arms"
--- @include "posterior"
--- @include "pacing"

-- arms: the policy space's arms as the decide snapshot holds them (snapshot.lua: field -> packed arm); arm_field:
-- '<seg>|<rec>|<dp>'; load: as recent_pushes answers it.
-- returns a table: arm, tot, all (the context's arm, the segment's totals, the space's; decayed to now),
-- pa, pb (the priors, see prior), lfs (the field suffix of the load arm a send credits), and with pacing bj (the
-- best load, -1: not pushed within ll) and paced (true when pacing says to wait: the user's load is above bj)
local function evaluate(cfg, arms, seg, arm_field, load, now)
  local fields = {arm_field, seg .. ARM.segment_totals, ARM.space_totals}
  local pace = (cfg.pacing or 0) > 0
  if pace and load ~= 'L' then  -- at 'L' only its own arm (a send credits it): nothing to wait for there
    local fs = cfg.fs  -- the load arms' field suffixes ('|FL', '|F0', ...): no number formatting per call
    fields[4] = seg .. fs[1]
    for j = 2, #fs do fields[3 + j] = seg .. fs[j] end
  end
  local raw = {}
  for i = 1, #fields do raw[i] = arms[fields[i]] end
  local size, hl = 2 + #cfg.w, cfg.hl
  local s = {arm = arm_load(raw[1], size), tot = arm_load(raw[2], size), all = arm_load(raw[3], size)}
  -- the arm as every policy sees it now; recorded whatever the policy, so the log can evaluate others
  arm_decay_to(s.arm, now, hl); arm_decay_to(s.tot, now, hl); arm_decay_to(s.all, now, hl)
  local pa, pb = prior(cfg, s.tot, s.all)
  s.pa, s.pb = pa, pb
  if pace and load == 'L' then
    s.lfs = cfg.fs[1]
  elseif pace then
    -- wait while the user's load is above the one whose steady cadence earns most: the load arms' posteriors
    -- at now, decayed on the fly
    local means, vars, ns = {}, {}, {}
    for i = 4, #fields do
      local a = arm_load(raw[i], size)
      local f = 1
      if now > a[1] then f = pow(2, -(now - a[1]) / hl) end  -- (arm_decay_to's factor)
      means[i - 3], vars[i - 3] = posterior(a, cfg, pa, pb, f)
      ns[i - 3] = a[2] * f
      if i == 5 + load then s.lfs = cfg.fs[load + 2] end
    end
    s.bj = pace_choice(means, vars, cfg.cost, cfg.lw, cfg.ll, cfg.pacing_caution or 0, ns, cfg.pacing_explore or 0,
                       cfg.pacing_min_sends or 0)
    s.paced = load > s.bj
  end
  return s
end
