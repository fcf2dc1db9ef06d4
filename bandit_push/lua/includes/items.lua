-- Items: the choice shared by decide and ranked_items (GET /v1/users/<id>/items serves exactly what decide would).
--- @include "schema"

-- the items pushed within the exclusion window: a set of ids, and the "<item> <ts>" pairs to keep (item ids are
-- stored forms, bandit_push/ids.py: none holds a space, so %S+ is one whole id)
local function recent_items(pi_raw, now, excl)
  local excluded, kept = {}, {}
  for item, t in string.gmatch(pi_raw, '(%S+) (%S+)') do
    if tonumber(t) > now - excl then excluded[item] = true; kept[#kept + 1] = item .. ' ' .. t end
  end
  return excluded, kept
end

-- k items: the packed list at recs_key (RECS: a header <I f f: MF version, lowest and highest score; then per
-- item 3 bytes of dense item index and a 16-bit quantised score), named by names_of (a list of dense indexes ->
-- their ids, nil for an unknown one; or nil when the caller must first be sent names); then the segment's popular
-- list and the global one, from lists_of(seg) (the two lists' texts, false for none). excluded (a set of ids) is
-- extended with the picks.
-- returns {item, score, item, score, ...}, the source of the first item, the model label for the record; or nil
-- when names_of answered nil
local function pick_items(recs_key, names_of, lists_of, seg, k, excluded)
  local items, chosen, source, model = {}, 0, 'none', 'popular'
  local raw = redis.call('GET', recs_key)
  if raw and #raw >= RECS.header_size then
    local ver, lo, hi = struct.unpack(RECS.header, raw)
    local n = math.floor((#raw - RECS.header_size) / RECS.entry_size)
    local want = k
    for _ in pairs(excluded) do want = want + 1 end
    if want > n then want = n end
    if want > 0 then
      local ixs, qs, first, size = {}, {}, RECS.header_size + 1, RECS.entry_size
      for j = 0, want - 1 do
        -- the entry's five bytes in one call (struct.unpack parses its format on every call)
        local b1, b2, b3, q1, q2 = string.byte(raw, first + size * j, first + size * j + 4)
        ixs[#ixs + 1] = b1 + 256 * b2 + 65536 * b3; qs[#qs + 1] = q1 + 256 * q2
      end
      local ids = names_of(ixs)
      if not ids then return nil end
      for j = 1, #ixs do
        local id = ids[j]
        if id and not excluded[id] then
          excluded[id] = true
          -- 6 significant digits, as the popular lists' (the score is quantised to 16 bits of its range)
          items[#items + 1] = id; items[#items + 1] = string.format('%.6g', lo + (hi - lo) * qs[j] / 65535)
          chosen = chosen + 1
          if chosen >= k then break end
        end
      end
      if chosen > 0 then source = 'model'; model = 'mf:' .. ver end
    end
  end
  if chosen < k then
    local lists = {lists_of(seg)}
    for li, list in ipairs(lists) do
      if list and chosen < k then
        for item, score in string.gmatch(list, '(%S+) (%S+)') do
          if not excluded[item] then
            excluded[item] = true
            items[#items + 1] = item; items[#items + 1] = score
            chosen = chosen + 1
            if source == 'none' then if li == 1 then source = 'popular_segment' else source = 'popular' end end
            if chosen >= k then break end
          end
        end
      end
    end
  end
  return items, source, model
end
