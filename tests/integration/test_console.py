"""The console without a browser: access (keys, cookie, scopes, CSRF, loopback), escaping, the creation form's
errors, every page with and without data. The browser tests (test_console_browser.py) drive the same pages."""
from __future__ import annotations

import re
import time

import pytest
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from bandit_push import experiment_report, experiments
from bandit_push.config import parse_api_keys

ADMIN, READ, GATEWAY = "adm-0d9e2f61", "rd-8a7b6c5d", "gw-31f0aa9b"
KEYS = parse_api_keys(f"admin:{ADMIN},read:{READ},gateway:{GATEWAY}")
TWO = {"name": "two", "variants": [{"name": "a", "policy": {"name": "thompson"}},
                                   {"name": "b", "policy": {"name": "ucb"}}]}


def token(page) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def signed_in(app, key: str):
    """A test client signed in with ``key``."""
    c = app.test_client()
    page = c.get("/console/sign-in")
    r = c.post("/console/sign-in", data={"csrf": token(page), "key": key, "next": "/console/segments"})
    assert r.status_code == 302 and r.headers["Location"] == "/console/segments"
    return c


@pytest.fixture
def keyed(make_app):
    return make_app(api_keys=KEYS)


def test_sign_in_keeps_the_key_in_a_signed_httponly_strict_cookie(keyed):
    c = keyed.test_client()
    r = c.get("/console/experiments")
    assert r.status_code == 302 and r.headers["Location"] == "/console/sign-in?next=/console/experiments"
    cookie = r.headers["Set-Cookie"]  # the first visit gets its nonce (the CSRF tokens derive from it)
    page = c.get("/console/sign-in")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert c.post("/console/sign-in", data={"key": ADMIN}).status_code == 403  # no CSRF token
    for key, says in ((GATEWAY, "a gateway key cannot sign in"), ("adm-guessed", "not a configured API key")):
        r = c.post("/console/sign-in", data={"csrf": token(page), "key": key})
        assert r.status_code == 401 and says in r.get_data(as_text=True)
    r = c.post("/console/sign-in", data={"csrf": token(page), "key": ADMIN, "next": "//evil.example/x"})
    assert r.headers["Location"] == "/console/experiments"  # never off the console
    signed = r.headers["Set-Cookie"]
    assert ADMIN not in signed.split(";")[0] and "HttpOnly" in signed  # signed and encoded, not the bare key
    assert c.get("/console/experiments").status_code == 200
    # an edited cookie is no sign-in
    value = signed.split(";")[0].split("=", 1)[1]
    c.set_cookie("bp_console", value[:-2] + ("AA" if not value.endswith("AA") else "BB"), path="/console")
    assert c.get("/console/experiments").status_code == 302


def test_a_key_taken_out_of_the_configuration_signs_its_users_out(make_app):
    app = make_app(api_keys=KEYS)
    c = signed_in(app, ADMIN)
    cookie = c.get_cookie("bp_console", path="/console").value
    rotated = make_app(api_keys=parse_api_keys(f"admin:adm-new-one,read:{READ}")).test_client()
    rotated.set_cookie("bp_console", cookie, path="/console")
    assert rotated.get("/console/experiments").status_code == 302


def test_a_read_key_sees_every_page_and_changes_nothing(keyed, store):
    x = experiments.create(store, store.settings, TWO)
    experiments.transition(store, x.id, "start")
    c = signed_in(keyed, READ)
    for path in ("/console/", "/console/experiments", f"/console/experiments/{x.id}", "/console/segments",
                 "/console/models", "/console/decisions", "/console/evaluate"):
        r = c.get(path)
        assert r.status_code == 200, path
        assert "New experiment" not in r.get_data(as_text=True) and "Refit mf" not in r.get_data(as_text=True)
    csrf = token(c.get("/console/experiments"))
    assert c.get("/console/experiments/new").status_code == 403
    for path in (f"/console/experiments/{x.id}/stop", f"/console/experiments/{x.id}/pause",
                 "/console/experiments/new", "/console/models/mf/refit"):
        r = c.post(path, data={"csrf": csrf, "name": "x"})
        assert r.status_code == 403 and "needs an admin key" in r.get_data(as_text=True), path
    assert experiments.get(store, x.id).status == "running"
    assert len(experiments.list_all(store)) == 1


