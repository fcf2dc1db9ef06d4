"""Upper confidence bound on the net value of a push."""
from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from bandit_push.policies.base import ArmView, LoggedArms, Policy


class UCB(Policy):
    """Send when ``mean + ucb_c * sd * sqrt(2 ln(N + 2))`` beats ``cost`` (N: the segment's sends).

    The bonus grows slowly with the segment's experience and shrinks with the arm's own,
    so an arm keeps being tried until its optimistic value falls below the cost.
    Deterministic: the propensity of the action taken is 1.
    """

    name = "ucb"
    kind = "ucb"
    defaults = {"cost": 0.0, "ucb_c": 1.0, "pool_events": 5.0, "pacing": 1.0, "pacing_caution": 0.0,
                "pacing_explore": 1.0, "pacing_min_sends": 20.0}

    def send_probability(self, arm: ArmView) -> float:
        mean, var = arm.posterior(self.prior)
        bound = mean + self.params["ucb_c"] * math.sqrt(var * 2 * math.log(arm.segment_sends + 2))
        return 1.0 if bound > self.params["cost"] else 0.0

    def send_probabilities(self, arms: LoggedArms) -> npt.NDArray[np.float64]:
        bound = arms.mean + self.params["ucb_c"] * np.sqrt(arms.var * 2 * np.log(arms.segment_sends + 2))
        return (bound > self.params["cost"]).astype(np.float64)
