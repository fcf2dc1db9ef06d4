"""Per-key request budgets: a token bucket in Redis, refilled at a rate up to a burst, one script per check."""
from __future__ import annotations

from bandit_push.store import Store


def take(store: Store, key_id: str, rate: float, burst: float, cost: float = 1.0) -> float | None:
    """Spend ``cost`` tokens of the bucket of ``key_id``; None if allowed, else seconds until it would be.

    ``rate`` tokens per second refill the bucket up to ``burst``. The check and the spend are one
    Lua script (atomic across web processes and hosts), timed by the Redis server's clock.
    """
    allowed, wait_ms = store.rate_limit_script(keys=[store.keys.rate_bucket(key_id)],
                                               args=[repr(float(rate)), repr(float(burst)), repr(float(cost))])
    return None if allowed else int(wait_ms) / 1000.0
