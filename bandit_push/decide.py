"""One decision: guardrails -> policy -> record, in a single Redis round trip.

The decide Lua script does the work atomically (see :mod:`bandit_push.scripts`):
it reads the user's state, derives the context (recency bucket, local daypart),
applies the guardrails, runs the policy kernel on the context's arm, picks the
items, and — on a send — moves the user's last push, so that two concurrent
requests for one user can never both send. This module prepares its inputs
and reads its answer.
"""
from __future__ import annotations

import hashlib
import logging
import math
import random
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

from hiredis import pack_command
from redis.exceptions import NoScriptError, ResponseError

from bandit_push import scripts
from bandit_push.config import OUTCOMES, Settings
from bandit_push.engagement import ENGAGED, EngagementParams
from bandit_push.sendtime import SendTimes
from bandit_push.errors import RateLimited, Unavailable
from bandit_push.experiments import Registry, Snapshot, variant_policy
from bandit_push.policies import POLICIES, Policy
from bandit_push.store import Store
from bandit_push.tzrule import posix_rule

DEFAULT_SPACE = "default"
log = logging.getLogger(__name__)


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
        "fs": ["|FL"] + [f"|F{j}" for j in range(settings.pacing_loads)],
        "ll": settings.recency_edges_hours[-1] * 3600.0,
        "dp": settings.daypart_of_hour(), "tz": posix_rule(settings.default_timezone),
        "excl": settings.exclude_pushed_days * 86400.0,
        # the outcomes whose first report marks a decision engaged (the user's evidence, see engagement.py)
        "eo": [OUTCOMES.index(o) + 1 for o in ENGAGED],
        "nouser": not settings.user_evidence, "episodes": settings.thompson_episodes,
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


def lua_literal(value: Any) -> str:
    """A Lua table/number/string literal of a JSON-like value (strings: safe characters only)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={lua_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "{" + ",".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return repr(value)
    if isinstance(value, str) and _SAFE.match(value):
        return f"'{value}'"
    raise ValueError(f"cannot embed {value!r} in the decide script")


_SAFE = re.compile(r"^[A-Za-z0-9_.,:|+\-]*$")


def new_decision_id(space: str) -> str:
    """A random id that names the policy space, so feedback knows which arms to credit."""
    return f"{secrets.token_hex(10)}.{space}"


_DECISION_ID = re.compile(r"^[0-9a-f]{20}\.([A-Za-z0-9_-]{1,64})$")


def space_of(decision_id: str) -> str | None:
    """The policy space a :func:`new_decision_id` names, or None if ``decision_id`` is not one."""
    m = _DECISION_ID.match(decision_id)
    return m.group(1) if m else None


def parse_items(raw: str) -> list[Item]:
    """Items of a script's ``"id score id score ..."`` answer."""
    parts = raw.split()
    return [Item(parts[i], float(parts[i + 1])) for i in range(0, len(parts), 2)]


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
class _Compiled:
    """The decide script compiled for one registry version, with what reading its answers needs."""

    snapshot: Snapshot
    script: Any  # redis.commands.core.Script
    policies: tuple[tuple[str, ...], ...]  # per running experiment, its variants' policy names
    function: str | None = None  # the same code as a Redis Function (its library's name and its own), or None


def function_library(source: str, name: str) -> str:
    """The decide script ``source`` as a Redis Functions library ``name`` with one function of that name.

    Everything before the script's body (the helpers, the constant settings) runs once, when the library loads;
    the body is the function. A library's top level may not touch Lua's globals (``math``, ``string``...):
    the helpers' two uses of them there are bound on the function's first call instead."""
    cut = source.index(_BODY_START)
    top = source[:cut]
    for line in _TOP_GLOBALS:
        if top.count(line) != 1:
            raise AssertionError(f"the decide script changed: update _TOP_GLOBALS ({line!r})")
        top = top.replace(line, line.split(" = ", 1)[0])  # the declaration stays; the value comes on first call
    bind = "if not pow then " + "; ".join(line.removeprefix("local ") for line in _TOP_GLOBALS) + " end\n"
    return (f"#!lua name={name}\n{top}\nredis.register_function('{name}', function(KEYS, ARGV)\n"
            f"{bind}{source[cut:]}\nend)\n")


