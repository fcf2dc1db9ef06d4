-- decide: one decision for one user, atomically: experiment, guardrails, policy kernel, items, the record, the
-- decision log, the exposure; on a send the user's last push moves with it (bandit_push/decide.py). Every key is
-- in the user's slot (so it runs on a Redis Cluster); what it reads of shared state comes as arguments (a snapshot,
-- snapshot.lua), and what it would write there (a send's arms, a new user's segment size, the hour's slot bitmap)
-- it answers for the caller to send to those slots.
-- KEYS[1] = user hash            KEYS[2] = decision record (new)
-- KEYS[3] = the user's recent pushes: "<push ts> ...\n<item> <ts> <item> <ts> ..." (expires)
-- KEYS[4] = the user's precomputed items (packed, see toplists.py)
-- KEYS[5] = the decision log's index of the decision's hour and slot: "<decision id> ..." (expires)
-- then per running experiment j = 1..n (oldest first): KEYS[4 + 2j] = the decision record if decided under it,
--   KEYS[5 + 2j] = its per-user counters of the user's slot (xrec.lua)
-- optional, last (one Redis only: another slot): KEYS[6 + 2n] = the caller's API key token bucket
-- ARGV[1] = user id (its stored form, bandit_push/ids.py, as every id here)
-- ARGV[2] = decision id "<slot: 4 hex><random: 16 hex>.<space>" (the records' slot: the user's)
-- ARGV[3] = now (epoch s, formatted %.17g: the record's text of it)
-- ARGV[4] = u ~ U[0,1) times 2^53 (an integer: u exactly, without formatting a float)
-- ARGV[5] = k (items)   ARGV[6] = channel ('' if none)   ARGV[7] = the shared snapshot's digest
-- ARGV[8] = the config's digest   ARGV[9] = the config (JSON, see config.lua), or '' to use the one known by digest
-- ARGV[10] = the models' snapshot: the engagement model serving, "kappa b0 b1 b2" (see user_theta; models
--   published later append theirs)
-- ARGV[11] = the shared snapshot (JSON, see snapshot.lua), or '' to use the one known by digest
-- ARGV[12] = how many item names the caller knows   ARGV[13] = item names to add ("<first index> <name> ...") or ''
-- ARGV[13 + j] = the user's variant index (0-based) in running experiment j
-- with the bucket: ARGV[14 + n], ARGV[15 + n] = its rate/s and burst
-- returns {send 0|1, reason, segment, propensity, recency bucket, daypart, items "id score ...",
--          experiment j (0: none), 1 on the user's first exposure to it else 0, items source,
--          when a refusal about the moment lifts ('' for none), the user's UTC offset (s, modulo a day),
--          the user's last push ('' if never), 1 if the send created the user hash (count it in 'new') else 0,
--          1 if the record is its slot's first of the hour (mark the hour's bitmap) else 0,
--          the load arm suffix a send credits ('' none)},
--   or {'config'} / {'snapshot'}, writing nothing, when ARGV[9] / ARGV[11] is '' and its digest is not known here,
--   or {'names', how many names are known here}, writing nothing, when the user's items need names the caller
--     knows and this library does not,
--   or {-1, milliseconds to wait} when the key's bucket is empty (nothing else is written).
--- @include "base"
--- @include "schema"
--- @include "config"
--- @include "snapshot"
--- @include "bucket"
--- @include "xrec"
--- @include "guardrails"
--- @include "policy"
--- @include "evidence"
--- @include "kernels"
--- @include "items"
--- @include "record"

local conf = config_for(ARGV[8], ARGV[9])
if not conf then return {'config'} end
local snap = snapshot_for(ARGV[7], ARGV[11])
if not snap then return {'snapshot'} end
if ARGV[13] ~= '' then add_item_names(ARGV[13]) end
local nx = #conf.xs
local uid, did, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local u, k = tonumber(ARGV[4]) / 9007199254740992, tonumber(ARGV[5])
local st = redis.call('HMGET', KEYS[1], USER.segment, USER.tz_rule, USER.opted_out, USER.last_push, USER.evidence,
                      USER.first_event, unpack(conf.base.evf))
local seg = st[1] or 'new'

-- the experiment: the oldest running one the user was already exposed to, else the oldest covering the segment
local cfg, xi, xrec = conf.base, 0, nil
for j = 1, nx do
  local r = redis.call('HGET', KEYS[5 + 2 * j], uid)
  if r then xi, xrec = j, r; break end
end
if xi == 0 then
  for j, x in ipairs(conf.xs) do
    if not x.segs then xi = j else
      for _, s in ipairs(x.segs) do if s == seg then xi = j; break end end
    end
    if xi > 0 then break end
  end
end
local dkey = KEYS[2]
if xi > 0 then
  cfg = conf.xs[xi].v[tonumber(ARGV[13 + xi]) + 1]
  dkey = KEYS[4 + 2 * xi]
end
local lp = tonumber(st[4])
local pushes, recent, load, pi_raw = recent_pushes(cfg, redis.call('GET', KEYS[3]) or '', now, lp)
local lsec, rec, dp = local_context(cfg, st[2], now, lp)

-- items: the user's precomputed list, then the segment's popular list, then the global one, minus items pushed
-- recently (first: a name this library lacks answers before anything is written)
local known = tonumber(ARGV[12])
local function names_of(ixs)
  local out = {}
  for j = 1, #ixs do
    local ix = ixs[j]
    if ix >= #item_names and ix < known then return nil end
    out[j] = item_names[ix + 1] or false
  end
  return out
