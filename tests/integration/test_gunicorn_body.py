"""Requests as gunicorn (with the service's configuration) hands them to the app (``wsgi.input_terminated`` set,
its own input stream): a Content-Length body, a chunked one, one over the size limit, one shorter than its
Content-Length; and what gunicorn answers itself (a request line too long) is JSON too."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from redis_proc import free_port, wait_healthy

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def gunicorn_url(store):
    port = free_port()
    env = {**os.environ, "REDIS_URL": store.settings.redis_url, "BANDIT_PUSH_PREFIX": store.settings.prefix,
           "BANDIT_PUSH_QUIET_HOURS": "off", "BANDIT_PUSH_MAX_BODY_BYTES": "4096"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-c", "python:bandit_push_api.gunicorn_conf",
                             "bandit_push_api:create_app()", "-b",
                             f"127.0.0.1:{port}", "-w", "1", "--log-level", "warning"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, timeout=60, what="gunicorn")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def _raw(url: str, head: bytes, body: bytes) -> tuple[int, bytes]:
    """One request written as given (so the framing can be wrong), the status and body of the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head + b"\r\n" + body)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def test_decide_bodies_under_gunicorn(gunicorn_url, store):
    now = 1_780_000_000
    r = requests.post(f"{gunicorn_url}/v1/decide", json={"user_id": "cl", "now": now}, timeout=10)
    assert r.status_code == 200 and store.redis.exists(store.keys.decision(r.json()["decision_id"]))

    def chunks():  # requests sends a generator chunked, without a Content-Length
        yield b'{"user_id": "ch'
        yield b'unked", "now": %d}' % now
    r = requests.post(f"{gunicorn_url}/v1/decide", data=chunks(), headers={"Content-Type": "application/json"},
                      timeout=10)
    assert r.status_code == 200 and store.redis.exists(store.keys.decision(r.json()["decision_id"]))

    big = b'{"user_id": "%s"}' % (b"u" * 5000)
    r = requests.post(f"{gunicorn_url}/v1/decide", data=big, headers={"Content-Type": "application/json"},
                      timeout=10)
    assert r.status_code == 413 and r.json()["field"] == "body"

    # a body shorter than its Content-Length (the client gave up): a 4xx, nothing decided
    body = b'{"user_id": "short", "now": %d}' % now
    status, answer = _raw(gunicorn_url, b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n" % (len(body) + 10), body)
    assert status == 400 and b'"incomplete_body"' in answer, answer


def test_what_gunicorn_answers_itself_is_json_and_path_ids_stay_one_segment(gunicorn_url):
    too_long = requests.get(f"{gunicorn_url}/v1/users/{'x' * 5000}", timeout=10)
    assert too_long.status_code == 414 and too_long.headers["Content-Type"] == "application/json"
    assert too_long.json()["error"] == "uri_too_long" and too_long.json()["field"] == "path"
    long_id = requests.get(f"{gunicorn_url}/v1/users/{'x' * 200}", timeout=10)  # within gunicorn's limit: ours
    assert long_id.status_code == 400 and long_id.json()["field"] == "user_id"
    assert requests.put(f"{gunicorn_url}/v1/users/a%2Fb", json={}, timeout=10).json()["user_id"] == "a/b"
    assert requests.get(f"{gunicorn_url}/v1/users/a%2Fb/items", timeout=10).status_code == 200
    assert requests.put(f"{gunicorn_url}/v1/users/a/items", json={}, timeout=10).status_code == 405
