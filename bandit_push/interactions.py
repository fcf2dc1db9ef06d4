"""The interaction store: packed records per UTC day, read back in chunks for a refit."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import numpy.typing as npt

from bandit_push.store import Store

#: one stored interaction: user index, item index (0xFFFFFFFF = none), event type code, epoch second
RECORD = np.dtype([("user", "<u4"), ("item", "<u4"), ("type", "u1"), ("ts", "<u4")])
NO_ITEM = 0xFFFFFFFF


def read(store: Store, chunk_bytes: int = 1 << 20) -> Iterator[npt.NDArray]:
    """Yield structured arrays (dtype :data:`RECORD`) of every stored interaction, day by day, in chunks."""
    step = chunk_bytes - chunk_bytes % RECORD.itemsize
    keys = store.keys
    for day in store.redis.zrange(keys.interaction_days(), 0, -1):
        key = keys.interactions(int(day))
        offset = 0
        while True:
            buf = store.binary.getrange(key, offset, offset + step - 1)
            if not buf:
                break
            usable = len(buf) - len(buf) % RECORD.itemsize
            yield np.frombuffer(buf[:usable], dtype=RECORD)
            offset += usable
            if len(buf) < step:
                break


def item_ids(store: Store) -> list[str]:
    """Item ids by dense index, as the interaction records refer to them."""
    return store.redis.lrange(store.keys.item_ids(), 0, -1)
