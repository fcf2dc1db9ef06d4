"""The periodic jobs, declared as data: (job function, interval in seconds, timeout in seconds)."""
from __future__ import annotations

from workers import jobs

PERIODIC = [
    (jobs.refresh_popular, 60, 300),
    (jobs.compact_interactions, 3600, 1800),
]
