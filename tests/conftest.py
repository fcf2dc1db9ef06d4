"""Real Redis for every test: the server at REDIS_URL when set, otherwise an embedded one.

Each test gets its own key prefix and leaves nothing behind. No mock Redis anywhere:
if no server can be reached or started, the session fails loudly.
"""
from __future__ import annotations

import json
import os
import threading
import uuid

import pytest
import redis
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from bandit_push import embedded
from bandit_push.config import Settings
from bandit_push.store import Store


def pytest_addoption(parser):
    parser.addoption("--only-redis-url", action="store_true",
                     help="run only the tests that use the shared Redis (the redis_url fixture, directly or through "
                          "settings, store, app ...): a second pass against another Redis need not repeat the others "
                          "(pure unit tests, and tests that start a redis-server or an embedded Redis of their own)")


    parser.addoption("--cluster", action="store_true",
                     help="run the tests marked cluster (those that pass on a Redis Cluster today) with the shared "
                          "Redis a local 3-master Redis Cluster started for the session (free ports in 47000-47099, "
                          "or TEST_CLUSTER_PORTS=first-last and 50 above; needs redis-server and redis-cli); tests of "
                          "a cluster alone run only then (with -m faults: the failover test, on a cluster of its own)")


#: the fixtures of a local Redis Cluster: a test using one is a test of a cluster alone
CLUSTER_FIXTURES = ("redis_cluster", "replicated_cluster")


def _selected(config, item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    if config.getoption("--cluster"):  # the cluster pass: the tests that pass on a cluster today
        return item.get_closest_marker("cluster") is not None
    if any(f in fixtures for f in CLUSTER_FIXTURES):  # tests of a cluster alone: only in the cluster pass
        return False
    return not config.getoption("--only-redis-url") or "redis_url" in fixtures


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        (keep if _selected(config, item) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """A local Redis Cluster of 3 masters for the session (:class:`redis_proc.RedisClusterProcess`), torn down
    after it. Tests that need the replicas (failover) start their own with ``replicas=1``."""
    from redis_proc import RedisClusterProcess

    cluster = RedisClusterProcess(str(tmp_path_factory.mktemp("cluster")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def replicated_cluster(tmp_path):
    """A local Redis Cluster of 3 masters with one replica each, its nodes declared failed after 1 s unreachable
    (Redis's default is 15 s), for a test that kills a master; stopped after the test."""
    from redis_proc import RedisClusterProcess

    cluster = RedisClusterProcess(str(tmp_path / "cluster"), replicas=1, node_timeout_ms=1000)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_url(request, tmp_path_factory) -> str:
    """The shared Redis: REDIS_URL, else an embedded one; with ``--cluster``, the session's local cluster."""
    if request.config.getoption("--cluster"):
        yield request.getfixturevalue("redis_cluster").url
        return
    url = os.environ.get("REDIS_URL")
    server = None
    if not url:
        server = embedded.start(str(tmp_path_factory.mktemp("redis")))
        url = server.url
    client = redis.Redis.from_url(url)
    client.ping()  # fail the session, loudly, if there is no server
    client.close()
    yield url
    if server is not None:
        server.stop()


@pytest.fixture(scope="session")
def queue_url(request, tmp_path_factory) -> str | None:
    """With ``--cluster``, a plain Redis for RQ's jobs (which cannot use a cluster), so the app starts; else None."""
    if not request.config.getoption("--cluster"):
        yield None
        return
    server = embedded.start(str(tmp_path_factory.mktemp("queue")))
    yield server.url
    server.stop()


@pytest.fixture
def settings(redis_url, queue_url) -> Settings:
    """Test settings: a fresh prefix, quiet hours off (tests set their own clocks), seeded draws. (A test that checks
    a decision against the state the previous ones left sets ``snapshot_seconds=0``: decide reads the arms and the
    experiments from a per-process snapshot.)"""
    return Settings(redis_url=redis_url, queue_url=queue_url, prefix=f"bpt:{uuid.uuid4().hex[:10]}:",
                    quiet_hours="off", seed=7)


@pytest.fixture
def store(settings):
    s = Store.connect(settings)
    yield s
    s.delete_prefix()
    s.close()


def _refuse_constant(name: str):
    raise ValueError(f"{name} in a response: not JSON (strict parsers, JavaScript's JSON.parse, refuse it)")


def strict_json(text: str):
    """``text`` parsed as strict JSON: NaN, Infinity and -Infinity are refused."""
    return json.loads(text, parse_constant=_refuse_constant)


class StrictClient(FlaskClient):
    """The test client of every app the suite builds: each JSON answer it gets must parse as strict JSON, so no
    test passes on a response a strict client could not read. (The decision export's NDJSON stream is left to
    its own tests, which read it lazily.)"""

    def open(self, *args, **kwargs):
        resp = super().open(*args, **kwargs)
        if resp.mimetype == "application/json":
            strict_json(resp.get_data(as_text=True))
        return resp


@pytest.fixture
def make_app(store):
    """Build an app for the test's store with some settings changed (its test client: :class:`StrictClient`)."""
    from bandit_push_api import create_app

    apps = []

    def build(**changes):
        app = create_app(store.settings.replace(**changes) if changes else store.settings)
        app.test_client_class = StrictClient
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["bandit_push"].store.close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def live_server(app):
    """The app on a real threaded HTTP server on loopback; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
