"""The evaluation: learned policies through the real service, against baselines on the same stream.

Baselines (all the service's ``cadence`` policy under some guardrail settings, answered by the
exact :class:`~bandit_push.sim.gateway.LocalGateway` replica, so that twenty of them cost seconds):

* ``never`` (nobody is pushed);
* ``always``: push at every opportunity the default guardrails allow (quiet hours 22-08, 3 a day,
  4 h apart);
* daily caps ``cap N/day``: as ``always`` with at most N pushes in 24 h;
* fixed cadences ``every G h`` for G in 2 h .. 1 week, with quiet hours (``+quiet``) and without,
  with no other guardrail (the cadence is the rule);
* the ``oracle``: knows each user's true type and gives every type its best fixed rule above
  (``never`` included): the one with the highest *expected* net value on that type (each push's expected
  value given its state, :attr:`~bandit_push.sim.driver.Result.expected`). Choosing by the realised value
  instead would pick, among twenty rules, the one the draws favoured on this stream: the oracle would know
  the future's luck as well as the user's type. The best fixed cadence is chosen the same way.

Learned policies run against a fresh service (gunicorn, its own key prefix) with the default
guardrails. Everyone meets the same users, opportunities and per-opportunity random numbers.
"""
from __future__ import annotations

import gc
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, Callable

import numpy as np

from bandit_push import segments
from bandit_push.config import Settings
from bandit_push.policies import from_config
from bandit_push.sim.driver import Result, prepare, run
from bandit_push.sim.gateway import Answer, HttpGateway, LocalGateway, PopularReplica
from bandit_push.sim.population import DAY, HOUR, Population
from bandit_push.sim.service import Service

CADENCE_HOURS = (2, 4, 8, 12, 24, 48, 72, 168)
CAPS = (1, 2)


@dataclass(frozen=True)
class Baseline:
    label: str
    gap_hours: float | None          #: None: never push
    changes: dict[str, Any]          #: guardrail settings of this baseline
    fixed_cadence: bool = False      #: one of the "every G h" rules (the best of them is the reference)


def baselines() -> list[Baseline]:
    out = [Baseline("never", None, {}), Baseline("always", 1e-6, {})]
    out += [Baseline(f"cap {c}/day", 1e-6, {"max_per_day": c}) for c in CAPS]
    for g in CADENCE_HOURS:
        for quiet in (True, False):
            out.append(Baseline(f"every {g}h" + ("+quiet" if quiet else ""), float(g),
                                {"min_gap_hours": 0.0, "max_per_day": 24,
                                 **({} if quiet else {"quiet_hours": "off"})}, fixed_cadence=True))
    return out


_NEVER = Answer(False, [], "", "default", "holdout", ("", ""))


class _Never:
    """The gateway of a policy that never pushes (decisions still counted)."""

    def put_users(self, users): pass
    def post_events(self, rows): return len(rows)
    def post_feedback(self, rows): return {}
    def scheduler_tick(self, now): pass

    def decide_many(self, asks):
        return [_NEVER] * len(asks)


def run_baseline(pop: Population, settings: Settings, b: Baseline,
                 shared: dict[tuple, PopularReplica] | None = None) -> Result:
    """One baseline; ``shared`` (replica key -> :class:`PopularReplica`) lets the baselines run in one process
    compute the segments and popular lists, which no policy changes, once."""
    weights = dict(settings.weights)
    if b.gap_hours is None:
        return run(pop, _Never(), b.label, weights)
    bs = settings.replace(**b.changes)
    popular = None
    if shared is not None:
        popular = shared.get(PopularReplica.key(bs))
        if popular is None:
            popular = shared[PopularReplica.key(bs)] = PopularReplica(bs)
    gw = LocalGateway(bs, b.gap_hours, dict(zip(pop.user_ids, pop.tz_rule)), popular=popular)
    return run(pop, gw, b.label, weights)


_worker: dict[str, Any] = {}


def _init_worker(pop: Population, settings: Settings) -> None:
    _worker.update(pop=pop, settings=settings, shared={})
    # the schedule and the event rows every baseline reads, built now and moved out of the cyclic garbage
    # collector's sight: its full collections otherwise walk these millions of objects again and again
    prepare(pop)
    gc.freeze()


def _run_in_worker(b: Baseline) -> Result:
    return run_baseline(_worker["pop"], _worker["settings"], b, _worker["shared"])


