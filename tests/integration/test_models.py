"""Background learning on a real sample of UCI Online Retail: refits, publishing, serving, segments, jobs."""
from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer

import retail
from stored import packed_arm
from bandit_push import models, refit, refit_lock, segmentation, segments, toplists, users
from bandit_push.config import OUTCOMES
from bandit_push.decide import ranked_items
from bandit_push.events import ShopEvent, ingest
from bandit_push.errors import NoData

END = max(e.ts for e in retail.sample(200))  # 2011-12-09: the sample's last purchase
LATER = END + 30 * 86400


@pytest.fixture
def worker_env(monkeypatch, settings, store):
    """The environment an RQ worker reads its settings from: this test's Redis and prefix; an empty queue
    (the queue is the prefix's own); RQ's keys are not under the prefix, so the queue and its jobs go afterwards."""
    queue = Queue(settings.queue, connection=store.binary, serializer=JSONSerializer)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BANDIT_PUSH_PREFIX", settings.prefix)
    monkeypatch.setenv("BANDIT_PUSH_QUIET_HOURS", "off")
    monkeypatch.setenv("BANDIT_PUSH_SEED", str(settings.seed))
    yield
    queue.delete(delete_jobs=True)


def work(store) -> None:
    """Run every queued job with a real RQ worker (in process, JSON serializer, burst)."""
    queue = Queue(store.settings.queue, connection=store.binary, serializer=JSONSerializer)
    SimpleWorker([queue], connection=store.binary, serializer=JSONSerializer).work(burst=True)


def fit(store, settings, name="mf"):
    return refit.run(store, settings, name, "test", lambda f, stage: None)


def test_refit_job_beats_popularity_on_held_out_items(client, store, settings, worker_env):
    retail.ingest(store, settings, retail.sample(400))
    resp = client.post("/v1/models/mf/refit")
    assert resp.status_code == 202
    job_id = resp.get_json()["job_id"]
    assert client.get(f"/v1/jobs/{job_id}").get_json()["state"] == "queued"
    work(store)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["state"] == "finished", job
    res = job["result"]
    print(f"held-out users {res['quality']['users']}: recall@10 model {res['quality']['recall@10']:.3f}, "
          f"popularity {res['quality']['popular_recall@10']:.3f}")
    assert res["quality"]["users"] >= 100
    assert res["quality"]["recall@10"] > 1.5 * res["quality"]["popular_recall@10"]
    assert res["version"] == "1" and res["users"] == 400 and res["rows"] == len(retail.sample(400))
    assert job["progress"] == 1.0 and job["started_at"] <= job["ended_at"]
    served = client.get("/v1/models").get_json()["models"]
    assert [(m["name"], m["version"], m["rows"]) for m in served] == [("mf", "1", res["rows"])]
    assert served[0]["arrays"]["item_factors"]["dtype"] == "<f4"


def test_failed_refit_leaves_the_old_model_serving(client, store, settings):
    sample = retail.sample(200)
    retail.ingest(store, settings, sample)
    fit(store, settings)
    users = sorted({e.user_id for e in sample})[:20]
    before = [client.get(f"/v1/users/{u}/items?k=5&now={LATER}").get_json() for u in users]
    assert {b["items_source"] for b in before} == {"model"} and {b["model"] for b in before} == {"mf:1"}

    def boom(fraction, stage):
        if stage == "fit" and fraction > 0.4:
            raise RuntimeError("killed midway through the fit")

    retail.ingest(store, settings, retail.extra(200, 300))  # new data the failed refit would use
    with pytest.raises(RuntimeError):
        refit.run(store, settings, "mf", "test", boom)
    assert models.current(store, "mf") == "1"
    assert [client.get(f"/v1/users/{u}/items?k=5&now={LATER}").get_json() for u in users] == before
    assert not store.redis.exists(store.keys.refit_lock("mf"))  # released: the next refit runs
    assert fit(store, settings)["version"] == "2"
    assert models.current(store, "mf") == "2"