_BODY_START = "local nx = #conf.xs\n"
_TOP_GLOBALS = ("local pow, sqrt, floor = math.pow, math.sqrt, math.floor",
                "local TZ_DST = '^' .. string.rep('([^,]+),', 9) .. '([^,]+)$'")


def _overrides(base: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """What ``cfg`` changes of ``base`` (a removed key becomes ``False``). The script reads a variant's
    config through a metatable onto the base one: a Lua table literal is built on every call, so
    repeating the shared constants (dayparts, priors, ...) per variant would cost every decide."""
    out = {k: v for k, v in cfg.items() if base.get(k) != v}
    out.update({k: False for k in base if k not in cfg})
    return out


class DecisionEngine:
    """Decides for one deployment: a store, settings, the default policy and the running experiments.

    The running experiments are cached in the process (:class:`~bandit_push.experiments.Registry`) and
    compiled, with every variant's constant settings, into the decide script. The script checks the
    registry version (one GET inside the same call) and answers ``stale`` without writing anything
    when it moved; the engine then reloads the registry, recompiles and decides again. So a decide
    stays one round trip, except the first one after a start, pause or stop.
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
        self._compiled: _Compiled | None = None
        self._lock = threading.Lock()
        self._um, self._um_at = "", -math.inf
        self.send_times = SendTimes(store, settings, self.policy)
        self._labels = settings.recency_labels(), [name for _, name in settings.dayparts]
        keys = store.keys  # the keys every decide names, whoever the user
        self._shared_keys = (keys.arms(DEFAULT_SPACE), keys.popular_top(), keys.segment_sizes(),
                             keys.experiments_version(), keys.item_by_index())

    def _engagement(self) -> str:
        """The serving engagement model's parameters as the script's argument, read again at most every
        ``snapshot_seconds`` (shared state reaches decide as a per-process snapshot: no extra round trip)."""
        t = time.monotonic()
        if t - self._um_at >= self.settings.snapshot_seconds:
            self._um_at = t
            self._um = EngagementParams.serving(self.store).argument()
        return self._um

    def _script_for(self, snapshot: Snapshot) -> _Compiled:
        """The decide script of ``snapshot``: the constant settings are compiled in, so no call pays for
        decoding them; one (experiment, variant) config is built once and kept while the process lives."""
        compiled = self._compiled
        if compiled is not None and compiled.snapshot is snapshot:
            return compiled
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
            source = scripts.DECIDE.replace("local conf = CONFIG", "local conf = " + lua_literal(
                {"base": self._base, "xs": xs}), 1)
            policies = tuple(tuple(str(v.policy.get("name")) for v in x.variants) for x in snapshot.running)
            script, function = self.store.redis.register_script(source), None
            if self.settings.redis_functions and self.store.functions:
                function = self.store.library_tag() + hashlib.sha1(source.encode()).hexdigest()[:16]
                try:
                    self._load(script, function)
                except ResponseError as e:  # e.g. an ACL without FUNCTION: the script still works
                    log.warning("decide stays an EVALSHA script: FUNCTION LOAD was refused (%s)", e)
                    function = None
            self._compiled = compiled = _Compiled(snapshot, script, policies, function)
            return compiled

    def _load(self, script: Any, function: str) -> None:
        """Load (or replace) the library that holds ``script``'s code as the function ``function``."""
        self.store.redis.execute_command("FUNCTION", "LOAD", "REPLACE", function_library(script.script, function))

    def decide(self, user_id: str, now: float | None = None, k: int | None = None,
               channel: str | None = None, rate_limit: RateLimit | None = None) -> Decision:
        """Decide whether to push ``user_id`` at ``now`` and with which ``k`` items.

        With ``rate_limit``, the caller's token is taken in the same script (one round trip); an empty
        bucket raises :class:`~bandit_push.errors.RateLimited` and decides nothing.
        """
        now = time.time() if now is None else float(now)
        k = self.settings.default_k if k is None else k
        keys = self.store.keys
        arms, popular, sizes, version, ixmap = self._shared_keys
        token = secrets.token_hex(10)
        u = int(self.rng.random() * 9007199254740992.0)  # random() is k / 2^53: the script divides k back, exactly
        for _ in range(5):
            compiled = self._script_for(self.registry.snapshot)
            snap = compiled.snapshot
            dids = [f"{token}.{DEFAULT_SPACE}"]
            kk = [keys.user(user_id), keys.decision(dids[0]), arms, popular, sizes, keys.user_pushes(user_id), version]
            args: list[Any] = [user_id, dids[0], "%.17g" % now, u, k, channel or "", snap.version, self._engagement()]
            variants = []
            for x in snap.running:
                vi = x.assign(user_id)
                variants.append(vi)
                dids.append(f"{token}.{x.space(vi)}")
                kk += [keys.decision(dids[-1]), keys.arms(x.space(vi)), keys.experiment_users(x.id)]
                args.append(vi)
            kk.append(keys.decision_log(int(now // 3600)))
            kk += [keys.user_recs(user_id), ixmap]
            if rate_limit is not None:  # the caller's token, taken in the same script
                kk.append(keys.rate_bucket(rate_limit.key_id))
                args += [repr(float(rate_limit.rate)), repr(float(rate_limit.burst))]
            out = self._eval(compiled, tuple(kk), tuple(args))
            if out[0] != "stale":
                break
            self.registry.refresh()
        else:  # the registry changed five times during one decide: someone is flapping an experiment
            raise Unavailable("the experiments registry keeps changing; retry shortly")
        if out[0] == -1:
            wait = int(out[1]) / 1000.0
            raise RateLimited(f"this key's rate limit ({rate_limit.rate:g} requests/s) is spent; "
                              f"retry in {wait:.3f} s", retry_after=wait)
        send, reason, segment, prop, rec, dp, items_raw, xi, _first, source, ready, offset, last_push = out
        items = parse_items(items_raw)
        recency, dayparts = self._labels
        policy, experiment = self.policy.name, None
        if xi:
            x, vi = snap.running[xi - 1], variants[xi - 1]
            policy = compiled.policies[xi - 1][vi]
            experiment = {"id": x.id, "name": x.name, "variant": x.variants[vi].name}
        return Decision(
            decision_id=dids[xi], send=bool(send), items=items, segment=segment, reason=reason,
            propensity=float(prop), policy=policy,
            context={"recency": recency[int(rec)], "daypart": dayparts[int(dp)]},
            items_source=source, experiment=experiment,
            retry_at=self.send_times.retry_at(segment, now, float(ready), float(offset),
                                              float(last_push) if last_push else None) if ready else None)

    def _eval(self, compiled: _Compiled, keys: tuple, args: tuple) -> Any:
        """FCALL of the decide function (EVALSHA of the script where the server has no Functions) on this
        thread's own connection.

        The hot path: the same command as ``Script.__call__``, without taking and returning a pool
        connection per call (about a third of redis-py's per-command cost). Connection errors retry
        and reconnect under the connection's own retry policy, as ``Redis.execute_command`` does;
        NOSCRIPT or a missing function (a restarted, flushed or failed-over server) loads it and runs it again.
        """
        conn = self.store.thread_connection()
        script, function = compiled.script, compiled.function

        def run() -> Any:
            # hiredis packs the command straight from str/int arguments: a third of redis-py's packing cost
            command = ("FCALL", function) if function else ("EVALSHA", script.sha)
            conn.send_packed_command([pack_command((*command, len(keys), *keys, *args))])
            return conn.read_response()

        try:
            return conn.retry.call_with_retry(run, lambda error: conn.disconnect())
        except NoScriptError:
            script.sha = self.store.redis.script_load(script.script)
        except ResponseError as e:
            if not (function and str(e).startswith("Function not found")):
                raise
            self._load(script, function)
        return conn.retry.call_with_retry(run, lambda error: conn.disconnect())
