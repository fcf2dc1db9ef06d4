"""Send policies behind one interface, found by name."""
from __future__ import annotations

from bandit_push.policies.base import (ArmView, LoggedArms, Policy, Prior, net_value_posterior,
                                      pacing_choice, pacing_load, phi, phi_array)
from typing import Any

from bandit_push.config import Settings
from bandit_push.errors import InvalidArgument
from bandit_push.policies.cadence import FixedCadence
from bandit_push.policies.holdout import Holdout
from bandit_push.policies.thompson import ThompsonSampling
from bandit_push.policies.ucb import UCB

#: name -> policy class
POLICIES: dict[str, type[Policy]] = {p.name: p for p in (ThompsonSampling, UCB, FixedCadence, Holdout)}


def from_config(config: Any, settings: Settings, field: str = "policy") -> Policy:
    """A policy from its JSON configuration, ``{"name": "thompson", "cost": 0.2}``: ``name`` picks the
    policy, the other keys are its settings under the service's own names (unset ones come from
    ``settings``). The one parser for experiment variants and off-policy candidates; errors name the field."""
    if not isinstance(config, dict):
        raise InvalidArgument(f"{field} must be an object like {{\"name\": \"thompson\"}}", field=field)
    name = config.get("name")
    if not isinstance(name, str) or name not in POLICIES:  # a list or object name is not hashable
        raise InvalidArgument(f"{field}.name must be one of {sorted(POLICIES)}", field=f"{field}.name")
    params = {k: v for k, v in config.items() if k != "name"}
    try:
        return POLICIES[name](settings, **params)
    except InvalidArgument as e:
        raise InvalidArgument(e.message.replace("policy", field, 1),
                              field=(e.field or field).replace("policy", field, 1)) from None

__all__ = ["POLICIES", "ArmView", "LoggedArms", "Policy", "Prior", "net_value_posterior", "pacing_choice",
           "pacing_load", "phi", "phi_array",
           "FixedCadence", "Holdout", "ThompsonSampling", "UCB", "from_config"]