end
local top = snap.top
local function lists_of(s) return top[s] or false, top[POPULAR.all] or false end
local excluded, kept_pi = recent_items(pi_raw, now, cfg.excl)
local items, source, model = pick_items(KEYS[4], names_of, lists_of, seg, k, excluded)
if not items then return {'names', #item_names} end

local bucket = KEYS[6 + 2 * nx]
if bucket then
  local allowed, wait = take_token(bucket, tonumber(ARGV[14 + nx]), tonumber(ARGV[15 + nx]), 1)
  if allowed == 0 then return {-1, wait} end
end

local ctx = rec .. '|' .. dp  -- (once: each number's conversion to text is a sprintf)
local arm_field = seg .. '|' .. ctx
local reason, send, prop, seen, why, s = cfg.refuse or guardrail(cfg, st[3], lsec, recent, lp, now), false, 1
local user, paced, pe_x  -- the user's evidence and episode, when pacing's refusal lifts, what a send adds to X
if not reason then
  reason = 'policy'
  s = evaluate(cfg, snap.a[cfg.space] or {}, seg, arm_field, load, now)
  -- the user's own evidence (user <- segment context <- policy space)
  local um = {}
  for x in string.gmatch(ARGV[10], '%S+') do um[#um + 1] = tonumber(x) end
  local evs = 0
  for i = 7, 6 + #conf.base.evf do evs = evs + (tonumber(st[i]) or 0) end
  local pe, ep = pe_load(st[5])
  user = {pe = pe, ep = ep}
  local th, vth, g, ue, ux, x1, x2 = user_theta(um, st[5] and pe, tonumber(st[6]), evs,
                                                tonumber(st[6 + conf.base.evp]) or 0, now, cfg.hl)
  -- what drove it, for GET /v1/decisions/<id>: the context's value (engagement and the rest), the user's multiplier
  -- and whether it was applied (setting user_evidence); the multiplier's inputs and the engagement part's variance
  -- (what another version of the engagement model needs to score this decision)
  local mp, vp, mn, vn = posterior_parts(s.arm, cfg, s.pa, s.pb)
  why = struct.pack(WHY, mp, mn, vp + vn, th, vth, g, ue, ux, x1, x2, vp, cfg.nouser and 0 or 1)
  if cfg.nouser then th, vth = 1, 0 end
  local mu, var = th * mp + mn, th * th * vp + vth * (mp * mp + vp) + vn  -- (posterior's arithmetic)
  pe_x = engage_rate(s.arm, cfg, s.tot, s.all)
  local gap = 0 / 0  -- NaN: never pushed
  if lp then gap = now - lp end
  -- a pacing refusal is logged like a guardrail's (the gap, no arm): off-policy evaluation keeps it a refusal
  if s.paced then
    reason, paced = 'pacing', pacing_lifts(cfg, pushes, now, lp, s.bj)
  else
    seen = struct.pack(SEEN, mu, var, s.tot[2], gap)
    local held
    send, prop, held = KERNELS[cfg.kind](cfg, mu, var, s.tot[2], lp, now, u, user)
    -- a refusal within a Thompson episode keeps its draw (an unknown user keeps none: each ask is a fresh draw)
    if held and st[1] then
      if now - pe[1] >= cfg.ll then arm_decay_to(pe, now, cfg.hl) end
      redis.call('HSET', KEYS[1], USER.evidence, pe_dump(pe, held))
    end
  end
end

local ts, created = ARGV[3], 0
if send then
  -- a user with a segment field exists; only one without may need creating
  if not st[1] and redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('HSET', KEYS[1], USER.segment, 'new')
    created = 1
  end
  pushes[#pushes + 1] = ts
  for i = 1, #items, 2 do kept_pi[#kept_pi + 1] = items[i] .. ' ' .. ts end
  -- a send closes the user's episode and adds the context's expected engagement to their evidence
  arm_add(user.pe, 3, now, cfg.hl, pe_x)
  redis.call('HSET', KEYS[1], USER.last_push, ts, USER.evidence, pe_dump(user.pe))
  redis.call('SET', KEYS[3], table.concat(pushes, ' ') .. '\n' .. table.concat(kept_pi, ' '), 'EX', cfg.keep)
end
local item_ids = {}
for i = 1, #items, 2 do item_ids[#item_ids + 1] = items[i] end
local qtext = fmt(prop)  -- (the record's and the answer's: one formatting)
write_record(dkey, cfg, {uid = uid, seg = seg, ctx = ctx, send = send, ts = ts, items = item_ids, prop = qtext,
  reason = reason, model = model, channel = ARGV[6], lfs = s and s.lfs, seen = seen, why = why,
  gap = lp and now - lp})
local logged = log_decision(KEYS[5], did, cfg)
-- the first exposure creates the user's counters (that is the exposure log); a send counts in them
local first = 0
if xi > 0 then
  local m
  if xrec then m = xrec_load(xrec) else
    m = {tonumber(ARGV[13 + xi]), floor(now), 0, 0, 0, 0, 0, 0, 0}; first = 1
  end
  if send then m[XREC.sends] = m[XREC.sends] + 1 end
  if send or first == 1 then redis.call('HSET', KEYS[5 + 2 * xi], uid, xrec_dump(m)) end
end
return {send and 1 or 0, reason, seg, qtext, rec, dp, table.concat(items, ' '), xi, first, source,
  ready_at(cfg, reason, now, lp, recent, pushes, paced), fmt(lsec - now % 86400), lp and fmt(lp) or '', created,
  logged and 1 or 0, send and string.sub(s.lfs or '', 3) or ''}
