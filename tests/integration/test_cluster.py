"""The service on a Redis Cluster (a local 3-master one, `pytest --cluster`). Some tests make their data on a plain
Redis and copy it to the cluster key by key (DUMP/RESTORE, as a migration to a cluster would copy it), as they did
before decide ran on a cluster, which also checks that data made on one Redis reads the same on a cluster."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import numpy as np
import pytest
from redis_proc import RedisProcess, free_port
from waits import until

from bandit_push import decision_log, refit_lock, segmentation, toplists, users
from bandit_push import refit as refits
from bandit_push.config import Settings
from bandit_push.errors import ConfigError
from bandit_push.schema import USER
from bandit_push.store import Store
import retail

pytestmark = pytest.mark.cluster

NOW = 1795000000.0  # 2026-11-19


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A plain redis-server: the job queue, and where data the cluster cannot make yet is made."""
    server = RedisProcess(str(tmp_path_factory.mktemp("plain")), aof=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(redis_cluster, plain) -> Settings:
    return Settings(redis_url=redis_cluster.url, queue_url=plain.url, prefix=f"bpc:{uuid.uuid4().hex[:10]}:",
                    quiet_hours="off", seed=7)


@pytest.fixture
def store(settings):
    s = Store.connect(settings)
    yield s
    s.delete_prefix()
    s.close()


@pytest.fixture
def plain_store(settings, plain):
    """The same prefix on the plain Redis."""
    s = Store.connect(settings.replace(redis_url=plain.url, queue_url=None))
    yield s
    s.delete_prefix()
    s.close()


def copy(src: Store, dst: Store) -> int:
    """Every key of the prefix from ``src`` to ``dst`` (DUMP/RESTORE, TTLs kept); returns how many."""
    n = 0
    for key in src.scan_iter(f"{src.settings.prefix}*"):
        ttl = src.binary.pttl(key)
        dst.binary.restore(key, max(ttl, 0), src.binary.dump(key), replace=True)
        n += 1
    return n


def nodes_of(store: Store, keys) -> set[str]:
    return {store.redis.get_node_from_key(k).name for k in keys}


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANDIT_PUSH_") and k != "REDIS_URL"}
    return {**env, "REDIS_URL": settings.redis_url or "", "BANDIT_PUSH_PREFIX": settings.prefix, **extra}


def test_a_cluster_is_detected_from_any_node_and_gets_the_library_on_every_primary(redis_cluster, settings, store,
                                                                                   plain_store):
    assert store.cluster and not plain_store.cluster
    other = Store.connect(settings.replace(redis_url=f"redis://127.0.0.1:{redis_cluster.ports[-1]}/0"))
    try:
        assert other.cluster and len(other.primaries()) == 3
    finally:
        other.close()
    assert users.put(store, "alice", "Europe/Berlin") is True
    assert store.library.active
    assert [store.libraries(node) for node in store.primaries()] == [[store.library.name]] * 3
    # a node that lost the library (flushed, restarted empty, newly added) gets it back on the next call
    node = store.redis.get_node_from_key(store.keys.user("bob")).redis_connection
    node.function_delete(store.library.name)
    assert store.libraries(node) == []
    assert users.put(store, "bob") is True
    assert store.libraries(node) == [store.library.name]
    # the same through EVALSHA (BANDIT_PUSH_REDIS_FUNCTIONS=false): NOSCRIPT on one node, reloaded there
    scripts = Store.connect(settings.replace(redis_functions=False))
    try:
        assert users.put(scripts, "carol") is True
        scripts.redis.get_node_from_key(store.keys.user("carol")).redis_connection.script_flush()
        assert users.put(scripts, "carol", opted_out=True) is False
        assert users.get(scripts, settings, "carol")["opted_out"] is True
    finally:
        scripts.close()


def test_without_a_queue_url_the_service_refuses_to_start_naming_the_setting(settings):
    from bandit_push_api import create_app

    bare = settings.replace(queue_url=None)
    with pytest.raises(ConfigError, match="BANDIT_PUSH_QUEUE_URL"):
        create_app(bare)
    s = Store.connect(bare)
    try:
        with pytest.raises(ConfigError, match="BANDIT_PUSH_QUEUE_URL"):
            s.queue  # noqa: B018 (the property connects, or refuses)
    finally:
        s.close()
    for cmd in ([sys.executable, "-m", "bandit_push.cli", "worker"],
                [sys.executable, "-m", "bandit_push.cli", "serve", "--port", str(free_port()), "--workers", "1"],
                [sys.executable, "-m", "bandit_push_workers.scheduler"]):
        out = subprocess.run(cmd, env=env_for(bare), capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and "BANDIT_PUSH_QUEUE_URL" in out.stderr, (cmd, out.stderr)
        assert "Traceback" not in out.stderr


def test_users_put_get_delete_and_scan_across_shards(settings, store):
    from bandit_push_api import create_app

    app = create_app(settings)
    try:
        c = app.test_client()
        ids = [f"user-{i}" for i in range(30)]
        for uid in ids:
            assert c.put(f"/v1/users/{uid}", json={"timezone": "Europe/Berlin"}).status_code == 201
        assert c.put("/v1/users/user-0", json={"opted_out": True}).status_code == 200
        assert len(nodes_of(store, [store.keys.user(u) for u in ids])) == 3  # users on every shard
        assert store.redis.hget(store.keys.segment_sizes(), "new") == "30"
        got = c.get("/v1/users/user-0").get_json()
        assert (got["timezone"], got["opted_out"], got["segment"]) == ("Europe/Berlin", True, "new")
        # every primary is scanned: each user once
        assert sorted(uid for rows in users.scan(store, [USER["segment"]]) for uid, _ in rows) == sorted(ids)

        # what event ingestion would have stored (the events script is not cluster-ready yet)
        store.redis.hset(store.keys.user("user-0"), USER["index"], 0)
        store.redis.rpush(store.keys.user_ids(), "user-0", "user-1")
        for e in ("e1", "e2"):
            store.redis.set(store.keys.event_seen("user-0", e), 1)
        r = c.delete("/v1/users/user-0")
        assert r.status_code == 200 and r.get_json() == {"user_id": "user-0", "deleted_keys": 3}
        assert c.get("/v1/users/user-0").status_code == 404
        assert store.redis.exists(store.keys.event_seen("user-0", "e1")) == 0
        assert store.redis.lrange(store.keys.user_ids(), 0, -1) == ["", "user-1"]
        assert store.redis.hget(store.keys.segment_sizes(), "new") == "29"
        assert c.delete("/v1/users/user-0").get_json()["deleted_keys"] == 0  # idempotent, counted once
        assert store.redis.hget(store.keys.segment_sizes(), "new") == "29"
    finally:
        app.extensions["bandit_push"].store.close()


def test_refit_jobs_run_on_the_queue_redis_and_write_per_slot(settings, store, plain_store, plain):
    """A real MF refit, requested through the API and run by a real `bandit-push worker`, then a segments refit."""
    from bandit_push_api import create_app

    events = retail.sample(60)
    retail.ingest(plain_store, plain_store.settings, events)
    copy(plain_store, store)
    plain_store.delete_prefix()
    mf = {"BANDIT_PUSH_MF_FACTORS": "8", "BANDIT_PUSH_MF_ITERATIONS": "3", "BANDIT_PUSH_QUALITY_USERS": "20",
          "BANDIT_PUSH_MF_THREADS": "1"}
    settings = settings.replace(mf_factors=8, mf_iterations=3, quality_users=20, mf_threads=1)
    app = create_app(settings)
    worker = None
    try:
        c = app.test_client()
        r = c.post("/v1/models/mf/refit")
        assert r.status_code == 202
        job = r.get_json()["job_id"]
        queue = plain_store.queue
        assert queue.exists(f"rq:job:{job}") == 1  # on the plain Redis ...
        assert list(store.scan_iter("rq:*")) == []  # ... and nothing of RQ's on the cluster
        worker = subprocess.Popen([sys.executable, "-m", "bandit_push.cli", "worker", "--logging-level", "WARNING"],
                                  env=env_for(settings, BANDIT_PUSH_QUEUE_URL=plain.url, **mf),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        state = until(lambda: (s := c.get(f"/v1/jobs/{job}").get_json())["state"] in ("finished", "failed") and s,
                      timeout=180, what="the refit job to end", every=0.2)
        assert state["state"] == "finished", state
        assert state["result"]["users"] == len({e.user_id for e in events})
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        app.extensions["bandit_push"].store.close()
    ids = [u for u in store.redis.lrange(store.keys.user_ids(), 0, -1) if u]
    lists = store.binary.mget_nonatomic([store.keys.user_recs(u) for u in ids])
    assert all(raw is not None and toplists.unpack(raw)[0] == 1 for raw in lists)  # every user's list, version 1
    assert len(nodes_of(store, [store.keys.user_recs(u) for u in ids])) == 3  # written on every shard
    assert store.redis.hget(store.keys.model_current(), "mf") == "1"

    summary = refits.run(store, settings, "segments", refit_lock.cli_owner())
    assert summary["moved"] > 0
    sizes = {k: int(v) for k, v in store.redis.hgetall(store.keys.segment_sizes()).items()}
    assert sum(sizes.values()) == len(ids)  # each move counted once, on the sizes' own slot
    assert all(sizes[seg] == n for seg, n in summary["segments"].items())
    first = store.redis.hget(store.keys.user(ids[0]), USER["segment"])
    assert segmentation.set_segments(store, [(ids[0], "new"), (ids[0], "new")]) == (first != "new")
    after = {k: int(v) for k, v in store.redis.hgetall(store.keys.segment_sizes()).items()}
    assert after.get("new", 0) - sizes.get("new", 0) == (first != "new") and sum(after.values()) == len(ids)


def test_the_decision_export_reads_every_shard(settings, store, plain_store):
    from bandit_push_api import create_app

    app = create_app(plain_store.settings)
    try:
        c = app.test_client()
        for i in range(40):
            assert c.post("/v1/decide", json={"user_id": f"u{i}", "now": NOW + i}).status_code == 200
    finally:
        app.extensions["bandit_push"].store.close()
    copy(plain_store, store)
    kw = dict(since=NOW - 3600, until=NOW + 3600, now=NOW + 7200, include_open=True, batch=7)
    expected = list(decision_log.export(plain_store, settings, **kw))
    got = list(decision_log.export(store, settings, **kw))
    assert len(got) == 40 and got == expected
    assert len(nodes_of(store, [store.keys.decision(r["decision_id"]) for r in got])) == 3
    assert decision_log.lookup(store, settings, got[5]["decision_id"], NOW + 7200)["user_id"] == got[5]["user_id"]


def test_feedback_runs_on_the_cluster_and_a_retry_counts_once(settings, store, plain_store):
    """Feedback's commands each name one slot (the record's, the arms', the experiment's): on the cluster, reports
    on decisions of users on every shard are credited, and retries (and a retry after a cut between the record's
    command and the credit's) count once."""
    from bandit_push import feedback as fb
    from bandit_push.config import OUTCOMES
    from bandit_push.decide import DecisionEngine
    from bandit_push.segments import load_arms

    engine = DecisionEngine(plain_store, plain_store.settings.replace(policy="cadence"))
    dids = [d.decision_id for d in (engine.decide(f"u{i}", now=NOW + i) for i in range(12)) if d.send]
    assert len(dids) == 12
    copy(plain_store, store)
    assert len(nodes_of(store, [store.keys.decision(d) for d in dids])) == 3
    cut = store.feedback_script(keys=[store.keys.decision(dids[0])],
                                args=["clicked", repr(NOW + 60), 86400.0, "", "default"])
    assert cut[0] == "accepted"  # the event marked, the credit not sent
    events = [fb.FeedbackEvent(d, "clicked", NOW + 60) for d in dids]
    assert fb.record(store, settings, events) == ["duplicate"] + ["accepted"] * 11
    assert fb.record(store, settings, events) == ["duplicate"] * 12
    clicked = 2 + OUTCOMES.index("clicked")
    assert load_arms(store)["*|N"][clicked] == pytest.approx(12.0, rel=1e-4)  # (decayed over the 11 s)


def test_events_run_on_the_cluster_and_a_retry_counts_once(settings, store):
    """Events' commands each name one slot (the user's, then the indexes', the day's popularity and chunk): users
    on every shard get their features, indexes in step with the id list, and records; a cut after the user's
    command and the batch's retries count once."""
    from bandit_push import events, interactions

    evs = [events.ShopEvent(f"u{i}", "purchase", NOW + i, f"sku{i % 5}", 2.0, f"e{i}") for i in range(30)]
    assert len(nodes_of(store, [store.keys.user(e.user_id) for e in evs])) == 3
    cut = store.event_script(keys=[store.keys.user("u0"), store.keys.event_seen("u0", "e0")],
                             args=[repr(NOW), "purchase", "2.0", "3600"])
    assert cut[0] == "accepted"  # the user's part alone: the shared parts not sent
    assert events.ingest(store, settings, evs) == (29, 1)
    assert events.ingest(store, settings, evs) == (0, 30)
    listed = store.redis.lrange(store.keys.user_ids(), 0, -1)
    ix = {e.user_id: int(store.redis.hget(store.keys.user(e.user_id), USER["index"])) for e in evs}
    assert sorted(listed) == sorted(ix) and all(listed[i] == u for u, i in ix.items())
    records = np.concatenate(list(interactions.read(store)))
    names = interactions.item_ids(store)
    assert sorted((int(r["user"]), names[r["item"]]) for r in records) == sorted(
        (ix[e.user_id], e.item_id) for e in evs)
    day = int(NOW // 86400)
    pop = store.redis.hgetall(store.keys.popular_day(day))
    assert sum(float(v) for f, v in pop.items() if f.startswith("*|")) == pytest.approx(30 * 1.0)
    # the cut user's size was to be counted by the cut command's batch: one off until a refit's scan recounts
    assert store.redis.hget(store.keys.segment_sizes(), "new") == "29"
    for _ in users.scan(store, [], recount=True):
        pass
    assert store.redis.hget(store.keys.segment_sizes(), "new") == "30"
    assert users.get(store, settings, "u7")["features"]["counts"]["purchase"] == 1


def test_decide_runs_on_the_cluster_with_an_experiment_and_sends_once(settings, store):
    """Decide names only keys of the user's slot (the shared state reaches it as a snapshot argument; a send's arm
    increments, a new user's size and the hour's slot bitmap follow as commands on their own slots): users on every
    shard are decided, in and out of a running experiment; 20 concurrent decides for one user send once, over
    HTTP; the sends count once in the arms, feedback on them credits once across a retry, and the experiment's
    report and the decision export read every shard."""
    from concurrency import concurrent_decides

    from bandit_push import experiment_report, experiments
    from bandit_push import feedback as fb
    from bandit_push.config import OUTCOMES
    from bandit_push.decide import DecisionEngine
    from bandit_push.segments import load_arms
    from bandit_push_api import create_app

    cadence = settings.replace(policy="cadence", snapshot_seconds=0.0)
    engine = DecisionEngine(store, cadence)
    plain = [engine.decide(f"u{i}", now=NOW + i) for i in range(12)]
    assert all(d.send and d.experiment is None for d in plain)
    x = experiments.create(store, cadence, {"name": "c", "variants": [
        {"name": "a", "weight": 1, "policy": {"name": "cadence"}},
        {"name": "b", "weight": 1, "policy": {"name": "holdout"}}]}, salt="cluster")
    experiments.transition(store, x.id, "start", now=NOW)  # (the engine's next snapshot sees it)
    exposed = [engine.decide(f"v{i}", now=NOW + 100 + i) for i in range(24)]
    assert {d.experiment["variant"] for d in exposed} == {"a", "b"}
    assert all(d.send == (d.experiment["variant"] == "a") for d in exposed)
    users_ = [f"u{i}" for i in range(12)] + [f"v{i}" for i in range(24)]
    assert len(nodes_of(store, [store.keys.user(u) for u in users_])) == 3
    sends = [d for d in plain + exposed if d.send]
    # each send counted once in its space's arms (a repeat of the credit counts nothing)
    assert load_arms(store)["*|N"][1] == pytest.approx(12.0, rel=1e-4)
    assert load_arms(store, x.space(0))["*|N"][1] == pytest.approx(len(sends) - 12, rel=1e-4)
    assert store.redis.hget(store.keys.segment_sizes(), "new") == str(len(sends))
    # 20 concurrent decides for one user (of the variant that sends), through the HTTP API: one sends
    hot = next(u for u in (f"hot{i}" for i in range(100)) if x.assign(u) == 0)
    app = create_app(cadence.replace(min_gap_hours=4.0))
    results = concurrent_decides(app, {"user_id": hot, "now": NOW + 500})
    app.extensions["bandit_push"].store.close()
    assert len(results) == 20 and sum(r["send"] for r in results) == 1, results
    assert {r["reason"] for r in results if not r["send"]} == {"min_gap"}
    # feedback on every send credits once, a retry nothing more
    dids = [d.decision_id for d in sends]
    events = [fb.FeedbackEvent(d, "clicked", NOW + 600) for d in dids]
    assert fb.record(store, settings, events) == ["accepted"] * len(dids)
    assert fb.record(store, settings, events) == ["duplicate"] * len(dids)
    clicked = 2 + OUTCOMES.index("clicked")
    assert load_arms(store)["*|N"][clicked] == pytest.approx(12.0, rel=1e-3)
    assert load_arms(store, x.space(0))["*|N"][clicked] == pytest.approx(len(dids) - 12, rel=1e-3)
    report = experiment_report.report(store, x.id)
    by_name = {v["name"]: v for v in report["variants"]}
    assert by_name["a"]["users"] + by_name["b"]["users"] == 24 + 1  # (and the hot user)
    a_sends = len(dids) - 12 + 1
    assert by_name["a"]["ctr"] == pytest.approx((a_sends - 1) / a_sends) and by_name["b"]["sends_per_user"] == 0
    got = list(decision_log.export(store, settings, since=NOW - 3600, until=NOW + 3600, now=NOW + 7200,
                                   include_open=True))
    assert len(got) == 12 + 24 + 20


def test_delete_prefix_empties_every_primary(settings, store):
    users.put(store, "someone")  # loads the library everywhere
    store.set_many({f"{settings.prefix}k:{i}": str(i) for i in range(300)})
    per_node = [sum(1 for _ in node.scan_iter(match=f"{settings.prefix}*")) for node in store.primaries()]
    assert min(per_node) > 0 and sum(per_node) == 302  # 300, the user hash and the segment sizes
    assert store.delete_prefix() == 302
    assert [sum(1 for _ in node.scan_iter(match=f"{settings.prefix}*")) for node in store.primaries()] == [0, 0, 0]
    assert [store.libraries(node) for node in store.primaries()] == [[], [], []]


def test_a_process_started_while_the_cluster_was_unreachable_answers_503_not_500(settings, monkeypatch):
    """Detection needs the server: a process that could not ask (REDIS_URL down when it started) assumes a single
    Redis, as before clusters were supported, and starts. On a cluster that guess is wrong for the keys of the
    other nodes' slots; those requests answer 503 saying to restart the process, never 500."""
    import redis

    from bandit_push import store as store_mod
    from bandit_push_api import create_app

    def unreachable(url, timeout=2.0):
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(store_mod, "is_cluster", unreachable)
    app = create_app(settings)
    assert not app.extensions["bandit_push"].store.cluster
    client = app.test_client()
    codes = {}
    for i in range(24):  # 24 users: some on the first node's slots, most on the others'
        r = client.get(f"/v1/users/user-{i}")
        codes.setdefault(r.status_code, []).append(r.get_json())
    assert set(codes) <= {404, 503}, codes
    assert codes.get(503) and all(b["error"] == "redis_unavailable" and "restart" in b["message"] for b in codes[503])
