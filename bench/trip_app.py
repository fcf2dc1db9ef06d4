"""The app the benchmarks serve: the service's own (``bandit_push_api.create_app()``) with two routes of the benchmarks' beside
its routes. ``GET /v1/ping`` is the bare JSON endpoint (no Redis), the baseline decide's throughput is read
against. ``GET /bench/round-trip`` is that answer after one Redis round trip (a PING through the store's client, as
decide sends its one command): its throughput against the bare endpoint's is the most any one-round-trip decide
could reach on the machine; the difference to decide's is decide's own work."""
from __future__ import annotations

from flask import Flask, jsonify

from bandit_push_api import create_app
from bandit_push_api.services import services
from bandit_push.config import Settings


def create(settings: Settings | None = None) -> Flask:
    """The service's app for ``settings`` (default: the environment's) with the benchmarks' two routes."""
    app = create_app(settings)

    @app.get("/v1/ping")
    def ping():
        return jsonify({"ok": True})

    @app.get("/bench/round-trip")
    def round_trip():
        services().store.redis.ping()
        return jsonify({"ok": True})

    return app
