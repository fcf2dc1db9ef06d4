-- Shared by every command: Lua's math functions as locals, and the number format that crosses the boundary.
-- A Redis Functions library may not read globals while it loads, so bind_globals() sets the locals on a
-- call's first line (the loader puts it there): once per library load for a function, every call for a script.
local pow, sqrt, floor
local function bind_globals()
  pow, sqrt, floor = math.pow, math.sqrt, math.floor
end

-- numbers cross to Python as text at %.17g: the same double on both sides
local function fmt(x) return string.format('%.17g', x) end
