-- Arms: an arm is {t, n, outcome_1, ..., outcome_m}: reference time, decayed sends, decayed outcome counts.
-- Stored as ARM_MAGIC and its numbers as little-endian doubles: exact, and one C call to read or write (text,
-- "t n ..." at %.17g, cost ten times as much per arm); anything else reads as a fresh arm.
-- policies/base.py and segments.py (arm_values) are the Python side.
--- @include "base"
--- @include "schema"

local arm_fmts = {}
local function arm_fmt(size)
  local f = arm_fmts[size]
  if not f then f = '<' .. string.rep('d', size); arm_fmts[size] = f end
  return f
end
local function arm_load(raw, size)
  local a
  if raw and #raw == 1 + 8 * size and string.byte(raw, 1) == ARM_MAGIC_BYTE then
    a = {struct.unpack(arm_fmt(size), raw, 2)}
    a[size + 1] = nil  -- (unpack's next position)
    return a
  end
  a = {0}
  for i = 2, size do a[i] = 0 end
  return a
end
local function arm_dump(a)
  return ARM_MAGIC .. struct.pack(arm_fmt(#a), unpack(a))
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
