-- ranked_items: the items decide would serve a user now, deciding and recording nothing (decide.ranked_items).
-- KEYS[1] = user hash   KEYS[2] = the user's recent pushes   KEYS[3] = the user's precomputed items
-- KEYS[4] = item index -> id hash   KEYS[5] = popular lists hash
-- ARGV[1] = now (epoch s)   ARGV[2] = k   ARGV[3] = exclusion window (s)
-- returns {items "id score ...", items source, segment, model label}; reads only, writes nothing
--- @include "schema"
--- @include "items"

local seg = redis.call('HGET', KEYS[1], USER.segment) or 'new'
local recent_raw = redis.call('GET', KEYS[2]) or ''
local nl = string.find(recent_raw, '\n', 1, true)
local pi_raw = ''
if nl then pi_raw = string.sub(recent_raw, nl + 1) end
local excluded = recent_items(pi_raw, tonumber(ARGV[1]), tonumber(ARGV[3]))
-- (the item names and popular lists by keys of other slots: on one Redis only, unlike decide's snapshot)
local function names_of(ixs)
  local fields = {}
  for j = 1, #ixs do fields[j] = tostring(ixs[j]) end
  return redis.call('HMGET', KEYS[4], unpack(fields))
end
local function lists_of(s)
  local lists = redis.call('HMGET', KEYS[5], s, POPULAR.all)
  return lists[1], lists[2]
end
local items, source, model = pick_items(KEYS[3], names_of, lists_of, seg, tonumber(ARGV[2]), excluded)
return {table.concat(items, ' '), source, seg, model}
