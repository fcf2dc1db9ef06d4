"""Events: behaviour features, segment membership, the interaction store, popularity."""
from datetime import datetime, timezone

import numpy as np
import pytest

from bandit_push import events, interactions, popular
from bandit_push.config import EVENT_TYPES
from bandit_push.schema import XREC

T0 = datetime(2026, 1, 13, 12, 0, tzinfo=timezone.utc).timestamp()


@pytest.mark.cluster
def test_events_feed_features_and_segment(client, store):
    c = client
    c.put("/v1/users/u1", json={"timezone": "Europe/Paris"})
    (seg,) = c.get("/v1/segments").get_json()["segments"]
    assert {k: seg[k] for k in ("segment", "size", "contexts", "centroid")} == {
        "segment": "new", "size": 1, "contexts": [], "centroid": None}
    # nothing learned: pacing climbs from load 0 (no load above the frontier is chosen)
    assert [x["sends"] for x in seg["loads"]] == [0.0] * 8 and seg["max_load"] == "0 in 72h"
    body = {"events": [{"user_id": "u1", "item_id": "A", "type": "view", "ts": T0},
                       {"user_id": "u1", "item_id": "A", "type": "purchase", "ts": T0 + 60, "value": 19.5},
                       {"user_id": "u1", "type": "search", "ts": T0 - 60},
                       {"user_id": "u2", "type": "app_open", "ts": "2026-01-13T12:00:00Z"}]}
    assert c.post("/v1/events", json=body).get_json() == {"accepted": 4, "duplicate": 0}
    u = c.get("/v1/users/u1").get_json()
    # u1 crossed segment_min_events (3) with no clustering yet: default; u2's one event is too little history
    assert u["segment"] == "default" and u["timezone"] == "Europe/Paris"
    assert c.get("/v1/users/u2").get_json()["segment"] == "new"
    f = u["features"]
    assert f["counts"] == {"view": 1, "search": 1, "add_to_cart": 0, "purchase": 1, "app_open": 0}
    assert (f["purchase_value"], f["first_event"], f["last_event"], f["last_purchase"]) == (19.5, T0 - 60, T0 + 60, T0 + 60)
    sizes = {s["segment"]: s["size"] for s in c.get("/v1/segments").get_json()["segments"]}
    assert sizes == {"new": 1, "default": 1}


