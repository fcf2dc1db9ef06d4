"""Values as the scripts store them, for tests that seed Redis directly."""
from __future__ import annotations

import struct
from typing import Sequence


def packed_arm(values: Sequence[float]) -> bytes:
    """An arm, ``t n <outcome counts...>``: ``B`` and little-endian doubles, the one format the scripts write."""
    return b"B" + struct.pack(f"<{len(values)}d", *values)
