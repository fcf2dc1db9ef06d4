"""bandit-push: learned send / no-send decisions and personalised items for push notifications."""

__version__ = "0.1.0"
