"""The OpenAPI document is valid, covers every route, and agrees with what the app really does.

Request schemas are checked against the app in both directions (a body the schema accepts
is served, a body it refuses is refused), and the app's real responses are validated against
the documented response schemas, so the document can drive a fuzzer (schemathesis) later.
"""
from __future__ import annotations

import json
import re
import socket
import unicodedata
from importlib import resources
from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from bandit_push_api import validation
from bandit_push.config import EVENT_TYPES, OUTCOMES, POLICY_SETTING_MAX, Settings
from bandit_push.errors import InvalidArgument

DOC_URI = "urn:bandit-push:openapi"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
NOW = 1763910000.0  # 2025-11-23T15:00:00Z: inside the accepted window for a year after it was written


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return json.loads(resources.files("bandit_push_api").joinpath("openapi.json").read_text())


@pytest.fixture(scope="module")
def registry(doc) -> Registry:
    return Registry().with_resource(DOC_URI, Resource.from_contents(doc, default_specification=DRAFT4))


def pointer(*parts: str) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def validator(registry: Registry, *parts: str) -> OAS30Validator:
    """A validator for the schema at ``parts`` inside the document, its ``$ref``s resolved in the document."""
    return OAS30Validator({"$ref": f"{DOC_URI}#{pointer(*parts)}"}, registry=registry,
                          format_checker=oas30_format_checker)


