"""Many simultaneous HTTP decides for one user, through a real threaded server: what the one-send guarantee meets."""
from __future__ import annotations

import threading
from typing import Any

import requests
from werkzeug.serving import make_server


def concurrent_decides(app: Any, body: dict, n: int = 20) -> list[dict]:
    """``n`` POST /v1/decide requests with ``body``, released together by a barrier; their answers."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1/decide"
    barrier, results = threading.Barrier(n), []

    def one():
        with requests.Session() as s:
            barrier.wait()
            results.append(s.post(url, json=body, timeout=30).json())

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    server.shutdown()
    return results
