"""The Redis store: one client per process, the Lua library (bandit_push/lua) registered once on it.

``REDIS_URL`` may name a single Redis or any node of a Redis Cluster: :meth:`Store.connect` asks the server
(``INFO cluster``) and builds redis-py's ``RedisCluster`` on a cluster, which routes each command by its keys'
slot (FCALL and EVALSHA by their KEYS), splits multi-key commands and non-transactional pipelines by node, and
sends FUNCTION LOAD/DELETE/LIST and SCRIPT LOAD to every primary. RQ's jobs need a plain Redis
(:meth:`Store.queue`): ``BANDIT_PUSH_QUEUE_URL``, or ``REDIS_URL`` itself when it is not a cluster.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any, Iterator, Sequence

import redis
from hiredis import pack_command
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ResponseError
from redis.retry import Retry

from bandit_push import lua
from bandit_push.config import Settings
from bandit_push.errors import ConfigError
from bandit_push.keys import Keys

log = logging.getLogger(__name__)

QUEUE_URL_NEEDED = ("REDIS_URL names a Redis Cluster, which RQ's job queue cannot use: set BANDIT_PUSH_QUEUE_URL to "
                    "a plain (non-cluster) Redis for the jobs")


def is_cluster(url: str, timeout: float = 2.0) -> bool:
    """Whether the server at ``url`` is a node of a Redis Cluster (``INFO cluster``: ``cluster_enabled:1``)."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return str(client.info("cluster").get("cluster_enabled", 0)) == "1"
    finally:
        client.close()


def queue_url(settings: Settings, cluster: bool | None = None) -> str:
    """The plain Redis that holds RQ's jobs: ``queue_url``, else ``redis_url`` unless that is a cluster (then
    :class:`~bandit_push.errors.ConfigError` naming ``BANDIT_PUSH_QUEUE_URL``). ``cluster``: if already known."""
    if settings.queue_url:
        return settings.queue_url
    if not settings.redis_url:
        raise ValueError("settings.redis_url is not set; start the embedded redis first")
    if cluster is None:
        cluster = is_cluster(settings.redis_url, settings.redis_timeout_s)
    if cluster:
        raise ConfigError(QUEUE_URL_NEEDED, field="queue_url")
    return settings.redis_url