def deref(doc: dict[str, Any], node: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Follow a local ``$ref`` (one level), returning the node and its location."""
    ref = node.get("$ref")
    if ref is None:
        raise ValueError("not a reference")
    parts = tuple(p.replace("~1", "/").replace("~0", "~") for p in ref.removeprefix("#/").split("/"))
    target = doc
    for p in parts:
        target = target[p]
    return target, parts


def response_schema(doc: dict[str, Any], path: str, method: str, status: int) -> tuple[str, ...]:
    """Where the documented JSON schema of one response lives."""
    responses = doc["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document status {status}"
    loc: tuple[str, ...] = ("paths", path, method, "responses", str(status))
    resp = responses[str(status)]
    if "$ref" in resp:
        resp, loc = deref(doc, resp)
    assert "application/json" in resp["content"], f"{method.upper()} {path} {status} is not documented as JSON"
    return (*loc, "content", "application/json", "schema")


def flask_to_openapi(rule: str) -> str:
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule)


# -- the document itself ------------------------------------------------------------------------


def test_document_is_valid_openapi_3(doc):
    assert doc["openapi"] == "3.0.3"
    validate_spec(doc)


def test_app_serves_the_packaged_document(client, doc):
    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    assert resp.get_json() == doc


def test_every_route_is_documented_with_its_methods(app, doc):
    served: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("console."):  # the console's HTML pages
            continue
        path = flask_to_openapi(rule.rule)
        served.setdefault(path, set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
        documented_params = {p["name"] for p in doc["paths"].get(path, {}).get("parameters", [])
                             if p["in"] == "path"}
        assert documented_params == set(rule.arguments), f"path parameters of {path}"
    documented = {path: {m for m in item if m in METHODS} for path, item in doc["paths"].items()}
    assert documented == served


def test_every_operation_documents_its_errors(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            codes = set(op["responses"])
            assert codes & {"200", "201"}, f"{method} {path} has no success response"
            if "requestBody" in op:
                assert {"400", "413", "503"} <= codes, f"{method} {path}"
            if path.startswith("/v1/"):
                assert "503" in codes, f"{method} {path} uses Redis"


def test_documented_scopes_are_the_enforced_ones(doc):
    from bandit_push_api import auth

    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            scope = auth.scope_of(re.sub(r"\{([^}]+)\}", r"<\1>", path))
            assert op["x-scope"] == scope, f"{method} {path}"
            if scope == auth.OPEN:
                assert op["security"] == [], f"{method} {path} is open"
            else:
                assert "security" not in op and {"401", "403", "429"} <= set(op["responses"]), f"{method} {path}"


def test_every_component_is_used(doc):
    text = json.dumps(doc)
    for kind, items in doc["components"].items():
        for name in items:
            if kind == "securitySchemes":  # referenced by name from a security requirement
                assert {name: []} in doc["security"], f"security scheme {name} is never required"
                continue
            assert f'"#/components/{kind}/{name}"' in text, f"components.{kind}.{name} is never referenced"


def test_limits_and_enums_match_the_code(doc):
    s, d = doc["components"]["schemas"], Settings()
    assert s["Outcome"]["enum"] == list(OUTCOMES)
    assert s["EventType"]["enum"] == list(EVENT_TYPES)
    assert s["Id"]["maxLength"] == s["OptionalId"]["maxLength"] == d.max_id_length
    assert s["DecideRequest"]["properties"]["k"]["maximum"] == d.max_k
    assert s["DecideRequest"]["properties"]["k"]["default"] == d.default_k
    assert s["FeedbackBatch"]["properties"]["events"]["maxItems"] == d.max_batch
    assert s["EventBatch"]["properties"]["events"]["maxItems"] == d.max_batch
    for name in ("Timestamp", "OptionalTimestamp"):
        assert s[name]["oneOf"][0]["minimum"] == validation.MIN_TS


def test_policy_schema_names_every_policy_setting(doc):
    """A variant's policy may set the registered policy's own settings: the schema of each policy documents exactly
    those (one schema per policy, chosen by name)."""
    from bandit_push.policies import POLICIES

    schemas = doc["components"]["schemas"]
    config = schemas["PolicyConfig"]
    assert list(config["discriminator"]["mapping"]) == list(POLICIES)
    for name, policy in POLICIES.items():
        one, _ = deref(doc, {"$ref": config["discriminator"]["mapping"][name]})
        assert {"$ref": config["discriminator"]["mapping"][name]} in config["oneOf"]
        assert one["properties"]["name"]["enum"] == [name] and one["additionalProperties"] is False
        assert set(one["properties"]) == set(policy.defaults) | {"name"}, name
        for k in policy.defaults:  # bounded as the settings are (none may overflow in the decide script)
            assert one["properties"][k].get("maximum") == POLICY_SETTING_MAX.get(k), (name, k)


def _examples(node: Any, loc: tuple[str | int, ...] = ()):
    """Every (schema location, example) pair: examples of media types and parameters, and of schemas."""
    if isinstance(node, list):
        for i, value in enumerate(node):
            yield from _examples(value, (*loc, i))
        return
    if not isinstance(node, dict):
        return
    if "schema" in node:
        if "example" in node:
            yield (*loc, "schema"), node["example"]
        for ex in node.get("examples", {}).values():
            yield (*loc, "schema"), ex["value"]
    elif "example" in node and loc[:2] == ("components", "schemas"):
        yield loc, node["example"]
    for key, value in node.items():
        if key not in ("example", "examples"):
            yield from _examples(value, (*loc, key))


def test_examples_validate_against_their_schemas(doc, registry):
    found = list(_examples(doc))
    assert len(found) > 30
    for loc, example in found:
        errors = [e.message for e in validator(registry, *loc).iter_errors(example)]
        assert not errors, f"example at {pointer(*loc)}: {errors}"


# -- ids: the documented patterns are exactly what the app accepts --------------------------------


def _accepts(fn, text: str) -> bool:
    try:
        fn(text)
    except InvalidArgument:
        return False
    return True


def _compare_by_chunks(pattern: str, app_accepts, chars: str, size: int) -> list[str]:
    """Characters on which the pattern and the app disagree. A chunk both accept needs no closer look."""
    regex = re.compile(pattern)
    disagree = []
    for i in range(0, len(chars), size):
        chunk = chars[i:i + size]
        if regex.search(chunk) and app_accepts(chunk):
            continue
        disagree += [c for c in chunk if bool(regex.search(c)) != app_accepts(c)]
    return disagree


def test_id_pattern_is_what_the_app_accepts(doc):
    schema = doc["components"]["schemas"]["Id"]
    assert doc["components"]["schemas"]["OptionalId"]["pattern"] == schema["pattern"]
    # the app also refuses lone surrogates, which no regex engine but Python's can express (and a JSON text in
    # UTF-8 cannot carry them anyway); code points unassigned in Unicode pass both, whatever the Unicode version
    every = "".join(chr(i) for i in range(0x110000) if unicodedata.category(chr(i)) != "Cs")
    ident = lambda text: validation.ident(text, "user_id", schema["maxLength"])  # noqa: E731
    assert _compare_by_chunks(schema["pattern"], lambda t: _accepts(ident, t), every, schema["maxLength"]) == []
    regex = re.compile(schema["pattern"])
    for text in ("a\n", "ab\n", "\na", "a\tb", "a\u00a0b", "a\u3000", "a\u00adb", "\ufeffa", "x\U000e0001", "\ue000"):
        assert not regex.search(text) and not _accepts(ident, text), repr(text)
    for text in ("u-1001", "a/b", "user@example.com", "\u00e9t\u00e9", "\U0001f600", "[x]*?", "a" * 128, "x\u0378y",
                 "BANK CHARGES", "a{", "}", "{x}:ev:e", " ", " a ", "50%", "%20"):
        assert regex.search(text) and _accepts(ident, text), repr(text)


def test_experiment_name_pattern_is_what_the_app_accepts(doc):
    from bandit_push.experiments import parse_definition

    schema = doc["components"]["schemas"]["ExperimentDefinition"]["properties"]["name"]
    variants = [{"name": "a", "policy": {"name": "thompson"}}, {"name": "b", "policy": {"name": "ucb"}}]
    parse = lambda text: parse_definition({"name": text, "variants": variants}, Settings())  # noqa: E731
    every = "".join(chr(i) for i in range(0x110000) if unicodedata.category(chr(i)) != "Cs")
    # chunks of the name's length, each character looked at alone in a chunk they disagree on (" " alone: refused)
    assert _compare_by_chunks(schema["pattern"], lambda t: _accepts(parse, t), every.replace(" ", ""),
                              schema["maxLength"]) == []
    regex = re.compile(schema["pattern"])
    for text, ok in (("cost test", True), (" ", False), ("   ", False), ("{x}", True), ("a\tb", False), ("a\n", False),
                     ("x\u0378", True), ("a" * 128, True)):
        assert bool(regex.search(text)) == ok == _accepts(parse, text), repr(text)


def test_short_texts_share_one_pattern_that_refuses_control_characters_and_spaces(doc):
    """The channel and a decision id are checked by their schemas alone (the app runs the document): one pattern."""
    s = doc["components"]["schemas"]
    channel, decision_id = s["Channel"], s["FeedbackEvent"]["properties"]["decision_id"]
    assert channel["pattern"] == decision_id["pattern"]
    for text in ("push\n", "a b", "{x}", "\x7f"):
        assert not re.search(channel["pattern"], text), repr(text)


# -- requests: the schema and the app agree on what is valid ------------------------------------

SENT = "<sent decision>"
TS = "2025-11-23T15:00:00Z"

REQUESTS = [
    # (method, path, body, valid by the schema and served by the app)
    ("post", "/v1/decide", {"user_id": "u-1"}, True),
    ("post", "/v1/decide", {"user_id": "u-1", "now": NOW, "k": 1, "channel": "push"}, True),
    ("post", "/v1/decide", {"user_id": "u-1", "now": TS, "k": 50}, True),
    ("post", "/v1/decide", {"user_id": "u-1", "now": None, "k": None, "channel": None}, True),
    ("post", "/v1/decide", {"user_id": "u/1:\u00e9\U0001f600", "now": "2025-11-23T16:00:00+01:00"}, True),
    ("post", "/v1/decide", {"user_id": "u" * 128}, True),
    ("post", "/v1/decide", {}, False),
    ("post", "/v1/decide", {"user_id": None}, False),
    ("post", "/v1/decide", {"user_id": 7}, False),
    ("post", "/v1/decide", {"user_id": "u" * 129}, False),
    ("post", "/v1/decide", {"user_id": ""}, False),
    ("post", "/v1/decide", {"user_id": "a b"}, True),
    ("post", "/v1/decide", {"user_id": "a{b}"}, True),
    ("post", "/v1/decide", {"user_id": "a\tb"}, False),
    ("post", "/v1/decide", {"user_id": "a\u3000b"}, False),
    ("post", "/v1/decide", {"user_id": "a\x00"}, False),
    ("post", "/v1/decide", {"user_id": "a\u2028b"}, False),
    ("post", "/v1/decide", {"user_id": "u-1", "extra": 1}, False),
    ("post", "/v1/decide", {"user_id": "u-1", "k": 0}, False),
    ("post", "/v1/decide", {"user_id": "u-1", "k": 51}, False),
    ("post", "/v1/decide", {"user_id": "u-1", "k": "5"}, False),
    ("post", "/v1/decide", {"user_id": "u-1", "k": True}, False),
    ("post", "/v1/decide", {"user_id": "u-1", "now": 946684799}, False),
    ("post", "/v1/decide", {"user_id": "u-1", "now": "yesterday"}, False),
    ("post", "/v1/decide", {"user_id": "u-1", "now": False}, False),
    ("post", "/v1/decide", {"user_id": "u-1", "channel": 5}, False),
    ("post", "/v1/decide", {"user_id": "u-1", "channel": ""}, False),
    ("post", "/v1/decide", {"user_id": "u-1", "channel": "c" * 65}, False),
    ("post", "/v1/decide", [{"user_id": "u-1"}], False),
    ("post", "/v1/feedback", {"decision_id": SENT, "event": "opened"}, True),
    ("post", "/v1/feedback", {"decision_id": SENT, "event": "converted", "ts": TS, "value": 24.9}, True),
    ("post", "/v1/feedback", {"decision_id": SENT, "event": "clicked", "ts": None, "value": None}, True),
    ("post", "/v1/feedback", {"events": [{"decision_id": SENT, "event": e} for e in OUTCOMES]}, True),
    ("post", "/v1/feedback", {"events": [{"decision_id": "0" * 20 + ".default", "event": "opened"}]}, True),
    ("post", "/v1/feedback", {"decision_id": SENT}, False),
    ("post", "/v1/feedback", {"event": "opened"}, False),
    ("post", "/v1/feedback", {"decision_id": SENT, "event": "liked"}, False),
    ("post", "/v1/feedback", {"decision_id": SENT, "event": "opened", "value": -1}, False),
    ("post", "/v1/feedback", {"decision_id": SENT, "event": "opened", "value": "1"}, False),
    ("post", "/v1/feedback", {"decision_id": SENT, "event": "opened", "user_id": "u-1"}, False),
    ("post", "/v1/feedback", {"decision_id": "a b", "event": "opened"}, False),
    ("post", "/v1/feedback", {"events": []}, False),
    ("post", "/v1/feedback", {"events": {}}, False),
    ("post", "/v1/feedback", {"events": [{"decision_id": SENT, "event": "opened"}], "x": 1}, False),
    ("post", "/v1/feedback", {"events": [{"decision_id": SENT, "event": "opened"}, 3]}, False),
    ("post", "/v1/events", {"user_id": "u-1", "type": "search"}, True),
    ("post", "/v1/events", {"user_id": "u-1", "type": "app_open", "item_id": None, "ts": NOW}, True),
    ("post", "/v1/events", {"user_id": "u-1", "type": "search", "item_id": "sku-1"}, True),
    ("post", "/v1/events", {"user_id": "u-1", "type": "purchase", "item_id": "sku-1", "ts": TS, "value": 0}, True),
    ("post", "/v1/events", {"events": [{"user_id": "u-1", "type": t, "item_id": "sku-1"} for t in EVENT_TYPES]},
     True),
    ("post", "/v1/events", {"user_id": "u-1", "type": "view"}, False),
    ("post", "/v1/events", {"user_id": "u-1", "type": "view", "item_id": None}, False),
    ("post", "/v1/events", {"user_id": "u-1", "type": "add_to_cart", "item_id": "a b"}, True),
    ("post", "/v1/events", {"user_id": "u-1", "type": "add_to_cart", "item_id": "a\u00a0b"}, False),
    ("post", "/v1/events", {"user_id": "u-1", "type": "like"}, False),
    ("post", "/v1/events", {"type": "search"}, False),
    ("post", "/v1/events", {"user_id": "u-1", "type": "purchase", "item_id": "x", "value": 2e9}, False),
    ("post", "/v1/events", {"user_id": "u-1", "type": "search", "ts": "2025-13-01T00:00:00Z"}, False),
    ("post", "/v1/events", {"events": [{"user_id": "u-1", "type": "search"}] * 1001}, False),
    ("put", "/v1/users/u-1", {}, True),
    ("put", "/v1/users/u-1", {"timezone": "Europe/Berlin", "opted_out": True}, True),
    ("put", "/v1/users/u-1", {"timezone": None, "opted_out": None}, True),
    ("put", "/v1/users/u-1", {"timezone": 1}, False),
    ("put", "/v1/users/u-1", {"opted_out": "yes"}, False),
    ("put", "/v1/users/u-1", {"name": "x"}, False),
    ("put", "/v1/users/u-1", ["x"], False),
]


def _substitute(body: Any, did: str) -> Any:
    if body == SENT:
        return did
    if isinstance(body, dict):
        return {k: _substitute(v, did) for k, v in body.items()}
    if isinstance(body, list):
        return [_substitute(v, did) for v in body]
    return body


@pytest.fixture
def sent_decision(make_app) -> str:
    """A decision that sent (the fixed-cadence policy sends to a user never pushed)."""
    client = make_app(policy="cadence").test_client()
    resp = client.post("/v1/decide", json={"user_id": "u-sent"})
    assert resp.status_code == 200 and resp.get_json()["send"] is True
    return resp.get_json()["decision_id"]


@pytest.mark.parametrize("method,path,body,valid", REQUESTS,
                         ids=[f"{m}-{p.rsplit('/', 1)[-1]}-{i}" for i, (m, p, _, _) in enumerate(REQUESTS)])
def test_request_schema_and_app_agree(doc, registry, client, sent_decision, method, path, body, valid):
    body = _substitute(body, sent_decision)
    template = "/v1/users/{user_id}" if path.startswith("/v1/users/") else path
    loc = ("paths", template, method, "requestBody", "content", "application/json", "schema")
    errors = [e.message for e in validator(registry, *loc).iter_errors(body)]
    assert (not errors) == valid, f"schema says {errors or 'valid'}"
    resp = getattr(client, method)(path, json=body)
    assert (resp.status_code < 300) == valid, resp.get_json()
    assert resp.status_code < 500


# -- responses: the app's real answers match the documented schemas ------------------------------


def _check(doc, registry, resp, path: str, method: str, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in validator(registry, *response_schema(doc, path, method, status)).iter_errors(body)]
    assert not errors, f"{method.upper()} {path} {status}: {errors}\n{json.dumps(body)}"
    return body


def test_happy_path_responses_match_the_documented_schemas(doc, registry, client, make_app, store):
    from bandit_push import popular

    ok = lambda resp, path, method, status=200: _check(doc, registry, resp, path, method, status)  # noqa: E731
    events = [{"user_id": f"u-{i % 3}", "item_id": f"sku-{i % 4}", "type": t, "ts": NOW - 3600 + i * 60}
              for i, t in enumerate(["view", "add_to_cart", "purchase", "view", "view", "purchase"])]
    events += [{"user_id": "u-0", "type": "search", "ts": NOW - 10}, {"user_id": "u-1", "type": "app_open"}]
    assert ok(client.post("/v1/events", json={"events": events}), "/v1/events", "post") == {"accepted": 8, "duplicate": 0}
    ok(client.post("/v1/events", json={"user_id": "u-9", "item_id": "sku-1", "type": "purchase", "value": 9.5}),
       "/v1/events", "post")
    ok(client.get("/readyz"), "/readyz", "get")
    popular.refresh(store, store.settings, now=NOW)
    ready = ok(client.get("/readyz"), "/readyz", "get")
    assert ready["items"]["version"] is not None

    assert ok(client.put("/v1/users/u-new", json={"timezone": "Asia/Tokyo"}), "/v1/users/{user_id}", "put",
              201)["segment"] == "new"
    ok(client.put("/v1/users/u-0", json={"timezone": "Europe/Berlin", "opted_out": False}),
       "/v1/users/{user_id}", "put", 200)

    decided = ok(client.post("/v1/decide", json={"user_id": "u-1", "now": NOW, "k": 3, "channel": "push"}),
                 "/v1/decide", "post")
    assert decided["items"], "popular items were refreshed"
    ok(client.post("/v1/decide", json={"user_id": "u-never-seen"}), "/v1/decide", "post")
    cadence = make_app(policy="cadence").test_client()  # sends to a user never pushed: deterministic
    sent = ok(cadence.post("/v1/decide", json={"user_id": "u-0", "now": NOW, "k": 3}), "/v1/decide", "post")
    assert sent["send"] is True and sent["items"]
    refused = ok(cadence.post("/v1/decide", json={"user_id": "u-0", "now": NOW + 60}), "/v1/decide", "post")
    assert refused["send"] is False and refused["reason"] == "min_gap"

    single = ok(client.post("/v1/feedback", json={"decision_id": sent["decision_id"], "event": "opened",
                                                  "ts": NOW + 120}), "/v1/feedback", "post")
    assert single["status"] == "accepted"
    batch = ok(client.post("/v1/feedback", json={"events": [
        {"decision_id": sent["decision_id"], "event": "opened", "ts": NOW + 120},
        {"decision_id": sent["decision_id"], "event": "converted", "ts": NOW + 600, "value": 12.5},
        {"decision_id": refused["decision_id"], "event": "opened"},
        {"decision_id": "0" * 20 + ".default", "event": "opened"}]}), "/v1/feedback", "post")
    assert batch["statuses"] == ["duplicate", "accepted", "not_sent", "unknown"]

    ok(client.get(f"/v1/users/u-0?now={NOW + 300}"), "/v1/users/{user_id}", "get")
    ok(client.get("/v1/users/u-0?now=2025-11-23T15:05:00Z"), "/v1/users/{user_id}", "get")
    ok(client.get("/v1/users/u-new"), "/v1/users/{user_id}", "get")
    segs = ok(client.get(f"/v1/segments?now={NOW + 300}"), "/v1/segments", "get")
    assert {s["segment"] for s in segs["segments"]} >= {"new", "default"}
    shown = ok(client.get(f"/v1/users/u-1/items?k=3&now={NOW + 300}"), "/v1/users/{user_id}/items", "get")
    assert shown["items_source"] in ("popular", "popular_segment")
    assert ok(client.get("/v1/models"), "/v1/models", "get") == {"models": [], "kept": []}
    started = ok(client.post("/v1/models/segments/refit"), "/v1/models/{name}/refit", "post", 202)
    again = ok(client.post("/v1/models/segments/refit"), "/v1/models/{name}/refit", "post", 200)
    assert again["job_id"] == started["job_id"] and again["enqueued"] is False
    assert ok(client.get(f"/v1/jobs/{started['job_id']}"), "/v1/jobs/{job_id}", "get")["state"] == "queued"
    from rq.job import Job
    from rq.serializers import JSONSerializer
    # no worker here, and RQ's keys are not under the test's prefix: leave no job for another test's worker
    Job.fetch(started["job_id"], connection=store.binary, serializer=JSONSerializer).delete()
    from bandit_push import refit
    refit.run(store, store.settings, "mf", "test")
    refit.run(store, store.settings, "segments", started["job_id"])
    served = ok(client.get("/v1/models"), "/v1/models", "get")["models"]
    assert [m["name"] for m in served] == ["mf", "segments"]
    assert ok(client.get("/readyz"), "/readyz", "get")["items"]["model"] == "mf"
    segs = ok(client.get(f"/v1/segments?now={NOW + 300}"), "/v1/segments", "get")
    assert any(s["centroid"] for s in segs["segments"])
    assert ok(client.get("/v1/users/u-1/items?k=3"), "/v1/users/{user_id}/items", "get")["items_source"] == "model"
    ok(client.get("/healthz"), "/healthz", "get")
    ok(client.get("/openapi.json"), "/openapi.json", "get")


def test_error_responses_match_the_documented_schemas(doc, registry, client, make_app, sent_decision):
    err = lambda resp, path, method, status: _check(doc, registry, resp, path, method, status)  # noqa: E731
    assert err(client.post("/v1/decide", data="{", content_type="application/json"),
               "/v1/decide", "post", 400)["field"] == "body"
    assert err(client.post("/v1/feedback", json={"decision_id": "0" * 20 + ".default", "event": "opened"}),
               "/v1/feedback", "post", 404)["error"] == "unknown_decision"
    refusing = make_app(policy="cadence").test_client()
    refused = refusing.post("/v1/decide", json={"user_id": "u-sent"}).get_json()  # a second one is refused
    assert refused["send"] is False
    assert err(client.post("/v1/feedback", json={"decision_id": refused["decision_id"], "event": "opened"}),
               "/v1/feedback", "post", 409)["error"] == "decision_not_sent"
    assert err(client.get("/v1/users/nobody"), "/v1/users/{user_id}", "get", 404)["error"] == "unknown_user"
    assert err(client.put("/v1/users/u-1", json={"timezone": "Mars/Olympus"}),
               "/v1/users/{user_id}", "put", 400)["error"] == "unknown_timezone"
    assert err(client.get("/v1/segments?now=yesterday"), "/v1/segments", "get", 400)["field"] == "now"
    assert err(client.get("/v1/users/u-1/items?k=0"), "/v1/users/{user_id}/items", "get", 400)["field"] == "k"
    assert err(client.get("/v1/users/u-1/items?k=x"), "/v1/users/{user_id}/items", "get", 400)["field"] == "k"
    assert err(client.post("/v1/models/nope/refit"), "/v1/models/{name}/refit", "post", 404)["error"] == "unknown_model"
    assert err(client.get("/v1/jobs/nope"), "/v1/jobs/{job_id}", "get", 404)["error"] == "unknown_job"
    small = make_app(max_body_bytes=1000).test_client()
    assert err(small.post("/v1/events", data="x" * 2000, content_type="application/json"),
               "/v1/events", "post", 413)["error"] == "body_too_large"
    generic = validator(registry, "components", "schemas", "Error")
    for resp, status in ((client.delete("/v1/decide"), 405), (client.get("/v1/nothing"), 404)):
        assert resp.status_code == status and resp.mimetype == "application/json"
        generic.validate(resp.get_json())


def test_redis_unavailable_is_the_documented_503(doc, registry, make_app):
    with socket.socket() as sock:  # bound but not listening: connections are refused at once
        sock.bind(("127.0.0.1", 0))
        client = make_app(redis_url=f"redis://127.0.0.1:{sock.getsockname()[1]}/0", redis_timeout_s=0.5).test_client()
        for method, path, kwargs in (("get", "/readyz", {}), ("post", "/v1/decide", {"json": {"user_id": "u-1"}}),
                                     ("get", "/v1/users/{user_id}", {}), ("get", "/v1/segments", {})):
            url = path.replace("{user_id}", "u-1")
            resp = getattr(client, method)(url, **kwargs)
            assert _check(doc, registry, resp, path, method, 503)["error"] == "redis_unavailable"
            assert resp.headers["Retry-After"] == "1"
            assert "Retry-After" in deref(doc, doc["paths"][path][method]["responses"]["503"])[0]["headers"]


EXPERIMENT = {"name": "cost", "variants": [{"name": "control", "policy": {"name": "thompson"}},
                                           {"name": "b", "weight": 2, "policy": {"name": "ucb", "cost": 0.1},
                                            "guardrails": {"max_per_day": 2, "quiet_hours": "off"}}]}
EXPERIMENT_REQUESTS = [
    (EXPERIMENT, True),
    ({**EXPERIMENT, "segments": ["s1", "new"]}, True),
    ({**EXPERIMENT, "segments": None}, True),
    ({**EXPERIMENT, "variants": EXPERIMENT["variants"][:1]}, False),
    ({**EXPERIMENT, "segments": []}, False),
    ({**EXPERIMENT, "owner": "me"}, False),
    ({"variants": EXPERIMENT["variants"]}, False),
    ({**EXPERIMENT, "variants": [{"name": "a", "policy": {"name": "thompson"}},
                                 {"name": "b", "policy": {"name": "ucb"}, "weight": 0}]}, False),
    ({**EXPERIMENT, "variants": [{"name": "a", "policy": {"name": "greedy"}},
                                 {"name": "b", "policy": {"name": "ucb"}}]}, False),
    ({**EXPERIMENT, "variants": [{"name": "a", "policy": {"name": "thompson", "cost": "x"}},
                                 {"name": "b", "policy": {"name": "ucb"}}]}, False),
    ({**EXPERIMENT, "variants": [{"name": "a", "policy": {"name": "thompson"}},  # overflowed the decide script
                                 {"name": "b", "policy": {"name": "cadence", "cadence_gap_hours": 1e308}}]}, False),
    ({**EXPERIMENT, "variants": [{"name": "a", "policy": {"name": "thompson"}},
                                 {"name": "b", "policy": {"name": "cadence", "cadence_gap_hours": 87600}}]}, True),
    ({**EXPERIMENT, "variants": [{"name": "a b", "policy": {"name": "thompson"}},
                                 {"name": "b", "policy": {"name": "ucb"}}]}, False),
    ({**EXPERIMENT, "variants": [{"name": "a", "policy": {"name": "thompson"}, "guardrails": {"max_per_day": 0}},
                                 {"name": "b", "policy": {"name": "ucb"}}]}, False),
]


@pytest.mark.parametrize("body,valid", EXPERIMENT_REQUESTS, ids=[str(i) for i in range(len(EXPERIMENT_REQUESTS))])
def test_experiment_request_schema_and_app_agree(doc, registry, client, body, valid):
    loc = ("paths", "/v1/experiments", "post", "requestBody", "content", "application/json", "schema")
    errors = [e.message for e in validator(registry, *loc).iter_errors(body)]
    assert (not errors) == valid, f"schema says {errors or 'valid'}"
    resp = client.post("/v1/experiments", json=body)
    assert (resp.status_code < 300) == valid, resp.get_json()
    assert resp.status_code < 500


def test_experiment_responses_match_the_documented_schemas(doc, registry, client, store):
    ok = lambda resp, path, method, status=200: _check(doc, registry, resp, path, method, status)  # noqa: E731
    x = ok(client.post("/v1/experiments", json=EXPERIMENT), "/v1/experiments", "post", 201)
    one = "/v1/experiments/{experiment_id}"
    ok(client.get(f"/v1/experiments/{x['id']}/report"), one + "/report", "get")  # no users yet
    ok(client.put(f"/v1/experiments/{x['id']}", json={**EXPERIMENT, "name": "renamed"}), one, "put")
    ok(client.post(f"/v1/experiments/{x['id']}/start"), one + "/start", "post")
    for i in range(30):
        d = ok(client.post("/v1/decide", json={"user_id": f"u-{i}", "now": NOW}), "/v1/decide", "post")
        assert d["experiment"]["id"] == x["id"]
    ok(client.get(f"/v1/experiments/{x['id']}/report"), one + "/report", "get")
    ok(client.post(f"/v1/experiments/{x['id']}/pause"), one + "/pause", "post")
    ok(client.post(f"/v1/experiments/{x['id']}/stop"), one + "/stop", "post")
    ok(client.get("/v1/experiments"), "/v1/experiments", "get")
    ok(client.get(f"/v1/experiments/{x['id']}"), one, "get")
    err = lambda resp, path, method, status: _check(doc, registry, resp, path, method, status)  # noqa: E731
    err(client.post(f"/v1/experiments/{x['id']}/start"), one + "/start", "post", 409)
    err(client.post(f"/v1/experiments/{x['id']}/pause"), one + "/pause", "post", 409)
    err(client.put(f"/v1/experiments/{x['id']}", json=EXPERIMENT), one, "put", 409)
    err(client.get("/v1/experiments/12345"), one, "get", 404)
    err(client.get("/v1/experiments/x1/report"), one + "/report", "get", 400)
    err(client.post("/v1/experiments/99/stop"), one + "/stop", "post", 404)


# -- what the contract says is what the service does (issue 24, item 6) ---------------------------


def _param(doc, path: str, name: str, method: str | None = None) -> dict[str, Any]:
    item = doc["paths"][path]
    params = item.get("parameters", []) + (item[method].get("parameters", []) if method else [])
    return next(p for p in params if p["name"] == name)


def test_keys_are_an_optional_requirement_as_a_keyless_loopback_call_shows(doc, client):
    assert doc["security"] == [{"apiKey": []}, {}]
    assert client.post("/v1/decide", json={"user_id": "u-1"}).status_code == 200  # no Authorization header


def test_path_and_query_parameters_carry_the_enforced_bounds(doc):
    from bandit_push import refit
    from bandit_push_workers import registry

    d = Settings()
    k = _param(doc, "/v1/users/{user_id}/items", "k", "get")["schema"]
    assert (k["minimum"], k["maximum"], k["default"]) == (1, d.max_k, d.default_k)
    assert _param(doc, "/v1/models/{name}/refit", "name")["schema"]["enum"] == list(refit.REFITS)
    assert _param(doc, "/v1/jobs/{job_id}", "job_id")["schema"]["pattern"] == registry._JOB_ID.pattern.replace("+", "{1,64}")
    for path in ("/v1/users/{user_id}", "/v1/users/{user_id}/items"):
        assert _param(doc, path, "user_id")["schema"] == {"$ref": "#/components/schemas/Id"}


def test_a_holdout_decision_matches_the_documented_schema(doc, registry, client):
    x = client.post("/v1/experiments", json={"name": "h", "variants": [
        {"name": "control", "policy": {"name": "thompson"}},
        {"name": "out", "weight": 1000, "policy": {"name": "holdout"}}]}).get_json()
    client.post(f"/v1/experiments/{x['id']}/start")
    reasons = {_check(doc, registry, client.post("/v1/decide", json={"user_id": f"h-{i}", "now": NOW}),
                      "/v1/decide", "post", 200)["reason"] for i in range(10)}
    assert "holdout" in reasons
