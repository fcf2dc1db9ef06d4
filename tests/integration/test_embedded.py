"""The embedded Redis a newcomer's `bandit-push serve` (and the test session) starts must really stop."""
from __future__ import annotations

import pytest
import redis

from bandit_push import embedded


def test_stop_shuts_the_embedded_server_down_and_keeps_its_data(tmp_path):
    server = embedded.start(str(tmp_path))
    client = redis.Redis.from_url(server.url)
    client.set("k", "v")
    client.close()
    server.stop()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(server.url, socket_connect_timeout=1).ping()
    server.stop()  # stopping twice is harmless
    again = embedded.start(str(tmp_path))  # the RDB file was saved on the way down
    try:
        assert redis.Redis.from_url(again.url).get("k") == b"v"
    finally:
        again.stop()
