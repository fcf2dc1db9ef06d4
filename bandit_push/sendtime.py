"""When to ask again: ``retry_at`` for a refusal that is about the moment.

The decide script says when the moment's refusals lift (``ready``: the end of the minimum gap, of the daily
cap's window, of pacing's load) and the user's UTC offset; this module picks, among the local hour starts from
then to 24 hours after the decision, outside quiet hours, the one whose context (recency bucket at that time,
local daypart) has the highest learned net value in the user's segment, the earliest on ties. What the
segments learned reaches the process as a snapshot of the policy space's arms, read again at most every
``snapshot_seconds`` (one HGETALL of a small hash, off the decide round trip).
"""
from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np

from bandit_push.arms import arm_values, parse_arm
from bandit_push.config import Settings
from bandit_push.policies import ArmView, Policy
from bandit_push.store import Store

HOUR, DAY = 3600.0, 86400.0


class SendTimes:
    """A process's snapshot of the learned net value per segment and context, and the retry time it implies."""

    def __init__(self, store: Store, settings: Settings, policy: Policy, space: str = "default"):
        self.store, self.settings, self.policy, self.space = store, settings, policy, space
        self._values: dict[str, dict[tuple[int, int], float]] = {}
        self._at = -math.inf
        self._lock = threading.Lock()
        self._dp = settings.daypart_of_hour()
        self._edges = [h * HOUR for h in settings.recency_edges_hours]
        self._quiet = settings.quiet_window()

    def _refresh(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if not self.settings.snapshot_due(self._at, now)[0]:
            return
        with self._lock:
            due, t = self.settings.snapshot_due(self._at, now)
            if not due:
                return
            raw = self.store.binary.hgetall(self.store.keys.arms(self.space))
            arms = {f.decode(): arm_values(v) for f, v in raw.items()}
            # decayed to the newest arm's time, not the clock: a replay's arms live in its own time
            now, hl = max((v[0] for v in arms.values() if v), default=0.0), self.settings.half_life_hours * HOUR
            space = parse_arm(arms.get("*|N"), now, hl)
            values: dict[str, dict[tuple[int, int], float]] = {}
            for field, vals in arms.items():
                parts = field.split("|")
                if len(parts) != 3:
                    continue
                seg = parts[0]
                n, counts = parse_arm(vals, now, hl)
                sn, sc = parse_arm(arms.get(f"{seg}|N"), now, hl)
                mean, _ = ArmView(n, counts, sn, None, segment_counts=sc, space=space).posterior(self.policy.prior)
                values.setdefault(seg, {})[(int(parts[1]), int(parts[2]))] = mean
            self._values, self._at = values, t

    def _quiet_at(self, local: float) -> bool:
        if not self._quiet:
            return False
        qs, qe = self._quiet
        return qs <= local < qe if qs < qe else (local >= qs or local < qe)

    def retry_at(self, segment: str, now: float, ready: float, offset: float, last_push: float | None) -> float:
        """The time to ask again: a local hour start (or ``ready`` itself) in [ready, now + 24 h], outside quiet
        hours, with the best learned value of its context in ``segment``; ``ready`` moved past quiet hours when
        nothing in the window is outside them."""
        self._refresh(now)
        learned = self._values.get(segment, {})
        ready = max(ready, now)
        end = now + DAY
        cands = [ready] + list(np.arange(math.floor((ready + offset) / HOUR) + 1, math.floor((end + offset) / HOUR) + 1)
                               * HOUR - offset)
        best, best_v = None, -math.inf
        for t in cands:
            local = (t + offset) % DAY
            if self._quiet_at(local):
                continue
            rec = len(self._edges)
            if last_push is not None:
                rec = next((i for i, e in enumerate(self._edges) if t - last_push < e), rec)
            v = learned.get((rec, self._dp[int(local // HOUR)]), 0.0)
            if v > best_v:
                best, best_v = t, v
        if best is None:  # all quiet: the end of quiet hours after ready
            qe = self._quiet[1] if self._quiet else 0
            best = ready + (qe - (ready + offset) % DAY) % DAY
        return float(best)

    def describe(self, segment: str) -> dict[str, Any]:
        """The snapshot's learned value per (recency bucket, daypart) of ``segment``."""
        self._refresh()
        return {f"{r}|{d}": v for (r, d), v in sorted(self._values.get(segment, {}).items())}
