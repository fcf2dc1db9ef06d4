"""Ids are any printable text (spaces, braces, ``@``, ``%``, non-ASCII letters, emoji), end to end over real HTTP.

Hypothesis draws a user, a neighbour whose id is a prefix or variant of it (``x`` and ``x}:ev:e``, ``a`` and
``a ``), and a few items; through the API the test creates both users, posts their events in one batch, and checks
that the items come back exactly as sent (the ranked items, decide, the decision record, the export), that
pushed items are then excluded (the recent-pushes record packs ``"<item> <ts>"``), that feedback counts once and
opts the right user out, and that deleting the user leaves nothing of theirs and everything of the neighbour's.
A real batch of the Online Retail data, whose catalogue has an item ``BANK CHARGES``, goes in whole.
"""
from __future__ import annotations

import csv
import gzip
import json
import threading
from itertools import islice
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server

from bandit_push import ids, interactions, popular
from bandit_push.schema import XREC
from retail import DATA

NOW = 1795000000.0  # 2026-11-19
#: the characters a key, a tag, a packed list, a glob or a URL could misread, and some that look like escapes
SPECIAL = " {}%@:|*?[]\\/.#&+=,;'\"<>~"
ID_CHARS = st.one_of(st.sampled_from(SPECIAL + "ABCDEF0123456789"),
                     st.sampled_from("\u00e9\u00df\u0416\u4e2d\U0001f600\U0001f6d2"),  # é ß Ж 中, emoji
                     st.characters(categories=("L", "M", "N", "P", "S")))  # printable: letters ... symbols
#: an id, most often with a character the escaping is about (a space, a brace, a '%') somewhere inside it
id_texts = st.one_of(
    st.text(ID_CHARS, min_size=1, max_size=40),
    st.builds(lambda a, c, b: a + c + b, st.text(ID_CHARS, max_size=20), st.sampled_from(" {}%"),
              st.text(ID_CHARS, max_size=20)),
    st.builds("{}%{}{}".format, st.text(ID_CHARS, max_size=10), st.sampled_from(["20", "7D", "25", "E3"]),
              st.text(ID_CHARS, max_size=10)))


def path(user_id: str) -> str:
    """The user's resource: the id as one percent-encoded path segment (a '/' inside it is %2F)."""
    return "/v1/users/" + quote(user_id, safe="")


@pytest.fixture
def server(make_app):
    """A fixed-cadence app (a never-pushed user is sent to) on a real threaded HTTP server; yields its base URL
    and its settings."""
    app = make_app(policy="cadence")
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}", app.extensions["bandit_push"].settings
    srv.shutdown()
    thread.join(5)


def _user_keys(store, user_id: str) -> list[str]:
    """Every key tagged by the user (their tag's stored form holds no brace, so it is exactly theirs)."""
    head = f"{store.settings.prefix}u:{{{ids.store(user_id)}}}"
    return sorted(k for k in store.scan_iter(f"{store.settings.prefix}u:*")
                  if k == head or k.startswith(head + ":"))


