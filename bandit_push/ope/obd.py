"""The Open Bandit Dataset sample (ZOZO, Inc.; Saito et al. 2020) as OPE inputs.

Validation on real logs: the uniform-random policy's CTR is estimated from the
Bernoulli Thompson sampling log and compared with the CTR observed in the
random policy's own log. A row is one item shown at one position of one
impression; ``propensity_score`` is the behaviour policy's probability of that
item at that position (obp's position-wise convention), and the random policy
picks each position's item uniformly, so its probability of any logged
(item, position) is 1 / n_items, the random log's constant propensity.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bandit_push.ope.estimators import Estimate, difference_interval, doubly_robust, ips, snips

CAMPAIGNS = ("all", "men", "women")
N_POSITIONS = 3
PRIOR_ROWS = 100.0  # pseudo-rows of the position's CTR added to every (item, position) cell of the reward model


@dataclass(frozen=True)
class ObdLog:
    """One behaviour policy's log of one campaign: arrays of shape (n,), positions 0..2."""

    item: npt.NDArray[np.int64]
    position: npt.NDArray[np.int64]
    click: npt.NDArray[np.float64]
    propensity: npt.NDArray[np.float64]
    n_items: int

    @property
    def ctr(self) -> float:
        """Observed click-through rate: mean click over rows."""
        return float(self.click.mean())


def load(root: Path, policy: str, campaign: str) -> ObdLog:
    """Read ``<root>/<policy>/<campaign>/<campaign>.csv`` (policy ``random`` or ``bts``).

    ``n_items`` is read from the campaign's item_context.csv, not inferred from the log.
    """
    folder = Path(root) / policy / campaign
    with open(folder / f"{campaign}.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        cols = [header.index(c) for c in ("item_id", "position", "click", "propensity_score")]
        rows = np.array([[float(row[c]) for c in cols] for row in reader])
    with open(folder / "item_context.csv", newline="") as f:
        n_items = sum(1 for _ in f) - 1
    return ObdLog(rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64) - 1, rows[:, 2], rows[:, 3], n_items)


def position_item_ctr(log: ObdLog, prior_rows: float = PRIOR_ROWS) -> npt.NDArray[np.float64]:
    """Reward model: smoothed click rate per (item, position), shape (n_items, 3).

    Each cell is (clicks + prior_rows * position CTR) / (shows + prior_rows):
    with about 40 clicks in 10,000 rows most cells have no click, so the
    position's CTR carries them. Fitted on the same log it is used on (no
    cross-fitting; the model only moves DR's control variate).
    """
    shows = np.zeros((log.n_items, N_POSITIONS))
    clicks = np.zeros((log.n_items, N_POSITIONS))
    np.add.at(shows, (log.item, log.position), 1.0)
    np.add.at(clicks, (log.item, log.position), log.click)
    prior = clicks.sum(axis=0) / np.maximum(shows.sum(axis=0), 1.0)
    return (clicks + prior_rows * prior) / (shows + prior_rows)


@dataclass(frozen=True)
class Validation:
    """One estimate of the random policy's CTR against the CTR observed in its own log.

    ``diff_low``/``diff_high`` bound estimate - observed (95%, both samples'
    noise, see ``difference_interval``); ``covered`` is whether 0 lies inside.
    """

    campaign: str
    estimate: Estimate
    observed_ctr: float
    n_observed: int
    diff_low: float
    diff_high: float

    @property
    def covered(self) -> bool:
        """The observed CTR is consistent with the estimate at 95%."""
        return self.diff_low <= 0.0 <= self.diff_high


def validate_campaign(root: Path, campaign: str, *, clips: tuple[float | None, ...] = (None,),
                      n_bootstrap: int = 1000, seed: int = 0) -> list[Validation]:
    """IPS, SNIPS and DR estimates of the random policy's CTR from the BTS log, each against the random log.

    One estimate per estimator and clip in ``clips`` (None: unclipped), in that order; the logs are read once.
    """
    bts, rnd = load(root, "bts", campaign), load(root, "random", campaign)
    target = np.full(bts.click.shape[0], 1.0 / bts.n_items)
    q = position_item_ctr(bts)
    q_logged = q[bts.item, bts.position]
    q_target = q.mean(axis=0)[bts.position]  # uniform over items at the logged position
    out = []
    for clip in clips:
        common: dict[str, Any] = dict(clip=clip, n_bootstrap=n_bootstrap, seed=seed)
        for est in (ips(bts.click, bts.propensity, target, **common),
                    snips(bts.click, bts.propensity, target, **common),
                    doubly_robust(bts.click, bts.propensity, target, q_logged, q_target, **common)):
            _, lo, hi = difference_interval(est, rnd.click, seed=seed + 1)
            out.append(Validation(campaign, est, rnd.ctr, rnd.click.shape[0], lo, hi))
    return out
