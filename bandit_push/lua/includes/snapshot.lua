-- The shared, slowly changing state decide reads from other slots than the user's (decide.py, SharedSnapshot),
-- as call arguments: never a key of another slot, so decide runs on a Redis Cluster. A JSON object
-- {a = {<space> = {<arm field> = {t, n, counts...}}}, top = {<segment or *> = "item score ..."}}, decoded once
-- per digest. In a Functions library this table outlives the call (as the configs do, config.lua): a decide passes
-- only the digest, and the client sends the JSON when the library answers that it does not know it.
local snapshots, snapshots_n = {}, 0
local function snapshot_for(digest, blob)
  local s = snapshots[digest]
  if s or blob == '' then return s end
  s = cjson.decode(blob)
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
