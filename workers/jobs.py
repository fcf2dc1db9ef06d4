"""Importable job functions. They take only small JSON-able arguments and delegate to bandit_push.

A worker process reads its settings from the environment (``REDIS_URL``, ``BANDIT_PUSH_*``),
the same way the API does.
"""
from __future__ import annotations

from bandit_push import interactions, popular
from bandit_push.config import Settings
from bandit_push.store import Store


def refresh_popular() -> dict[str, int]:
    """Recompute the popular-items lists; returns the number of candidate items per segment."""
    settings = Settings.from_env()
    store = Store.connect(settings)
    try:
        return popular.refresh(store, settings)
    finally:
        store.close()


def compact_interactions() -> int:
    """Re-allocate closed days' interaction chunks at their exact size; returns how many."""
    settings = Settings.from_env()
    store = Store.connect(settings)
    try:
        return interactions.compact(store)
    finally:
        store.close()
