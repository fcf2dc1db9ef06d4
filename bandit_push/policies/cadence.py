"""Fixed cadence: the baseline growth teams use today."""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from bandit_push.policies.base import ArmView, LoggedArms, Policy


class FixedCadence(Policy):
    """Send whenever at least ``cadence_gap_hours`` have passed since the last push (or never pushed)."""

    name = "cadence"
    kind = "cadence"
    defaults = {"cadence_gap_hours": 24.0}

    def lua_params(self) -> dict[str, float]:
        return {"gap": self.params["cadence_gap_hours"] * 3600.0}

    def send_probability(self, arm: ArmView) -> float:
        h = arm.hours_since_push
        return 1.0 if h is None or h >= self.params["cadence_gap_hours"] else 0.0

    def send_probabilities(self, arms: LoggedArms) -> npt.NDArray[np.float64]:
        # seconds against seconds, as the decide script compares them (NaN: never pushed)
        gap = arms.seconds_since_push
        return (np.isnan(gap) | (gap >= self.params["cadence_gap_hours"] * 3600.0)).astype(np.float64)
