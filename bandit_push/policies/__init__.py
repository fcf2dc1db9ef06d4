"""Send policies behind one interface, found by name."""
from __future__ import annotations

from bandit_push.policies.base import ArmView, Policy, Prior, net_value_posterior, phi
from bandit_push.policies.cadence import FixedCadence
from bandit_push.policies.thompson import ThompsonSampling
from bandit_push.policies.ucb import UCB

#: name -> policy class
POLICIES: dict[str, type[Policy]] = {p.name: p for p in (ThompsonSampling, UCB, FixedCadence)}

__all__ = ["POLICIES", "ArmView", "Policy", "Prior", "net_value_posterior", "phi",
           "FixedCadence", "ThompsonSampling", "UCB"]
