"""HTTP API: the app factory. Business logic lives in :mod:`bandit_push`."""
from __future__ import annotations

import json
import logging
import os
from importlib import resources

from flask import Flask
from threadpoolctl import threadpool_limits

from bandit_push_api import auth, errors, paths
from bandit_push_api.routes import decide, decisions, events, experiments, feedback, health, models, segments, users
from bandit_push_api.schemas import RequestSchemas
from bandit_push_api.services import WORKER_ENV, Services
from bandit_push.config import Settings
from bandit_push.decide import DecisionEngine
from bandit_push.models import ModelCache
from bandit_push.store import Store, queue_url


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app. Tests pass settings; production reads the environment (``BANDIT_PUSH_*``, ``REDIS_URL``)."""
    settings = settings or Settings.from_env()
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set: run `bandit-push serve`, which starts an embedded redis, "
                           "or point REDIS_URL at a Redis server")
    # fold-in on the events path solves small systems: one BLAS thread each (gunicorn runs several processes)
    threadpool_limits(1, "blas")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json = errors.StrictJSONProvider(app)
    store = Store.connect(settings)
    queue_url(settings, store.cluster)  # a Redis Cluster without BANDIT_PUSH_QUEUE_URL: refuse to start, naming it
    # the gunicorn worker's number (api/gunicorn_conf.py): a seeded service's workers draw different sequences
    engine = DecisionEngine(store, settings, stream=os.environ.get(WORKER_ENV))
    document = resources.files("bandit_push_api").joinpath("openapi.json").read_text()
    app.extensions["bandit_push"] = Services(settings, store, engine, ModelCache.for_serving(),
                                             RequestSchemas(json.loads(document), settings))
    app.extensions["bandit_push_openapi"] = document
    app.url_map.converters["id"] = paths.IdConverter  # ids in paths: one segment, '/' sent as %2F
    app.wsgi_app = paths.EncodedSlashes(app.wsgi_app)  # type: ignore[method-assign]
    errors.register(app)
    auth.install(app, settings, store)
    for module in (decide, feedback, events, experiments, users, segments, models, decisions, health):
        app.register_blueprint(module.bp)
    from bandit_push_api.console import bp as console
    app.register_blueprint(console)  # the growth team's pages at /console/
    logging.getLogger(__name__).info("bandit-push API on %s, policy %s", _safe(settings.redis_url), settings.policy)
    return app


def _safe(url: str) -> str:
    """The URL without a password, for logs."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
