-- event: the user's part of one shopping event, on the user's slot (bandit_push/events.py): count once by the
-- event id, the behaviour features, the segment of a user first seen. The shared parts (the dense user and item
-- indexes, the day's popularity, the interaction chunk, the days sets, the experiments' per-user counters) are
-- commands of their own slots sent after it with what this answers; those of an event with an id are idempotent
-- by (user, event id), so a retry answered 'duplicate' sends them again and completes what a crash cut.
-- KEYS[1] = user hash   KEYS[2] = the event id's count-once marker (unused when ARGV[4] is '0')
-- ARGV[1] = ts   ARGV[2] = event type   ARGV[3] = value   ARGV[4] = dedup TTL (s), '0' if no event id
-- returns {status, segment, created, dense user index}: status 'accepted' or 'duplicate' (this event id was
--   recorded: nothing written here); created 1 if this call made the user (in 'new'), else 0; the index '' if not
--   assigned yet. A duplicate of a user deleted since answers segment ''.
--- @include "schema"

if ARGV[4] ~= '0' and not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then
  local st = redis.call('HMGET', KEYS[1], USER.segment, USER.index)
  return {'duplicate', st[1] or '', 0, st[2] or ''}
end
local ts = tonumber(ARGV[1])
local st = redis.call('HMGET', KEYS[1], USER.segment, USER.index, USER.first_event, USER.last_event,
                      USER.last_purchase)
local seg, created = st[1], 0
if not seg then  -- a user first seen through an event starts in 'new'; segmentation.assign_new moves them
  seg, created = 'new', 1
  redis.call('HSET', KEYS[1], USER.segment, seg)
end
redis.call('HINCRBY', KEYS[1], USER.event_count .. ARGV[2], 1)
if not st[3] or ts < tonumber(st[3]) then redis.call('HSET', KEYS[1], USER.first_event, ARGV[1]) end
if not st[4] or ts > tonumber(st[4]) then redis.call('HSET', KEYS[1], USER.last_event, ARGV[1]) end
if ARGV[2] == 'purchase' then
  redis.call('HINCRBYFLOAT', KEYS[1], USER.purchase_value, ARGV[3])
  if not st[5] or ts > tonumber(st[5]) then redis.call('HSET', KEYS[1], USER.last_purchase, ARGV[1]) end
end
return {'accepted', seg, created, st[2] or ''}
