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

-- the loads a segment has seen, one step at a time (ns: the arms' decayed sends; loads above the frontier, one above
-- the highest load arm with at least mn sends, the week-rested arm's counting as load 0's, are not chosen, the
-- frontier ranked by mean + z * sd), and with pacing_caution c: whether to push within ll at all by the means,
-- which load by lower bounds (mean - c * sd), the 'not pushed within ll' arm left out of that ranking; vars: the
-- variances
local function pace_choice(means, vars, cost, lw, ll, c, ns, z, mn)
  if mn > 0 then
    local top = 2  -- (a push from rest is a push at load 0 too: its sends count as load 0's)
    if ns[1] + ns[2] >= mn then top = 3 end
    for i = 3, #means do if ns[i] >= mn then top = i + 1 end end
    if top <= #means then
      local m, v = {}, {}
      for i = 1, top do m[i], v[i] = means[i], vars[i] end
      m[top] = m[top] + z * sqrt(v[top])
      means, vars = m, v
    end
  end
  local bj = pace_load(means, cost, lw, ll)
  if bj >= 0 and c > 0 then
    local lows = {-math.huge}
    for i = 2, #means do lows[i] = means[i] - c * sqrt(vars[i]) end
    bj = pace_load(lows, cost, lw, ll)
  end
  return bj
end