def _client(url: str, settings: Settings, cluster: bool, decode: bool) -> Any:
    options: dict[str, Any] = dict(decode_responses=decode, socket_timeout=settings.redis_timeout_s,
                                   socket_connect_timeout=settings.redis_timeout_s, health_check_interval=30)
    if not cluster:
        return redis.Redis.from_url(url, **options)
    # one attempt per command: redis-py's default (10 retries, backoff up to 1 s, 0.25 s more per CLUSTERDOWN)
    # held a request for seconds while a replica was promoted, and could repeat a timed-out HINCRBY. A failed
    # attempt still asks for a new slot map, which the next command loads (at most once a second): after a
    # failover the process recovers by itself, answering 503 until then (docs/operations.md, "Redis Cluster")
    return RedisCluster.from_url(url, retry=Retry(NoBackoff(), 0), **options)


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
        self.cluster = isinstance(client, RedisCluster)
        self._binary: Any = None
        self._queue: Any = None
        self._functions: bool | None = None
        self.library = Library(self)
        commands = {name: Command(self.library, name) for name in lua.COMMANDS}
        self.decide_script = commands["decide"]
        self.feedback_script = commands["feedback"]
        self.credit_script = commands["credit"]
        self.experiment_credit_script = commands["experiment_credit"]
        self.user_evidence_script = commands["user_evidence"]
        self.event_script = commands["event"]
        self.claim_index_script = commands["claim_index"]
        self.event_popular_script = commands["event_popular"]
        self.event_interaction_script = commands["event_interaction"]
        self.event_experiment_script = commands["event_experiment"]
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
        try:
            cluster = is_cluster(settings.redis_url, settings.redis_timeout_s)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            # unreachable now: start as on a single Redis (requests answer 503 until it is up, as before), so that a
            # process never fails to start because Redis is down; on a cluster, a process started so answers 503
            # naming the cause (api/errors.py) until it is restarted
            log.warning("could not ask REDIS_URL whether it is a Redis Cluster (%s): assuming a single Redis", e)
            cluster = False
        return cls(_client(settings.redis_url, settings, cluster, decode=True), settings)

    @property
    def binary(self) -> Any:
        """A client on the same server that returns bytes (for packed interaction chunks; typed Any as
        :attr:`redis` is, since redis-py's annotations say ``bytes | str`` whatever the client decodes)."""
        if self._binary is None and self.cluster:
            self._binary = _client(self.settings.redis_url or "", self.settings, True, decode=False)
        if self._binary is None:
            kwargs = dict(self.redis.connection_pool.connection_kwargs)
            kwargs["decode_responses"] = False
            pool = redis.ConnectionPool(connection_class=self.redis.connection_pool.connection_class, **kwargs)
            self._binary = redis.Redis(connection_pool=pool)
        return self._binary

    @property
    def queue(self) -> Any:
        """A plain Redis client (bytes) for RQ's jobs, on :func:`queue_url`: the store's own server where that is
        not a cluster and no ``queue_url`` is set (then it is :attr:`binary`)."""
        if self._queue is None:
            url = queue_url(self.settings, self.cluster)
            if url == self.settings.redis_url and not self.cluster:
                self._queue = self.binary
            else:
                self._queue = _client(url, self.settings, False, decode=False)
        return self._queue

    def primaries(self) -> list[Any]:
        """A client per primary of a cluster (each a plain ``redis.Redis`` on that node), or ``[self.redis]``:
        for what each node holds apart (a SCAN's keys, function libraries)."""
        if not self.cluster:
            return [self.redis]
        return [node.redis_connection for node in self.redis.get_primaries()]

    def scan_iter(self, match: str, count: int = 1000, slot_of: str | None = None) -> Iterator[str]:
        """Every key matching ``match``, on every primary of a cluster (SCAN is per node). ``slot_of``: a key
        whose slot every match shares (a hash tag): on a cluster only the node serving it is scanned. Keys may
        come twice (SCAN's guarantee), as on one Redis."""
        if self.cluster and slot_of is not None:
            nodes = [self.redis.get_node_from_key(slot_of).redis_connection]
        else:
            nodes = self.primaries()
        for node in nodes:
            yield from node.scan_iter(match=match, count=count)

    def set_many(self, mapping: dict[str, Any], client: Any = None) -> None:
        """SET every key of ``mapping`` (no TTL): one MSET on a single Redis, one MSET per slot on a cluster
        (redis-py's ``mset_nonatomic``, pipelined by node). ``client``: :attr:`binary` for bytes values."""
        client = self.redis if client is None else client
        if mapping:
            (client.mset_nonatomic if self.cluster else client.mset)(mapping)

    @property
    def functions(self) -> bool:
        """Whether the server runs Redis Functions (7.0 and later; asked once)."""
        if self._functions is None:
            version = str(self.primaries()[0].info("server").get("redis_version", "0"))
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
        for key in self.scan_iter(f"{prefix}*", count=batch):
            doomed.append(key)
            if len(doomed) >= batch:  # (a cluster client splits a multi-key DEL by slot)
                deleted += self.redis.delete(*doomed)
                doomed = []
        if doomed:
            deleted += self.redis.delete(*doomed)
        if self.functions and prefix == self.settings.prefix:  # its libraries (server-wide, not in a db)
            for node in self.primaries():
                for name in self.libraries(node):
                    node.function_delete(name)
            self.library.forget()
        return deleted

    def libraries(self, node: Any = None) -> list[str]:
        """The names of this prefix's function libraries on the server, or on one primary of a cluster (``node``,
        from :meth:`primaries`; default the first); none where the server has no Functions."""
        if not self.functions:
            return []
        node = self.primaries()[0] if node is None else node
        tag = self.library_tag()
        names = [(lib if isinstance(lib, dict) else dict(zip(lib[::2], lib[1::2])))["library_name"]
                 for lib in node.execute_command("FUNCTION", "LIST", "LIBRARYNAME", tag + "*")]
        return [name for name in names if name.startswith(tag)]

    def ping(self) -> bool:
        return bool(self.redis.ping())

    def close(self) -> None:
        self.redis.close()
        if self._binary is not None:
            self._binary.close()
        if self._queue is not None and self._queue is not self._binary:
            self._queue.close()


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
        """Load the library on the server, or on every primary of a cluster, where it is missing; False if a
        server refuses. (Replicas get it from their primary: functions replicate, and survive a failover.)"""
        code = lua.library(self.name)
        for node in self.store.primaries():
            try:
                node.function_load(code)
            except ResponseError as e:
                if "already exists" in str(e):  # another process of this deployment loaded it
                    continue
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
    On a cluster a missing function or script is reloaded on every primary, so a node that lost it (restarted
    empty, flushed, newly added) recovers on the next direct call.
    """

    def __init__(self, library: Library, name: str):
        self.library = library
        self.name = name
        self.script = library.store.redis.register_script(lua.script(name))
        self._loaded = False  # (on a cluster: SCRIPT LOAD sent to every primary, for pipelines)

    @property
    def function(self) -> str | None:
        """The function's name, or None while the command runs as a script."""
        return f"{self.library.name}_{self.name}" if self.library.active else None

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
        store = self.library.store
        if client is not None and store.cluster:
            # a cluster pipeline cannot load scripts before it runs (redis-py leaves NOSCRIPT to the caller): it
            # calls the library's function, loaded on every primary, or an EVALSHA loaded on every primary first
            function = self.function
            if function is not None:
                return client.fcall(function, len(keys), *keys, *args)
            if not self._loaded:
                store.redis.script_load(self.script.script)
                self._loaded = True
            return client.evalsha(self.script.sha, len(keys), *keys, *args)
        function = self.function if client is None else None
        if function is None:
            return self.script(keys=keys, args=args, client=client)
        try:
            return self._fcall(function, keys, args)
        except ResponseError as e:
            if not str(e).startswith("Function not found"):
                raise
        self.library.load()
        return self._fcall(function, keys, args)

    def _fcall(self, function: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        r = self.library.store.redis
        if self.library.store.cluster:
            return r.fcall(function, len(keys), *keys, *args)
        # hiredis packs the command, one pooled connection carries it: through redis-py's fcall a decide costs the
        # app 1,335k Python instructions instead of 1,126k (+19%, bench/script_cost.py --app)
        pool = r.connection_pool
        conn = pool.get_connection()
        try:  # (the connection disconnects itself on a send or read error, as under redis-py's own calls)
            conn.send_packed_command([pack_command(("FCALL", function, len(keys), *keys, *args))])
            return conn.read_response()
        finally:
            pool.release(conn)
