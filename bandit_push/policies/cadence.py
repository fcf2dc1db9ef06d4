"""Fixed cadence: the baseline growth teams use today."""
from __future__ import annotations

from bandit_push.policies.base import ArmView, Policy


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