@pytest.mark.cluster
def test_interactions_read_back_exactly(client, store):
    rng = np.random.default_rng(1)
    sent = []
    for i in range(300):
        user, item = f"user{rng.integers(20)}", f"sku-{rng.integers(50)}"
        etype = EVENT_TYPES[rng.integers(len(EVENT_TYPES))]
        ts = float(int(T0 + rng.integers(-5 * 86400, 86400)))
        sent.append((user, item if etype not in ("search", "app_open") else None, etype, ts))
    body = {"events": [{"user_id": u, "item_id": it, "type": t, "ts": ts} for u, it, t, ts in sent]}
    assert client.post("/v1/events", json=body).status_code == 200
    records = np.concatenate(list(interactions.read(store, chunk_bytes=13 * 7)))
    ids = interactions.item_ids(store)
    user_ix = {f"user{i}": store.redis.hget(store.keys.user(f"user{i}"), "ix") for i in range(20)}
    got = sorted((int(r["user"]), "" if r["item"] == interactions.NO_ITEM else ids[r["item"]],
                  EVENT_TYPES[r["type"]], float(r["ts"])) for r in records)
    want = sorted((int(user_ix[u]), it or "", t, ts) for u, it, t, ts in sent)
    assert got == want
    whole = list(interactions.read(store))  # every day in one pipelined chunk, in the same order
    assert len(whole) == 1 and whole[0].tobytes() == records.tobytes()
    assert store.redis.strlen(store.keys.interactions(int(T0 // 86400))) % 13 == 0


@pytest.mark.cluster
def test_popular_lists_per_segment_and_window(client, store, settings):
    day = 86400
    body = {"events": [{"user_id": "a", "item_id": "old", "type": "purchase", "ts": T0 - 10 * day},
                       {"user_id": "a", "item_id": "old", "type": "purchase", "ts": T0 - 10 * day},
                       {"user_id": "b", "item_id": "fresh", "type": "add_to_cart", "ts": T0 - day},
                       {"user_id": "c", "item_id": "viewed", "type": "view", "ts": T0}]}
    client.post("/v1/events", json=body)
    sizes = popular.refresh(store, settings, now=T0)
    assert sizes == {"new": 2, "*": 2}  # "old" is outside the 7-day window; one event each: still new
    top = store.redis.hget(store.keys.popular_top(), "*").split()
    assert top == ["fresh", "0.5", "viewed", "0.1"]
    ready = client.get("/readyz").get_json()
    assert ready["items"]["model"] == "popular" and ready["items"]["age_s"] is not None


@pytest.mark.cluster
def test_compaction_shrinks_closed_days_and_loses_nothing(client, store, settings):
    from bandit_push import interactions

    day = int(T0 // 86400)
    body = {"events": [{"user_id": f"u{i % 50}", "item_id": f"sku{i % 97}", "type": "view", "ts": T0 - 86400 + i}
                       for i in range(1000)]}
    for _ in range(20):
        client.post("/v1/events", json=body)
    key = store.keys.interactions(day - 1)
    before_bytes, before = store.redis.memory_usage(key), store.binary.get(key)
    assert len(before) == 20000 * 13
    assert interactions.compact(store, now=T0) == 1
    assert store.binary.get(key) == before and store.redis.ttl(key) > 0
    assert store.redis.memory_usage(key) <= min(before_bytes, 1.15 * len(before))
    assert interactions.compact(store, now=T0) == 0  # nothing new to do
    client.post("/v1/events", json={"user_id": "late", "item_id": "x", "type": "view", "ts": T0 - 86400})
    assert interactions.compact(store, now=T0) == 1  # a late event re-opens the day
    assert store.redis.strlen(key) == 20001 * 13


@pytest.mark.cluster
def test_retried_events_with_an_event_id_count_once(client, store):
    body = {"events": [{"user_id": "r", "item_id": "A", "type": "purchase", "value": 5, "ts": T0, "event_id": "e1"},
                       {"user_id": "r", "item_id": "B", "type": "view", "ts": T0, "event_id": "e2"},
                       {"user_id": "other", "item_id": "B", "type": "view", "ts": T0, "event_id": "e2"},
                       {"user_id": "r", "type": "app_open", "ts": T0}]}  # no id: counted every time
    assert client.post("/v1/events", json=body).get_json() == {"accepted": 4, "duplicate": 0}
    assert client.post("/v1/events", json=body).get_json() == {"accepted": 1, "duplicate": 3}
    f = client.get("/v1/users/r").get_json()["features"]
    assert f["counts"]["purchase"] == 1 and f["counts"]["view"] == 1 and f["counts"]["app_open"] == 2
    assert f["purchase_value"] == 5.0
    day = int(T0 // 86400)
    assert store.redis.strlen(store.keys.interactions(day)) == 5 * 13
    assert 0 < store.redis.ttl(store.keys.event_seen("r", "e1")) <= 48 * 3600


@pytest.mark.cluster
def test_a_batch_with_bad_events_names_each_and_stores_none(client, store):
    """All or nothing, but the error names every bad event (up to 100), so the sender fixes the batch in one try."""
    events = [{"user_id": f"u-{i}", "item_id": f"sku-{i % 7}", "type": "view"} for i in range(1000)]
    events[3]["type"] = "like"
    del events[500]["item_id"]
    events[998] = "not an object"
    resp = client.post("/v1/events", json={"events": events})
    err = resp.get_json()
    assert resp.status_code == 400 and err["invalid"] == 3
    assert [(e["field"], e["error"]) for e in err["errors"]] == [
        ("events[3].type", "invalid_argument"), ("events[500].item_id", "missing_field"), ("events[998]", "invalid_argument")]
    assert (err["field"], err["error"]) == ("events[3].type", "invalid_argument")  # the first, as before
    assert err["message"].startswith("3 of 1000 entries are invalid, so none was stored: events[3].type must be")
    assert store.redis.hget(store.keys.user("u-0"), "f:view") is None  # nothing stored
    many = [{"user_id": "u", "type": "like"}] * 1000
    err = client.post("/v1/events", json={"events": many}).get_json()
    assert err["invalid"] == 1000 and len(err["errors"]) == 100  # named up to the bound, all counted
    bad_feedback = client.post("/v1/feedback", json={"events": [{"decision_id": "x", "event": "liked"},
                                                                {"event": "opened"}]}).get_json()
    assert [e["field"] for e in bad_feedback["errors"]] == ["events[0].event", "events[1].decision_id"]


@pytest.mark.cluster
def test_an_event_cut_after_the_users_part_completes_once_on_retry(client, store):
    """A crash after the user's command (the event marked, the features counted) and before the shared ones: the
    client's retry answers duplicate and sends those again, which count once however often it is retried."""
    day = int(T0 // 86400)
    first = store.event_script(keys=[store.keys.user("cut"), store.keys.event_seen("cut", "e1")],
                               args=[repr(T0), "purchase", "5.0", "3600"])  # ... and the process dies
    assert first == ["accepted", "new", 1, ""]
    assert store.redis.hget(store.keys.user("cut"), "f:purchase") == "1"
    assert not store.redis.exists(store.keys.interactions(day)) and not store.redis.exists(store.keys.popular_day(day))
    ev = {"user_id": "cut", "item_id": "A", "type": "purchase", "value": 5, "ts": T0, "event_id": "e1"}
    for _ in range(3):
        assert client.post("/v1/events", json=ev).get_json() == {"accepted": 0, "duplicate": 1}
        f = client.get("/v1/users/cut").get_json()["features"]
        assert f["counts"]["purchase"] == 1 and f["purchase_value"] == 5.0
        assert store.redis.strlen(store.keys.interactions(day)) == 13
        assert store.redis.hgetall(store.keys.popular_day(day)) == {"new|A": "1", "*|A": "1"}
        assert store.redis.zrange(store.keys.interaction_days(), 0, -1) == [str(day)]
    uix = store.redis.hget(store.keys.user("cut"), "ix")
    assert store.redis.lrange(store.keys.user_ids(), 0, -1) == ["cut"] and uix == "0"
    assert 0 < store.redis.ttl(store.keys.popular_counted(day, uix, "e1")) <= 48 * 3600
    assert 0 < store.redis.ttl(store.keys.interaction_counted(day, uix, "e1")) <= 48 * 3600


def test_an_exposed_users_event_cut_counts_once_in_the_experiment(client, store):
    """The same cut with the user exposed to a running experiment: the retries count the event (a purchase) in the
    user's counters there once."""
    body = {"name": "cut", "variants": [{"name": n, "weight": 1, "policy": {"name": "thompson"}} for n in ("a", "b")]}
    xid = client.post("/v1/experiments", json=body).get_json()["id"]
    assert client.post(f"/v1/experiments/{xid}/start").status_code == 200
    store.redis.hset(store.keys.experiment_users(xid, "cut"), "cut", f"0 {int(T0) - 60} 1 0 0 0 0 0 0")  # exposed before
    store.event_script(keys=[store.keys.user("cut"), store.keys.event_seen("cut", "e1")],
                       args=[repr(T0), "purchase", "5.0", "3600"])  # ... and the process dies
    ev = {"user_id": "cut", "item_id": "A", "type": "purchase", "value": 5, "ts": T0, "event_id": "e1"}
    for _ in range(3):
        assert client.post("/v1/events", json=ev).get_json() == {"accepted": 0, "duplicate": 1}
        counters = store.redis.hget(store.keys.experiment_users(xid, "cut"), "cut").split()
        assert (counters[XREC["events"] - 1], counters[XREC["purchases"] - 1]) == ("1", "1")
    assert 0 < store.redis.ttl(store.keys.experiment_event_counted(xid, "cut", 0, "e1")) <= 48 * 3600
    # an event without an id counts at each call; one before the exposure does not count
    again = {"user_id": "cut", "type": "app_open", "ts": T0}
    for _ in range(2):
        client.post("/v1/events", json=again)
    client.post("/v1/events", json={**again, "ts": T0 - 3600})
    assert store.redis.hget(store.keys.experiment_users(xid, "cut"), "cut").split()[XREC["events"] - 1] == "3"


@pytest.mark.cluster
def test_concurrent_first_events_of_a_user_agree_on_one_index(store, settings):
    """Two processes' first events of one user, interleaved: each allocates an index, the first claim wins, the
    other learns it (its records name the winner's) and blanks its own entry of the id list."""
    from bandit_push.experiments import Registry

    one, two = (events.ShopEvent("racer", "view", T0 + i, f"sku{i}") for i in range(2))
    answers = [store.event_script(keys=[store.keys.user("racer"), store.keys.user("racer")],
                                  args=[repr(ev.ts), ev.type, "0.0", "0"]) for ev in (one, two)]
    assert [a[3] for a in answers] == ["", ""]  # neither saw an index: both allocate
    snap = Registry(store).refresh()
    events._complete(store, settings, [one], [answers[0]], {}, snap)
    events._complete(store, settings, [two], [answers[1]], {}, snap)
    assert store.redis.hget(store.keys.user("racer"), "ix") == "0"
    assert store.redis.lrange(store.keys.user_ids(), 0, -1) == ["racer", ""]
    records = np.concatenate(list(interactions.read(store)))
    assert sorted(records["user"].tolist()) == [0, 0] and sorted(records["item"].tolist()) == [0, 1]
    assert store.redis.hget(store.keys.segment_sizes(), "new") == "1"  # the creating call counted the user
