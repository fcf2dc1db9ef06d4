"""The gateways' client against the real service over real HTTP: each call's request is one the API accepts,
and its answers and errors come back as the service gives them."""
from __future__ import annotations

import pytest

from bandit_push.client import ApiError, Client

NOW = 1_800_000_000.0


def test_a_gateway_round_trip(live_server):
    with Client(live_server) as bp:
        assert bp.put_user("alice", timezone="Europe/Berlin")["timezone"] == "Europe/Berlin"
        assert bp.events([{"user_id": "alice", "item_id": "i1", "type": "purchase", "ts": NOW, "event_id": "e1"}]) \
            == {"accepted": 1, "duplicate": 0}
        for hours in range(1, 100, 5):  # Thompson sampling explores: a few asks, hours apart, and one sends
            at = NOW + hours * 3600
            d = bp.decide("alice", now=at, k=2)
            assert set(d) >= {"decision_id", "send", "items", "reason", "propensity"}
            if d["send"]:
                break
        assert d["send"], d
        assert bp.feedback(d["decision_id"], "delivered", ts=at + 60)["status"] == "accepted"
        # a retried report counts once
        assert bp.feedback(d["decision_id"], "delivered", ts=at + 60)["status"] == "duplicate"
        both = bp.feedback_batch([{"decision_id": d["decision_id"], "event": "opened"},
                                  {"decision_id": "nope.default", "event": "opened"}])
        assert both["statuses"] == ["accepted", "unknown"]
        assert bp.get_user("alice")["timezone"] == "Europe/Berlin"
        assert bp.ready()["status"] == "ready"
        assert bp.delete_user("alice")["user_id"] == "alice"


def test_the_service_refusal_names_the_field(live_server):
    with Client(live_server) as bp, pytest.raises(ApiError) as e:
        bp.decide("bob", k=0)
    assert (e.value.status, e.value.code, e.value.field) == (400, "invalid_argument", "k")
    with Client(live_server) as bp, pytest.raises(ApiError) as e:
        bp.feedback("missing.default", "clicked")
    assert (e.value.status, e.value.code) == (404, "unknown_decision")
