"""Reading stored arms (the scripts write them; see keys.Keys.arms)."""
from __future__ import annotations

import numpy as np

from bandit_push.config import OUTCOMES
from bandit_push.schema import ARM_MAGIC


def arm_values(raw: bytes | str | None) -> list[float]:
    """The numbers of a stored arm, ``t n <outcome counts...>``: ``B`` and little-endian doubles (what the
    scripts write), or text (what versions before it wrote, still read); ``[]`` for none."""
    if not raw:
        return []
    if isinstance(raw, bytes) and raw[:1] == ARM_MAGIC.encode() and len(raw) % 8 == 1:
        return np.frombuffer(raw, "<f8", offset=1).tolist()
    try:
        return [float(x) for x in (raw.decode() if isinstance(raw, bytes) else raw).split()]
    except (ValueError, UnicodeDecodeError):  # not an arm: the scripts start it afresh too (arm_load)
        return []


def parse_arm(vals: list[float] | None, now: float, half_life_s: float) -> tuple[float, np.ndarray]:
    """(sends, outcome counts) of an arm's numbers (:func:`arm_values`), decayed to ``now``."""
    if not vals or len(vals) < 2:
        return 0.0, np.zeros(len(OUTCOMES))
    f = 2.0 ** (-(now - vals[0]) / half_life_s) if now > vals[0] else 1.0
    counts = np.zeros(len(OUTCOMES))
    counts[: len(vals) - 2] = vals[2:2 + len(OUTCOMES)]
    return vals[1] * f, counts * f
