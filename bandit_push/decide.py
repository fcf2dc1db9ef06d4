"""One decision: guardrails -> policy -> record, in a single Redis round trip.

The decide command of the Lua library does the work atomically (``bandit_push/lua/decide.lua``):
it reads the user's state, derives the context (recency bucket, local daypart),
applies the guardrails, runs the policy kernel on the context's arm, picks the
items, and — on a send — moves the user's last push, so that two concurrent
requests for one user can never both send. This module prepares its inputs
and reads its answer.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import secrets
import struct
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

from bandit_push import ids, ratelimit
from bandit_push.config import EVENT_TYPES, OUTCOMES, Settings
from bandit_push.decision_log import SEND_MARKER_TTL
from bandit_push.engagement import ENGAGED, EngagementParams
from bandit_push.errors import RateLimited, Unavailable
from bandit_push.experiments import Registry, Snapshot, variant_policy
from bandit_push.keys import decision_space, key_slot
from bandit_push.models import ModelCache
from bandit_push.policies import POLICIES, Policy
from bandit_push.schema import ARM, USER
from bandit_push.sendtime import SendTimes
from bandit_push.store import Store
from bandit_push.tzrule import posix_rule

DEFAULT_SPACE = "default"


@dataclass(frozen=True)
class RateLimit:
    """A caller's token bucket: a key id (a digest prefix, never the key), refill rate per second, size."""

    key_id: str
    rate: float
    burst: float


class Item(NamedTuple):
    """One pushed item (a named tuple: decide builds k of them per call, a frozen dataclass costs twice as much)."""

    item_id: str
    score: float


@dataclass(frozen=True)
class Decision:
    """What ``decide`` answers; ``to_json`` is the HTTP response body."""

    decision_id: str
    send: bool
    items: list[Item]
    segment: str
    reason: str
    propensity: float
    policy: str
    context: dict[str, Any]
    items_source: str
    experiment: dict[str, Any] | None = None
    retry_at: float | None = None  #: epoch seconds: when to ask again, for a refusal about the moment

    def to_json(self) -> dict[str, Any]:
        out = {
            "decision_id": self.decision_id, "send": self.send,
            "items": [{"item_id": i.item_id, "score": i.score} for i in self.items],
            "items_source": self.items_source, "segment": self.segment, "reason": self.reason,
            "propensity": self.propensity, "policy": self.policy, "experiment": self.experiment,
            "context": self.context,
        }
        if self.retry_at is not None:
            out["retry_at"] = datetime.fromtimestamp(self.retry_at, timezone.utc).isoformat().replace("+00:00", "Z")
        return out


def script_config(settings: Settings, policy: Policy, space: str = DEFAULT_SPACE, model: str = "popular") -> dict[str, Any]:
    """The constants the decide script reads: policy kernel (with the policy's own settings: ``cost``,
    ``ucb_c`` or ``gap``), priors, guardrails, context edges."""
    quiet = settings.quiet_window()
    cfg: dict[str, Any] = {
        "kind": policy.kind, "policy": policy.name, "space": space, "model": model,
        "w": [float(x) for x in policy.prior.weights], "pa": [float(x) for x in policy.prior.alpha],
        # the outcomes the net value weighs (1-based): the kernel's loops skip the others
        "nz": [i + 1 for i, x in enumerate(policy.prior.weights) if x != 0],
        "pb": [float(x) for x in policy.prior.beta], "pool": policy.prior.pool,
        "hl": settings.half_life_hours * 3600.0,
        "cap": settings.max_per_day, "min_gap": settings.min_gap_hours * 3600.0,
        "rec": [h * 3600.0 for h in settings.recency_edges_hours],
        "lw": settings.pacing_window_hours * 3600.0, "lj": settings.pacing_loads,
        # the load arms' field suffixes, 'not pushed within ll' first (segments.py reads the same fields)
        "fs": [ARM["load"] + "L"] + [f"{ARM['load']}{j}" for j in range(settings.pacing_loads)],
        "ll": settings.recency_edges_hours[-1] * 3600.0,
        "dp": settings.daypart_of_hour(), "tz": posix_rule(settings.default_timezone),
        "excl": settings.exclude_pushed_days * 86400.0,
        # the outcomes whose first report marks a decision engaged (the user's evidence, see engagement.py)
        "eo": [OUTCOMES.index(o) + 1 for o in ENGAGED],
        "nouser": not settings.user_evidence, "episodes": settings.thompson_episodes,
        # the user hash's organic event counts (the engagement model's activity), and which of them are purchases
        "evf": [USER["event_count"] + t for t in EVENT_TYPES], "evp": EVENT_TYPES.index("purchase") + 1,
        # (expiries as text: a number handed to redis.call is formatted with a sprintf on every call)
        "ttl": str(int(settings.decision_ttl_hours * 3600)),
        "lttl": str(int(settings.decision_ttl_hours * 3600) + 3600),  # the decision log's hour index
        # the recent-pushes record must outlive the cap's 24 h, the item exclusion window and pacing's window
        "keep": str(int(max(settings.exclude_pushed_days * 86400.0, 86400.0, settings.pacing_window_hours * 3600.0))
                    + 3600),
    }
    cfg.update(policy.lua_params())
    if quiet:
        cfg["quiet"] = list(quiet)
    return cfg


