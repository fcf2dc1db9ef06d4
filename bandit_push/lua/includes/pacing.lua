-- Pacing: the load (pushes in the pacing window) whose steady cadence earns most; policies/base.py
-- (pacing_load, pacing_choice) is the reference.
--- @include "base"

-- means[1]: the arm of users not pushed within ll seconds, means[j + 2]: of users with j pushes in the last lw
-- seconds (the last one: j or more). Per lw seconds, a cadence held at load j earns (mean - cost) * (j + 1); one
-- push per ll, (mean - cost) * lw / ll. returns the best load, -1 for 'not pushed within ll' (the first on ties)
local function pace_load(means, cost, lw, ll)
  local best, bj = (means[1] - cost) * lw / ll, -1
  for j = 0, #means - 2 do
    local r = (means[j + 2] - cost) * (j + 1)
    if r > best then best, bj = r, j end
  end
  return bj
end

-- pacing_caution c: whether to push within ll at all by the means, which load by lower bounds (mean - c * sd),
-- the 'not pushed within ll' arm left out of that ranking; vars: the variances
local function pace_choice(means, vars, cost, lw, ll, c)
  local bj = pace_load(means, cost, lw, ll)
  if bj >= 0 and c > 0 then
    local lows = {-math.huge}
    for i = 2, #means do lows[i] = means[i] - c * sqrt(vars[i]) end
    bj = pace_load(lows, cost, lw, ll)
  end
  return bj
end
