"""API keys, scopes, the no-key loopback mode, and per-key rate limits — through the app and over HTTP."""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading

import pytest
import requests
from werkzeug.serving import make_server

from bandit_push_api import auth
from bandit_push import cli, ratelimit
from bandit_push.config import Settings, parse_api_keys
from bandit_push.errors import ConfigError
from waits import until

GATEWAY, GATEWAY_NEW, READ, ADMIN = "gw-key-0123456789abcdef", "gw-key-rotated-42", "read-key-xyz", "admin-key-!@#"
KEYS = (f"gateway:{GATEWAY},gateway:sha256:{hashlib.sha256(GATEWAY_NEW.encode()).hexdigest()},"
        f"read:{READ},admin:{ADMIN}")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(make_app):
    return make_app(api_keys=parse_api_keys(KEYS), rate_limits={"admin": 0, "gateway": 0, "read": 0}).test_client()


def test_keys_are_kept_only_as_digests():
    parsed = parse_api_keys(KEYS)
    assert [s for s, _ in parsed] == ["gateway", "gateway", "read", "admin"]
    assert parsed[0][1] == hashlib.sha256(GATEWAY.encode()).hexdigest()
    assert parsed[1][1] == hashlib.sha256(GATEWAY_NEW.encode()).hexdigest()
    settings = Settings.from_env({"BANDIT_PUSH_API_KEYS": KEYS})
    assert GATEWAY not in repr(settings) and ADMIN not in repr(settings)
    for bad in ("root:abc", "gateway:sha256:xyz", "gateway"):
        with pytest.raises(ConfigError) as e:
            Settings.from_env({"BANDIT_PUSH_API_KEYS": bad})
        assert "api_keys" in (e.value.field or "") and "abc" not in e.value.message


@pytest.mark.parametrize("headers, code, error", [
    ({}, 401, "missing_api_key"),
    ({"Authorization": "Basic Zm9vOmJhcg=="}, 401, "missing_api_key"),
    ({"Authorization": "Bearer "}, 401, "missing_api_key"),
    (bearer("wrong"), 401, "invalid_api_key"),
    (bearer(GATEWAY + " "), 200, None),  # surrounding blanks are not part of the key
    (bearer(READ), 403, "insufficient_scope"),
    (bearer(GATEWAY), 200, None),
    (bearer(GATEWAY_NEW), 200, None),  # a second gateway key, given by its digest: rotation
    (bearer(ADMIN), 200, None),
])
def test_decide_needs_a_gateway_or_admin_key(keyed, headers, code, error):
    r = keyed.post("/v1/decide", json={"user_id": "u1"}, headers=headers)
    assert r.status_code == code, r.get_json()
    if error:
        assert r.get_json()["error"] == error and r.mimetype == "application/json"
        if code == 401:
            assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_scopes_per_endpoint(keyed):
    calls = [("post", "/v1/events", {"user_id": "u1", "type": "app_open"}, "gateway"),
             ("put", "/v1/users/u1", {"opted_out": False}, "gateway"),
             ("get", "/v1/users/u1", None, "gateway"),
             ("delete", "/v1/users/u1", None, "gateway"),
             ("get", "/v1/segments", None, "read")]
    for method, path, body, scope in calls:
        for key, key_scope in ((GATEWAY, "gateway"), (READ, "read"), (ADMIN, "admin")):
            r = getattr(keyed, method)(path, json=body, headers=bearer(key))
            allowed = key_scope in (scope, "admin")
            assert (r.status_code == 403) != allowed, (method, path, key_scope, r.get_json())
            if allowed and method == "put":
                keyed.put(path, json=body, headers=bearer(ADMIN))  # recreate for the next caller
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert keyed.get(path).status_code == 200