def test_a_killed_refit_process_leaves_the_old_model_serving(store, settings, worker_env):
    sample = retail.sample(200)
    retail.ingest(store, settings, sample)
    fit(store, settings)
    retail.ingest(store, settings, retail.extra(200, 400))
    proc = subprocess.Popen([sys.executable, "-m", "bandit_push.cli", "refit", "mf"], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    for line in proc.stderr:  # kill -9 once it reports the fit under way
        if " fit" in line:
            proc.kill()
            break
    proc.wait(30)
    assert proc.returncode == -9
    assert models.current(store, "mf") == "1"
    uid = sample[0].user_id
    assert ranked_items(store, settings, uid, 5, now=LATER)["model"] == "mf:1"
    # the dead holder's lock blocks refits until it expires, never for longer than refit_timeout_s + 60
    assert 0 < store.redis.ttl(store.keys.refit_lock("mf")) <= settings.refit_timeout_s + 60


def _logged_model(store, decision):
    from bandit_push.decision_log import decode
    return decode(store.binary.hgetall(store.keys.decision(decision["decision_id"])))["m"]


def test_new_version_served_without_restart(client, store, settings):
    sample = retail.sample(200)
    retail.ingest(store, settings, sample)
    fit(store, settings)
    uid = sample[0].user_id
    d1 = client.post("/v1/decide", json={"user_id": uid, "now": LATER}).get_json()
    assert d1["items_source"] == "model"
    assert _logged_model(store, d1) == "mf:1"
    assert fit(store, settings)["version"] == "2"  # same app instance: its next request serves version 2
    d2 = client.post("/v1/decide", json={"user_id": uid, "now": LATER + 86400}).get_json()
    assert _logged_model(store, d2) == "mf:2"
    cache = client.application.extensions["bandit_push"].models
    client.post("/v1/events", json={"user_id": uid, "item_id": sample[1].item_id, "type": "view", "ts": LATER})
    assert cache.get(store, "mf").version == "2"


def test_new_events_move_recommendations_before_the_next_refit(client, store, settings):
    sample = retail.sample(200)
    retail.ingest(store, settings, sample)
    fit(store, settings)
    uid = sample[0].user_id
    before = client.get(f"/v1/users/{uid}/items?k=10&now={LATER}").get_json()
    assert before["items_source"] == "model"
    bought = [i["item_id"] for i in before["items"][:3]]
    # they buy three of their recommendations and look at items their list did not have
    others = [e.item_id for e in sample if e.user_id != uid][:5]
    events = [{"user_id": uid, "item_id": i, "type": "purchase", "ts": LATER - 60, "value": 5} for i in bought]
    events += [{"user_id": uid, "item_id": i, "type": "add_to_cart", "ts": LATER - 30} for i in others]
    assert client.post("/v1/events", json={"events": events}).status_code == 200
    after = client.get(f"/v1/users/{uid}/items?k=10&now={LATER}").get_json()
    ids = [i["item_id"] for i in after["items"]]
    assert after["items_source"] == "model" and after["model"] == "mf:1"
    assert not set(bought) & set(ids)  # bought: excluded (allow_repurchase is off)
    assert ids != [i["item_id"] for i in before["items"]][3:13]
    # a second batch keeps the first one's events (kept since the refit), adding its own
    client.post("/v1/events", json={"user_id": uid, "item_id": others[0], "type": "view", "ts": LATER})
    again = [i["item_id"] for i in client.get(f"/v1/users/{uid}/items?k=10&now={LATER}").get_json()["items"]]
    assert not set(bought) & set(again)
    # a user the model has never seen gets a model list from their first item events
    fresh = client.post("/v1/events", json={"events": [
        {"user_id": "newcomer", "item_id": i, "type": "purchase", "ts": LATER} for i in others]})
    assert fresh.status_code == 200
    got = client.get(f"/v1/users/newcomer/items?k=5&now={LATER}").get_json()
    assert got["items_source"] == "model" and not set(others) & {i["item_id"] for i in got["items"]}


def test_items_endpoint_equals_what_decide_serves(client, store, settings):
    sample = retail.sample(200)
    retail.ingest(store, settings, sample)
    fit(store, settings)
    from bandit_push import popular
    popular.refresh(store, settings, now=END)
    users = [sample[0].user_id, sample[-1].user_id, "never-seen"]
    now = LATER
    sources = set()
    for rnd in range(3):  # the second and third rounds exclude what the first ones pushed
        for uid in users:
            now += 5 * 3600
            shown = client.get(f"/v1/users/{uid}/items?k=4&now={now}").get_json()
            d = client.post("/v1/decide", json={"user_id": uid, "now": now, "k": 4}).get_json()
            assert d["items"] == shown["items"] and d["items_source"] == shown["items_source"], (rnd, uid)
            sources.add(d["items_source"])
    assert sources == {"model", "popular_segment"}  # never-seen is in "new", whose popular list exists


def test_concurrent_refit_requests_run_once(live_server, store, settings, worker_env):
    retail.ingest(store, settings, retail.sample(100))
    barrier = threading.Barrier(8)

    def post(_):
        barrier.wait()
        r = requests.post(f"{live_server}/v1/models/mf/refit", timeout=10)
        return r.status_code, r.json()["job_id"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    assert sorted(code for code, _ in answers) == [200] * 7 + [202]
    assert len({job for _, job in answers}) == 1
    assert refit_lock.claim(store, settings, "mf", "cli:other") == answers[0][1]  # the CLI is refused too
    work(store)
    assert models.current(store, "mf") == "1"
    assert store.redis.hget(store.keys.counters(), "model:mf") == "1"  # one refit ran
    r = requests.post(f"{live_server}/v1/models/mf/refit", timeout=10)  # finished: a new request enqueues
    assert r.status_code == 202 and r.json()["job_id"] != answers[0][1]


def test_refit_errors(client, store, settings):
    r = client.post("/v1/models/nope/refit")
    assert r.status_code == 404 and "'nope'" in r.get_json()["message"] and r.get_json()["error"] == "unknown_model"
    assert client.get("/v1/jobs/no-such-job").status_code == 404
    assert client.get("/v1/jobs/a.b:c").status_code == 404  # not an id RQ accepts (it raises on them)
    with pytest.raises(NoData):
        fit(store, settings)  # nothing to fit on: no version, no lock left behind
    assert models.current(store, "mf") is None and not store.redis.exists(store.keys.refit_lock("mf"))


def test_a_refit_with_nothing_to_fit_finishes_and_says_so(client, store, settings, worker_env):
    """No data yet is the state of every fresh deployment, not a failure: the job finishes at once with a
    result naming the reason, and is not retried."""
    for name, reason in (("mf", "no item interactions"), ("segments", "no user has enough history"),
                         ("policy", "no engagement model yet")):
        job_id = client.post(f"/v1/models/{name}/refit").get_json()["job_id"]
        work(store)
        job = client.get(f"/v1/jobs/{job_id}").get_json()
        assert job["state"] == "finished" and job["error"] is None and job["retry_at"] is None, job
        assert job["result"]["reason"] == "no_data" and reason in job["result"]["skipped"]
        assert not store.redis.exists(store.keys.refit_lock(name))
        assert client.post(f"/v1/models/{name}/refit").status_code == 202  # a new request runs a new refit
        work(store)


def test_a_failed_refit_shows_its_error_and_retry_and_stays_the_one_in_flight(client, store, settings, worker_env,
                                                                              monkeypatch):
    """While RQ waits to retry a failed refit, the job says why it failed and when it runs again, and a new
    request answers with that job instead of enqueuing a second one."""
    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setitem(refit.REFITS, "mf", broken)
    first = client.post("/v1/models/mf/refit")
    assert first.status_code == 202
    job_id = first.get_json()["job_id"]
    work(store)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["state"] == "scheduled" and job["error"] == "OSError: disk full", job
    assert job["retries_left"] == settings.refit_retries - 1
    assert job["retry_at"] == pytest.approx(job["ended_at"] + settings.refit_retry_interval_s, abs=2)
    again = client.post("/v1/models/mf/refit")
    assert again.status_code == 200 and again.get_json() == {"job_id": job_id, "model": "mf", "enqueued": False}
    Job.fetch(job_id, connection=store.binary, serializer=JSONSerializer).delete()  # (no worker will retry it)


def test_quality_on_data_too_small_to_measure_is_null_with_a_reason(client, store, settings, worker_env):
    """No user has enough history to hold out: recall is undefined. The job's result and GET /v1/models say so
    as strict JSON (``null`` and a reason), never as ``NaN`` (the suite's test client parses every answer strictly)."""
    client.post("/v1/events", json={"events": [{"user_id": f"u{i}", "item_id": f"sku-{i % 3}", "type": "purchase",
                                                "ts": END - i} for i in range(6)]})
    job_id = client.post("/v1/models/mf/refit").get_json()["job_id"]
    work(store)
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    served = client.get("/v1/models").get_json()["models"][0]
    for quality in (job["result"]["quality"], served["quality"]):
        assert quality["users"] == 0 and quality["recall@10"] is None and quality["popular_recall@10"] is None
        assert "no user to measure on" in quality["reason"]


def test_same_data_refit_twice_keeps_every_segment_id(client, store, settings):
    sample = retail.sample(300)
    retail.ingest(store, settings, sample)
    users = sorted({e.user_id for e in sample})

    def segs():
        pipe = store.redis.pipeline()
        for u in users:
            pipe.hget(store.keys.user(u), "sg")
        return pipe.execute()

    first = fit(store, settings, "segments")
    a = segs()
    second = fit(store, settings, "segments")
    assert second["version"] == "2" and second["moved"] == 0
    assert segs() == a and first["segments"] == second["segments"]
    assert len(set(a) - {"new"}) == settings.segment_count
    sizes = store.redis.hgetall(store.keys.segment_sizes())
    assert {k: int(v) for k, v in sizes.items() if int(v)} == {s: a.count(s) for s in set(a)}
    body = client.get("/v1/segments").get_json()
    assert body["segmentation"]["version"] == "2"
    seg = next(s for s in body["segments"] if s["segment"] == "s1")
    assert set(seg["centroid"]) == set(segmentation.FEATURES) and seg["size"] == a.count("s1")


def test_hungarian_matching_restores_ids_of_permuted_centroids():
    rng = np.random.default_rng(3)
    old = rng.normal(size=(6, 8))
    ids = ["s1", "s2", "s3", "s4", "s5", "s6"]
    perm = rng.permutation(6)
    new = old[perm] + rng.normal(scale=0.01, size=(6, 8))
    assert segmentation.match_ids(new, old, ids) == [ids[p] for p in perm]
    grown = np.vstack([new, rng.normal(size=(1, 8)) + 10])  # one more segment: a fresh id
    assert segmentation.match_ids(grown, old, ids) == [ids[p] for p in perm] + ["s7"]
    assert segmentation.match_ids(grown, old, ids, last=9)[-1] == "s10"  # s7..s9 were given and retired before


def test_a_segment_id_follows_its_members_not_the_nearest_centroid(store, settings):
    """A segment's arms were learned on its members. When a small segment dissolves into a big one and another splits
    in two, the split half must not take the vanished segment's id (its arms would push these users as if they were
    the others): it gets an id never used before, and the ids that stay are the ones most of a cluster's members had."""
    s = settings.replace(segment_count=3)
    now = END
    heavy = {"f:view": 600, "f:purchase": 10, "fm": 500.0, "fp": now - 86400, "fl": now}
    light = {"f:view": 6, "fl": now - 10 * 86400}
    groups = {"a": (100, heavy), "b": (50, light), "c": (50, light),  # b and c alike: one segment at first
              "t": (5, {"f:purchase": 200, "fm": 50000.0, "fp": now, "fl": now})}

    def write(name, n, fields):  # (a user's events, as the events script counts them; a known user's segment stays)
        for i in range(n):
            key = store.keys.user(f"{name}{i}")
            store.redis.hsetnx(key, "sg", "new")
            store.redis.hset(key, mapping={"ff": repr(now - 60 * 86400), **{k: repr(v) for k, v in fields.items()}})

    def segment_of(name, n):
        return {store.redis.hget(store.keys.user(f"{name}{i}"), "sg") for i in range(n)}

    for name, (n, fields) in groups.items():
        write(name, n, fields)
    segmentation.refit(store, s, lambda *_: None, now=now)
    before = {name: segment_of(name, n) for name, (n, _) in groups.items()}
    assert all(len(v) == 1 for v in before.values()) and before["b"] == before["c"]
    assert len(set().union(*before.values())) == 3
    (b,), (t,) = before["b"], before["t"]
    n_out = len(OUTCOMES)
    learned = {f"{b}|5|1": [now - 86400, 40.0] + [4.0] * n_out, f"{b}|N": [now, 300.0] + [30.0] * n_out,
               f"{t}|5|1": [now, 90.0] + [20.0] * n_out, "*|N": [now, 900.0] + [90.0] * n_out}
    store.binary.hset(store.keys.arms("default"), mapping={f: packed_arm(v) for f, v in learned.items()})
    write("t", 5, heavy)  # the handful joins the heavy users
    write("c", 50, {"f:view": 60, "f:search": 60, "fl": now - 2 * 86400})  # half of the light ones change
    out = segmentation.refit(store, s, lambda *_: None, now=now)
    after = {name: segment_of(name, n) for name, (n, _) in groups.items()}
    assert after["a"] == after["t"] == before["a"]
    assert before["b"] in (after["b"], after["c"]) and after["b"] != after["c"]
    fresh = (after["b"] | after["c"]) - before["b"]
    assert fresh == {"s4"} and fresh != before["t"]  # never the vanished segment's id
    # and its arms start from what the light segment learned, in the share of its users it got (half), none of t's
    arms = segments.load_arms(store)
    decayed = 2 ** (-86400 / (settings.half_life_hours * 3600))
    assert arms["s4|5|1"] == pytest.approx([now, 20.0 * decayed] + [2.0 * decayed] * n_out)
    assert arms["s4|N"] == pytest.approx([now, 150.0] + [15.0] * n_out)
    assert {f for f in arms if f.startswith("s4|")} == {"s4|5|1", "s4|N"}
    assert arms[f"{b}|5|1"] == learned[f"{b}|5|1"] and arms["*|N"] == learned["*|N"]  # the others as they were
    assert segmentation.models.load(store, "segments").meta["last_id"] == 4 and out["moved"] == 55
    # one more split: one half keeps the id (an even split: either), the other gets one never used, s5
    write("c", 25, {"f:view": 900, "f:search": 900, "f:add_to_cart": 300, "fl": now})
    segmentation.refit(store, settings.replace(segment_count=4), lambda *_: None, now=now)
    assert segment_of("c", 50) == after["c"] | {"s5"} and segment_of("b", 50) == after["b"]


def test_users_crossing_the_history_threshold_get_the_nearest_segment(client, store, settings):
    sample = retail.sample(200)
    retail.ingest(store, settings, sample)
    fit(store, settings, "segments")
    stored = models.load(store, "segments")
    twin = sample[0].user_id  # a newcomer who behaves exactly like this customer
    like = [e for e in sample if e.user_id == twin]
    client.post("/v1/events", json={"user_id": "late", "item_id": like[0].item_id, "type": "purchase",
                                    "ts": like[0].ts, "value": like[0].value})
    assert client.get("/v1/users/late").get_json()["segment"] == "new"  # one event: too little history
    body = [{"user_id": "late", "item_id": e.item_id, "type": "purchase", "ts": e.ts, "value": e.value}
            for e in like[1:]]
    client.post("/v1/events", json={"events": body})
    seg = client.get("/v1/users/late").get_json()["segment"]
    values = store.redis.hmget(store.keys.user("late"), segmentation.FIELDS)
    assert seg == segmentation.nearest(stored, values, max(e.ts for e in like)) != "new"


def test_packed_lists_round_trip_and_stay_small(store, settings):
    items = np.array([0, 7, 70000, 2**24 - 1], dtype=np.uint32)
    scores = np.array([2.5, 1.0, 0.25, -0.5], dtype=np.float32)
    version, got_items, got_scores = toplists.unpack(toplists.pack(9, items, scores))
    assert version == 9 and (got_items == items).all()
    assert np.allclose(got_scores, scores, atol=3.0 / 65535)
    assert len(toplists.pack(1, np.arange(50), np.linspace(1, 0, 50))) == 12 + 5 * 50
    # many lists at once: the same bytes, whatever their lengths and score ranges
    lists = [(items, scores), (items[:2], scores[:2]), (items[:0], scores[:0]), (items, np.full(4, 0.5, np.float32)),
             (items[::-1], np.array([1e-3, 1e-3 - 1e-7, -7.0, -7.5], np.float32))]
    assert toplists.pack_many(9, lists) == [toplists.pack(9, i, s) for i, s in lists]


def test_refit_names_lists_by_the_user_id_list_or_by_a_scan_of_an_older_store(store, settings):
    sample = retail.sample(60)
    retail.ingest(store, settings, sample)
    uids = sorted({e.user_id for e in sample})
    ids = store.redis.lrange(store.keys.user_ids(), 0, -1)  # kept by the events script, by dense index
    assert sorted(ids) == uids and all(ids[int(store.redis.hget(store.keys.user(u), "ix"))] == u for u in uids)
    users.delete(store, uids[0])
    assert store.redis.lrange(store.keys.user_ids(), 0, -1).count("") == 1
    fit(store, settings)
    got = {u: store.binary.get(store.keys.user_recs(u)) for u in uids}
    assert got[uids[0]] is None and all(got[u] for u in uids[1:])  # a deleted user gets no list back
    store.redis.delete(store.keys.user_ids())  # a store from before the list: the refit scans the users
    assert fit(store, settings)["lists"] == len(uids) - 1
    assert all(toplists.unpack(store.binary.get(store.keys.user_recs(u)))[0] == 2 for u in uids[1:])
    assert store.binary.get(store.keys.user_recs(uids[0])) is None
    # such a store keeps allocating user indexes by its counter (no collision with its users'), the list untouched
    counted = int(store.redis.hget(store.keys.counters(), "users"))
    assert counted == len(uids)
    ingest(store, settings, [ShopEvent("newcomer", "view", sample[-1].ts, sample[0].item_id)])
    assert store.redis.hget(store.keys.user("newcomer"), "ix") == str(counted)
    assert not store.redis.exists(store.keys.user_ids())
    assert fit(store, settings)["lists"] == len(uids)


def test_superseded_versions_are_collected_after_the_grace_period(store, settings):
    arrays = {"x": np.arange(4, dtype=np.float32)}
    v1 = models.publish(store, "mf", arrays, {}, now=1000.0)
    v2 = models.publish(store, "mf", arrays, {}, now=2000.0)
    grace = settings.model_grace_hours * 3600
    assert models.collect_garbage(store, "mf", now=2000.0 + grace - 1) == []
    assert models.load(store, "mf", v1).arrays["x"].tolist() == [0, 1, 2, 3]
    assert models.collect_garbage(store, "mf", now=2000.0 + grace + 1) == [v1]
    assert not store.redis.exists(store.keys.model_version("mf", v1)) and models.current(store, "mf") == v2


def test_a_scheduled_refit_finding_the_lock_taken_skips(store, settings, worker_env):
    from bandit_push_workers import jobs

    retail.ingest(store, settings, retail.sample(100))
    assert refit_lock.claim(store, settings, "mf", "cli:elsewhere:1") is None  # a CLI refit holds the lock
    queue = Queue(settings.queue, connection=store.binary, serializer=JSONSerializer)
    job = queue.enqueue(jobs.refit_mf)
    work(store)
    assert job.return_value() == {"model": "mf", "skipped": "a refit of this model is already running",
                                  "holder": "cli:elsewhere:1"}
    assert models.current(store, "mf") is None


def test_scheduled_refits_are_retried_like_requested_ones(store, settings):
    """The scheduler enqueues the refits with the API's retry policy (refit_retries, refit_retry_interval_s);
    the frequent jobs without one (their next run comes within the hour: the engagement model's too)."""
    from bandit_push_workers import jobs
    from bandit_push_workers.scheduler import build

    s = settings.replace(refit_retries=2, refit_retry_interval_s=7)
    queue = Queue(settings.queue, connection=store.binary, serializer=JSONSerializer)
    before = set(queue.job_ids)
    due = build(store.binary, s).enqueue_jobs()  # a new scheduler: every job is due at once
    assert len(due) == 6
    enqueued = {j.func_name: j for j in (queue.fetch_job(i) for i in queue.job_ids) if j.id not in before}
    for func in (jobs.refit_mf, jobs.refit_segments):
        job = enqueued[f"{func.__module__}.{func.__name__}"]
        assert (job.retries_left, job.retry_intervals) == (2, [7, 28]), job.func_name
    for func in (jobs.refresh_popular, jobs.compact_interactions, jobs.resend_send_credits, jobs.refit_policy):
        assert enqueued[f"{func.__module__}.{func.__name__}"].retries_left is None
    for job in enqueued.values():
        job.delete()
    # no retries configured: the refits are enqueued without a policy (RQ refuses Retry(max=0))
    due = build(store.binary, s.replace(refit_retries=0)).enqueue_jobs()
    enqueued = [j for j in (queue.fetch_job(i) for i in queue.job_ids) if j.id not in before]
    assert len(enqueued) == 6 and all(j.retries_left is None for j in enqueued)
    for job in enqueued:
        job.delete()


def test_the_schedule_has_both_refits_at_their_intervals(settings):
    from bandit_push_workers import jobs
    from bandit_push_workers.schedule import periodic

    s = settings.replace(mf_refit_hours=2, segments_refit_hours=12, refit_timeout_s=900)
    table = {func: (interval, timeout) for func, interval, timeout in periodic(s)}
    assert table[jobs.refit_mf] == (7200, 900) and table[jobs.refit_segments] == (43200, 900)


def test_deployments_sharing_a_redis_run_only_their_own_jobs(client, store, settings, worker_env):
    """Two key prefixes on one Redis are two deployments: each has its own queue, a worker of the other one
    leaves this one's refit alone, and neither API shows the other's jobs."""
    from bandit_push_api import create_app
    from bandit_push.store import Store

    other = settings.replace(prefix=settings.prefix + "other:")
    assert other.queue != settings.queue and settings.replace(prefix="bp:").queue == "bp:jobs"
    retail.ingest(store, settings, retail.sample(100))
    job_id = client.post("/v1/models/mf/refit").get_json()["job_id"]
    mine = Queue(settings.queue, connection=store.binary, serializer=JSONSerializer)
    theirs = Queue(other.queue, connection=store.binary, serializer=JSONSerializer)
    assert mine.job_ids == [job_id] and theirs.job_ids == []
    SimpleWorker([theirs], connection=store.binary, serializer=JSONSerializer).work(burst=True)
    assert client.get(f"/v1/jobs/{job_id}").get_json()["state"] == "queued"
    other_app = create_app(other)
    try:
        resp = other_app.test_client().get(f"/v1/jobs/{job_id}")
        assert resp.status_code == 404 and resp.get_json()["error"] == "unknown_job"
    finally:
        other_app.extensions["bandit_push"].store.close()
    work(store)
    assert client.get(f"/v1/jobs/{job_id}").get_json()["state"] == "finished"
    assert models.current(store, "mf") == "1"
    other_store = Store.connect(other)
    try:
        assert models.current(other_store, "mf") is None
    finally:
        other_store.close()
