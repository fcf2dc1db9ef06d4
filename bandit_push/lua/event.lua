-- event: one shopping event of a user: the user's behaviour features, popularity, the interaction log, and the
-- per-user counters of the experiments the user is in (bandit_push/events.py).
-- KEYS[1] = user hash   KEYS[2] = segment sizes   KEYS[3] = popular counts of the event's day
-- KEYS[4] = interaction chunk of the event's day   KEYS[5] = item index hash   KEYS[6] = item id list
-- KEYS[7] = counters hash   KEYS[8] = set of interaction days   KEYS[9] = set of compacted days
-- KEYS[10] = the event id's count-once marker (unused when ARGV[10] is '0')
-- KEYS[11] = experiments registry version   KEYS[12] = user id list (by dense index)
-- KEYS[13..] = per-user counters (xrec.lua) of each active experiment
-- ARGV[1] = ts   ARGV[2] = event type   ARGV[3] = type code (0..254)   ARGV[4] = item id ('' if none)
-- ARGV[5] = value   ARGV[6] = popularity weight   ARGV[7] = popularity TTL (s)
-- ARGV[8] = interaction TTL (s)   ARGV[9] = day number   ARGV[10] = dedup TTL (s), '0' if no event id
-- ARGV[11] = the registry version the process read its active experiments at   ARGV[12] = user id
-- (ARGV[4] and ARGV[12] are stored forms, bandit_push/ids.py: no space or brace inside)
-- returns the user's segment, or false if this event id was already recorded, or -1 (nothing written)
-- when the registry moved since
--- @include "schema"
--- @include "xrec"

if (redis.call('GET', KEYS[11]) or '0') ~= ARGV[11] then return -1 end
if ARGV[10] ~= '0' and not redis.call('SET', KEYS[10], '1', 'NX', 'EX', ARGV[10]) then return false end
local ts = tonumber(ARGV[1])
local st = redis.call('HMGET', KEYS[1], USER.segment, USER.index, USER.first_event, USER.last_event,
                      USER.last_purchase)
local seg = st[1]
if not seg then  -- a user first seen through an event starts in 'new'; segmentation.assign_new moves them
  redis.call('HINCRBY', KEYS[2], 'new', 1)
  seg = 'new'
  redis.call('HSET', KEYS[1], USER.segment, seg)
end
local uix = st[2]
if not uix then
  uix = redis.call('HINCRBY', KEYS[7], COUNTERS.users, 1) - 1
  redis.call('HSET', KEYS[1], USER.index, uix)
  -- index -> id; a list that does not line up with the counter (kept from before it existed) is left alone
  if redis.call('LLEN', KEYS[12]) == uix then redis.call('RPUSH', KEYS[12], ARGV[12]) end
end
redis.call('HINCRBY', KEYS[1], USER.event_count .. ARGV[2], 1)
if not st[3] or ts < tonumber(st[3]) then redis.call('HSET', KEYS[1], USER.first_event, ARGV[1]) end
if not st[4] or ts > tonumber(st[4]) then redis.call('HSET', KEYS[1], USER.last_event, ARGV[1]) end
if ARGV[2] == 'purchase' then
  redis.call('HINCRBYFLOAT', KEYS[1], USER.purchase_value, ARGV[5])
  if not st[5] or ts > tonumber(st[5]) then redis.call('HSET', KEYS[1], USER.last_purchase, ARGV[1]) end
end
local iix = 4294967295  -- (no item)
local item = ARGV[4]
if item ~= '' then
  iix = redis.call('HGET', KEYS[5], item)
  if not iix then
    iix = redis.call('RPUSH', KEYS[6], item) - 1
    redis.call('HSET', KEYS[5], item, iix)
  end
  local w = tonumber(ARGV[6])
  if w > 0 then
    redis.call('HINCRBYFLOAT', KEYS[3], seg .. '|' .. item, ARGV[6])
    redis.call('HINCRBYFLOAT', KEYS[3], POPULAR.all .. '|' .. item, ARGV[6])
    redis.call('EXPIRE', KEYS[3], ARGV[7])
  end
end
redis.call('APPEND', KEYS[4], struct.pack(INTERACTION, tonumber(uix), tonumber(iix), tonumber(ARGV[3]), math.floor(ts)))
redis.call('EXPIRE', KEYS[4], ARGV[8])
redis.call('ZADD', KEYS[8], ARGV[9], ARGV[9])
redis.call('SREM', KEYS[9], ARGV[9])
-- organic activity after exposure, per active experiment the user is in
for j = 13, #KEYS do
  local raw = redis.call('HGET', KEYS[j], ARGV[12])
  if raw then
    local m = xrec_load(raw)
    if ts >= m[XREC.first_exposure] then
      m[XREC.events] = m[XREC.events] + 1
      if ARGV[2] == 'purchase' then m[XREC.purchases] = m[XREC.purchases] + 1 end
      redis.call('HSET', KEYS[j], ARGV[12], xrec_dump(m))
    end
  end
end
return seg
