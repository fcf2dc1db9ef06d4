"""The decide command's pieces as probes: scripts that call the library's own functions (bandit_push/lua) on one
user's real keys, so that a benchmark measures what each piece costs by calling it (bench/script_cost.py counts
instructions, bench/decide_cpu.py times them).

Every probe runs the same setup as decide (the config decoded, the user's state and recent pushes read) and then
one piece; a piece's cost is its probe's minus the setup's. Probes are EVALSHA scripts on every server, so the
time-zone memo and the config cache start empty each call, as in decide's script form.
"""
from __future__ import annotations

from typing import Any

from bandit_push import lua
from bandit_push.decide import DEFAULT_SPACE, DecisionEngine

# KEYS[1] user hash, KEYS[2] arms, KEYS[3] recent pushes, KEYS[4] precomputed items, KEYS[5] item index -> id,
# KEYS[6] popular lists, KEYS[7] a scratch record, KEYS[8] a scratch log index
# ARGV[1] config digest, ARGV[2] config JSON, ARGV[3] now, ARGV[4] the engine's shared snapshot (snapshot.lua)
# (the probe decodes the snapshot, as an EVALSHA decide does on every call; the item names come from KEYS[5], as
# GET /v1/users/<id>/items reads them)
SETUP = """
local cfg = config_for(ARGV[1], ARGV[2]).base
local snap = snapshot_for('probe', ARGV[4])
local now = tonumber(ARGV[3])
local st = redis.call('HMGET', KEYS[1], USER.segment, USER.tz_rule, USER.opted_out, USER.last_push)
local seg, lp = st[1] or 'new', tonumber(st[4])
local _, _, load, pi_raw = recent_pushes(cfg, redis.call('GET', KEYS[3]) or '', now, lp)
"""
PIECES = {
    "the time zone and context": "local_context(cfg, st[2], now, lp)",
    "the policy (arms, posterior, pacing, kernel; no user evidence)": """
local s = evaluate(cfg, snap.a.default or {}, seg, seg .. '|1|2', load, now)
local mu, var = posterior(s.arm, cfg, s.pa, s.pb)
if not s.paced then KERNELS[cfg.kind](cfg, mu, var, s.tot[2], lp, now, 0.5, {pe = {0, 0, 0}}) end
""",
    "the item choice": """
local function names_of(ixs)
  local f = {}
  for j = 1, #ixs do f[j] = tostring(ixs[j]) end
  return redis.call('HMGET', KEYS[5], unpack(f))
end
local function lists_of(s) return snap.top[s] or false, snap.top['*'] or false end
pick_items(KEYS[4], names_of, lists_of, seg, 5, (recent_items(pi_raw, now, cfg.excl)))
""",
    "the decision record and log": """
write_record(KEYS[7], cfg, {uid = 'u', seg = seg, ctx = '1|2', send = false, ts = ARGV[3], items = {'a', 'b'},
  prop = '0.5', reason = 'policy', model = 'popular', channel = '', seen = struct.pack(SEEN, 0, 0, 0, 0),
  why = struct.pack(WHY, 0, 0, 0, 1, 0, 1, 0)})
log_decision(KEYS[8], '0123456789abcdef0123.default', cfg)
""",
}


PROBE_ID = "0123456789abcdef0123.default"  # (slot 0x123)


def probe(piece: str | None) -> str:
    """The probe script of ``piece`` (None: the setup alone)."""
    return lua.prelude("config", "snapshot", "guardrails", "policy", "kernels", "items", "record") + SETUP + \
        (PIECES[piece] if piece else "") + "\nreturn 1"


def probe_call(engine: DecisionEngine, user: str, now: float) -> tuple[list[str], list[Any]]:
    """The keys and arguments of a probe for ``user`` at ``now``, with ``engine``'s config."""
    k = engine.store.keys
    config = engine._config_for(engine.registry.snapshot)
    keys = [k.user(user), k.arms(DEFAULT_SPACE), k.user_pushes(user), k.user_recs(user), k.item_by_index(),
            k.popular_top(), k.decision(PROBE_ID), k.decision_log(0x123, 0), k.decision_log_slots(0)]
    return keys, [config.digest, config.blob, "%.17g" % now, engine._snapshot(now).blob]
