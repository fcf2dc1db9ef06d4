"""RQ job entry points and the schedule: thin functions over :mod:`bandit_push`."""
