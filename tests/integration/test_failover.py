"""A Redis Cluster master SIGKILLed under load over real HTTP (issue 21, part 5): the service answers 503 with
Retry-After, never 500 and never slower than a few Redis timeouts, until the replica is promoted; then the same
process serves the killed master's users again (its client loads the new slot map), and no acknowledged write is
lost. Run by ``pytest --cluster -m faults`` (a cluster of its own, 6 nodes, 1 s node timeout: about 15 s).
The figures: bench/failover.py."""
from __future__ import annotations

import threading
import uuid

import pytest
from werkzeug.serving import make_server

import failover
from bandit_push.config import Settings
from bandit_push_api import create_app
from redis_proc import RedisProcess

pytestmark = [pytest.mark.cluster, pytest.mark.faults]
TIMEOUT = 0.5


@pytest.fixture
def served(replicated_cluster, tmp_path):
    """The app on the cluster, on a real threaded HTTP server; the jobs' plain Redis of its own."""
    plain = RedisProcess(str(tmp_path), aof=False)
    plain.start()
    settings = Settings(redis_url=replicated_cluster.url, queue_url=plain.url, prefix=f"bpf:{uuid.uuid4().hex[:8]}:",
                        quiet_hours="off", redis_timeout_s=TIMEOUT)
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app.extensions["bandit_push"].store, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
    app.extensions["bandit_push"].store.close()
    plain.stop()


def test_a_killed_master_answers_503_until_its_replica_serves_then_recovers_without_restart(replicated_cluster,
                                                                                            served):
    store, base = served
    out = failover.run(replicated_cluster, store, base, threads=4, after=1.5)
    figures = out.figures()
    assert out.promoted is not None, figures

    # while the replica is promoted: 503, Retry-After, the JSON error; nothing else, no client timeout
    failed = out.failed()
    assert failed and {c.status for c in failed} == {503}, figures
    assert all(c.retry_after == "1" and isinstance(c.body, dict) and c.body.get("error") == "redis_unavailable"
               for c in failed)
    assert out.failed(victim=True), figures  # the killed shard's users did fail ...
    # ... while the other masters' users were served until the cluster declared the master failed (after the 1 s
    # node timeout: then every node answers CLUSTERDOWN until the replica is promoted)
    first = [c for c in out.answered(victim=False) if out.killed < c.started < out.killed + 0.5]
    assert first and all(200 <= c.status < 300 for c in first), figures
    # ... each answer within a few Redis timeouts (redis-py's default retries held requests for seconds)
    assert figures["slowest_after_kill_s"] < 3 * TIMEOUT, figures

    # recovered, in this very process: the last second of load all 2xx, the killed shard's users among them, and
    # the client routes their slot to the promoted replica
    end = max(c.started for c in out.calls)
    tail = [c for c in out.calls if c.started > end - 1.0]
    assert tail and all(200 <= c.status < 300 for c in tail), figures
    assert any(c.victim for c in tail)
    victim_user = next(c.user for c in out.calls if c.victim)
    assert store.redis.get_node_from_key(store.keys.user(victim_user)).port == out.replica_port

    # every PUT answered 2xx is there, with what it wrote
    assert len(out.acknowledged) > 50 and out.lost == [], figures
