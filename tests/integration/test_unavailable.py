"""Redis unreachable: every endpoint that needs it answers 503 with Retry-After, quickly; liveness stays up."""
import socket
import time

import pytest

from bandit_push_api import create_app


@pytest.fixture
def down_client(settings):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(settings.replace(redis_url=f"redis://127.0.0.1:{port}/0", redis_timeout_s=0.5))
    return app.test_client()


@pytest.mark.parametrize("method, path, body", [
    ("post", "/v1/decide", {"user_id": "u"}),
    ("post", "/v1/feedback", {"decision_id": "0123456789abcdef0123.default", "event": "clicked"}),
    ("post", "/v1/events", {"user_id": "u", "type": "app_open"}),
    ("put", "/v1/users/u", {"opted_out": True}),
    ("get", "/v1/users/u", None),
    ("delete", "/v1/users/u", None),
    ("get", "/v1/segments", None),
    ("get", "/readyz", None),
])
def test_503_with_retry_after(down_client, method, path, body):
    started = time.monotonic()
    r = getattr(down_client, method)(path, json=body)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.get_json()["error"] == "redis_unavailable"
    assert time.monotonic() - started < 3


def test_liveness_needs_no_redis(down_client):
    assert down_client.get("/healthz").status_code == 200
