"""RQ job entry points and the schedule: thin functions over :mod:`bandit_push`."""

#: the one queue the service's jobs use
QUEUE = "bandit-push"
