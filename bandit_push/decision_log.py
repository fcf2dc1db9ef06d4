"""The decision log: every decision with its context, action, propensity and attributed outcomes.

Decide writes one record hash per decision (fields: :data:`bandit_push.schema.DECISION`) and appends the
decision's id to an index string for its UTC hour and its record's slot (:meth:`~bandit_push.keys.Keys.decision_log`,
29 bytes per decision), marking the slot in the hour's bitmap (:meth:`~bandit_push.keys.Keys.decision_log_slots`)
when it starts the slot's index. :func:`export` walks the hours of a time window, reads each hour's bitmap, then
the marked slots' indexes a thousand at a time and the records in pipelined batches, so memory stays bounded for any
window and every decision comes out exactly once (an id is appended once; SCAN could repeat keys). On a cluster
the reads split by node (an index and its records share their user's slot).

Retention is ``decision_ttl_hours``: records, and with them the index, expire after it. A decision
is **closed** once its attribution window (``attribution_window_hours``) has passed; only closed
decisions have their final outcomes, so the export leaves the others out unless asked for them
(then ``closed`` is false). Decisions are therefore exportable for ``decision_ttl_hours -
attribution_window_hours`` after they close (48 h by default): export at least that often to keep a
complete log (``bandit-push export-log``).

One line per decision, schema version :data:`SCHEMA_VERSION` (README, "Off-policy evaluation")::

    {"schema_version": 1, "decision_id": "...", "ts": 1767268800.0, "user_id": "u1",
     "segment": "new", "recency": "<3h", "daypart": "morning", "channel": null,
     "policy": "thompson", "policy_space": "default", "model": "popular", "items": ["sku1"],
     "sent": true, "propensity": 0.62, "reason": "policy",
     "arm": {"mean": 0.05, "var": 0.01, "segment_sends": 12.0}, "seconds_since_push": 3600.0,
     "outcomes": {"clicked": {"ts": 1767269000.0, "attributed": true}}, "reward": 1.0, "closed": true}

``propensity`` is the logging policy's probability of the action it took (send or not); ``arm`` is
null when a guardrail refused before the policy ran (``reason`` names the guardrail);
``seconds_since_push`` is null if the user was never pushed; ``reward`` is the net value of the
attributed outcomes under the service's outcome weights (feedback after the attribution window is
listed with ``attributed: false`` and earns nothing).
"""
from __future__ import annotations

import math
import struct
from typing import Any, Iterator

from bandit_push.config import OUTCOMES, Settings
from bandit_push.errors import NotFound
from bandit_push.ids import load as load_id
from bandit_push.keys import SLOTS, decision_slot
from bandit_push.schema import DECISION as D
from bandit_push.schema import LOG_FIELDS, SEEN, WHY, WHY_FIELDS
from bandit_push.store import Store

SCHEMA_VERSION = 1
#: the hours the sweep of sends' credits reads back (:func:`resend_send_credits`, hourly)
SWEEP_HOURS = 2
#: a send credit's marker lives while a sweep may send it again (an hour past its window): a marker per send for
#: the decision's whole life (72 h) would cost far more memory than the records' hour indexes
SEND_MARKER_TTL = (SWEEP_HOURS + 1) * 3600
#: slots' indexes of an hour read per round trip
SLOTS_PER_READ = 1000


def slots(bitmap: bytes | None) -> list[int]:
    """The slots an hour's bitmap (:meth:`~bandit_push.keys.Keys.decision_log_slots`) marks, ascending."""
    out: list[int] = []
    for i, byte in enumerate(bitmap or b""):
        if byte:  # (bit 0 of a Redis bitmap is the first byte's most significant bit)
            out += [i * 8 + j for j in range(8) if byte & (0x80 >> j)]
    return out


def decision_ids(store: Store, hour: int, marked: list[int], per_read: int = SLOTS_PER_READ) -> Iterator[str]:
    """The ids of one hour's indexes in the slots ``marked``, slot by slot, each in the order it was appended:
    ``per_read`` slots' indexes per round trip (an MGET on one Redis; on a cluster, one per slot in a pipeline per
    node)."""
    keys = store.keys
    mget = store.redis.mget_nonatomic if store.cluster else store.redis.mget
    for at in range(0, len(marked), per_read):
        for text in mget([keys.decision_log(slot, hour) for slot in marked[at:at + per_read]]):
            if text:
                yield from text.split()