def decision_token(slot: int) -> str:
    """A decision id without its space: the slot of its record (its user's), then 16 random hex digits."""
    return f"{slot:04x}{secrets.token_hex(8)}"


def new_decision_id(space: str, slot: int) -> str:
    """A random id that names the slot of its record (its user's) and the policy space, so feedback finds the
    record and knows which arms to credit: ``<slot: 4 hex><random: 16 hex>.<space>``."""
    return f"{decision_token(slot)}.{space}"


def parse_items(raw: str) -> list[Item]:
    """Items of a script's ``"id score id score ..."`` answer (stored ids: no space inside one), named as sent."""
    parts = raw.split()
    load = ids.load
    return [Item(load(parts[i]), float(parts[i + 1])) for i in range(0, len(parts), 2)]


def ranked_items(store: Store, settings: Settings, user_id: str, k: int, now: float | None = None) -> dict[str, Any]:
    """The items ``decide`` would serve ``user_id`` at ``now``, deciding and recording nothing.

    The same Lua function as decide's (``PICK_ITEMS``): the precomputed list, then the segment's popular
    items, then the global ones, minus items pushed within ``exclude_pushed_days``.
    """
    now = time.time() if now is None else float(now)
    keys = store.keys
    raw, source, segment, model = store.items_script(
        keys=[keys.user(user_id), keys.user_pushes(user_id), keys.user_recs(user_id), keys.item_by_index(),
              keys.popular_top()],
        args=[repr(now), k, repr(settings.exclude_pushed_days * 86400.0)])
    return {"user_id": user_id, "items": [{"item_id": i.item_id, "score": i.score} for i in parse_items(raw)],
            "items_source": source, "segment": segment, "model": model}


@dataclass(frozen=True)
class _Shared:
    """A per-process snapshot of the shared, slowly changing state decide reads (``lua/includes/snapshot.lua``): each
    policy space's arms and the popular lists, and the registry version it was read with."""

    digest: str
    blob: bytes
    version: str


@dataclass(frozen=True)
class _Config:
    """The decide config of one registry snapshot (see ``lua/includes/config.lua``), with what reading answers needs."""

    snapshot: Snapshot
    digest: str
    blob: str  # the config as JSON
    policies: tuple[tuple[str, ...], ...]  # per running experiment, its variants' policy names


