"""DELETE /v1/users/<id> removes everything stored under the user's id, and nobody else's."""
from __future__ import annotations

import pytest

NOW = 1795000000.0  # 2026-11-19


def _keys_of(store, user_id: str) -> list[str]:
    escaped = user_id.replace("*", "\\*")  # the ids here hold no other glob character
    return sorted(store.redis.scan_iter(match=f"{store.settings.prefix}*{{{escaped}}}*", count=1000))


def test_delete_removes_the_user_and_only_the_user(make_app, store):
    c = make_app(policy="cadence").test_client()
    x = c.post("/v1/experiments", json={"name": "t", "variants": [
        {"name": "control", "weight": 1, "policy": {"name": "cadence"}},
        {"name": "b", "weight": 1, "policy": {"name": "cadence", "cadence_gap_hours": 2}}]}).get_json()
    assert c.post(f"/v1/experiments/{x['id']}/start").status_code == 200
    for uid in ("a*", "a*b", "other"):  # a glob character in the id must not reach the neighbours
        assert c.put(f"/v1/users/{uid}", json={"timezone": "Europe/Berlin"}).status_code == 201
        evs = [{"user_id": uid, "type": "view", "item_id": "sku-1", "ts": NOW, "event_id": f"e{i}"} for i in range(3)]
        assert c.post("/v1/events", json={"events": evs}).get_json()["accepted"] == 3
        assert c.post("/v1/decide", json={"user_id": uid, "now": NOW}).get_json()["send"] is True
    before = _keys_of(store, "a*")
    assert len(before) == 5  # user hash, recent pushes, three event-id markers
    assert store.redis.hget(store.keys.segment_sizes(), "default") == "3"

    ids = store.keys.user_ids()  # dense user index -> id, what the MF refit names lists by
    assert store.redis.lrange(ids, 0, -1) == ["a*", "a*b", "other"]
    exposed = lambda u: store.keys.experiment_users(x["id"], u)  # (each user's slot's)
    assert store.redis.hexists(exposed("a*"), "a*") and store.redis.hexists(exposed("a*b"), "a*b")
    r = c.delete("/v1/users/a*")
    assert r.status_code == 200 and r.get_json() == {"user_id": "a*", "deleted_keys": 6}  # 5 keys, 1 experiment record
    assert not store.redis.hexists(exposed("a*"), "a*") and store.redis.hexists(exposed("a*b"), "a*b")
    assert _keys_of(store, "a*") == []
    assert c.get("/v1/users/a*").status_code == 404
    assert store.redis.hget(store.keys.segment_sizes(), "default") == "2"
    for uid in ("a*b", "other"):
        assert len(_keys_of(store, uid)) == 5 and c.get(f"/v1/users/{uid}").status_code == 200
    # the same event ids count again (the markers are gone): nothing of the user's past remains
    again = c.post("/v1/events", json={"user_id": "a*", "type": "view", "item_id": "sku-1", "ts": NOW,
                                       "event_id": "e0"})
    assert again.get_json() == {"accepted": 1, "duplicate": 0}
    assert store.redis.lrange(ids, 0, -1) == ["", "a*b", "other", "a*"]  # blanked; back under a new index
    # deleting is idempotent
    c.delete("/v1/users/a*")
    assert c.delete("/v1/users/a*").get_json()["deleted_keys"] == 0


def test_delete_validates_the_id(client):
    r = client.delete("/v1/users/a%09b")  # a control character: a space is an id
    assert r.status_code == 400 and r.get_json()["field"] == "user_id"


def test_timestamp_window_is_configurable(make_app):
    c = make_app(timestamp_min=1.7e9, timestamp_max_ahead_days=1).test_client()
    old = c.post("/v1/decide", json={"user_id": "u", "now": 1.6e9})
    assert old.status_code == 400 and old.get_json()["field"] == "now"
    assert "2023-11-14T22:13:20Z" in old.get_json()["message"]
    ahead = c.post("/v1/events", json={"user_id": "u", "type": "app_open", "ts": 4.0e9})
    assert ahead.status_code == 400 and ahead.get_json()["field"] == "ts"
    assert c.post("/v1/events", json={"user_id": "u", "type": "app_open", "ts": 1.75e9}).status_code == 200
    for bad in ("NaN", "Infinity", "-Infinity", "1e999"):
        r = c.post("/v1/decide", data='{"user_id": "u", "now": %s}' % bad, content_type="application/json")
        assert r.status_code == 400 and r.get_json()["field"] in ("body", "now"), bad


@pytest.mark.cluster
def test_delete_prefix_removes_only_its_own_prefix(store):
    """Store.delete_prefix (tests, benchmarks, simulation runs) clears its prefix, in batches, and nothing else."""
    other = f"{store.settings.prefix}other:"
    store.set_many({f"{store.settings.prefix}k{i}": "1" for i in range(2500)})
    store.redis.set("bpt-outside-prefix", "1")
    try:
        assert store.delete_prefix(other) == 0
        assert store.delete_prefix() == 2500
        assert not list(store.redis.scan_iter(match=f"{store.settings.prefix}*"))
        assert store.redis.get("bpt-outside-prefix") == "1"
    finally:
        store.redis.delete("bpt-outside-prefix")