def export(store: Store, settings: Settings, since: float, until: float, now: float, *,
           include_open: bool = False, batch: int | None = None, per_read: int = SLOTS_PER_READ,
           why: bool = False, space: str | None = None, every: int = 1) -> Iterator[dict[str, Any]]:
    """Decisions with ``since <= ts < until`` as schema rows, hour by hour, each exactly once.

    Without ``include_open``, decisions whose attribution window has not closed by ``now`` are left
    out. (Records expire on the server's clock, ``ts`` is the gateway's, which a replay runs faster:
    so the window is not clamped to the retention; an empty hour costs a part of one EXISTS.) With ``why``, a row
    whose policy weighed the push also carries ``why``, the record's :data:`WHY_FIELDS` as a dict (not part of the
    export's schema: the policy refit's gate replays other versions of the engagement model on them). ``space``:
    only the decisions of that policy space; ``every``: only every so many of them, in index order (a sample spread
    evenly over the window, whose records alone are read).
    """
    batch = batch or settings.export_batch
    window = settings.attribution_window_hours * 3600.0
    if not include_open:
        until = min(until, now - window)
    if until <= since:
        return
    ids: list[str] = []
    suffix, seen = None if space is None else f".{space}", 0
    for hour, marked in _hours(store, since, until):
        for did in decision_ids(store, hour, marked, per_read):
            if suffix is not None and not did.endswith(suffix):
                continue
            seen += 1
            if (seen - 1) % every:
                continue
            ids.append(did)
            if len(ids) >= batch:
                yield from _rows(store, settings, ids, since, until, now, window, why)
                ids = []
    if ids:
        yield from _rows(store, settings, ids, since, until, now, window, why)


def _rows(store: Store, settings: Settings, ids: list[str], since: float, until: float, now: float,
          window: float, why: bool = False) -> Iterator[dict[str, Any]]:
    pipe = store.binary.pipeline(transaction=False)  # the arm statistics are packed doubles
    for did in ids:
        pipe.hgetall(store.keys.decision(did))
    recency, dayparts = settings.recency_labels(), [name for _, name in settings.dayparts]
    for did, rec in zip(ids, pipe.execute()):
        if not rec:
            continue  # expired
        fields = decode(rec)
        row = to_row(did, fields, settings, now, window, recency, dayparts)
        if since <= row["ts"] < until:
            if why and D["why"] in fields:
                row["why"] = fields[D["why"]]
            yield row


def decode(raw: dict[bytes, bytes]) -> dict[str, Any]:
    """A record read as bytes: text fields decoded; ``d`` split into :data:`LOG_FIELDS` (propensity, reason,
    policy, model); the packed ``z`` (what the policy saw) unpacked to ``z`` = (mean, var,
    segment sends) and ``l`` = seconds since the last push (absent if never); the packed ``y`` to a dict of
    :data:`WHY_FIELDS` (left out if it has another layout: a record written before the current one)."""
    out: dict[str, Any] = {}
    for k, v in raw.items():
        name = k.decode()
        if name == D["log"]:
            out.update(zip(LOG_FIELDS, v.decode().split("\t")))
        elif name == D["seen"]:
            mean, var, sends, gap = struct.unpack(SEEN, v)
            out[D["seen"]] = (mean, var, sends)
            if not math.isnan(gap):
                out[D["gap"]] = repr(gap)
        elif name == D["why"]:
            if len(v) == struct.calcsize(WHY):
                out[D["why"]] = dict(zip(WHY_FIELDS, struct.unpack(WHY, v)))
        else:
            out[name] = v.decode()
    return out


