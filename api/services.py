"""Per-app state, reached by the routes through :func:`services`."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from bandit_push.config import Settings
from bandit_push.decide import DecisionEngine
from bandit_push.models import ModelCache
from bandit_push.store import Store
from bandit_push_api.schemas import RequestSchemas

#: set by the gunicorn configuration in each worker (its number, ``worker.age``), read by the app factory
WORKER_ENV = "BANDIT_PUSH_WORKER_ID"


@dataclass
class Services:
    """Per-app state: the settings, the store, the decision engine, the models held in this process, the request
    bodies' schemas."""

    settings: Settings
    store: Store
    engine: DecisionEngine
    models: ModelCache
    schemas: RequestSchemas


def services() -> Services:
    """This app's :class:`Services` (``app.extensions["bandit_push"]``)."""
    return current_app.extensions["bandit_push"]