def _overrides(base: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """What ``cfg`` changes of ``base`` (a removed key becomes ``False``): the library reads a variant's config
    through a metatable onto the base one, so the shared constants travel and decode once."""
    out = {k: v for k, v in cfg.items() if base.get(k) != v}
    out.update({k: False for k in base if k not in cfg})
    return out


class DecisionEngine:
    """Decides for one deployment: a store, settings, the default policy and the running experiments.

    The running experiments are cached in the process (:class:`~bandit_push.experiments.Registry`) and turned,
    with every variant's constant settings, into the decide config. The shared state decide reads from other slots
    than the user's (the arms of every space in use, the popular lists, the registry version, the MF model's item
    names) is a per-process snapshot read again every ``snapshot_seconds`` (:meth:`_snapshot`) and handed to the
    script as arguments, kept by the library by digest (sent when it does not know it). The decide command names
    only keys of the user's slot, so it runs on a Redis Cluster; what it answers for shared keys (a send's arm
    increments, a new user's segment size, the hour's slot bitmap) goes to their own slots as a second,
    idempotent command (:meth:`_shared_writes`). So a decide is one round trip, two for a send.
    """

    def __init__(self, store: Store, settings: Settings, policy: Policy | None = None,
                 rng: random.Random | None = None, registry: Registry | None = None, stream: str | None = None):
        self.store = store
        self.settings = settings
        self.policy = policy or POLICIES[settings.policy](settings)
        # with a seed, each serving process (``stream``: e.g. a gunicorn worker's number) draws its own
        # reproducible sequence: processes sharing one sequence would explore in lockstep
        seed = settings.seed if settings.seed is None or stream is None else f"{settings.seed}:{stream}"
        self.rng = rng or random.Random(seed)
        self.registry = registry or Registry(store)
        self._base = script_config(settings, self.policy)
        self._variants: dict[tuple[int, int], dict[str, Any]] = {}  # (experiment, variant) -> config
        self._config: _Config | None = None
        self._known: str | None = None  # the digest of the config the library was last sent (or used)
        self._lock = threading.Lock()
        self._um, self._um_at = "", -math.inf
        self.send_times = SendTimes(store, settings, self.policy)
        self._models = ModelCache()  # the engagement model, reloaded only when its version moves
        self._labels = settings.recency_labels(), [name for _, name in settings.dayparts]
        self._shared: _Shared | None = None
        self._shared_at = -math.inf
        self._known_shared: str | None = None  # the digest of the snapshot the library was last sent (or used)
        self._names: list[str] = []  # the MF model's item names by dense index (items:byix only grows)

    def _snapshot(self, now: float) -> _Shared:
        """The shared snapshot, read again at most every ``snapshot_seconds`` (:meth:`Settings.snapshot_due`): the
        registry version, every running space's arms, the popular lists and the item names' count in one round trip
        (and the registry again when its version moved, then the new spaces' arms)."""
        shared = self._shared
        due, t = self.settings.snapshot_due(self._shared_at, now)
        if shared is not None and not due:
            return shared
        keys = self.store.keys
        for _ in range(3):  # (a registry that moves again while being read is read again)
            snap = self.registry.snapshot
            spaces = [DEFAULT_SPACE] + [x.space(i) for x in snap.running for i in range(len(x.variants))]
            pipe = self.store.binary.pipeline(transaction=False)
            pipe.get(keys.experiments_version())
            for space in spaces:
                pipe.hgetall(keys.arms(space))
            pipe.hgetall(keys.popular_top())
            pipe.hlen(keys.item_by_index())
            version, *arms, top, names = pipe.execute()
            version = (version or b"0").decode()
            if version == snap.version:
                break
            self.registry.refresh()  # an experiment started, paused or stopped: its spaces are read again
        head = json.dumps({
            # (the popular lists; '@ts' and '@day' are the refresh's bookkeeping)
            "top": {f.decode(): v.decode() for f, v in top.items() if not f.startswith(b"@")},
            "spaces": [[space, len(h)] for space, h in zip(spaces, arms)],
        }, separators=(",", ":")).encode()
        # the arms as stored, each field and value length-prefixed (lua/includes/snapshot.lua)
        blob = b"".join([struct.pack("<I", len(head)), head, *(
            struct.pack("<H", len(f)) + f + struct.pack("<H", len(raw)) + raw for h in arms for f, raw in h.items())])
        if int(names) > len(self._names):
            self._read_names(int(names))
        shared = self._shared = _Shared(hashlib.sha1(blob).hexdigest(), blob, version)
        self._shared_at = t
        return shared

    def snapshot_due(self) -> None:
        """Read the shared snapshot again at the next decide: this process changed what it holds (an experiment's
        start, pause or stop), so its own next decide sees the change; other processes see it within
        ``snapshot_seconds``."""
        self._shared_at = -math.inf

    def _read_names(self, n: int, batch: int = 10000) -> None:
        """The item names of dense indexes from the ones held up to ``n`` (``items:byix``, complete below its
        length; a gap stops the reading there)."""
        key = self.store.keys.item_by_index()
        with self._lock:
            while len(self._names) < n:
                start = len(self._names)
                got = self.store.redis.hmget(key, [str(i) for i in range(start, min(start + batch, n))])
                for name in got:
                    if name is None:
                        return
                    self._names.append(name)

    def _names_from(self, first: int) -> str:
        """The names argument: the held item names from dense index ``first`` on, ``"<first> <name> ..."``."""
        return " ".join([str(first), *self._names[first:]])

    def _engagement(self, now: float) -> str:
        """The serving engagement model's parameters as the script's argument, read again at most every
        ``snapshot_seconds`` (:meth:`Settings.snapshot_due`; shared state reaches decide as a per-process snapshot)."""
        due, t = self.settings.snapshot_due(self._um_at, now)
        if due:
            # (the snapshot before its time: a concurrent decide reads the previous one, never none)
            self._um = EngagementParams.serving(self.store, self._models).argument()
            self._um_at = t
        return self._um

    def _config_for(self, snapshot: Snapshot) -> _Config:
        """The decide config of ``snapshot``; one (experiment, variant) config is built once and kept while the
        process lives."""
        config = self._config
        if config is not None and config.snapshot is snapshot:
            return config
        with self._lock:
            xs = []
            live = set()
            for x in snapshot.running:
                variants = []
                for i, v in enumerate(x.variants):
                    live.add((x.id, i))
                    cfg = self._variants.get((x.id, i))
                    if cfg is None:
                        vs, policy = variant_policy(self.settings, v)
                        cfg = self._variants[(x.id, i)] = _overrides(self._base, script_config(vs, policy, x.space(i)))
                    variants.append(cfg)
                xs.append({"segs": list(x.segments) if x.segments is not None else False, "v": variants})
            for key in set(self._variants) - live:  # bounded by the running experiments
                del self._variants[key]
            # (allow_nan=False: a setting that is not a finite number fails here, not as a Lua error)
            blob = json.dumps({"base": self._base, "xs": xs}, separators=(",", ":"), allow_nan=False)
            policies = tuple(tuple(str(v.policy.get("name")) for v in x.variants) for x in snapshot.running)
            self._config = config = _Config(snapshot, hashlib.sha1(blob.encode()).hexdigest(), blob, policies)
            return config

    def extra_argument(self, user_id: str, now: float | None = None) -> str:
        """The opaque blob decide hands the policy (ARGV[10]): the engagement model's snapshot (see user_theta in
        ``lua/includes/evidence.lua``); the place for another model's snapshot too."""
        return self._engagement(time.time() if now is None else now)

    def decide(self, user_id: str, now: float | None = None, k: int | None = None,
               channel: str | None = None, rate_limit: RateLimit | None = None) -> Decision:
        """Decide whether to push ``user_id`` at ``now`` and with which ``k`` items.

        With ``rate_limit``, the caller's token is taken in the same call (one round trip); an empty
        bucket raises :class:`~bandit_push.errors.RateLimited` and decides nothing.
        """
        now = time.time() if now is None else float(now)
        k = self.settings.default_k if k is None else k
        keys = self.store.keys
        if rate_limit is not None and self.store.cluster:
            # the bucket is a key of its own slot: on a cluster its own command first (one Redis: the same call)
            wait = ratelimit.take(self.store, rate_limit.key_id, rate_limit.rate, rate_limit.burst)
            if wait is not None:
                raise RateLimited(f"this key's rate limit ({rate_limit.rate:g} requests/s) is spent; "
                                  f"retry in {wait:.3f} s", retry_after=wait)
            rate_limit = None
        user_key = keys.user(user_id)
        slot = key_slot(user_key)  # the records (one per space it may decide in) go in the user's slot
        token = decision_token(slot)  # one per decide, with the space of each record after it
        hour = int(now // 3600)
        u = int(self.rng.random() * 9007199254740992.0)  # random() is k / 2^53: the script divides k back, exactly
        extra = self.extra_argument(user_id, now)
        shared = self._snapshot(now)
        # a library keeps the configs and snapshots it was sent, and the names; a script starts empty on every call
        library = self.store.decide_script.function is not None
        names = None if library else 0  # from which dense index the call sends the item names
        for _ in range(5):
            config = self._config_for(self.registry.snapshot)
            snap = config.snapshot
            dids = [f"{token}.{DEFAULT_SPACE}"]
            kk = [user_key, keys.decision(dids[0]), keys.user_pushes(user_id), keys.user_recs(user_id),
                  keys.decision_log(slot, hour)]
            args: list[Any] = [
                ids.store(user_id), dids[0], "%.17g" % now, u, k, channel or "", shared.digest, config.digest,
                "" if library and config.digest == self._known else config.blob, extra,
                "" if library and shared.digest == self._known_shared else shared.blob,
                len(self._names), "" if names is None else self._names_from(names)]
            variants = []
            for x in snap.running:
                vi = x.assign(user_id)
                variants.append(vi)
                dids.append(f"{token}.{x.space(vi)}")
                kk += [keys.decision(dids[-1]), keys.experiment_users(x.id, user_id)]
                args.append(vi)
            if rate_limit is not None:  # the caller's token, taken in the same call
                kk.append(keys.rate_bucket(rate_limit.key_id))
                args += [repr(float(rate_limit.rate)), repr(float(rate_limit.burst))]
            out = self._call(kk, args)
            if out[0] == "config":  # the library was loaded again since (or this shard never had it): send it
                self._known = None
            elif out[0] == "snapshot":
                self._known_shared = None
            elif out[0] == "names":  # the user's items need names the library lacks
                names = int(out[1])
                if names >= len(self._names):  # (a refit named more items since the snapshot)
                    self._read_names(int(self.store.redis.hlen(keys.item_by_index())))
            else:
                self._known, self._known_shared = config.digest, shared.digest
                break
        else:  # the library keeps losing what it was sent: it is being reloaded or flushed
            raise Unavailable("the decide library keeps losing its configuration; retry shortly")
        if out[0] == -1:
            assert rate_limit is not None  # (the script refuses only when it was given a limit to take from)
            wait = int(out[1]) / 1000.0
            raise RateLimited(f"this key's rate limit ({rate_limit.rate:g} requests/s) is spent; "
                              f"retry in {wait:.3f} s", retry_after=wait)
        (send, reason, segment, prop, rec, dp, items_raw, xi, _first, source, ready, offset, last_push, created,
         logged, load) = out
        if send or created or logged:
            self._shared_writes(dids[xi], now, segment, f"{rec}|{dp}", load, send, created, logged, hour, slot)
        items = parse_items(items_raw)
        recency, dayparts = self._labels
        policy, experiment = self.policy.name, None
        if xi:
            x, vi = snap.running[xi - 1], variants[xi - 1]
            policy = config.policies[xi - 1][vi]
            experiment = {"id": x.id, "name": x.name, "variant": x.variants[vi].name}
        return Decision(
            decision_id=dids[xi], send=bool(send), items=items, segment=segment, reason=reason,
            propensity=float(prop), policy=policy,
            context={"recency": recency[int(rec)], "daypart": dayparts[int(dp)]},
            items_source=source, experiment=experiment,
            retry_at=self.send_times.retry_at(segment, now, float(ready), float(offset),
                                              float(last_push) if last_push else None) if ready else None)

    def _call(self, keys: list[str], args: list[Any]) -> Any:
        """The decide command: one round trip."""
        return self.store.decide_script(keys=keys, args=args)

    def _shared_writes(self, decision_id: str, now: float, segment: str, context: str, load: str, send: bool,
                       created: bool, logged: bool, hour: int, slot: int) -> None:
        """What decide answered for keys of other slots: a send's increments of its space's arms by credit.lua (sends
        are its outcome 0), once per decision by the marker ``cr:{<space>}:<decision id>:send`` (one FCALL: a
        pipelined script would cost a SCRIPT EXISTS round trip more); then, pipelined, a user the send created
        counted in ``new`` and the slot's first record of the hour marked in the hour's bitmap (idempotent). A
        process that dies before this leaves the send uncounted in the arms, and the size one low until a refit
        recounts it (docs/schema.md)."""
        keys, settings = self.store.keys, self.settings
        if send:
            space = decision_space(decision_id) or DEFAULT_SPACE
            ttl = SEND_MARKER_TTL  # (while the hourly sweep may send it again)
            self.store.credit_script(keys=[keys.arms(space), keys.credited(space, decision_id, "send")],
                                     args=[0, "%.17g" % now, self._half_life(space), len(OUTCOMES), segment,
                                           context, load, ttl])
        if created or logged:
            pipe = self.store.redis.pipeline(transaction=False)
            if created:
                pipe.hincrby(keys.segment_sizes(), "new", 1)
            if logged:
                bitmap = keys.decision_log_slots(hour)
                pipe.setbit(bitmap, slot, 1)
                pipe.expire(bitmap, int(settings.decision_ttl_hours * 3600) + 3600)  # (outlives the indexes it marks)
            pipe.execute()

    def _half_life(self, space: str) -> float:
        """The half-life (s) a space's arms decay at: a variant's own, else the base policy's."""
        for (xid, vi), cfg in list(self._variants.items()):
            if f"x{xid}v{vi}" == space:
                return float(cfg.get("hl", self._base["hl"]))
        return float(self._base["hl"])
