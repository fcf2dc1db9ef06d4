"""The simulator's HTTP client (sim.gateway.HttpGateway) against a tiny raw-socket server on loopback:
keep-alive, connection-per-request, chunked bodies, a kept-alive connection the server dropped, errors."""
import json
import socketserver
import threading

import pytest

from bandit_push.sim.gateway import HttpGateway


class _Handler(socketserver.BaseRequestHandler):
    """Answers each request with its own JSON body echoed under "got", framed as the path asks:
    /keep (Content-Length, kept alive), /close (Connection: close), /eof (HTTP/1.0, no length: the close
    ends the body), /chunked (chunked, kept alive), /once (kept alive in the headers, then dropped), /fail (500)."""

    def handle(self):
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = self.request.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ")
            length = next(int(v) for k, _, v in (x.partition(":") for x in lines[1:]) if k.lower() == "content-length")
            while len(buf) < length:
                buf += self.request.recv(65536)
            body, buf = buf[:length], buf[length:]
            self.server.seen.append((method, path))
            out = json.dumps({"got": json.loads(body), "path": path}).encode()
            if path == "/fail":
                self.request.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n%s" % (len(out), out))
            elif path == "/close":
                self.request.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(out), out))
                return
            elif path == "/eof":
                self.request.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + out)
                return
            elif path == "/chunked":
                half = len(out) // 2
                self.request.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, out[:half], len(out) - half, out[half:]))
            else:
                self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(out), out))
                if path == "/once":
                    return  # the server drops the connection it said it would keep


@pytest.fixture
def server():
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.seen = []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("path", ["/keep", "/close", "/eof", "/chunked", "/once"])
def test_answers_come_back_in_order_whatever_the_framing(server, path):
    gw = HttpGateway(f"http://127.0.0.1:{server.server_address[1]}", connections=3)
    try:
        bodies = [json.dumps({"i": i}).encode() for i in range(25)]
        answers = gw._exchange([("POST", path, b) for b in bodies])
        assert [a["got"]["i"] for a in answers] == list(range(25)) and {a["path"] for a in answers} == {path}
        assert gw.requests == 25 and len(server.seen) == 25  # /once: each dropped connection retried, never twice
        if path in ("/keep", "/chunked"):
            assert len(gw._idle) == 3  # kept alive for the next call
        assert gw._call("POST", path, {"again": 1})["got"] == {"again": 1}
    finally:
        gw.close()


def test_an_error_status_raises_and_leaves_the_client_usable(server):
    gw = HttpGateway(f"http://127.0.0.1:{server.server_address[1]}", connections=2)
    try:
        with pytest.raises(RuntimeError, match="HTTP 500"):
            gw._exchange([("POST", "/keep", b"{}"), ("POST", "/fail", b"{}"), ("POST", "/keep", b"{}")])
        assert not gw._selector.get_map()  # nothing left half-read
        assert gw._call("POST", "/keep", {"x": 2})["got"] == {"x": 2}
    finally:
        gw.close()


def test_decide_bodies_are_what_json_dumps_writes(server):
    gw = HttpGateway(f"http://127.0.0.1:{server.server_address[1]}")
    sent = []
    gw._exchange, real = (lambda reqs: sent.extend(reqs) or [_DECISION] * len(reqs)), gw._exchange
    try:
        answers = gw.decide_many([("sim1-0", 1769990400.123456789, 3), ('we"ird', 1e9, 1)])
    finally:
        gw._exchange = real
        gw.close()
    assert [b for _, _, b in sent] == [json.dumps({"user_id": u, "now": n, "k": k}, separators=(",", ":")).encode()
                                      for u, n, k in [("sim1-0", 1769990400.123456789, 3), ('we"ird', 1e9, 1)]]
    assert answers[0].send and answers[0].items == ["a", "b"] and answers[0].context == ("0-3h", "evening")


_DECISION = {"decision_id": "d.default", "send": True, "items": [{"item_id": "a", "score": 1.0}, {"item_id": "b", "score": 0.5}],
             "segment": "s1", "reason": "policy", "context": {"recency": "0-3h", "daypart": "evening"}}
