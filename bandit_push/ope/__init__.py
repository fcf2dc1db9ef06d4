"""Off-policy evaluation: judge a candidate policy from another policy's log (pure numpy)."""

from bandit_push.ope.estimators import (
    Estimate,
    OpeWarning,
    difference_interval,
    direct_method,
    doubly_robust,
    effective_sample_size,
    ips,
    resampled_sums,
    snips,
)

__all__ = [
    "Estimate",
    "OpeWarning",
    "difference_interval",
    "direct_method",
    "doubly_robust",
    "effective_sample_size",
    "ips",
    "resampled_sums",
    "snips",
]
