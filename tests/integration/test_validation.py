"""Bad input is a 4xx JSON error that names the field, and writes nothing to Redis.

Each case runs against a store that already holds a user, a decision that sent and one a
guardrail refused, so that a request that wrote anything at all (even into existing keys) shows
up as a changed snapshot.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest

SENT = "<sent decision>"
REFUSED = "<refused decision>"
UNKNOWN_DECISION = "0" * 20 + ".default"


@dataclass(frozen=True)
class Case:
    """One bad request and the error it must get."""

    id: str
    path: str
    body: Any = None  # JSON value; a str is sent as the raw body
    status: int = 400
    error: str = "invalid_argument"
    field: str | None = None
    method: str = "post"
    app: dict[str, Any] = dataclasses.field(default_factory=dict)  # make_app changes

    def param(self):
        return pytest.param(self, id=self.id)


def decide(body=None, **kw) -> Case:
    return Case(path="/v1/decide", body=body, **kw)


def feedback(body=None, **kw) -> Case:
    return Case(path="/v1/feedback", body=body, **kw)


def events(body=None, **kw) -> Case:
    return Case(path="/v1/events", body=body, **kw)


def good_feedback(n: int) -> list[dict[str, Any]]:
    return [{"decision_id": SENT, "event": e} for e in ("opened", "clicked", "converted", "dismissed")][:n]


def good_events(n: int) -> list[dict[str, Any]]:
    return [{"user_id": f"u-batch-{i}", "item_id": f"sku-{i}", "type": "purchase", "value": 10} for i in range(n)]


HUGE_INT = "1" + "0" * 400  # a JSON integer no float can hold

CASES = [
    # -- the body as a whole
    decide('{"user_id": "a"', id="malformed-json", error="invalid_json", field="body"),
    decide("", id="empty-body", error="invalid_json", field="body"),
    decide('[{"user_id": "a"}]', id="body-is-array", error="invalid_json", field="body"),
    decide('"a"', id="body-is-string", error="invalid_json", field="body"),
    decide('{"user_id": "a", "now": NaN}', id="now-nan-literal", error="invalid_json", field="body"),
    decide('{"user_id": "a", "now": Infinity}', id="now-infinity-literal", error="invalid_json", field="body"),
    events("[" * 100_000, id="deeply-nested-json", error="invalid_json", field="body"),
    # -- user_id
    decide({}, id="user_id-missing", error="missing_field", field="user_id"),
    decide({"user_id": None}, id="user_id-null", error="missing_field", field="user_id"),
    decide({"user_id": 42}, id="user_id-int", field="user_id"),
    decide({"user_id": ["a"]}, id="user_id-list", field="user_id"),
    decide({"user_id": "u" * 129}, id="user_id-129-chars", field="user_id"),
    decide({"user_id": ""}, id="user_id-empty", field="user_id"),
    decide({"user_id": "a\x07b"}, id="user_id-control-char", field="user_id"),
    decide({"user_id": "a\x00"}, id="user_id-nul", field="user_id"),
    decide({"user_id": "ab\n"}, id="user_id-trailing-newline", field="user_id"),
    decide({"user_id": "a\tb"}, id="user_id-tab", field="user_id"),
    decide({"user_id": "a\u3000b"}, id="user_id-ideographic-space", field="user_id"),
    decide({"user_id": "a\u2029b"}, id="user_id-paragraph-separator", field="user_id"),
    decide({"user_id": "a\u00a0b"}, id="user_id-nbsp", field="user_id"),
    decide({"user_id": "a\u200bb"}, id="user_id-zero-width-space", field="user_id"),
    decide({"user_id": "a\ud800"}, id="user_id-lone-surrogate", field="user_id"),
    decide('{"user_id": ' + "[" * 900 + "]" * 900 + "}", id="user_id-nested-900-deep", field="user_id"),
    # -- other decide fields
    decide({"user_id": "a", "kk": 3}, id="unknown-field", error="unknown_field", field="kk"),
    decide({"user_id": "a", "k": 0}, id="k-0", field="k"),
    decide({"user_id": "a", "k": 51}, id="k-51", field="k"),
    decide({"user_id": "a", "k": "5"}, id="k-string", field="k"),
    decide({"user_id": "a", "k": True}, id="k-true", field="k"),
    decide({"user_id": "a", "k": 2.5}, id="k-float", field="k"),
    decide({"user_id": "a", "now": "yesterday"}, id="now-yesterday", field="now"),
    decide({"user_id": "a", "now": 1e20}, id="now-1e20", error="timestamp_out_of_range", field="now"),
    decide({"user_id": "a", "now": 946684799}, id="now-before-2000", error="timestamp_out_of_range", field="now"),
    decide({"user_id": "a", "now": "1999-12-31T23:59:59Z"}, id="now-iso-before-2000", error="timestamp_out_of_range",
           field="now"),
    decide({"user_id": "a", "now": "2000-01-01T00:30:00+01:00"}, id="now-offset-before-2000",
           error="timestamp_out_of_range", field="now"),
    decide({"user_id": "a", "now": "2025-11-23T17:30:00"}, id="now-iso-without-offset", field="now"),
    decide({"user_id": "a", "now": "2025-11-23"}, id="now-date-without-offset", field="now"),
    decide({"user_id": "a", "now": True}, id="now-bool", field="now"),
    decide({"user_id": "a", "now": {"s": 1}}, id="now-object", field="now"),
    decide('{"user_id": "a", "now": ' + HUGE_INT + "}", id="now-huge-int", error="timestamp_out_of_range", field="now"),
    decide({"user_id": "a", "channel": 5}, id="channel-int", field="channel"),
    decide({"user_id": "a", "channel": ""}, id="channel-empty", field="channel"),
    decide({"user_id": "a", "channel": "web push"}, id="channel-space", field="channel"),
    decide({"user_id": "a", "channel": "c" * 65}, id="channel-65-chars", field="channel"),
    decide({"user_id": "a", "channel": "\ud800"}, id="channel-lone-surrogate", field="channel"),
    # -- feedback
    feedback({"decision_id": SENT, "event": "liked"}, id="feedback-unknown-event", field="event"),
    feedback({"decision_id": SENT, "event": 3}, id="feedback-event-int", field="event"),
    feedback({"event": "opened"}, id="feedback-decision_id-missing", error="missing_field", field="decision_id"),
    feedback({"decision_id": SENT}, id="feedback-event-missing", error="missing_field", field="event"),
    feedback({"decision_id": 12, "event": "opened"}, id="feedback-decision_id-int", field="decision_id"),
    feedback({"decision_id": "a b", "event": "opened"}, id="feedback-decision_id-space", field="decision_id"),
    feedback({"decision_id": "d" * 129, "event": "opened"}, id="feedback-decision_id-129", field="decision_id"),
    feedback({"decision_id": UNKNOWN_DECISION, "event": "opened"}, id="feedback-unknown-decision", status=404,
             error="unknown_decision", field="decision_id"),
    feedback({"decision_id": "not-a-decision", "event": "clicked"}, id="feedback-malformed-decision", status=404,
             error="unknown_decision", field="decision_id"),
    feedback({"decision_id": REFUSED, "event": "opened"}, id="feedback-decision-not-sent", status=409,
             error="decision_not_sent", field="decision_id"),
    feedback({"decision_id": SENT, "event": "opened", "value": -1}, id="feedback-value-negative", field="value"),
    feedback({"decision_id": SENT, "event": "opened", "value": "3"}, id="feedback-value-string", field="value"),
    feedback({"decision_id": SENT, "event": "opened", "ts": "yesterday"}, id="feedback-ts-yesterday", field="ts"),
    feedback({"decision_id": SENT, "event": "opened", "user_id": "u"}, id="feedback-unknown-field",
             error="unknown_field", field="user_id"),
    feedback('{"decision_id": "' + SENT + '", "event": "converted", "value": ' + HUGE_INT + "}",
             id="feedback-value-huge-int", field="value"),
    # -- feedback batches: one bad entry and nothing of the batch is written
    feedback({"events": []}, id="feedback-batch-empty", field="events"),
    feedback({"events": {}}, id="feedback-batch-object", field="events"),
    feedback({"events": "opened"}, id="feedback-batch-string", field="events"),
    feedback({"events": None}, id="feedback-batch-null", field="events"),
    feedback({"events": good_feedback(1) * 1001}, id="feedback-batch-1001", field="events"),
    feedback({"events": [*good_feedback(3), {"decision_id": SENT, "event": "liked"}]},
             id="feedback-batch-bad-index-3", field="events[3].event"),
    feedback({"events": [*good_feedback(1), {"event": "opened"}]}, id="feedback-batch-missing-decision_id",
             error="missing_field", field="events[1].decision_id"),
    feedback({"events": [*good_feedback(2), 7]}, id="feedback-batch-entry-not-object", field="events[2]"),
    feedback({"events": [*good_feedback(1), {"decision_id": SENT, "event": "opened", "x": 1}]},
             id="feedback-batch-entry-unknown-field", error="unknown_field", field="events[1].x"),
    feedback({"events": good_feedback(2), "decision_id": SENT}, id="feedback-batch-extra-key",
             error="unknown_field", field="decision_id"),
    # -- shopping events
    events({"user_id": "a", "type": "like"}, id="events-unknown-type", field="type"),
    events({"user_id": "a", "type": None}, id="events-type-null", error="missing_field", field="type"),
    events({"type": "search"}, id="events-user_id-missing", error="missing_field", field="user_id"),
    events({"user_id": "a", "type": "view"}, id="events-view-without-item", error="missing_field", field="item_id"),
    events({"user_id": "a", "type": "purchase", "item_id": None}, id="events-purchase-item-null",
           error="missing_field", field="item_id"),
    events({"user_id": "a", "type": "view", "item_id": "s\r1"}, id="events-item_id-carriage-return", field="item_id"),
    events({"user_id": "a", "type": "search", "item_id": 5}, id="events-search-item_id-int", field="item_id"),
    events({"user_id": "a", "type": "purchase", "item_id": "s", "value": -1}, id="events-value-negative",
           field="value"),
    events({"user_id": "a", "type": "purchase", "item_id": "s", "value": "3"}, id="events-value-string",
           field="value"),
    events({"user_id": "a", "type": "purchase", "item_id": "s", "value": 1e10}, id="events-value-too-big",
           field="value"),
    events({"user_id": "a", "type": "search", "ts": 946684799.5}, id="events-ts-before-2000",
           error="timestamp_out_of_range", field="ts"),
    events({"user_id": "a", "type": "search", "ts": "2025-02-30T00:00:00Z"}, id="events-ts-no-such-day",
           field="ts"),
    events({"user_id": "a", "type": "search", "item": "s"}, id="events-unknown-field", error="unknown_field",
           field="item"),
    events('{"user_id": "a", "type": "purchase", "item_id": "s", "value": ' + HUGE_INT + "}",
           id="events-value-huge-int", field="value"),
    events({"events": []}, id="events-batch-empty", field="events"),
    events({"events": {"user_id": "a"}}, id="events-batch-object", field="events"),
    events({"events": good_events(1) * 1001}, id="events-batch-1001", field="events"),
    events({"events": [*good_events(3), {"user_id": "a", "type": "like"}]}, id="events-batch-bad-index-3",
           field="events[3].type"),
    events({"events": [*good_events(3), {"user_id": "a", "type": "view"}]}, id="events-batch-view-without-item",
           error="missing_field", field="events[3].item_id"),
    events({"events": [*good_events(1), {"user_id": "a", "type": "search", "ts": "soon"}]},
           id="events-batch-bad-ts", field="events[1].ts"),
    # -- users
    Case("user-bad-timezone", "/v1/users/u-known", {"timezone": "Mars/Olympus"}, method="put",
         error="unknown_timezone", field="timezone"),
    Case("new-user-bad-timezone", "/v1/users/u-new", {"timezone": "Mars/Olympus", "opted_out": True},
         method="put", error="unknown_timezone", field="timezone"),
    Case("user-timezone-path-escape", "/v1/users/u-known", {"timezone": "../../etc/passwd"}, method="put",
         error="unknown_timezone", field="timezone"),
    Case("user-timezone-int", "/v1/users/u-known", {"timezone": 1}, method="put", field="timezone"),
    Case("user-opted_out-yes", "/v1/users/u-known", {"opted_out": "yes"}, method="put", field="opted_out"),
    Case("user-opted_out-1", "/v1/users/u-new", {"opted_out": 1}, method="put", field="opted_out"),
    Case("user-unknown-field", "/v1/users/u-known", {"segment": "vip"}, method="put", error="unknown_field",
         field="segment"),
    Case("user-body-array", "/v1/users/u-known", "[]", method="put", error="invalid_json", field="body"),
    Case("user-no-body", "/v1/users/u-new", "", method="put", error="invalid_json", field="body"),
    Case("put-user_id-tab", "/v1/users/a%09b", {}, method="put", field="user_id"),
    Case("put-user_id-nbsp", "/v1/users/a%C2%A0b", {}, method="put", field="user_id"),
    Case("put-user_id-129-chars", "/v1/users/" + "u" * 129, {}, method="put", field="user_id"),
    Case("get-unknown-user", "/v1/users/u-nobody", method="get", status=404, error="unknown_user",
         field="user_id"),
    Case("get-user_id-control-char", "/v1/users/a%07b", method="get", field="user_id"),
    Case("get-user-now-yesterday", "/v1/users/u-known?now=yesterday", method="get", field="now"),
    Case("get-user-now-nan", "/v1/users/u-known?now=nan", method="get", field="now", error="timestamp_out_of_range"),
    Case("segments-now-yesterday", "/v1/segments?now=yesterday", method="get", field="now"),
    Case("segments-now-1e20", "/v1/segments?now=1e20", method="get", field="now", error="timestamp_out_of_range"),
    # -- size, method, route
    events({"events": good_events(40)}, id="body-too-large", status=413, error="body_too_large", field="body",
           app={"max_body_bytes": 1000}),
    decide({"user_id": "u" * 2000}, id="body-too-large-decide", status=413, error="body_too_large", field="body",
           app={"max_body_bytes": 1000}),
    Case("wrong-method-delete", "/v1/decide", method="delete", status=405, error="method_not_allowed"),
    Case("wrong-method-get", "/v1/feedback", method="get", status=405, error="method_not_allowed"),
    Case("wrong-method-post-user", "/v1/users/u-known", {}, method="post", status=405, error="method_not_allowed"),
    Case("wrong-method-put-segments", "/v1/segments", {}, method="put", status=405, error="method_not_allowed"),
    Case("unknown-route", "/v1/nothing", {}, status=404, error="not_found"),
]


def _substitute(body: Any, ids: dict[str, str]) -> Any:
    if isinstance(body, str):
        for placeholder, value in ids.items():
            body = body.replace(placeholder, value)
        return body
    if isinstance(body, dict):
        return {k: _substitute(v, ids) for k, v in body.items()}
    if isinstance(body, list):
        return [_substitute(v, ids) for v in body]
    return body


def _snapshot(store) -> dict[str, bytes]:
    """Every key of the test's prefix with its serialized value: a write anywhere changes it."""
    return {key: store.redis.dump(key) for key in store.redis.scan_iter(match=f"{store.settings.prefix}*", count=1000)}


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_bad_input_is_a_4xx_naming_the_field_and_writes_nothing(make_app, store, case: Case):
    # the fixed-cadence policy sends to a user never pushed, so the world below is deterministic
    client = make_app(policy="cadence", **case.app).test_client()
    sent = client.post("/v1/decide", json={"user_id": "u-known"}).get_json()
    refused = client.post("/v1/decide", json={"user_id": "u-known"}).get_json()
    assert sent["send"] is True and refused["send"] is False
    before = _snapshot(store)
    assert before

    body = _substitute(case.body, {SENT: sent["decision_id"], REFUSED: refused["decision_id"]})
    send = getattr(client, case.method)
    if body is None:
        resp = send(case.path)
    elif isinstance(body, str):
        resp = send(case.path, data=body.encode("utf-8", "surrogatepass"), content_type="application/json")
    else:
        resp = send(case.path, json=body)

    assert resp.status_code < 500, resp.get_data(as_text=True)
    assert resp.status_code == case.status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    err = resp.get_json()
    assert set(err) <= {"error", "message", "field"} | ({"invalid", "errors"} if case.field and "[" in case.field else set())
    if "errors" in err:  # a batch: every bad entry is named; these cases have one
        assert err["invalid"] == 1 and err["errors"] == [{k: err[k] for k in ("error", "field")} | {
            "message": err["errors"][0]["message"]}] and err["errors"][0]["message"] in err["message"]
    assert err["error"] == case.error
    assert err.get("field") == case.field
    assert isinstance(err["message"], str) and err["message"]
    if case.field and case.status == 400:
        leaf = case.field.rsplit(".", 1)[-1]
        assert leaf in err["message"], f"message does not name {leaf}: {err['message']}"
    assert _snapshot(store) == before, "a refused request wrote to Redis"


