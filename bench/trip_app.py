"""The app bench/serve.py runs under gunicorn: the service's own (``api.create_app()``) with one route of the
benchmark's beside its routes, ``GET /bench/round-trip``: the bare endpoint's answer after one Redis round trip
(a PING through the store's client, as decide sends its one command). Its throughput against the bare endpoint's is the
most any one-round-trip decide could reach on the machine; the difference to decide's is decide's own work."""
from __future__ import annotations

from flask import Flask, jsonify

from api import create_app
from api.services import services


def create() -> Flask:
    app = create_app()

    @app.get("/bench/round-trip")
    def round_trip():
        services().store.redis.ping()
        return jsonify({"ok": True})

    return app
