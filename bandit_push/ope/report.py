"""The text report of ``bandit-push evaluate``: one table per candidate, the logger's value for reference."""
from __future__ import annotations

import json
from typing import Any

from bandit_push.ope.evaluate import CandidateReport

NAMES = {"ips": "IPS", "snips": "SNIPS", "dm": "DM", "dr": "DR"}


def _ci(estimate: float, ci_low: float, ci_high: float) -> str:
    return f"{estimate:+.4f} [{ci_low:+.4f}, {ci_high:+.4f}]"


def format_report(observed: dict[str, Any], reports: list[CandidateReport], clip: float | None = None) -> str:
    """Human-readable report of :func:`~bandit_push.ope.evaluate.observed` and candidate reports."""
    o = observed
    lines = [f"decision log: {o['decisions']:,} closed decisions by {', '.join(o['policies'])}, "
             f"{o['user_days']:,} user-days, send rate {o['send_rate']:.3f}"
             + (f"; {o['open_rows_skipped']:,} decisions still in their attribution window skipped"
                if o["open_rows_skipped"] else ""),
             "logging policy (observed): "
             f"{_ci(o['per_decision']['estimate'], o['per_decision']['ci_low'], o['per_decision']['ci_high'])}"
             f" per decision, {_ci(**o['per_user_day'])} per user-day",
             "values: net value (service outcome weights), 95% bootstrap CI"
             + (f"; importance weights clipped at {clip:g}" if clip is not None else "")]
    for rep in reports:
        lines += ["", f"candidate {json.dumps(rep.policy)}: sends at {rep.send_rate:.3f} of decisions",
                  f"  {'estimator':<9} {'per decision (95% CI)':<30} {'per user-day (95% CI)':<30} {'ESS':>10}"]
        warnings: dict[tuple[str, str], list[str]] = {}
        for name, est in rep.per_decision.items():
            day = rep.per_user_day[name]
            lines.append(f"  {NAMES[name]:<9} {_ci(est.estimate, est.ci_low, est.ci_high):<30} "
                         f"{_ci(day.estimate, day.ci_low, day.ci_high):<30} {est.ess:>10,.1f}")
            for w in est.warnings:
                warnings.setdefault((w.code, w.message), []).append(NAMES[name])
        for (code, message), names in warnings.items():
            lines.append(f"  warning {code} ({', '.join(names)}): {message}")
    return "\n".join(lines)
