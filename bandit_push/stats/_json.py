"""JSON conversion shared by the statistics value objects."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """Plain JSON types for a dataclass tree; NaN and infinities become None (JSON has neither)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


class JsonMixin:
    """Adds `to_json()` to a frozen dataclass."""

    def to_json(self) -> dict[str, Any]:
        """The object as a dict of JSON types (`json.dumps` accepts it as is)."""
        return jsonable(self)