def test_wrong_method_names_the_allowed_ones(client):
    resp = client.delete("/v1/decide")
    assert resp.status_code == 405
    assert "POST" in resp.headers.get("Allow", "")


def test_the_matrix_covers_every_endpoint_and_error_status():
    paths = {c.path.split("?")[0].rsplit("/", 1)[0] if c.path.startswith("/v1/users/") else c.path.split("?")[0]
             for c in CASES}
    assert {"/v1/decide", "/v1/feedback", "/v1/events", "/v1/users", "/v1/segments"} <= paths
    assert {c.status for c in CASES} == {400, 404, 405, 409, 413}
    assert len({c.id for c in CASES}) == len(CASES)


def test_the_document_s_limits_follow_the_settings(make_app):
    """Bodies are checked against api/openapi.json with this deployment's limits, not the defaults it shows."""
    c = make_app(max_k=60, max_id_length=10, max_batch=2).test_client()
    assert c.post("/v1/decide", json={"user_id": "u", "k": 55}).status_code == 200
    r = c.post("/v1/decide", json={"user_id": "u" * 11})
    assert r.status_code == 400 and r.get_json()["field"] == "user_id" and "1 to 10" in r.get_json()["message"]
    r = c.post("/v1/events", json={"events": [{"user_id": "u", "type": "app_open"}] * 3})
    assert r.status_code == 400 and r.get_json()["field"] == "events" and "at most 2" in r.get_json()["message"]
    r = make_app(timestamp_min=1.7e9).test_client().post("/v1/decide", json={"user_id": "u", "now": 1.65e9})
    assert r.status_code == 400 and r.get_json()["field"] == "now"


