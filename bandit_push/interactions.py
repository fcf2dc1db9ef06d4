"""The interaction store: packed records per UTC day, read back in chunks for a refit."""
from __future__ import annotations

import time
from typing import Iterator

import numpy as np
import numpy.typing as npt

from bandit_push import ids
from bandit_push.store import Store

#: one stored interaction: user index, item index (0xFFFFFFFF = none), event type code, epoch second
RECORD = np.dtype([("user", "<u4"), ("item", "<u4"), ("type", "u1"), ("ts", "<u4")])
NO_ITEM = 0xFFFFFFFF


def read(store: Store, chunk_bytes: int = 1 << 20) -> Iterator[npt.NDArray]:
    """Yield structured arrays (dtype :data:`RECORD`) of every stored interaction, day by day, in chunks.

    One round trip finds every day's length, then each chunk of about ``chunk_bytes`` is one pipeline of
    ``GETRANGE`` (whole days while they fit, a large day in pieces). Records appended after the lengths
    were read are left to the next reader.
    """
    step = max(chunk_bytes - chunk_bytes % RECORD.itemsize, RECORD.itemsize)
    keys = store.keys
    names = [keys.interactions(int(day)) for day in store.redis.zrange(keys.interaction_days(), 0, -1)]
    pipe = store.binary.pipeline(transaction=False)
    for name in names:
        pipe.strlen(name)
    ranges: list[tuple[str, int, int]] = []
    for name, size in zip(names, pipe.execute() if names else []):
        size -= size % RECORD.itemsize
        ranges += [(name, a, min(a + step, size) - 1) for a in range(0, size, step)]
    todo, pending = store.binary.pipeline(transaction=False), 0
    for n, (name, a, b) in enumerate(ranges):
        todo.getrange(name, a, b)
        pending += b + 1 - a
        if pending >= step or n == len(ranges) - 1:
            buf = b"".join(todo.execute())
            todo, pending = store.binary.pipeline(transaction=False), 0
            if buf:
                yield np.frombuffer(buf[: len(buf) - len(buf) % RECORD.itemsize], dtype=RECORD)


def compact(store: Store, now: float | None = None) -> int:
    """Re-allocate the chunks of closed days (before ``now``'s UTC day) at their exact size.

    Returns how many chunks were compacted. Safe to run any time: a late event appended to a
    compacted day marks it for compaction again (events.py removes it from the set).
    """
    keys = store.keys
    today = int((time.time() if now is None else now) // 86400)
    expired = store.redis.zrangebyscore(keys.interaction_days(), "-inf",
                                        today - store.settings.interaction_retention_days - 1)
    if expired:  # their chunks have expired by TTL: forget the days too, so the indexes stay bounded
        store.redis.zrem(keys.interaction_days(), *expired)
        store.redis.srem(keys.interactions_compacted(), *expired)
    days = [int(d) for d in store.redis.zrangebyscore(keys.interaction_days(), "-inf", today - 1)]
    done = store.redis.smembers(keys.interactions_compacted())
    todo = [d for d in days if str(d) not in done]
    for day in todo:
        store.compact_script(keys=[keys.interactions(day)])
        store.redis.sadd(keys.interactions_compacted(), day)
    return len(todo)


def item_ids(store: Store) -> list[str]:
    """Item ids by dense index, as the interaction records refer to them."""
    return [ids.load(i) for i in store.redis.lrange(store.keys.item_ids(), 0, -1)]
