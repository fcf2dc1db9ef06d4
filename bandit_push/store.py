"""The Redis store: one client per process, the Lua scripts registered once on it."""
from __future__ import annotations

import hashlib
import os
import threading

import redis

from bandit_push import scripts
from bandit_push.config import Settings
from bandit_push.keys import Keys


class Store:
    """A connection to the deployment's Redis with its key builder and scripts.

    The decide script is registered by each :class:`~bandit_push.decide.DecisionEngine`, with its
    settings compiled in. Scripts are registered with ``register_script``: the ``Script`` object computes its
    SHA once, reloads on NOSCRIPT, and can run inside a pipeline.
    """

    def __init__(self, client: redis.Redis, settings: Settings):
        self.redis = client
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.feedback_script = client.register_script(scripts.FEEDBACK)
        self.user_evidence_script = client.register_script(scripts.USER_EVIDENCE)
        self.event_script = client.register_script(scripts.EVENT)
        self.upsert_user_script = client.register_script(scripts.UPSERT_USER)
        self.compact_script = client.register_script(scripts.COMPACT)
        self.set_segment_script = client.register_script(scripts.SET_SEGMENT)
        self.items_script = client.register_script(scripts.ITEMS)
        self.rate_limit_script = client.register_script(scripts.RATE_LIMIT)
        self.delete_user_script = client.register_script(scripts.DELETE_USER)
        self.experiment_transition_script = client.register_script(scripts.EXPERIMENT_TRANSITION)
        self.experiment_update_script = client.register_script(scripts.EXPERIMENT_UPDATE)
        self._binary: redis.Redis | None = None
        self._local = threading.local()
        self._functions: bool | None = None

    @classmethod
    def connect(cls, settings: Settings) -> "Store":
        """A store on ``settings.redis_url`` (which must be set: see :mod:`bandit_push.embedded`)."""
        if not settings.redis_url:
            raise ValueError("settings.redis_url is not set; start the embedded redis first")
        client = redis.Redis.from_url(settings.redis_url, decode_responses=True,
                                      socket_timeout=settings.redis_timeout_s,
                                      socket_connect_timeout=settings.redis_timeout_s,
                                      health_check_interval=30)
        return cls(client, settings)

    @property
    def binary(self) -> redis.Redis:
        """A client on the same server that returns bytes (for packed interaction chunks)."""
        if self._binary is None:
            kwargs = dict(self.redis.connection_pool.connection_kwargs)
            kwargs["decode_responses"] = False
            pool = redis.ConnectionPool(connection_class=self.redis.connection_pool.connection_class, **kwargs)
            self._binary = redis.Redis(connection_pool=pool)
        return self._binary

    @property
    def functions(self) -> bool:
        """Whether the server runs Redis Functions (7.0 and later; asked once)."""
        if self._functions is None:
            version = str(self.redis.info("server").get("redis_version", "0"))
            self._functions = int(version.split(".")[0]) >= 7
        return self._functions

    def library_tag(self) -> str:
        """The start of the names of this prefix's function libraries (letters, digits, underscores only)."""
        return "bp_" + hashlib.sha1(self.settings.prefix.encode()).hexdigest()[:10] + "_"

    def thread_connection(self) -> redis.connection.Connection:
        """This thread's own connection for hot-path commands (decide), taken from the pool once.

        Sending on it skips taking and returning a pool connection per call. It goes back to the pool
        when the thread ends (the holder lives only in this thread-local): a server that starts a thread
        per request (werkzeug's threaded server) would otherwise exhaust the pool. Renewed after a fork.
        """
        held = getattr(self._local, "held", None)
        if held is None or held.pid != os.getpid():
            self._local.held = held = _Held(self.redis.connection_pool)
        return held.conn

    def delete_prefix(self, prefix: str | None = None, batch: int = 1000) -> int:
        """Delete every key under ``prefix`` (default: this store's own), and this prefix's decide function
        libraries; returns how many keys. For tests, benchmarks and simulation runs that own their prefix: a
        deployment never calls it."""
        prefix = self.settings.prefix if prefix is None else prefix
        doomed, deleted = [], 0
        for key in self.redis.scan_iter(match=f"{prefix}*", count=batch):
            doomed.append(key)
            if len(doomed) >= batch:
                deleted += self.redis.delete(*doomed)
                doomed = []
        if doomed:
            deleted += self.redis.delete(*doomed)
        if self.functions and prefix == self.settings.prefix:  # its decide libraries (server-wide, not in a db)
            for name in self.libraries():
                self.redis.execute_command("FUNCTION", "DELETE", name)
        return deleted

    def libraries(self) -> list[str]:
        """The names of this prefix's function libraries on the server (none where it has no Functions)."""
        if not self.functions:
            return []
        tag = self.library_tag()
        names = [(lib if isinstance(lib, dict) else dict(zip(lib[::2], lib[1::2])))["library_name"]
                 for lib in self.redis.execute_command("FUNCTION", "LIST", "LIBRARYNAME", tag + "*")]
        return [name for name in names if name.startswith(tag)]

    def ping(self) -> bool:
        return bool(self.redis.ping())

    def close(self) -> None:
        self.redis.close()
        if self._binary is not None:
            self._binary.close()


class _Held:
    """A pool connection one thread holds; released when the holder is dropped (the thread ended)."""

    __slots__ = ("pool", "conn", "pid")

    def __init__(self, pool: redis.ConnectionPool):
        self.pool, self.conn, self.pid = pool, None, os.getpid()
        self.conn = pool.get_connection()  # may raise (Redis down): then there is nothing to give back

    def __del__(self) -> None:
        if self.conn is not None and self.pid == os.getpid():
            self.pool.release(self.conn)
