"""The gateways' client (bandit_push.client) against a scripted HTTP server on loopback: what it retries and what
it does not, timeouts, and the errors it raises."""
from __future__ import annotations

import json
import socket
import socketserver
import threading
import time

import pytest

from bandit_push.client import ApiError, Client, Unreachable


class _Handler(socketserver.BaseRequestHandler):
    """Reads one request and answers as the server's script says for this arrival: ``(status, body, headers)``,
    ``"drop"`` (close without answering) or ``"hang"`` (answer nothing, keep the connection)."""

    def handle(self):
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = self.request.recv(65536)
            if not data:
                return
            buf += data
        head, body = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        length = next((int(v) for k, _, v in (x.partition(":") for x in lines[1:]) if k.lower() == "content-length"), 0)
        while len(body) < length:
            body += self.request.recv(65536)
        server = self.server
        with server.lock:
            server.seen.append((lines[0], json.loads(body) if body else None,
                                {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}))
            step = server.script[min(len(server.seen), len(server.script)) - 1]
        if step == "drop":
            return
        if step == "hang":
            time.sleep(2)
            return
        status, answer, headers = step
        out = json.dumps(answer).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.request.sendall(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(out)}\r\n"
                             f"Connection: close\r\n{extra}\r\n".encode() + out)


@pytest.fixture
def server():
    """A server answering each arrival by ``server.script`` (the last entry repeats); ``server.seen`` records them."""
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.seen, srv.script, srv.lock = [], [(200, {}, {})], threading.Lock()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


UNAVAILABLE = (503, {"error": "redis_unavailable", "message": "retry shortly"}, {"Retry-After": "0"})
DECISION = {"decision_id": "d1", "send": True, "items": []}


def test_a_503_is_retried_with_backoff_then_answered(server):
    server.script = [UNAVAILABLE, UNAVAILABLE, (200, DECISION, {})]
    with Client(server.url, retries=3, backoff=0.05) as c:
        assert c.decide("alice", now=1.8e9, k=2) == DECISION
    assert [s[0] for s in server.seen] == ["POST /v1/decide HTTP/1.1"] * 3
    assert server.seen[0][1] == {"user_id": "alice", "now": 1.8e9, "k": 2}  # unset fields are not sent


def test_retries_run_out_on_a_lasting_503_and_the_error_says_so(server):
    server.script = [UNAVAILABLE]
    with Client(server.url, retries=2, backoff=0.01) as c, pytest.raises(ApiError) as e:
        c.feedback("d1", "clicked")
    assert len(server.seen) == 3 and e.value.status == 503 and e.value.code == "redis_unavailable"


def test_an_error_answer_names_the_field(server):
    server.script = [(400, {"error": "invalid_argument", "message": "k must be between 1 and 50", "field": "k"}, {})]
    with Client(server.url) as c, pytest.raises(ApiError) as e:
        c.decide("alice", k=0)
    assert (e.value.status, e.value.field) == (400, "k") and "k must be" in str(e.value)
    assert len(server.seen) == 1  # a client mistake is not retried


def test_a_lost_answer_is_retried_for_feedback_but_not_for_decide(server):
    server.script = ["drop", (200, {"status": "accepted"}, {})]
    with Client(server.url, retries=2, backoff=0.01) as c:
        assert c.feedback("d1", "opened") == {"status": "accepted"}  # counts once, so safe to send again
        assert len(server.seen) == 2
        server.seen.clear()
        with pytest.raises(Unreachable):
            c.decide("alice")  # a second arrival would be a second decision
        assert len(server.seen) == 1


def test_events_are_retried_after_a_lost_answer_only_when_each_has_an_event_id(server):
    server.script = ["drop", (200, {"accepted": 1, "duplicate": 0}, {})]
    with Client(server.url, retries=2, backoff=0.01) as c:
        assert c.events([{"user_id": "u", "type": "view", "item_id": "i", "event_id": "e1"}])["accepted"] == 1
        server.seen.clear()
        with pytest.raises(Unreachable):
            c.events([{"user_id": "u", "type": "view", "item_id": "i"}])
    assert len(server.seen) == 1


def test_connection_refused_is_retried_then_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    c = Client(f"http://127.0.0.1:{port}", retries=2, backoff=0.01)
    with pytest.raises(Unreachable, match="no answer"):
        c.decide("alice")


def test_a_server_that_does_not_answer_times_out(server):
    server.script = ["hang"]
    c = Client(server.url, timeout=0.3, retries=0)
    started = time.monotonic()
    with pytest.raises(Unreachable):
        c.put_user("alice", timezone="UTC")
    assert time.monotonic() - started < 1.5


def test_the_key_is_sent_and_user_ids_are_escaped_in_paths(server):
    server.script = [(200, {"user_id": "a b/c"}, {})]
    with Client(server.url, api_key="s3cret") as c:
        c.get_user("a b/c", now=1.8e9)
    line, _, headers = server.seen[0]
    assert line == "GET /v1/users/a%20b%2Fc?now=1800000000.0 HTTP/1.1" and headers["authorization"] == "Bearer s3cret"
