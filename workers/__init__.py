"""RQ job entry points and the schedule: thin functions over :mod:`bandit_push`."""

from bandit_push.config import QUEUE  # noqa: F401  (the one queue the service's jobs use)
