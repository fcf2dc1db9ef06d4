"""A/B experiments between send policies: definitions, lifecycle, sticky assignment, the running registry.

An experiment has two or more **variants** (the first is the control), each a policy configuration
(parsed by :func:`bandit_push.policies.from_config`), a positive traffic weight and optional guardrail
overrides (``max_per_day``, ``min_gap_hours``, ``quiet_hours``). It may be restricted to segments.

Lifecycle ``draft -> running <-> paused -> stopped`` (stop from any state but stopped). A definition can
be replaced only while it is a draft; once started its variants and weights are frozen (a change is
refused with a conflict: create a new experiment, which gets its own analysis).

Assignment is a deterministic hash of (experiment salt, user id) onto the weights, so it is sticky
without storing anything. **Overlap rule**: a user is in at most one running experiment at a decide:
the oldest running experiment (by first start) the user was already exposed to, else the oldest running
experiment whose segments include the user's current segment (an experiment without segments covers
everyone). The segment is known only inside the decide script, so the script applies this rule; the
process passes it the candidates (see :mod:`bandit_push.decide`). Each variant learns in its own arms
space ``x<id>v<index>``. The first exposure of a user creates their per-user counters
(:meth:`~bandit_push.keys.Keys.experiment_users`, in the user's slot); decide, feedback and events then update
them, and a report reads every slot's (:func:`user_counters`).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from bandit_push.config import Settings
from bandit_push.errors import ConfigError, Conflict, InvalidArgument, NotFound
from bandit_push.keys import SLOTS
from bandit_push.policies import Policy, from_config
from bandit_push.schema import COUNTERS, EXPERIMENT
from bandit_push.store import Store

STATUSES = ("draft", "running", "paused", "stopped")
ACTIONS = ("start", "pause", "stop")
#: settings a variant may override: the guardrails
GUARDRAIL_OVERRIDES = ("max_per_day", "min_gap_hours", "quiet_hours")
MAX_VARIANTS = 10
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_SPACE = re.compile(r"^x([0-9]{1,18})v([0-9]{1,2})$")


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float
    policy: dict[str, Any]
    guardrails: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, "policy": self.policy, "guardrails": self.guardrails}


@dataclass(frozen=True)
class Experiment:
    """One experiment as stored. ``variants[0]`` is the control."""

    id: int
    name: str
    variants: tuple[Variant, ...]
    segments: tuple[str, ...] | None
    salt: str
    status: str = "draft"
    created_at: float = 0.0
    started_at: float | None = None
    stopped_at: float | None = None

    @property
    def weights(self) -> dict[str, float]:
        return {v.name: v.weight for v in self.variants}

    def assign(self, user_id: str) -> int:
        """The variant index of ``user_id``: a hash of (salt, user id) onto the cumulative weights."""
        return assign(self.salt, user_id, [v.weight for v in self.variants])

    def space(self, index: int) -> str:
        """The arms space of variant ``index``."""
        return f"x{self.id}v{index}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "status": self.status,
                "variants": [v.to_json() for v in self.variants],
                "segments": list(self.segments) if self.segments is not None else None,
                "created_at": self.created_at, "started_at": self.started_at, "stopped_at": self.stopped_at}


def assign(salt: str, user_id: str, weights: list[float]) -> int:
    """Deterministic, uniform-by-weight choice of a variant index for one user."""
    h = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
    x = int.from_bytes(h, "big") / 2.0**64 * sum(weights)
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        if x < acc:
            return i
    return len(weights) - 1


def experiment_of_space(space: str) -> int | None:
    """The experiment id an arms space ``x<id>v<index>`` belongs to, or None (the default space)."""
    m = _SPACE.match(space)
    return int(m.group(1)) if m else None


# -- definitions -------------------------------------------------------------------------------------


def _printable(text: str) -> bool:
    """Printable, counting code points unassigned in Unicode as printable (as ids do: ids.unfit)."""
    return text.isprintable() or all(c.isprintable() or unicodedata.category(c) == "Cn" for c in text)


def parse_definition(body: Any, settings: Settings) -> dict[str, Any]:
    """Validate a definition (``name``, ``variants``, optional ``segments``); errors name the field."""
    if not isinstance(body, dict):
        raise InvalidArgument("the experiment must be a JSON object", field="body")
    unknown = set(body) - {"name", "variants", "segments"}
    if unknown:
        raise InvalidArgument(f"unknown field {sorted(unknown)[0]}; allowed: ['name', 'segments', 'variants']",
                              field=sorted(unknown)[0], code="unknown_field")
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 128 or not name.strip(" ") or not _printable(name):
        raise InvalidArgument("name must be a printable string of 1 to 128 characters, not only spaces", field="name")
    variants = body.get("variants")
    if not isinstance(variants, list) or not 2 <= len(variants) <= MAX_VARIANTS:
        raise InvalidArgument(f"variants must be a list of 2 to {MAX_VARIANTS} variants (the first is the control)",
                              field="variants")
    out, seen = [], set()
    for i, raw in enumerate(variants):
        where = f"variants[{i}]"
        if not isinstance(raw, dict):
            raise InvalidArgument(f"{where} must be an object with name, policy and weight", field=where)
        extra = set(raw) - {"name", "policy", "weight", "guardrails"}
        if extra:
            raise InvalidArgument(f"unknown field {where}.{sorted(extra)[0]}; allowed: "
                                  "['guardrails', 'name', 'policy', 'weight']", field=f"{where}.{sorted(extra)[0]}",
                                  code="unknown_field")
        vname = raw.get("name")
        if not isinstance(vname, str) or not _NAME.match(vname):
            raise InvalidArgument(f"{where}.name must be 1 to 64 letters, digits or _.:-", field=f"{where}.name")
        if vname in seen:
            raise InvalidArgument(f"{where}.name {vname!r} is used twice; variant names must be unique",
                                  field=f"{where}.name", code="duplicate_variant")
        seen.add(vname)
        weight = raw.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or not 0 < weight <= 1e6:
            raise InvalidArgument(f"{where}.weight must be a positive number (at most 1e6)", field=f"{where}.weight")
        if "policy" not in raw:
            raise InvalidArgument(f"field {where}.policy is required", field=f"{where}.policy", code="missing_field")
        variant = Variant(vname, float(weight), raw["policy"], _guardrails(raw.get("guardrails"), f"{where}.guardrails"))
        variant_policy(settings, variant, where)  # validates the policy and the overrides together
        out.append(variant.to_json())
    segments = body.get("segments")
    if segments is not None:
        if not isinstance(segments, list) or not segments or len(segments) > 100:
            raise InvalidArgument("segments must be a non-empty list of segment ids (or absent for everyone)",
                                  field="segments")
        for j, seg in enumerate(segments):
            if not isinstance(seg, str) or not _NAME.match(seg):
                raise InvalidArgument(f"segments[{j}] must be a segment id (letters, digits or _.:-)",
                                      field=f"segments[{j}]")
        segments = sorted(set(segments))
    return {"name": name, "variants": out, "segments": segments}


#: a variant's quiet hours: what the OpenAPI document's pattern says (the setting itself also takes spaces, "none")
_QUIET = re.compile(r"^(off|([01]?[0-9]|2[0-4]):[0-5][0-9]-([01]?[0-9]|2[0-4]):[0-5][0-9])\Z")


def _guardrails(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where} must be an object of {list(GUARDRAIL_OVERRIDES)}", field=where)
    out: dict[str, Any] = {}
    for k, v in raw.items():
        f = f"{where}.{k}"
        if k == "max_per_day":
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000:
                raise InvalidArgument(f"{f} must be an integer between 1 and 1000", field=f)
        elif k == "min_gap_hours":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 8760:
                raise InvalidArgument(f"{f} must be a number of hours between 0 and 8760", field=f)
            v = float(v)
        elif k == "quiet_hours":
            if not isinstance(v, str) or not _QUIET.match(v):
                raise InvalidArgument(f"{f} must be HH:MM-HH:MM or off", field=f)
        else:
            raise InvalidArgument(f"unknown guardrail {f}; allowed: {list(GUARDRAIL_OVERRIDES)}", field=f,
                                  code="unknown_field")
        out[k] = v
    return out


def variant_policy(settings: Settings, variant: Variant, where: str = "variant") -> tuple[Settings, Policy]:
    """The settings (service settings with the variant's guardrail overrides) and policy of a variant."""
    try:
        vs = settings.replace(**variant.guardrails) if variant.guardrails else settings
    except ConfigError as e:
        f = f"{where}.guardrails.{e.field}"
        raise InvalidArgument(f"{f}: {e.message.split(': ', 1)[-1]}", field=f) from None
    return vs, from_config(variant.policy, vs, field=f"{where}.policy")


# -- storage and lifecycle ---------------------------------------------------------------------------


def _from_hash(experiment_id: int, h: dict[str, str]) -> Experiment:
    d = json.loads(h[EXPERIMENT["definition"]])
    opt = (lambda k: float(h[EXPERIMENT[k]]) if h.get(EXPERIMENT[k]) else None)
    return Experiment(
        id=experiment_id, name=d["name"], salt=d["salt"],
        variants=tuple(Variant(v["name"], v["weight"], v["policy"], v.get("guardrails") or {}) for v in d["variants"]),
        segments=tuple(d["segments"]) if d.get("segments") is not None else None,
        status=h.get(EXPERIMENT["status"], "draft"), created_at=float(h.get(EXPERIMENT["created"], 0)),
        started_at=opt("started"), stopped_at=opt("stopped"))


def create(store: Store, settings: Settings, body: Any, now: float | None = None,
           salt: str | None = None) -> Experiment:
    """Validate and store a new experiment as a draft; returns it with its id.

    ``salt`` seeds the assignment hash; a fresh random one by default (clients cannot choose it: a reused salt
    would hand a new experiment the old one's split). Tests pass one to make a split reproducible.
    """
    definition = parse_definition(body, settings)
    definition["salt"] = secrets.token_hex(8) if salt is None else salt
    now = time.time() if now is None else now
    keys = store.keys
    experiment_id = int(store.redis.hincrby(keys.counters(), COUNTERS["experiments"], 1))
    pipe = store.redis.pipeline(transaction=False)  # (two slots: the hash first, then the list of all)
    pipe.hset(keys.experiment(experiment_id), mapping={EXPERIMENT["definition"]: json.dumps(definition),
                                                       EXPERIMENT["status"]: "draft", EXPERIMENT["created"]: repr(now)})
    pipe.zadd(keys.experiments(), {str(experiment_id): experiment_id})
    pipe.execute()
    return get(store, experiment_id)


def get(store: Store, experiment_id: int) -> Experiment:
    h = store.redis.hgetall(store.keys.experiment(experiment_id))
    if not h:
        raise NotFound(f"no experiment {experiment_id}", field="experiment_id")
    return _from_hash(experiment_id, h)


def user_counters(store: Store, experiment_id: int | str, per_call: int = 1024) -> dict[str, str]:
    """Every exposed user's counters of the experiment (stored user id -> ``XREC`` text): the hashes of all 16,384
    slots (:meth:`~bandit_push.keys.Keys.experiment_users_of_slot`), an HGETALL each, pipelined (by node on a
    cluster). Off the hot path (reports, the CLI): a fixed cost however large the keyspace, where a SCAN for the
    hashes would read every key."""
    out: dict[str, str] = {}
    key = store.keys.experiment_users_of_slot
    for start in range(0, SLOTS, per_call):
        pipe = store.redis.pipeline(transaction=False)
        for slot in range(start, min(start + per_call, SLOTS)):
            pipe.hgetall(key(experiment_id, slot))
        for h in pipe.execute():
            out.update(h)
    return out


def list_all(store: Store) -> list[Experiment]:
    ids = [int(x) for x in store.redis.zrange(store.keys.experiments(), 0, -1)]
    pipe = store.redis.pipeline(transaction=False)
    for i in ids:
        pipe.hgetall(store.keys.experiment(i))
    return [_from_hash(i, h) for i, h in zip(ids, pipe.execute()) if h]


def update(store: Store, settings: Settings, experiment_id: int, body: Any) -> Experiment:
    """Replace a draft's definition. Started experiments are frozen: :class:`Conflict`."""
    definition = parse_definition(body, settings)
    old = get(store, experiment_id)
    definition["salt"] = old.salt
    status = store.experiment_update_script(keys=[store.keys.experiment(experiment_id)],
                                            args=[json.dumps(definition)])
    if status != "draft":
        raise Conflict(f"experiment {experiment_id} is {status}: its variants and weights cannot change once "
                       "started; create a new experiment (it gets its own analysis)", field="experiment_id")
    return get(store, experiment_id)


def transition(store: Store, experiment_id: int, action: str, now: float | None = None) -> Experiment:
    """``start`` (draft or paused), ``pause`` (running) or ``stop`` (not yet stopped): the status moves atomically
    on the experiment's hash, then the running and active sets follow and the registry version is bumped, so that
    every process picks the change up with its next snapshot (keys of other slots: commands of their own). A
    repeat of a transition already made (a retry after a cut between the two) is refused as a conflict but
    completes the sets first, so they always end as the status says."""
    if action not in ACTIONS:
        raise InvalidArgument(f"action must be one of {list(ACTIONS)}", field="action")
    now = time.time() if now is None else now
    k = store.keys
    ok, before, order = store.experiment_transition_script(keys=[k.experiment(experiment_id)],
                                                           args=[action, repr(now)])
    if not before:
        raise NotFound(f"no experiment {experiment_id}", field="experiment_id")
    if ok or before == _AFTER[action]:
        member = str(experiment_id)
        pipe = store.redis.pipeline(transaction=False)
        if action == "start":
            pipe.zadd(k.experiments_running(), {member: float(order)})
            pipe.zadd(k.experiments_active(), {member: float(order)})
        else:
            pipe.zrem(k.experiments_running(), member)
            if action == "stop":
                pipe.zrem(k.experiments_active(), member)
        pipe.incr(k.experiments_version())
        pipe.execute()
    if not ok:
        raise Conflict(f"cannot {action} experiment {experiment_id}: it is {before}", field="status")
    return get(store, experiment_id)


#: the status each action leaves
_AFTER = {"start": "running", "pause": "paused", "stop": "stopped"}


# -- the registry the decide path caches -------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The running experiments (oldest first) and the active ids (running or paused), at ``version``."""

    version: str
    running: tuple[Experiment, ...]
    active: tuple[int, ...]


def load_snapshot(store: Store) -> Snapshot:
    """Read the registry. The version is read first: if a change lands meanwhile, the next snapshot sees a newer
    version than this one's and reloads again, so a process never keeps a stale view for long."""
    k = store.keys
    # on a cluster no transaction spans the registry's slots: the version is read first, alone
    version = store.redis.get(k.experiments_version()) if store.cluster else None
    pipe = store.redis.pipeline(transaction=not store.cluster)
    if not store.cluster:
        pipe.get(k.experiments_version())
    pipe.zrange(k.experiments_running(), 0, -1)
    pipe.zrange(k.experiments_active(), 0, -1)
    *got, running, active = pipe.execute()
    version = got[0] if got else version
    pipe = store.redis.pipeline(transaction=False)
    for i in running:
        pipe.hgetall(k.experiment(i))
    exps = tuple(_from_hash(int(i), h) for i, h in zip(running, pipe.execute()) if h)
    return Snapshot(version or "0", exps, tuple(int(i) for i in active))


class Registry:
    """A process's cached view of the running experiments.

    Starts empty at version ``""`` (which no Redis holds), so the first decide's snapshot or event batch finds it
    stale and loads it; afterwards a moved version, read with decide's shared snapshot or an event batch's first
    round trip, makes the caller call :meth:`refresh`. Swapping the snapshot is one attribute assignment, safe across threads.
    """

    def __init__(self, store: Store):
        self.store = store
        self.snapshot = Snapshot("", (), ())

    def refresh(self) -> Snapshot:
        self.snapshot = load_snapshot(self.store)
        return self.snapshot
