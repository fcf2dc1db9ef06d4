"""The periodic jobs, declared as data: (job function, interval in seconds, timeout in seconds)."""
from __future__ import annotations

from bandit_push.config import Settings
from bandit_push_workers import jobs

PERIODIC = [
    (jobs.refresh_popular, 60, 300),
    (jobs.compact_interactions, 3600, 1800),
    (jobs.resend_send_credits, 3600, 1800),
]


def periodic(settings: Settings) -> list[tuple]:
    """:data:`PERIODIC` and the refits, at the intervals and timeouts the settings give."""
    return PERIODIC + [
        (jobs.refit_mf, int(settings.mf_refit_hours * 3600), settings.refit_timeout_s),
        (jobs.refit_segments, int(settings.segments_refit_hours * 3600), settings.refit_timeout_s),
        (jobs.refit_policy, int(settings.policy_refit_minutes * 60), settings.refit_timeout_s),
    ]
