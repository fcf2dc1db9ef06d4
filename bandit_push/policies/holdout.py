"""Holdout: never sends. The control arm that measures what pushing adds at all."""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt

from bandit_push.policies.base import ArmView, LoggedArms, Policy


class Holdout(Policy):
    """Never send; the decide script answers ``send: false`` with reason ``holdout`` (propensity 1)."""

    name = "holdout"
    kind = "holdout"
    defaults: ClassVar[dict[str, float]] = {}

    def lua_params(self) -> dict[str, str]:
        return {"refuse": "holdout"}  # decide refuses before the guardrails, with this reason

    def send_probability(self, arm: ArmView) -> float:
        return 0.0

    def send_probabilities(self, arms: LoggedArms) -> npt.NDArray[np.float64]:
        return np.zeros_like(arms.mean)