@st.composite
def cases(draw):
    user = draw(id_texts)
    variants = [user + "}", user + "}:ev:e0", user + " ", " " + user, "{" + user + "}", user + "%20", user[:-1],
                user.replace(" ", "%20"), user.upper(), user + "\u00e9"]
    neighbour = draw(st.sampled_from([v for v in variants if v and v != user and len(v) <= 128]))
    items = draw(st.lists(id_texts, min_size=1, max_size=4, unique=True))
    return user, neighbour, items


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_any_printable_id_round_trips_through_the_api(server, store, case):
    base, app_settings = server
    user, neighbour, items = case
    store.delete_prefix()  # each example on an empty store (the app reads the registry version afresh)
    http = requests.Session()

    def call(method: str, url: str, status: int = 200, **kw):
        r = http.request(method, base + url, timeout=10, **kw)
        assert r.status_code == status, (method, url, r.text)
        return r.json()

    x = call("POST", "/v1/experiments", 201, json={"name": "ids", "variants": [
        {"name": "a", "weight": 1, "policy": {"name": "cadence"}}, {"name": "b", "weight": 1, "policy": {"name": "cadence"}}]})
    call("POST", f"/v1/experiments/{x['id']}/start")
    for uid in (user, neighbour):
        assert call("PUT", path(uid), 201, json={"timezone": "Europe/Berlin"})["user_id"] == uid
    events = [{"user_id": user, "type": "view", "item_id": item, "ts": NOW, "event_id": f"e{i}"}
              for i, item in enumerate(items)]
    events.append({"user_id": neighbour, "type": "app_open", "ts": NOW, "event_id": "e0"})
    assert call("POST", "/v1/events", json={"events": events}) == {"accepted": len(events), "duplicate": 0}
    popular.refresh(store, app_settings, now=NOW)
    k = len(items)

    ranked = call("GET", f"{path(user)}/items", params={"k": k, "now": NOW + 60})
    assert ranked["user_id"] == user and sorted(i["item_id"] for i in ranked["items"]) == sorted(items)
    d = call("POST", "/v1/decide", json={"user_id": user, "now": NOW + 60, "k": k})
    assert d["send"] is True and [i["item_id"] for i in d["items"]] == [i["item_id"] for i in ranked["items"]]
    assert call("POST", "/v1/decide", json={"user_id": neighbour, "now": NOW + 60, "k": 1})["send"] is True
    # the pushed items are excluded now: the recent-pushes record gave back exactly the ids decide packed in it
    assert call("GET", f"{path(user)}/items", params={"k": k, "now": NOW + 120})["items"] == []
    record = call("GET", f"/v1/decisions/{d['decision_id']}")
    assert record["user_id"] == user and record["items"] == [i["item_id"] for i in d["items"]]

    fb = {"decision_id": d["decision_id"], "event": "clicked", "ts": NOW + 300}
    assert call("POST", "/v1/feedback", json=fb)["accepted"] == 1
    assert call("POST", "/v1/feedback", json=fb)["duplicate"] == 1  # a retry counts once
    counters = store.redis.hget(store.keys.experiment_users(x["id"], user), ids.store(user)).split()
    assert counters[XREC["clicks"] - 1] == "1" and counters[XREC["sends"] - 1] == "1"
    assert call("POST", "/v1/feedback", json={**fb, "event": "unsubscribed"})["accepted"] == 1
    assert call("GET", path(user))["opted_out"] is True  # the user the decision named, and only them
    assert call("GET", path(neighbour))["opted_out"] is False

    export = http.get(base + "/v1/decisions/export", timeout=10,
                      params={"since": NOW - 3600, "until": NOW + 3600, "include_open": "true", "now": NOW + 600})
    rows = {row["decision_id"]: row for row in map(json.loads, export.text.splitlines())}
    assert rows[d["decision_id"]]["user_id"] == user and rows[d["decision_id"]]["items"] == record["items"]
    assert {row["user_id"] for row in rows.values()} == {user, neighbour}

    theirs, others = _user_keys(store, user), _user_keys(store, neighbour)
    assert len(theirs) == 2 + len(items) and len(others) == 3  # hash, recent pushes, an event-id marker each
    gone = call("DELETE", path(user))
    assert gone == {"user_id": user, "deleted_keys": len(theirs) + 1}  # and their experiment counters
    assert _user_keys(store, user) == [] and _user_keys(store, neighbour) == others
    assert http.get(base + path(user), timeout=10).status_code == 404
    assert call("GET", path(neighbour))["timezone"] == "Europe/Berlin"
    assert store.redis.hexists(store.keys.experiment_users(x["id"], neighbour), ids.store(neighbour))
    assert not store.redis.hexists(store.keys.experiment_users(x["id"], user), ids.store(user))
    # the neighbour's event-id marker survived; the user's went with them
    again = [{"user_id": uid, "type": "app_open", "ts": NOW, "event_id": "e0"} for uid in (neighbour, user)]
    assert call("POST", "/v1/events", json={"events": again}) == {"accepted": 1, "duplicate": 1}


def test_a_real_batch_with_a_spaced_item_id_goes_in_whole(make_app, store):
    """Online Retail's catalogue names a charge ``BANK CHARGES``: a batch of 1,000 real purchases holding its 12
    lines is accepted whole (it was a 400 for the batch), and the item is served under its own name."""
    with gzip.open(DATA, "rt", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["event"] == "purchase"]
    charges = [r for r in rows if r["item_id"] == "BANK CHARGES"]
    batch = charges + list(islice((r for r in rows if r["item_id"] != "BANK CHARGES"), 1000 - len(charges)))
    assert len(charges) == 12 and len(batch) == 1000
    events = [{"user_id": f"c{r['user_id']}", "type": "purchase", "item_id": r["item_id"], "ts": r["ts"],
               "value": round(float(r["quantity"]) * float(r["price"]), 6)} for r in batch]
    app = make_app(popular_window_days=400)  # the charges span a year
    c = app.test_client()
    r = c.post("/v1/events", json={"events": events})
    assert r.status_code == 200 and r.get_json() == {"accepted": 1000, "duplicate": 0}, r.get_data(as_text=True)
    assert interactions.item_ids(store).count("BANK CHARGES") == 1
    assert "BANK%20CHARGES" in store.redis.lrange(store.keys.item_ids(), 0, -1)  # the stored form
    popular.refresh(store, app.extensions["bandit_push"].settings)  # up to the newest day with events
    buyer = f"c{charges[0]['user_id']}"
    got = c.get(f"/v1/users/{buyer}/items?k=50").get_json()
    assert "BANK CHARGES" in [i["item_id"] for i in got["items"]]
