"""The Redis store: one client per process, the Lua library (bandit_push/lua) registered once on it."""
from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any, Sequence

import redis
from redis.exceptions import ResponseError

from bandit_push import lua
from bandit_push.config import Settings
from bandit_push.keys import Keys

log = logging.getLogger(__name__)


class Store:
    """A connection to the deployment's Redis with its key builder and the Lua library's commands.

    Each command (``store.decide_script``, ``store.feedback_script``, ...) is a :class:`Command`: the function of
    this prefix's library where the server runs Redis Functions, else the same code as an EVALSHA script.
    """

    def __init__(self, client: redis.Redis, settings: Settings):
        # (answers str: built with decode_responses=True, which redis-py's annotations cannot express: they give
        # every command ``bytes | str``; typed Any rather than cast at each call)
        self.redis: Any = client
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self._binary: Any = None
        self._functions: bool | None = None
        self.library = Library(self)
        commands = {name: Command(self.library, name) for name in lua.COMMANDS}
        self.decide_script = commands["decide"]
        self.feedback_script = commands["feedback"]
        self.user_evidence_script = commands["user_evidence"]
        self.event_script = commands["event"]
        self.upsert_user_script = commands["upsert_user"]
        self.compact_script = commands["compact"]
        self.set_segment_script = commands["set_segment"]
        self.items_script = commands["ranked_items"]
        self.rate_limit_script = commands["rate_limit"]
        self.delete_user_script = commands["delete_user"]
        self.experiment_transition_script = commands["experiment_transition"]
        self.experiment_update_script = commands["experiment_update"]

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
    def binary(self) -> Any:
        """A client on the same server that returns bytes (for packed interaction chunks; typed Any as
        :attr:`redis` is, since redis-py's annotations say ``bytes | str`` whatever the client decodes)."""
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
        """The start of the names of this prefix's function libraries (letters, digits, underscores only): one
        library per prefix and code version, so deployments and versions sharing a server keep their own."""
        return "bp_" + hashlib.sha1(self.settings.prefix.encode()).hexdigest()[:10] + "_"

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
        if self.functions and prefix == self.settings.prefix:  # its libraries (server-wide, not in a db)
            for name in self.libraries():
                self.redis.function_delete(name)
            self.library.forget()
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


class Library:
    """This prefix's Redis Functions library (every command of :mod:`bandit_push.lua`), loaded on first use.

    In use only where the server runs Functions (7.0+) and ``settings.redis_functions`` allows them; a server
    that refuses FUNCTION LOAD (an ACL without it) leaves the commands as EVALSHA scripts, with a warning."""

    def __init__(self, store: Store):
        self.store = store
        self.name = store.library_tag() + lua.digest()
        self._state: bool | None = None  # None: not tried yet
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether commands run as this library's functions (loads it on the first call)."""
        if self._state is None:
            with self._lock:
                if self._state is None:
                    self._state = self.store.settings.redis_functions and self.store.functions and self.load()
        return self._state

    def load(self) -> bool:
        """Load the library if the server lacks it; False if the server refuses."""
        try:
            self.store.redis.function_load(lua.library(self.name))
        except ResponseError as e:
            if "already exists" in str(e):  # another process of this deployment loaded it
                return True
            log.warning("the Lua library stays EVALSHA scripts: FUNCTION LOAD was refused (%s)", e)
            return False
        return True

    def forget(self) -> None:
        """The library was deleted: load it again on the next call."""
        self._state = None


class Command:
    """One command of the Lua library, called like redis-py's ``Script``: ``command(keys=..., args=...)``.

    FCALL of its function while the library is active (loaded again if the server lost it: a restart, a
    FUNCTION FLUSH, a failover to a replica without it), else, and inside pipelines, EVALSHA of the same code
    through redis-py's ``Script`` (its SHA computed once, reloaded on NOSCRIPT, loaded before a pipeline runs).
    """

    def __init__(self, library: Library, name: str):
        self.library = library
        self.name = name
        self.script = library.store.redis.register_script(lua.script(name))

    @property
    def function(self) -> str | None:
        """The function's name, or None while the command runs as a script."""
        return f"{self.library.name}_{self.name}" if self.library.active else None

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
        function = self.function if client is None else None
        if function is None:
            return self.script(keys=keys, args=args, client=client)
        try:
            return self.library.store.redis.fcall(function, len(keys), *keys, *args)
        except ResponseError as e:
            if not str(e).startswith("Function not found"):
                raise
        self.library.load()
        return self.library.store.redis.fcall(function, len(keys), *keys, *args)