def run_baselines(pop: Population, settings: Settings, jobs: int = 2) -> list[Result]:
    """Every baseline of :func:`baselines`, over ``jobs`` processes (each baseline is independent; each process
    gets the population once and shares its segments and popular lists among the baselines it runs)."""
    todo = baselines()
    if jobs <= 1:
        shared: dict[tuple, PopularReplica] = {}
        return [run_baseline(pop, settings, b, shared) for b in todo]
    # the costly ones first (the shortest gaps push most), so that the processes finish together
    order = sorted(range(len(todo)), key=lambda i: math.inf if (g := todo[i].gap_hours) is None else g)
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(pop, settings)) as pool:
        done = dict(zip(order, pool.map(_run_in_worker, [todo[i] for i in order])))
    return [done[i] for i in range(len(todo))]


def oracle(pop: Population, results: list[Result]) -> Result:
    """Each true type gets the baseline with the highest expected value on it; the pieces add up (users are
    independent)."""
    first = results[0]
    n_types = len(first.type_value)
    best = [max(results, key=lambda r: r.type_expected[t]) for t in range(n_types)]
    o = Result("oracle", first.users, first.days, first.weights, day_sends=np.zeros(first.days),
               day_value=np.zeros(first.days), day_expected=np.zeros(first.days),
               type_users=first.type_users.copy(), type_sends=np.zeros(n_types),
               type_value=np.zeros(n_types), type_expected=np.zeros(n_types), type_unsub=np.zeros(n_types))
    for t, r in enumerate(best):
        o.type_sends[t], o.type_value[t], o.type_unsub[t] = r.type_sends[t], r.type_value[t], r.type_unsub[t]
        o.type_expected[t] = r.type_expected[t]
        for i, _, ts, events, expected in r.pushes:
            if pop.type[i] != t:
                continue
            day = int((ts - pop.params.start) // DAY)
            o.sends += 1
            o.day_sends[day] += 1
            v = sum(o.weights.get(e, 0.0) for e, _ in events)
            o.day_value[day] += v
            o.day_expected[day] += expected
            for e, _ in events:
                o.outcomes[e] += 1
    o.value = float(o.type_value.sum())
    o.expected = float(o.type_expected.sum())
    o.unsubscribed_users = int(o.type_unsub.sum())
    o.label = "oracle (" + ", ".join(f"{pop.params.types[t].name}: {r.label}" for t, r in enumerate(best)) + ")"
    return o


#: the service of a learned policy's replay on this 2-core machine: gunicorn sync workers (the shipped worker
#: class; each takes a connection the kernel hands it, so the load spreads over the processes, where gthread
#: workers let one process take every keep-alive connection and run at one core's worth of GIL) and one
#: request in flight per connection, one more connection than workers so that a worker finishing its request
#: finds the next one waiting
WORKERS = 3
CONNECTIONS = 4


def run_learned(pop: Population, settings: Settings, policy: dict[str, Any], connections: int = CONNECTIONS,
                workers: int = WORKERS, progress: Callable[[float], None] | None = None
                ) -> tuple[Result, list[dict[str, Any]]]:
    """One learned policy through a fresh service over HTTP (``workers`` gunicorn sync workers, ``connections``
    requests in flight); also returns what it learned (per segment)."""
    label = policy["name"] + "".join(f" {k}={v}" for k, v in policy.items() if k != "name")
    with Service(settings, policy, workers=workers, threads=1) as svc:
        gw = HttpGateway(svc.url, connections=connections, refresh=svc.refresh)
        try:
            res = run(pop, gw, label, dict(settings.weights), progress=progress)
        finally:
            gw.close()
        assert svc.store is not None
        learned = segments.report(svc.store, svc.settings, from_config(policy, svc.settings), now=pop.t_end)
        members = segment_types(pop, svc.store)
        for seg in learned:  # who the segment really is: the truth the learned values are compared with
            seg["true_types"] = dict(zip((t.name for t in pop.params.types), members.get(seg["segment"], [])))
    return res, learned


def truth_by_context(pop: Population, settings: Settings,
                     groups: dict[str, Any] | None = None) -> dict[tuple[str, ...], float]:
    """The simulator's expected net value of a push per (group, recency bucket, daypart): fatigue from one
    earlier push at the bucket's middle (none for the open-ended bucket), items of average match,
    averaged over the daypart's local hours and over the group's users. ``groups`` maps a name (a learned
    segment) to its members' counts per true type; without it, one group ``"all"``: the whole population."""
    edges = list(settings.recency_edges_hours)
    mids = [edges[0] / 2] + [(a + b) / 2 for a, b in zip(edges, edges[1:])] + [math.inf]
    labels = settings.recency_labels()
    dp_of = settings.daypart_of_hour()
    tau = pop.params.fatigue_recovery_hours
    n_types = len(pop.params.types)
    w = dict(settings.weights)
    if groups is None:
        groups = {"all": np.bincount(pop.type, minlength=n_types)}
    values = {(t, h, r): pop.expected_value(t, h, 0.0 if math.isinf(mid) else math.exp(-mid / tau), 0.5, w)
              for t in range(n_types) for h in range(24) for r, mid in enumerate(mids)}
    out: dict[tuple[str, ...], float] = {}
    for group, counts in groups.items():
        counts = np.asarray(counts, dtype=float)
        if counts.sum() <= 0:
            continue
        shares = counts / counts.sum()
        for r in range(len(mids)):
            for d, (_, name) in enumerate(settings.dayparts):
                hours = [h for h in range(24) if dp_of[h] == d]
                out[(group, labels[r], name)] = float(sum(
                    shares[t] * np.mean([values[(t, h, r)] for h in hours]) for t in range(n_types)))
    return out


def segment_types(pop: Population, store: Any) -> dict[str, list[int]]:
    """Each learned segment's members counted per true type (read from the service's user hashes)."""
    pipe = store.redis.pipeline(transaction=False)
    for uid in pop.user_ids:
        pipe.hget(store.keys.user(uid), "sg")
    out: dict[str, list[int]] = {}
    for i, seg in enumerate(pipe.execute()):
        out.setdefault(seg or "new", [0] * len(pop.params.types))[int(pop.type[i])] += 1
    return out


#: expected net value per user below which a policy is "about zero": a ratio to it means nothing (a best fixed
#: cadence earning +0.005 made -6.855 read as "-1497x best fixed"), so the table marks such ratios n/m
NEAR_ZERO = 0.01


def _ratio_to(x: float, base: float) -> float | None:
    return x / base if base >= NEAR_ZERO else None


def summarise(results: list[Result], oracle_result: Result) -> tuple[list[dict[str, Any]], Result]:
    """Table rows: expected net value per user against the best fixed cadence's (a difference, always meaningful,
    and a ratio) and the oracle's (a ratio); a ratio is None when its base is below :data:`NEAR_ZERO` per user."""
    fixed = [r for r in results if r.label.startswith("every ")]
    best_fixed = max(fixed, key=lambda r: r.expected)
    best, top = best_fixed.expected / best_fixed.users, oracle_result.expected / oracle_result.users
    rows = []
    for r in results + [oracle_result]:
        row = r.row()
        row["minus_best_fixed"] = row["expected_per_user"] - best
        row["vs_best_fixed"] = _ratio_to(row["expected_per_user"], best)
        row["vs_oracle"] = _ratio_to(row["expected_per_user"], top)
        rows.append(row)
    return rows, best_fixed


HEAD = ("policy", "sends/user/day", "CTR", "conv.", "unsub users", "unsub/send", "net value/user", "expected/user",
        "- best fixed", "x best fixed", "x oracle")


def table_cells(r: dict[str, Any]) -> list[str]:
    """One row's cells, in the order of :data:`HEAD` (the Markdown table's and the HTML report's)."""
    return [r["policy"], f"{r['sends_per_user_day']:.2f}", f"{100 * r['ctr']:.2f}%", f"{100 * r['conversion']:.2f}%",
            f"{100 * r['unsub_users']:.1f}%", f"{100 * r['unsub_per_send']:.3f}%", f"{r['value_per_user']:+.3f}",
            f"{r['expected_per_user']:+.3f}", f"{r['minus_best_fixed']:+.3f}", _ratio(r["vs_best_fixed"]),
            _ratio(r["vs_oracle"])]


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(table_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def _ratio(x: float | None) -> str:
    """A ratio, or n/m (not meaningful) when its base earned about nothing or lost (a ratio to a loss means nothing)."""
    return "n/m" if x is None else f"{x:.2f}"


__all__ = ["WORKERS", "CONNECTIONS", "NEAR_ZERO", "HEAD", "Baseline", "baselines", "run_baseline", "run_baselines",
           "oracle", "run_learned", "truth_by_context", "segment_types", "summarise", "table_cells", "format_table",
           "HOUR"]
