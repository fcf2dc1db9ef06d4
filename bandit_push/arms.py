"""Reading stored arms (the scripts write them; see keys.Keys.arms)."""
from __future__ import annotations

import numpy as np

from bandit_push.config import OUTCOMES
from bandit_push.schema import ARM_MAGIC


def arm_values(raw: bytes | None) -> list[float]:
    """The numbers of a stored arm, ``t n <outcome counts...>``, from ``B`` and little-endian doubles (what the
    scripts write); ``[]`` for none or for anything else (the scripts start such an arm afresh too)."""
    if raw and raw[:1] == ARM_MAGIC.encode() and len(raw) % 8 == 1:
        return np.frombuffer(raw, "<f8", offset=1).tolist()
    return []


def parse_arm(vals: list[float] | None, now: float, half_life_s: float) -> tuple[float, np.ndarray]:
    """(sends, outcome counts) of an arm's numbers (:func:`arm_values`), decayed to ``now``."""
    if not vals or len(vals) < 2:
        return 0.0, np.zeros(len(OUTCOMES))
    f = 2.0 ** (-(now - vals[0]) / half_life_s) if now > vals[0] else 1.0
    counts = np.zeros(len(OUTCOMES))
    counts[: len(vals) - 2] = vals[2:2 + len(OUTCOMES)]
    return vals[1] * f, counts * f
