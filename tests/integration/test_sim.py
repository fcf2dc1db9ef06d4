"""The simulation driver against the real service over HTTP, on a tiny population (seconds)."""
import contextlib
import dataclasses
import threading
import uuid

import pytest
from werkzeug.serving import make_server

from bandit_push import popular
from bandit_push.sim.driver import run
from bandit_push.sim.gateway import HttpGateway, LocalGateway
from bandit_push.sim.params import SimParams
from bandit_push.sim.population import HOUR, Population
from bandit_push.store import Store

TINY = SimParams(users=25, days=3, warmup_days=2, seed=3)


@pytest.fixture(scope="module")
def pop():
    return Population(TINY)


@contextlib.contextmanager
def served(make_app, **changes):
    """A service with these settings on its own prefix, on a real HTTP server; yields (gateway, store)."""
    app = make_app(prefix=f"bpt:{uuid.uuid4().hex[:10]}:", **changes)
    settings = app.extensions["bandit_push"].settings
    store = Store.connect(settings)
    # one request at a time: a threaded werkzeug server starts a thread per connection, and the decision
    # engine keeps a Redis connection per thread, which would exhaust the pool over thousands of requests
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    gw = HttpGateway(f"http://127.0.0.1:{server.server_port}", connections=4,
                     refresh=lambda now: popular.refresh(store, settings, now=now))
    try:
        yield gw, store
    finally:
        gw.close()
        server.shutdown()
        thread.join(5)
        store.delete_prefix()
        store.close()


def test_never_sends_nothing(make_app, pop):
    with served(make_app, policy="holdout") as (gw, _):
        res = run(pop, gw, "never", {})
    assert res.decisions == len(pop.opp_ts) and res.sends == 0 and set(res.reasons) == {"holdout"}


def test_always_sends_at_the_guardrail_limits(make_app, pop, settings):
    with served(make_app, policy="cadence", cadence_gap_hours=1e-6, min_gap_hours=4, max_per_day=3) as (gw, _):
        res = run(pop, gw, "always", {})
    assert res.sends > 0 and set(res.reasons) <= {"policy", "min_gap", "daily_cap", "opted_out"}
    assert res.reasons["policy"] == res.sends  # every opportunity the guardrails allow is a push
    by_user: dict[int, list[float]] = {}
    for i, _, ts, *_ in res.pushes:
        by_user.setdefault(i, []).append(ts)
    for times in by_user.values():
        assert all(b - a >= 4 * HOUR for a, b in zip(times, times[1:]))
        assert all(sum(1 for u in times if t - 24 * HOUR < u <= t) <= 3 for t in times)


def test_feedback_in_redis_matches_what_the_simulator_generated(make_app, pop):
    with served(make_app, policy="thompson", min_gap_hours=0) as (gw, store):
        res = run(pop, gw, "thompson", dict(store.settings.weights))
        generated = sum(len(p[3]) for p in res.pushes)
        assert res.sends > 0 and generated > 0
        assert res.feedback_status["accepted"] == generated and res.feedback_status.get("unknown", 0) == 0
        for _, did, _, events, _ in res.pushes:
            key = store.keys.decision(did)  # (field by field: the record's logged arm state is packed binary)
            assert store.redis.hget(key, "x") == "1"
            assert {f[2:] for f in store.redis.hkeys(key) if f.startswith("e:")} == {e for e, _ in events}


def test_local_replica_equals_the_service_and_http_runs_repeat(make_app, pop, settings):
    changes = dict(min_gap_hours=0.0, max_per_day=24, quiet_hours="22:00-08:00")
    runs = []
    for _ in range(2):
        # (the service's snapshot read at every decide, as the replica reads its popular lists: a wall-clock period
        # would make the items, and so the outcomes, depend on how fast the run went)
        with served(make_app, policy="cadence", cadence_gap_hours=8, snapshot_seconds=0.0, **changes) as (gw, store):
            runs.append(run(pop, gw, "every 8h", dict(store.settings.weights)))
    local = run(pop, LocalGateway(dataclasses.replace(settings, **changes), 8, dict(zip(pop.user_ids, pop.tz_rule))),
                "every 8h", dict(settings.weights))
    strip = [[(i, ts, events) for i, _, ts, events, _ in r.pushes] for r in runs + [local]]
    assert runs[0].sends > 0 and strip[0] == strip[1] == strip[2]
    assert runs[0].value == runs[1].value == local.value and dict(runs[0].reasons) == dict(local.reasons)
    # the replica puts users in the service's segments (new, then default), whose popular lists it pushes
    assert runs[0].segment_day == runs[1].segment_day == local.segment_day


