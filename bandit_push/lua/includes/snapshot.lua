-- The shared, slowly changing state decide reads from other slots than the user's (DecisionEngine._snapshot), as
-- call arguments: never a key of another slot, so decide runs on a Redis Cluster. The blob: a JSON header
-- {top = {<segment or *> = "item score ..."}, spaces = {{<space>, <fields>}...}} (<I4 length, then the text), then
-- per space its arms hash as it is stored, each field <H2 length + name, <H2 length + the packed arm (arms.lua):
-- read as {top = ..., a = {<space> = {<field> = <packed arm>}}}, the arms left packed (arm_load reads one in one C
-- call, as from the hash: decoding every number of every arm as JSON cost more than the decides it served).
-- Decoded once per digest. In a Functions library this table outlives the call (as the configs do, config.lua): a
-- decide passes only the digest, and the client sends the blob when the library answers that it does not know it.
local snapshots, snapshots_n = {}, 0
local function snapshot_for(digest, blob)
  local s = snapshots[digest]
  if s or blob == '' then return s end
  local head, pos = struct.unpack('<Ic0', blob)
  s = cjson.decode(head)
  s.a = {}
  for _, sp in ipairs(s.spaces) do
    local arms = {}
    for _ = 1, sp[2] do
      local f, raw
      f, raw, pos = struct.unpack('<Hc0Hc0', blob, pos)
      arms[f] = raw
    end
    s.a[sp[1]] = arms
  end
  -- bounded: one per serving process and refresh (a process's previous one is dropped with the rest)
  if snapshots_n >= 64 then snapshots, snapshots_n = {}, 0 end
  snapshots[digest], snapshots_n = s, snapshots_n + 1
  return s
end

-- the MF model's item names by dense index (items:byix, which only grows: index i is item_names[i + 1]), kept
-- like the snapshots; the client sends the ones the library lacks ("<first index> <name> <name> ...")
local item_names = {}
local function add_item_names(blob)
  local at
  for w in string.gmatch(blob, '%S+') do
    if not at then at = tonumber(w) + 1 elseif at <= #item_names + 1 then item_names[at] = w; at = at + 1 end
  end
end