def test_state_changes_need_this_visitors_csrf_token(keyed, store):
    x = experiments.create(store, store.settings, TWO)
    admin, other = signed_in(keyed, ADMIN), signed_in(keyed, ADMIN)
    theirs = token(other.get("/console/experiments"))
    for data in ({}, {"csrf": ""}, {"csrf": "0" * 64}, {"csrf": theirs}):
        r = admin.post(f"/console/experiments/{x.id}/start", data=data)
        assert r.status_code == 403 and "security token" in r.get_data(as_text=True)
    assert experiments.get(store, x.id).status == "draft"
    mine = token(admin.get(f"/console/experiments/{x.id}/start"))
    r = admin.post(f"/console/experiments/{x.id}/start", data={"csrf": mine})
    assert r.status_code == 303 and experiments.get(store, x.id).status == "running"
    # a second start is refused by the domain, said on a page
    r = admin.post(f"/console/experiments/{x.id}/start", data={"csrf": mine})
    assert r.status_code == 409 and "it is running" in r.get_data(as_text=True)


def test_without_keys_only_loopback_clients_get_the_console(client):
    assert client.get("/console/experiments").status_code == 200
    far = client.get("/console/experiments", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert far.status_code == 403 and "only loopback clients" in far.get_data(as_text=True)
    assert client.get("/console/experiments", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403
    # state changes still need the token, so another site cannot post to a local console
    assert client.post("/console/experiments/new", data={"name": "x"}).status_code == 403


def test_pages_send_security_headers(client):
    r = client.get("/console/experiments")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["Cache-Control"] == "no-store" and r.headers["X-Content-Type-Options"] == "nosniff"
    js = client.get("/console/static/htmx.min.js")
    assert js.status_code == 200 and js.headers.get("Cache-Control") != "no-store"
    js.close()


def test_nothing_typed_is_rendered_unescaped(client, store):
    evil = "<script>alert(1)</script>"
    x = experiments.create(store, store.settings, {**TWO, "name": evil})
    for path in ("/console/experiments", f"/console/experiments/{x.id}", f"/console/experiments/{x.id}/stop",
                 "/console/decisions?user_id=%3Cimg/src=x/onerror=alert(1)%3E",
                 "/console/decisions?decision_id=%22%3E%3Cscript%3Ealert(2)%3C/script%3E",
                 "/console/evaluate?policies=%3Cscript%3Ealert(3)%3C/script%3E"):
        body = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in body and "<img/src" not in body, path
        assert "&lt;script&gt;alert" in body or "&lt;img/src" in body, path
    page = client.get("/console/experiments/new")
    r = client.post("/console/experiments/new", data={"csrf": token(page), "name": evil, "variants[0].name": "a",
                                                      "variants[1].name": '"><b>b</b>'})
    body = r.get_data(as_text=True)
    assert r.status_code == 400 and "<b>b</b>" not in body and "&#34;&gt;&lt;b&gt;b&lt;/b&gt;" in body


def _create(client, rows: int, **fields):
    page = client.get("/console/experiments/new")
    data = {"csrf": token(page), "rows": str(rows), "name": "form", **fields}
    for i in range(rows):  # a browser always sends the select's value
        data.setdefault(f"variants[{i}]__policy__name", "thompson")
    return client.post("/console/experiments/new", data={k.replace("__", "."): v for k, v in data.items()})


def test_the_form_shows_the_apis_error_beside_the_field_the_user_typed_in(client, store):
    # row 2 left blank: the body's variants[2] is the form's row 3, and the error goes there
    r = _create(client, 4, **{"variants[0]__name": "a", "variants[1]__name": "b", "variants[3]__name": "d",
                              "variants[3]__weight": "-2"})
    body = r.get_data(as_text=True)
    assert r.status_code == 400
    assert re.search(r'id="variants\[3\]\.weight-error"[^>]*>variants\[2\]\.weight must be a positive number', body)
    assert 'id="variants[3].weight" name="variants[3].weight" type="text" value="-2"' in body  # kept as typed
    r = _create(client, 2, **{"variants[0]__name": "a", "variants[1]__name": "b", "variants[1]__policy": "cost=1"})
    assert 'id="variants[1].policy-error"' in r.get_data(as_text=True)  # not JSON: the form's own check
    r = _create(client, 2, **{"variants[0]__name": "a", "variants[1]__name": "b", "variants[1]__policy": '{"nope": 1}'})
    assert re.search(r'id="variants\[1\]\.policy-error"[^>]*>[^<]*has no setting &#39;nope&#39;', r.get_data(as_text=True))
    r = _create(client, 2, **{"variants[0]__name": "a", "variants[1]__name": "b",
                              "variants[1]__guardrails__max_per_day": "0"})
    assert 'id="variants[1].guardrails.max_per_day-error"' in r.get_data(as_text=True)
    assert experiments.list_all(store) == []
    r = _create(client, 3, **{"variants[0]__name": "a", "variants[1]__name": "b", "variants[1]__weight": "3",
                              "variants[1]__policy__name": "ucb", "variants[1]__policy": '{"cost": 0.2}',
                              "variants[1]__guardrails__min_gap_hours": "6", "segments": "s1, s2"})
    assert r.status_code == 303
    x = experiments.list_all(store)[0]
    assert r.headers["Location"] == f"/console/experiments/{x.id}"
    assert [v.to_json() for v in x.variants] == [
        {"name": "a", "weight": 1.0, "policy": {"name": "thompson"}, "guardrails": {}},
        {"name": "b", "weight": 3.0, "policy": {"name": "ucb", "cost": 0.2}, "guardrails": {"min_gap_hours": 6.0}}]
    assert x.segments == ("s1", "s2")


def test_every_page_with_data_and_a_failed_job(make_app, store, settings, monkeypatch):
    client = make_app(refit_retries=0, snapshot_seconds=0.0).test_client()  # (its decides teach the next ones)
    x = experiments.create(store, settings, TWO)
    experiments.transition(store, x.id, "start")
    for i in range(30):
        d = client.post("/v1/decide", json={"user_id": f"u{i}", "now": time.time() - 26 * 3600}).get_json()
        if d["send"] and i % 2:
            client.post("/v1/feedback", json={"decision_id": d["decision_id"], "event": "clicked"})
    # a refit that fails (nothing to fit on is not a failure: it finishes saying so), run by a real RQ worker in
    # this process: the models page shows its error
    from bandit_push import refit

    def broken(*args):
        raise OSError("the disk is gone")

    monkeypatch.setitem(refit.REFITS, "mf", broken)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BANDIT_PUSH_PREFIX", settings.prefix)
    page = client.get("/console/models")
    r = client.post("/console/models/mf/refit", data={"csrf": token(page)})
    assert r.status_code == 303 and r.headers["Location"].startswith("/console/jobs/")
    queue = Queue(settings.queue, connection=store.binary, serializer=JSONSerializer)
    try:
        SimpleWorker([queue], connection=store.binary, serializer=JSONSerializer).work(burst=True)
        job = client.get(r.headers["Location"] + "/state").get_data(as_text=True)
        assert "failed" in job and "hx-get" not in job  # ended: the fragment stops polling
        assert "the disk is gone" in client.get("/console/models").get_data(as_text=True)
    finally:
        queue.delete(delete_jobs=True)
    rep = experiment_report.report(store, x.id)
    page = client.get(f"/console/experiments/{x.id}").get_data(as_text=True)
    assert rep["summary"].replace("'", "&#39;") in page
    assert all(f'data-variant="{v["name"]}"' in page for v in rep["variants"])
    looked = client.get(f"/console/decisions?decision_id={d['decision_id']}").get_data(as_text=True)
    drove = client.get(f"/v1/decisions/{d['decision_id']}").get_json()["explanation"]
    assert f"decided by <strong>{drove['decided_by']}</strong>" in looked and d["decision_id"] in looked
    decisions = client.get("/console/decisions?hours=30").get_data(as_text=True)
    assert "30 decisions in the window" in decisions and 'id="reasons"' in decisions
    evaluated = client.get('/console/evaluate?policies=[{"name":"ucb"}]')
    assert evaluated.status_code == 200 and 'data-estimator="dr"' in evaluated.get_data(as_text=True)
    experiments.transition(store, x.id, "stop")  # later decides learn in the service's own arms
    for i in range(30, 40):
        client.post("/v1/decide", json={"user_id": f"u{i}"})
    segs = client.get("/console/segments").get_data(as_text=True)
    assert 'data-segment="new"' in segs
    seg = client.get("/console/segments/new").get_data(as_text=True)
    assert 'id="heat"' in seg and "data-recency=" in seg  # the sends taught segment new something
    assert client.get("/console/segments/nope").status_code == 404