def test_scheduler_segments_the_population_at_the_end_of_warmup_then_daily(make_app, pop, settings):
    """The simulated scheduler refits the behavioural segments at the first tick (the end of the organic
    warm-up) and again only after segments_refit_hours; a learned policy then decides per learned segment."""
    from bandit_push import models
    from bandit_push.sim.service import Scheduler

    with served(make_app, policy="thompson") as (gw, store):
        s = store.settings
        sched = Scheduler(store, s)
        gw.put_users(list(zip(pop.user_ids, pop.tz)))
        gw.post_events([{"user_id": pop.user_ids[u], "type": "view", "ts": float(t), "item_id": pop.items[0]}
                        for u, t in zip(pop.ev_user, pop.ev_ts) if t < pop.params.start])
        t0 = pop.params.start
        sched.tick(t0)
        first = models.current(store, "segments")
        assert first is not None
        sched.tick(t0 + 6 * HOUR)      # popular items only
        assert models.current(store, "segments") == first
        sched.tick(t0 + s.segments_refit_hours * HOUR)
        assert models.current(store, "segments") != first
        seen = {store.redis.hget(store.keys.user(u), "sg") for u in pop.user_ids}
        assert seen - {"new", None}    # learned segments, not the placeholder ones


def test_simulate_command_end_to_end_writes_the_report(tmp_path, settings, capsys, monkeypatch):
    """`bandit-push simulate` over real HTTP (a gunicorn service of its own) on a tiny population: the table
    prints every policy and baseline, and the report compares each learned segment with its members' truth."""
    import json

    from bandit_push import cli

    out = tmp_path / "report"
    argv = ["simulate", "--users", "25", "--days", "2", "--warmup-days", "2", "--seed", "3", "--jobs", "1",
            "--policy", "thompson", "--report", str(out)]
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    tables = []
    for _ in range(2):  # the same seed gives the same table: the service's draws are seeded from it too
        assert cli.main(argv) == 0
        printed = capsys.readouterr().out
        tables.append([line for line in printed.splitlines() if line.startswith("|")])
    assert "| thompson |" in printed and "| every 48h+quiet |" in printed and "oracle (" in printed
    assert tables[0] == tables[1] and len(tables[0]) == 2 + 1 + 20 + 1
    page = (out / "report.html").read_text()  # what a growth team opens: how to read it, the table, the figures
    assert "How to read this" in page and "<td>thompson</td>" in page
    for figure in ("cumulative_value.png", "send_rate_by_segment.png", "learned_vs_truth.png"):
        assert f'<img src="{figure}"' in page and (out / figure).exists()
    res = json.loads((out / "results.json").read_text())
    segs = res["learned"]["thompson"]
    members = sum(sum(s.get("true_types", {}).values()) for s in segs)
    assert members == 25  # every simulated user is counted in the segment it ended in
    truth = {tuple(t["context"]) for t in res["truth"]["thompson"]}
    assert {t[0] for t in truth} == {s["segment"] for s in segs if sum(s["true_types"].values())}


def test_a_gateway_that_reasks_at_retry_at_asks_again_then(make_app, pop):
    """With reask, every refusal about the moment that names a retry_at within the run is asked again (on top of
    the planned opportunities), and a push made then respects the guardrails like any other. (The learned hours
    are held at their first, empty snapshot, so retry_at is the moment the refusal lifts: where the guardrails
    let a re-ask send.)"""
    always = dict(policy="cadence", cadence_gap_hours=1e-6, min_gap_hours=4, max_per_day=3, snapshot_seconds=1e12)
    with served(make_app, **always) as (gw, _):
        plain = run(pop, gw, "always", {})
    with served(make_app, **always) as (gw, _):
        again = run(pop, gw, "always, re-asking", {}, reask=True)
    assert plain.decisions == len(pop.opp_ts) < again.decisions
    assert again.sends > plain.sends  # the re-asks land where the gap has passed
    by_user: dict[int, list[float]] = {}
    for i, _, ts, *_ in again.pushes:
        by_user.setdefault(i, []).append(ts)
    for times in by_user.values():
        times.sort()
        assert all(b - a >= 4 * HOUR for a, b in zip(times, times[1:]))
