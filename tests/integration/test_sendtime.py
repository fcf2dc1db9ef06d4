"""retry_at: a refusal about the moment says when to ask again; other answers do not."""
from datetime import datetime, timezone

from bandit_push.config import OUTCOMES
from stored import packed_arm

T0 = datetime(2026, 1, 13, 12, 0, tzinfo=timezone.utc).timestamp()  # a Tuesday, midday UTC
HOUR = 3600.0


def decide(client, user="u1", now=T0):
    r = client.post("/v1/decide", json={"user_id": user, "now": now})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def epoch(iso):
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_quiet_hours_refusal_retries_when_they_end(make_app):
    c = make_app(quiet_hours="22:00-08:00", snapshot_seconds=0.001).test_client()
    d = decide(c, now=T0 + 11 * HOUR)  # 23:00 UTC (the default zone)
    assert d["reason"] == "quiet_hours" and not d["send"]
    assert epoch(d["retry_at"]) == T0 + 20 * HOUR  # 08:00 the next morning: nothing learned yet, the earliest


def test_min_gap_refusal_retries_at_the_best_learned_daypart_after_the_gap(make_app, store):
    """With the segment's evening arm learned best, a refusal by the minimum gap in the morning says to ask again
    at the evening's first hour; the answer is outside quiet hours and after the gap."""
    c = make_app(quiet_hours="22:00-07:00", cost=-1e9, min_gap_hours=4, snapshot_seconds=0.001).test_client()
    morning = T0 - 3 * HOUR  # 09:00 UTC
    assert decide(c, now=morning)["send"]
    d = decide(c, now=morning + HOUR)
    assert d["reason"] == "min_gap"
    k, clicked = len(OUTCOMES), 2 + OUTCOMES.index("clicked")
    arms = {}
    for rec in range(6):
        for dp in range(4):
            a = [morning, 200.0] + [0.0] * k
            a[clicked] = 120.0 if dp == 2 else 10.0  # evening (17:00-22:00) clicks most
            arms[f"new|{rec}|{dp}"] = packed_arm(a)
    store.binary.hset(store.keys.arms("default"), mapping=arms)
    d = decide(c, now=morning + 2 * HOUR)
    assert d["reason"] == "min_gap"
    assert epoch(d["retry_at"]) == T0 + 5 * HOUR  # 17:00 UTC, the evening's first hour


def test_only_refusals_about_the_moment_carry_retry_at(make_app):
    c = make_app(cost=-1e9).test_client()
    sent = decide(c)
    assert sent["send"] and "retry_at" not in sent
    c.put("/v1/users/u2", json={"opted_out": True})
    out = decide(c, "u2")
    assert out["reason"] == "opted_out" and "retry_at" not in out
