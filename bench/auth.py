"""What authentication and rate limiting cost a decide, in-process: keyed vs keyless, same run.

Usage:
    .venv/bin/python bench/auth.py [--redis-url URL] [--requests 6000] [--slices 30]

Two apps on one Redis (``--redis-url``, else ``REDIS_URL``, else redis://127.0.0.1:6379/15; keys under a
prefix of their own, deleted afterwards): one without API keys (loopback check only), one with 8 keys
configured and the gateway rate limit on (the token taken inside the decide script). Both answer
POST /v1/decide through Flask's test client, in alternating slices. The report: the keyed app's time
per decide over the keyless one's (overall, and the median over paired slices), and the Guard's own
time per call. No wrk, no HTTP: this isolates the Python and Redis work the auth layer adds.
"""
from __future__ import annotations

import argparse
import os
import time
import uuid

from bandit_push_api import create_app
from bandit_push_api.auth import Guard
from bandit_push.config import Settings, parse_api_keys


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"))
    p.add_argument("--requests", type=int, default=6000)
    p.add_argument("--slices", type=int, default=30)
    args = p.parse_args()
    prefix = f"bpbench-auth:{uuid.uuid4().hex[:6]}:"
    keys = ",".join([f"gateway:gw-{i}-{'x' * 24}" for i in range(6)] + ["read:r-key", "admin:a-key"])
    base = Settings(redis_url=args.redis_url, prefix=prefix, quiet_hours="off", seed=1)
    apps = {"keyless": create_app(base),
            "keyed": create_app(base.replace(api_keys=parse_api_keys(keys), rate_limits={"gateway": 1e8},
                                             rate_bursts={"gateway": 1e8}))}
    headers = {"keyless": {}, "keyed": {"Authorization": f"Bearer gw-5-{'x' * 24}"}}
    spent = {name: 0.0 for name in apps}
    clients = {name: app.test_client() for name, app in apps.items()}
    n = args.requests // args.slices
    ratios = []
    for s in range(args.slices):
        this = {}
        for name in (("keyless", "keyed") if s % 2 == 0 else ("keyed", "keyless")):
            c, h = clients[name], headers[name]
            started = time.perf_counter()
            for i in range(n):
                r = c.post("/v1/decide", json={"user_id": f"u{i % 500}", "now": 1790000000 + s * n + i}, headers=h)
                assert r.status_code == 200, r.get_json()
            this[name] = time.perf_counter() - started
            spent[name] += this[name]
        ratios.append(this["keyed"] / this["keyless"])
    per = {name: spent[name] / (n * args.slices) * 1e6 for name in spent}
    ratios.sort()
    # the Guard alone, on a keyed app, in a request context (sha256 + constant-time compares over 8 keys)
    app = apps["keyed"]
    guard = Guard(app.extensions["bandit_push"].settings, app.extensions["bandit_push"].store)
    with app.test_request_context("/v1/decide", method="POST", headers=headers["keyed"]):
        from flask import request
        request.url_rule = app.url_map.bind("localhost").match("/v1/decide", method="POST", return_rule=True)[0]
        started = time.perf_counter()
        for _ in range(20000):
            guard.check()
        guard_us = (time.perf_counter() - started) / 20000 * 1e6
    print(f"decide, keyless: {per['keyless']:.0f} us/request; keyed + rate limit: {per['keyed']:.0f} us/request; "
          f"ratio keyed/keyless {per['keyed'] / per['keyless']:.3f}; median of {len(ratios)} paired slices "
          f"{ratios[len(ratios) // 2]:.3f} (quartiles {ratios[len(ratios) // 4]:.3f}-{ratios[3 * len(ratios) // 4]:.3f})")
    print(f"Guard.check with 8 keys configured: {guard_us:.1f} us per call "
          f"(one sha256, 8 compare_digest)")
    store = apps["keyless"].extensions["bandit_push"].store
    store.delete_prefix(prefix)


if __name__ == "__main__":
    main()
