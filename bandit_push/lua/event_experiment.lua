-- event_experiment: a batch's events counted in the per-user counters of one active experiment, for the users
-- exposed to it by the event's time (organic activity after exposure, what a holdout measures;
-- bandit_push/events.py, after event.lua), an event with an id once per (user, id). One call per experiment and
-- slot (the counters are per user slot); the caller checked the experiment is active (its registry snapshot).
-- KEYS[1] = the experiment's per-user counters of the users' slot (xrec.lua)
-- KEYS[2..] = the count-once markers of the events with an id (same slot)
-- ARGV[1] = the markers' TTL (s: the event dedup's)
-- ARGV[2..] = per event 4 values: user id (stored form), ts, '1' if a purchase, its marker's KEYS index ('0': no id)
-- returns how many events counted now
--- @include "base"
--- @include "schema"
--- @include "xrec"

local n = 0
for j = 2, #ARGV, 4 do
  local raw = redis.call('HGET', KEYS[1], ARGV[j])
  local m = raw and xrec_load(raw)
  local mark = tonumber(ARGV[j + 3])
  if m and tonumber(ARGV[j + 1]) >= m[XREC.first_exposure]
      and (mark == 0 or redis.call('SET', KEYS[mark], '1', 'NX', 'EX', ARGV[1])) then
    m[XREC.events] = m[XREC.events] + 1
    if ARGV[j + 2] == '1' then m[XREC.purchases] = m[XREC.purchases] + 1 end
    redis.call('HSET', KEYS[1], ARGV[j], xrec_dump(m))
    n = n + 1
  end
end
return n
