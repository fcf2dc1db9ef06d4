-- The decision record (DECISION fields; decision_log.py reads it back) and the decision log's hour index.
--- @include "base"
--- @include "schema"

-- r: uid, seg, ctx, send, ts (the request's text of now), items (ids), prop (its text), reason, model, channel
-- ('' none), lfs (a pushed decision's load arm suffix, or nil), seen (what the policy saw, packed SEEN: the net
-- value's posterior mean and variance, the segment's decayed sends, the seconds since the last push, NaN if
-- never; nil on a refusal before the policy), why (with seen: WHY, what drove the net value), gap (seconds
-- since the last push, nil if never)
local function write_record(dkey, cfg, r)
  -- feedback reads u s a x t v f; four that only the log reads are one field, d = "q r p m" tab-separated (none
  -- holds whitespace; under 60 bytes: a value over 64 would turn the record's listpack into a hash table), the
  -- channel only when there is one: a hash field costs every decide its own insertion (three fewer: 9k of the
  -- script's 450k instructions) and the record its own bytes
  local record = {DECISION.user, r.uid, DECISION.segment, r.seg, DECISION.context, r.ctx,
    DECISION.sent, r.send and '1' or '0', DECISION.time, r.ts, DECISION.space, cfg.space,
    DECISION.log, r.prop .. '\t' .. r.reason .. '\t' .. cfg.policy .. '\t' .. r.model,
    DECISION.items, table.concat(r.items, ' ')}
  if r.channel ~= '' then record[#record + 1] = DECISION.channel; record[#record + 1] = r.channel end
  -- the load arm a pushed decision's feedback also credits
  if r.send and r.lfs then record[#record + 1] = DECISION.load; record[#record + 1] = string.sub(r.lfs, 3) end
  -- for off-policy evaluation: what the policy saw (exact, 32 bytes); a refusal before the policy records only
  -- the gap, as text
  if r.seen then
    record[#record + 1] = DECISION.seen; record[#record + 1] = r.seen
    record[#record + 1] = DECISION.why; record[#record + 1] = r.why
  elseif r.gap then record[#record + 1] = DECISION.gap; record[#record + 1] = fmt(r.gap) end
  redis.call('HSET', dkey, unpack(record))
  redis.call('EXPIRE', dkey, cfg.ttl)
end

-- the decision log's index of an hour and slot: appends the id of the record written ("<token>.<space>");
-- returns true for the slot's first entry of the hour, which the caller marks in the hour's bitmap (a key of
-- another slot: decide.py sends that SETBIT after the call)
local function log_decision(lkey, did, cfg)
  local entry = string.sub(did, 1, string.find(did, '.', 1, true)) .. cfg.space .. ' '
  -- the first entry sets the expiry (later decides of the hour need not: saves a call per decide)
  if redis.call('APPEND', lkey, entry) == #entry then
    redis.call('EXPIRE', lkey, cfg.lttl)
    return true
  end
  return false
end
