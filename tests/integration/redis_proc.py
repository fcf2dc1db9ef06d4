"""A redis-server process of a test's own, to kill, pause and restart (never the shared one)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import redis

from bandit_push.cli import die_with_parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 30.0, what: str = "service") -> None:
    """Until ``base``/healthz answers 200; fails with the process's output if it exits first or the time runs out."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or still booting
            pass
        out = proc.stdout or proc.stderr
        assert proc.poll() is None, out.read() if out else f"exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{what} did not come up in {timeout:.0f} s"
        time.sleep(0.2)


class RedisProcess:
    """redis-server on a free loopback port with its files in ``directory``; AOF on or off."""

    def __init__(self, directory: str, aof: bool = True):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not on PATH: the fault tests need a real one to kill")
        self.directory = directory
        self.port = free_port()
        self.aof = aof
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.directory,
                "--save", "", "--appendonly", "yes" if self.aof else "no", "--appendfsync", "always",
                "--daemonize", "no", "--logfile", os.path.join(self.directory, "redis.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.ping():
                    break
            except (redis.ConnectionError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {self.port} did not start") from None
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save; what survives is what the AOF already had."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            self.resume()
            self.kill()


def _cluster_ports() -> range:
    """``TEST_CLUSTER_PORTS`` (``first-last``, e.g. ``47100-47149``), else 47000-47049."""
    first, _, last = os.environ.get("TEST_CLUSTER_PORTS", "47000-47049").partition("-")
    return range(int(first), int(last or first) + 1)


#: the loopback ports local test clusters take nodes from (free ones, probed in order); CI machines and shared
#: development hosts keep other Redis servers outside this range. A node's cluster bus listens on its port +
#: :data:`BUS_OFFSET` (not Redis's default + 10000, which could leave the range or meet an ephemeral port).
#: ``TEST_CLUSTER_PORTS=47100-47149`` moves it, so that two runs on one host (a CI pass and a developer's)
#: cannot take the same free port between probing it and binding it
CLUSTER_PORTS = _cluster_ports()
BUS_OFFSET = 50


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # as redis-server binds: a port whose last connections linger in TIME_WAIT (a node killed by the previous
        # run) is free for it
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RedisClusterProcess:
    """A local Redis Cluster: ``masters`` redis-servers with ``replicas`` replicas each, on free ports of
    :data:`CLUSTER_PORTS`, no persistence, files in ``directory``; formed with ``redis-cli --cluster create``.

    ``start`` returns once every node reports ``cluster_state:ok`` and knows every other node; ``stop`` kills them.
    """

    def __init__(self, directory: str, masters: int = 3, replicas: int = 0, ports: range = CLUSTER_PORTS,
                 node_timeout_ms: int = 2000):
        self.binary = shutil.which("redis-server")
        self.cli = shutil.which("redis-cli")
        if self.binary is None or self.cli is None:
            raise RuntimeError("redis-server and redis-cli must be on PATH to start a local Redis Cluster")
        self.directory = directory
        self.masters, self.replicas = masters, replicas
        # how long a node is unreachable before the others mark it failed and its replica is promoted
        self.node_timeout_ms = node_timeout_ms
        self.ports = [p for p in ports if _port_free(p) and _port_free(p + BUS_OFFSET)][:masters * (1 + replicas)]
        if len(self.ports) < masters * (1 + replicas):
            raise RuntimeError(f"not enough free ports in {ports.start}-{ports.stop - 1} for a local cluster")
        self.procs: dict[int, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        """A URL naming one node (any node serves: the client discovers the others)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start_node(self, port: int) -> None:
        node_dir = os.path.join(self.directory, str(port))
        os.makedirs(node_dir, exist_ok=True)
        args = [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", node_dir,
                "--cluster-enabled", "yes", "--cluster-port", str(port + BUS_OFFSET),
                "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(self.node_timeout_ms),
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "redis.log",
                # a replica's first full sync starts at once (Redis waits 5 s for more replicas by default)
                "--repl-diskless-sync-delay", "0"]
        # the nodes die with the test process, even a killed one: nothing is left holding the ports
        self.procs[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            preexec_fn=die_with_parent)

    def start(self, timeout: float = 60.0) -> None:
        for port in self.ports:
            self.start_node(port)
        deadline = time.monotonic() + timeout
        for port in self.ports:
            self._until(deadline, lambda c: c.ping(), port, "answer PING")
        out = subprocess.run([self.cli, "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                              "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {out.stdout}{out.stderr}")
        for port in self.ports:
            self._until(deadline, lambda c: self._ready(c), port, "report cluster_state:ok with every node known")
        # every master with its replicas attached (redis-cli may return before a replica has turned into one) and
        # every replica through its first sync: one that never finished it cannot be promoted ("disconnected from
        # master for longer than allowed"), so a failover test must not kill a master before that
        for port in self.ports:
            self._until(deadline, lambda c: self._replicated(c.info("replication")), port,
                        f"serve as a master with {self.replicas} replicas or as a synced replica")
        # and every node sees those roles (the ones a test reads the layout from: gossip lags a little)
        replicas = self.masters * self.replicas
        for port in self.ports:
            self._until(deadline, lambda c: _replicas_listed(c.execute_command("CLUSTER", "NODES")) == replicas, port,
                        f"list {replicas} replicas")

    def _replicated(self, info: dict) -> bool:
        if info["role"] == "master":
            return int(info.get("connected_slaves", 0)) >= self.replicas
        return info.get("master_link_status") == "up"

    def _ready(self, client: redis.Redis) -> bool:
        info = client.cluster("INFO")
        info = info if isinstance(info, dict) else dict(line.split(":", 1) for line in info.split())
        return str(info.get("cluster_state")) == "ok" and int(info.get("cluster_known_nodes", 0)) == len(self.ports)

    def _until(self, deadline: float, ok, port: int, what: str) -> None:
        client = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
        try:
            while True:
                try:
                    if ok(client):
                        return
                except (redis.ConnectionError, redis.BusyLoadingError, redis.ResponseError):
                    pass
                proc = self.procs.get(port)
                if proc is not None and proc.poll() is not None:
                    with open(os.path.join(self.directory, str(port), "redis.log")) as log:
                        raise RuntimeError(f"cluster node {port} exited: {log.read()[-500:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster node {port} did not {what}")
                time.sleep(0.05)
        finally:
            client.close()

    def primaries(self) -> list[int]:
        """The ports of the nodes serving slots now (as the first node still running sees them)."""
        client = redis.Redis(port=next(p for p in self.ports if p in self.procs), decode_responses=True)
        try:
            return sorted(int(n["port"]) if isinstance(n, dict) else int(n[1])
                          for n in _primary_nodes(client.execute_command("CLUSTER", "SHARDS")))
        finally:
            client.close()

    def replica_of(self, port: int) -> int | None:
        """The port of a replica of the master on ``port`` (None if it has none)."""
        client = redis.Redis(port=next(p for p in self.ports if p in self.procs), decode_responses=True)
        try:
            for shard in client.execute_command("CLUSTER", "SHARDS"):
                shard = shard if isinstance(shard, dict) else dict(zip(shard[::2], shard[1::2]))
                nodes = [n if isinstance(n, dict) else dict(zip(n[::2], n[1::2])) for n in shard["nodes"]]
                if any(n["role"] == "master" and int(n["port"]) == port for n in nodes):
                    return next((int(n["port"]) for n in nodes if n["role"] == "replica"), None)
            return None
        finally:
            client.close()

    def kill(self, port: int) -> None:
        proc = self.procs.pop(port, None)
        if proc is not None:
            proc.kill()
            proc.wait(10)

    def stop(self) -> None:
        for port in list(self.procs):
            self.kill(port)


def _replicas_listed(nodes: str) -> int:
    """The replicas in a CLUSTER NODES reply (its third field: flags such as ``myself,slave``)."""
    return sum("slave" in line.split()[2].split(",") for line in nodes.splitlines() if line.strip())


def _primary_nodes(shards) -> list[dict]:
    """The master nodes serving slots in a CLUSTER SHARDS reply (RESP2: flat lists of name, value)."""
    out = []
    for shard in shards:
        shard = shard if isinstance(shard, dict) else dict(zip(shard[::2], shard[1::2]))
        if not shard["slots"]:  # (a node not yet told it is a replica, or a master left without slots)
            continue
        for node in shard["nodes"]:
            node = node if isinstance(node, dict) else dict(zip(node[::2], node[1::2]))
            if node["role"] == "master" and node["health"] == "online":
                out.append(node)
    return out
