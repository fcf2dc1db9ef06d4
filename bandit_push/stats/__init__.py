"""The statistics behind experiment reports: pure numpy/scipy, no Redis, no Flask.

- `inference`: Welch's t for means, the delta method for ratio metrics, relative
  lift, and the Bayesian probability to beat control / expected loss.
- `sequential`: an always-valid confidence sequence, safe under daily peeking.
- `checks`: sample-ratio mismatch and one-sided guardrail tests.
- `report`: everything together for an experiment, plus its conclusion in words.
"""

from __future__ import annotations

from bandit_push.stats.checks import (
    GuardrailResult,
    SampleRatio,
    guardrail_check,
    sample_ratio_check,
)
from bandit_push.stats.inference import (
    Estimate,
    Posterior,
    delta_ratio,
    posterior,
    posterior_from_summary,
    ratio_moments,
    welch,
    welch_from_summary,
)
from bandit_push.stats.report import (
    DEFAULT_GUARDRAILS,
    DEFAULT_METRICS,
    Comparison,
    Guardrail,
    Metric,
    Report,
    analyse,
    compare,
    describe,
)
from bandit_push.stats.sequential import (
    DEFAULT_MIXING_SD,
    SequentialInterval,
    mixture_radius,
    pooled_sd,
    sequential_interval,
)

__all__ = [
    "DEFAULT_GUARDRAILS", "DEFAULT_METRICS", "DEFAULT_MIXING_SD", "Comparison", "Estimate", "Guardrail",
    "GuardrailResult", "Metric", "Posterior", "Report", "SampleRatio", "SequentialInterval", "analyse",
    "compare", "delta_ratio", "describe", "guardrail_check", "mixture_radius", "pooled_sd", "posterior",
    "posterior_from_summary", "ratio_moments", "sample_ratio_check", "sequential_interval", "welch",
    "welch_from_summary",
]
