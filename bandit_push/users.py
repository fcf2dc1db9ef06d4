"""A user's settings (time zone, opt-out) and what the service knows of them."""
from __future__ import annotations

import time
from typing import Any

from bandit_push.config import EVENT_TYPES, Settings
from bandit_push.errors import NotFound
from bandit_push.store import Store
from bandit_push.tzrule import posix_rule


def put(store: Store, user_id: str, timezone: str | None = None, opted_out: bool | None = None) -> bool:
    """Create or update a user; ``timezone`` must be a known IANA name (KeyError otherwise).

    Returns True if the user was created.
    """
    rule = posix_rule(timezone) if timezone is not None else ""
    oo = "" if opted_out is None else ("1" if opted_out else "0")
    keys = store.keys
    return bool(store.upsert_user_script(keys=[keys.user(user_id), keys.segment_sizes()],
                                         args=[timezone or "", rule, oo]))


def get(store: Store, settings: Settings, user_id: str, now: float | None = None) -> dict[str, Any]:
    """The user's segment, last push, pushes in the 24 h before ``now``, opt-out, time zone, features."""
    now = time.time() if now is None else now
    pipe = store.redis.pipeline(transaction=False)
    pipe.hgetall(store.keys.user(user_id))
    pipe.get(store.keys.user_pushes(user_id))
    h, recent = pipe.execute()
    if not h:
        raise NotFound(f"user {user_id!r} is not known", field="user_id", code="unknown_user")
    pushes = [float(t) for t in (recent or "").split("\n")[0].split()]
    return {
        "user_id": user_id,
        "segment": h.get("sg", "new"),
        "timezone": h.get("tzn", settings.default_timezone),
        "opted_out": h.get("oo") == "1",
        "last_push": float(h["lp"]) if "lp" in h else None,
        "pushes_24h": sum(1 for t in pushes if now - 86400 < t <= now),
        "features": {
            "counts": {t: int(h.get(f"f:{t}", 0)) for t in EVENT_TYPES},
            "purchase_value": float(h.get("fm", 0.0)),
            "first_event": float(h["ff"]) if "ff" in h else None,
            "last_event": float(h["fl"]) if "fl" in h else None,
            "last_purchase": float(h["fp"]) if "fp" in h else None,
        },
    }


def scan(store: Store, fields: list[str], batch: int = 1000):
    """Yield lists of (user id, [field values]) over every user hash, ``batch`` users per round trip.

    For refit jobs only (a SCAN over the keyspace): the request path never scans.
    """
    head = f"{store.keys.prefix}u:{{"
    ids: list[str] = []
    for key in store.redis.scan_iter(match=head + "*}", count=1000):
        uid = key[len(head):-1]
        if "}" in uid:  # another per-user key whose suffix happens to end in a brace
            continue
        ids.append(uid)
        if len(ids) >= batch:
            yield _fetch(store, ids, fields)
            ids = []
    if ids:
        yield _fetch(store, ids, fields)


def _fetch(store: Store, ids: list[str], fields: list[str]) -> list[tuple[str, list]]:
    pipe = store.redis.pipeline(transaction=False)
    for uid in ids:
        pipe.hmget(store.keys.user(uid), fields)
    return list(zip(ids, pipe.execute()))