def test_a_slash_in_a_path_id_is_sent_as_percent_2f_and_is_never_ambiguous(client, live_server):
    """An id is one path segment: a '/' inside it travels as %2F. So user ``x/items`` and user ``x``'s items are
    two different addresses, and a PUT on the items path creates nobody."""
    import json

    import requests

    for put, get in ((client.put, client.get), (lambda p, **kw: requests.put(live_server + p, timeout=5, **kw),
                                                 lambda p: requests.get(live_server + p, timeout=5))):
        created = put("/v1/users/x%2Fitems", json={"timezone": "Asia/Tokyo"})
        assert created.status_code in (200, 201) and json.loads(created.text)["user_id"] == "x/items"
        assert json.loads(get("/v1/users/x%2fitems").text)["timezone"] == "Asia/Tokyo"
        assert json.loads(get("/v1/users/x%2Fitems/items").text)["items"] == []  # user "x/items"'s items
        assert put("/v1/users/x/items", json={}).status_code == 405   # the items path has no PUT
        assert get("/v1/users/x").status_code == 404                   # nobody named "x" was created
        assert get("/v1/users/a/b/c").status_code == 404               # not a route
        bad = get("/v1/users/x%1Fitems")  # an encoded control character is refused, not read as a slash
        assert bad.status_code == 400 and json.loads(bad.text)["field"] == "user_id"


def test_messages_name_what_is_wrong(client):
    early = client.get("/v1/decisions/export?until=2025-11-23T15:00:00Z")  # no since: its default is later
    assert early.status_code == 400 and early.get_json()["error"] == "invalid_window"
    assert "since, which defaults to now minus the retention (72 h)" in early.get_json()["message"]
    both = client.get("/v1/decisions/export?since=2025-11-23T16:00:00Z&until=2025-11-23T15:00:00Z")
    assert both.get_json()["message"] == "until must not be before since"
    separator = client.put("/v1/users/x%E2%80%A8y", json={})
    assert "it holds U+2028 (a line separator)" in separator.get_json()["message"]
    assert client.put("/v1/users/x%CD%B8y", json={}).get_json()["user_id"] == "x\u0378y"  # unassigned: an id