def test_every_registered_route_has_an_explicit_scope(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        assert auth.scope_entry(rule.rule) is not None, f"{rule.rule} has no entry in bandit_push_api.auth.ROUTE_SCOPES"


@pytest.mark.parametrize("rule, scope", [
    ("/v1/decide", "gateway"), ("/v1/users/<path:user_id>", "gateway"), ("/v1/users/<user_id>/items", "gateway"),
    ("/v1/segments", "read"), ("/v1/experiments/<exp_id>/report", "read"), ("/v1/decisions/export", "read"),
    ("/v1/experiments", "admin"), ("/v1/experiments/<exp_id>", "admin"), ("/v1/experiments/<exp_id>/stop", "admin"),
    ("/v1/models/<version>", "admin"), ("/v1/jobs/<job_id>", "admin"), ("/v1/settings", "admin"),
    ("/v1/decisions", "admin"), ("/v1/dashboards/<name>", "admin"), ("/v1/something-new", "admin"),
    ("/internal", "admin"), ("/v1/ping", "admin"),  # unlisted: fail closed
    ("/healthz", "open"), ("/readyz", "open"),
])
def test_scope_table(rule, scope):
    assert auth.scope_of(rule) == scope


def test_without_keys_only_loopback_clients_are_served(client):
    assert client.post("/v1/decide", json={"user_id": "u1"}).status_code == 200
    far = client.post("/v1/decide", json={"user_id": "u1"}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert far.status_code == 403 and far.get_json()["error"] == "auth_not_configured"
    proxied = client.post("/v1/decide", json={"user_id": "u1"}, headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 403
    assert client.get("/healthz", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200


def test_rate_limit_answers_429_with_retry_after(make_app, store):
    # one token per 100 s: a loaded machine cannot refill the bucket between the five requests
    c = make_app(api_keys=parse_api_keys(KEYS), rate_limits={"gateway": 0.01},
                 rate_bursts={"gateway": 3.0}).test_client()
    codes = [c.post("/v1/decide", json={"user_id": "u1"}, headers=bearer(GATEWAY)).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    r = c.post("/v1/events", json={"user_id": "u1", "type": "app_open"}, headers=bearer(GATEWAY))
    assert r.status_code == 429 and r.get_json()["error"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
    # the bucket is per key: the rotated gateway key has its own
    assert c.post("/v1/decide", json={"user_id": "u1"}, headers=bearer(GATEWAY_NEW)).status_code == 200
    # no secret in Redis: the bucket is named by a digest prefix
    names = list(store.redis.scan_iter(match=f"{store.settings.prefix}rl:*"))
    assert len(names) == 2 and not any(GATEWAY in n for n in names)


def test_token_bucket_refills_at_its_rate(store):
    key = "k1"
    assert ratelimit.take(store, key, rate=10.0, burst=2.0) is None
    assert ratelimit.take(store, key, rate=10.0, burst=2.0) is None
    wait = ratelimit.take(store, key, rate=10.0, burst=2.0)
    assert wait is not None and 0 < wait <= 0.1
    # move the bucket's clock back 0.25 s (instead of sleeping): 2.5 tokens refill, capped at the burst
    bucket = store.keys.rate_bucket(key)
    store.redis.hset(bucket, "t", repr(float(store.redis.hget(bucket, "t")) - 0.25))
    assert ratelimit.take(store, key, rate=10.0, burst=2.0) is None
    assert ratelimit.take(store, key, rate=10.0, burst=2.0) is None
    assert ratelimit.take(store, key, rate=10.0, burst=2.0) is not None
    assert 0 < store.redis.pttl(bucket) <= 1200  # an idle bucket disappears once it would be full


def test_keys_over_real_http(make_app):
    app = make_app(api_keys=parse_api_keys(KEYS))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert requests.post(f"{base}/v1/decide", json={"user_id": "u"}, timeout=5).status_code == 401
        assert requests.post(f"{base}/v1/decide", json={"user_id": "u"}, headers=bearer(GATEWAY),
                             timeout=5).status_code == 200
        assert requests.get(f"{base}/v1/segments", headers=bearer(GATEWAY), timeout=5).status_code == 403
    finally:
        server.shutdown()
        thread.join(5)


def test_serve_refuses_a_public_address_without_keys(monkeypatch, capsys):
    monkeypatch.delenv("BANDIT_PUSH_API_KEYS", raising=False)
    assert cli.main(["serve", "--host", "0.0.0.0"]) != 0
    assert "refusing to listen on 0.0.0.0" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_refuses_a_public_address_without_keys(redis_url):
    env = {k: v for k, v in os.environ.items() if k != "BANDIT_PUSH_API_KEYS"}
    env["REDIS_URL"] = redis_url
    proc = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "python:bandit_push_api.gunicorn_conf", "--bind",
                           f"0.0.0.0:{_free_port()}", "bandit_push_api:create_app()"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "no API keys configured" in proc.stderr


def test_a_keyed_rate_limited_decide_is_still_one_redis_command(make_app, tmp_path):
    """On one Redis the token is taken inside the decide script: one FCALL (EVALSHA on a server without Functions)
    per decide, counted by a Redis of our own; a send adds its arms' credit (one FCALL), and a new user or the
    slot's first decision of the hour their shared writes, and nothing else is sent while the snapshot holds."""
    import redis as redis_py
    from redis_proc import RedisProcess

    server = RedisProcess(str(tmp_path), aof=False)
    server.start()
    try:
        app = make_app(redis_url=server.url, api_keys=parse_api_keys(KEYS), rate_limits={"gateway": 1000.0},
                       rate_bursts={"gateway": 1000.0}, snapshot_seconds=3600.0)
        c = app.test_client()
        # with an experiment running, so that the bucket's key sits after the experiment's keys
        x = c.post("/v1/experiments", headers=bearer(ADMIN), json={"name": "t", "variants": [
            {"name": "control", "weight": 1, "policy": {"name": "thompson"}},
            {"name": "b", "weight": 1, "policy": {"name": "cadence"}}]}).get_json()
        assert c.post(f"/v1/experiments/{x['id']}/start", headers=bearer(ADMIN)).status_code == 200
        assert c.post("/v1/decide", json={"user_id": "warm"}, headers=bearer(GATEWAY)).status_code == 200
        probe = redis_py.Redis.from_url(server.url, decode_responses=True)
        seen: list[str] = []
        with probe.monitor() as monitor:
            def watch():
                try:
                    for cmd in monitor.listen():
                        if cmd["client_type"] != "lua":  # what clients sent, not what scripts called
                            seen.append(cmd["command"])
                except (redis_py.RedisError, OSError, ValueError):  # the monitor connection closed
                    pass

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            sends = 0
            for i in range(20):
                r = c.post("/v1/decide", json={"user_id": f"u{i}"}, headers=bearer(GATEWAY))
                assert r.status_code == 200 and r.get_json()["experiment"]["id"] == x["id"]
                sends += r.get_json()["send"]
            probe.ping()  # a marker: everything before it has been seen
            until(lambda: any(cmd.startswith("PING") for cmd in seen), 10, "MONITOR saw the marker")
        store = app.extensions["bandit_push"].store
        name = {store.decide_script.function or store.decide_script.script.sha: "decide",
                store.credit_script.function or store.credit_script.script.sha: "credit"}
        client_commands = [name.get(cmd.split()[1].strip('"'), cmd.split()[0]) if cmd.startswith(("FCALL", "EVALSHA"))
                           else cmd.split()[0] for cmd in seen if cmd.split()[0] not in ("PING", "HELLO", "CLIENT")]
        assert client_commands.count("decide") == 20 and client_commands.count("credit") == sends, client_commands
        # the new users' sizes and the slots' bitmap marks (all new users, slots first of the hour but for one)
        assert set(client_commands) <= {"decide", "credit", "HINCRBY", "SETBIT", "EXPIRE"}, client_commands
        assert client_commands.count("HINCRBY") == sends, client_commands
        probe = redis_py.Redis.from_url(server.url, decode_responses=True)
        # an empty bucket refuses before reading or writing anything else
        tight = make_app(redis_url=server.url, api_keys=parse_api_keys(KEYS), rate_limits={"gateway": 0.01},
                         rate_bursts={"gateway": 1.0}).test_client()
        assert tight.post("/v1/decide", json={"user_id": "x"}, headers=bearer(GATEWAY_NEW)).status_code == 200
        before = set(probe.scan_iter(count=1000))
        r = tight.post("/v1/decide", json={"user_id": "y"}, headers=bearer(GATEWAY_NEW))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 99
        assert set(probe.scan_iter(count=1000)) == before  # no decision record, no user: nothing but the bucket
        probe.close()
        app.extensions["bandit_push"].store.close()
    finally:
        server.stop()
