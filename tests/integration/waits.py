"""Waiting on a condition with a deadline, instead of sleeping for a time that a loaded machine may not honour."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def until(condition: Callable[[], T], timeout: float = 10.0, what: str = "the condition", every: float = 0.01) -> T:
    """Poll ``condition`` every ``every`` s until it returns something true, and return that; fail naming ``what``
    once ``timeout`` s have passed."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(every)
    return value