def to_row(did: str, rec: dict[str, Any], settings: Settings, now: float, window: float,
           recency: list[str], dayparts: list[str]) -> dict[str, Any]:
    """One stored decision record (:func:`decode`) as a schema row (see the module docstring)."""
    ts = float(rec[D["time"]])
    bucket, _, dp = rec[D["context"]].partition("|")
    arm = None
    if D["seen"] in rec:
        mean, var, sends = rec[D["seen"]]
        arm = {"mean": mean, "var": var, "segment_sends": sends}
    outcomes: dict[str, Any] = {}
    reward = 0.0
    for name in OUTCOMES:
        flag = rec.get(D["event"] + name)
        if flag is None:
            continue
        parts = flag.split()
        entry: dict[str, Any] = {"ts": float(parts[0]), "attributed": "late" not in parts}
        for p in parts[1:]:
            if p.startswith("v="):
                entry["value"] = float(p[2:])
        outcomes[name] = entry
        if entry["attributed"]:
            reward += float(settings.weights.get(name, 0.0))
    q, r, p, m = LOG_FIELDS  # (the parts of the record's log field: propensity, reason, policy, model)
    return {
        "schema_version": SCHEMA_VERSION, "decision_id": did, "ts": ts, "user_id": load_id(rec[D["user"]]),
        "segment": rec[D["segment"]], "recency": recency[int(bucket)], "daypart": dayparts[int(dp)],
        "channel": rec.get(D["channel"]) or None, "policy": rec[p], "policy_space": rec[D["space"]],
        "model": rec.get(m), "items": [load_id(i) for i in rec.get(D["items"], "").split()], "sent": rec[D["sent"]] == "1",
        "propensity": float(rec[q]), "reason": rec[r], "arm": arm,
        "seconds_since_push": float(rec[D["gap"]]) if D["gap"] in rec else None,
        "outcomes": outcomes, "reward": reward, "closed": ts + window <= now,
    }


def repair_hour_bitmap(store: Store, settings: Settings, hour: int) -> list[int]:
    """The slots with an index of ``hour``, found by an EXISTS per slot (16,384, pipelined by node), marked in the
    hour's bitmap where it lacks them: decide marks a slot by a command after the call that wrote the slot's first
    index entry of the hour, which a process dying between the two never sent (the export would miss that slot's
    hour). Returns the slots, ascending."""
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    for slot in range(SLOTS):
        pipe.exists(keys.decision_log(slot, hour))
    found = [slot for slot, n in enumerate(pipe.execute()) if n]
    bitmap = keys.decision_log_slots(hour)
    missing = sorted(set(found) - set(slots(store.binary.get(bitmap))))
    if missing:
        pipe = store.redis.pipeline(transaction=False)
        for slot in missing:
            pipe.setbit(bitmap, slot, 1)
        pipe.expire(bitmap, int(settings.decision_ttl_hours * 3600) + 3600)
        pipe.execute()
    return found


def resend_send_credits(store: Store, settings: Settings, since: float, until: float, batch: int = 500) -> int:
    """Send again the arm credit of every sent decision made in the hours of ``[since, until)``: decide counts a send
    in its space's arms by a second command after the decide call (credit.lua, once per decision by the marker
    ``cr:{<space>}:<decision id>:send``), which a process dying between the two never sent. Idempotent (a credited
    send counts nothing more while its marker lives, :data:`SEND_MARKER_TTL`), so it may run any time; the
    scheduler runs it hourly over the last :data:`SWEEP_HOURS` hours (``workers/jobs.py``). Returns how many sends
    were counted now. (At the record's time and the settings' half-life: a variant with its own half-life decays the
    send from there as feedback's credits do.) The hours' slot bitmaps are repaired first
    (:func:`repair_hour_bitmap`), the other write such a crash cuts."""
    keys, hl, ttl, n = store.keys, settings.half_life_hours * 3600.0, SEND_MARKER_TTL, 0
    fields = (D["sent"], D["segment"], D["context"], D["time"], D["load"])
    for hour in range(math.floor(since / 3600), math.ceil(until / 3600)):
        todo = list(decision_ids(store, hour, repair_hour_bitmap(store, settings, hour)))
        for at in range(0, len(todo), batch):
            chunk = todo[at:at + batch]
            pipe = store.redis.pipeline(transaction=False)
            for did in chunk:
                pipe.hmget(keys.decision(did), *fields)
            sent = [(did, r) for did, r in zip(chunk, pipe.execute()) if r[0] == "1"]
            pipe = store.redis.pipeline(transaction=False)
            for did, (_, segment, context, ts, load) in sent:
                space = did.partition(".")[2]
                store.credit_script(keys=[keys.arms(space), keys.credited(space, did, "send")],
                                    args=[0, ts, hl, len(OUTCOMES), segment, context, load or "", ttl], client=pipe)
            n += sum(int(c) for c in (pipe.execute() if sent else []))
    return n


