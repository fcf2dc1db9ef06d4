"""Thompson sampling on the net value of a push."""
from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from bandit_push.policies.base import ArmView, LoggedArms, Policy, phi, phi_array


class ThompsonSampling(Policy):
    """Draw the net value from a normal approximation of its posterior; send if the draw beats ``cost``.

    The draw is made by inverse transform from one uniform number, ``send iff u < P(V > cost)``,
    so the propensity of either action is known exactly: ``P(V > cost) = phi((mean - cost) / sd)``.
    """

    name = "thompson"
    kind = "thompson"
    defaults = {"cost": 0.0, "pool_events": 5.0, "pacing": 1.0, "pacing_caution": 0.0, "pacing_explore": 1.0,
                "pacing_min_sends": 20.0, "thompson_scale": 1.0}

    def send_probability(self, arm: ArmView) -> float:
        mean, var = arm.posterior(self.prior)
        return phi((mean - self.params["cost"]) / (self.params["thompson_scale"] * math.sqrt(var)))

    def send_probabilities(self, arms: LoggedArms) -> npt.NDArray[np.float64]:
        return phi_array((arms.mean - self.params["cost"]) / (self.params["thompson_scale"] * np.sqrt(arms.var)))
