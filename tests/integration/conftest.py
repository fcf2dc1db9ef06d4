"""Fixtures of the integration tests that need a redis-server of their own (faults, workers, shutdown)."""
from __future__ import annotations

import pytest
from redis_proc import RedisProcess


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server process of this test's own (free port, temporary directory, no AOF): safe to kill."""
    server = RedisProcess(str(tmp_path), aof=False)
    server.start()
    yield server
    server.stop()