def _hours(store: Store, since: float, until: float, per_call: int = 1000) -> Iterator[tuple[int, list[int]]]:
    """(hour, its slots with an index) for every hour the window touches that has one, a thousand hours per round
    trip. One multi-key EXISTS of the hours' bitmaps per thousand hours goes first, all in one round trip: a window
    of years (the API accepts 2000 to a year ahead) is mostly hours long expired, and reading them one by one took
    seconds."""
    hours = range(math.floor(since / 3600), math.ceil(until / 3600))  # the hours holding some since <= ts < until
    parts = [hours[start:start + per_call] for start in range(0, len(hours), per_call)]
    bitmap = store.keys.decision_log_slots
    for at in range(0, len(parts), per_call):
        pipe = store.redis.pipeline(transaction=False)
        for part in parts[at:at + per_call]:
            pipe.exists(*[bitmap(hour) for hour in part])
        found = pipe.execute()
        for part, n in zip(parts[at:at + per_call], found):
            if not n:
                continue
            pipe = store.binary.pipeline(transaction=False)
            for hour in part:
                pipe.get(bitmap(hour))
            for hour, raw in zip(part, pipe.execute()):
                if raw:
                    yield hour, slots(raw)


def count_hint(store: Store, settings: Settings, since: float, until: float, now: float,
               include_open: bool = False, sample: int = 256) -> int:
    """About how many decisions the window's hours hold (index bytes / id length), for progress bars: of an hour
    with more than ``sample`` slots, the indexes of ``sample`` of them (spread evenly), scaled."""
    if not include_open:
        until = min(until, now - settings.attribution_window_hours * 3600.0)
    if until <= since:
        return 0
    total = 0.0
    for hour, marked in _hours(store, since, until):
        read = marked[::max(1, len(marked) // sample)]
        pipe = store.redis.pipeline(transaction=False)
        for slot in read:
            pipe.strlen(store.keys.decision_log(slot, hour))
        total += sum(pipe.execute()) * len(marked) / len(read)
    return round(total) // 29  # 4 + 16 hex, '.', 'default', ' '


def lookup(store: Store, settings: Settings, decision_id: str, now: float) -> dict[str, Any]:
    """One decision as recorded (a schema row, as the export writes it) and what drove it (``explanation``)."""
    # (an id not of ours, or of the format before ids named their slot, is unknown)
    raw = store.binary.hgetall(store.keys.decision(decision_id)) if decision_slot(decision_id) is not None else None
    if not raw:
        raise NotFound(f"decision {decision_id!r} is not known (never made, or older than decision_ttl_hours)",
                       field="decision_id", code="unknown_decision")
    rec = decode(raw)
    row = to_row(decision_id, rec, settings, now, settings.attribution_window_hours * 3600.0,
                 settings.recency_labels(), [name for _, name in settings.dayparts])
    row["explanation"] = explain(rec)
    return row


def explain(rec: dict[str, Any]) -> dict[str, Any]:
    """What drove a recorded decision: the refusal's guardrail or pacing, else the net value's posterior, split into
    the segment context's value (the engagement part and the rest) and the user's engagement multiplier (what
    their organic activity predicts through the engagement model, then their own evidence)."""
    reason = rec[LOG_FIELDS[1]]
    out: dict[str, Any] = {"decided_by": reason if reason in ("policy", "pacing", "holdout") else "guardrail"}
    if out["decided_by"] == "guardrail":
        out["guardrail"] = reason
    if D["seen"] in rec:
        mean, var, _ = rec[D["seen"]]
        out["net_value"] = {"mean": mean, "sd": math.sqrt(var)}
    if D["why"] in rec:
        y = rec[D["why"]]
        out["segment_context"] = {"mean": y["mp"] + y["mn"], "sd": math.sqrt(y["var_ctx"]),
                                  "engagement_value": y["mp"], "negative_value": y["mn"]}
        out["user"] = {"engagement_multiplier": y["th"], "sd": math.sqrt(y["vth"]), "predicted_by_model": y["g"],
                       "own_evidence_factor": y["th"] / y["g"], "engaged_decisions": y["e"],
                       "expected_engaged": y["x"], "applied": y["applied"] == 1}
    return out
