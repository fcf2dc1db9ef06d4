"""The gate's statistics on synthetic logs: two versions of the arms one policy sees, judged on one log."""
import numpy as np
import pytest

from bandit_push.config import Settings
from bandit_push.ope import gate
from bandit_push.ope.log import DecisionLog
from bandit_push.policies import LoggedArms, ThompsonSampling, phi_array


def synthetic(n: int, seed: int = 0) -> tuple[DecisionLog, np.ndarray]:
    """A Thompson logger at cost 0 on arms of mean m (var 1); sending earns m + noise. Returns the log and m."""
    rng = np.random.default_rng(seed)
    m = rng.normal(0, 1, n)
    p = phi_array(m)
    sent = rng.random(n) < p
    reward = np.where(sent, m + rng.normal(0, 1, n), 0.0)
    arms = LoggedArms(m, np.ones(n), np.zeros(n), np.full(n, np.nan))
    log = DecisionLog(sent=sent, propensity=np.where(sent, p, 1 - p), refused=np.zeros(n, bool),
                      holdout=np.zeros(n, bool), arms=arms, reward=reward, user_day=np.arange(n) // 3,
                      cell=np.zeros(n, np.int64), policies=("thompson",))
    return log, m


def test_a_version_that_sends_where_sending_loses_is_worse_and_the_logger_ties_itself():
    log, m = synthetic(4000)
    policy = ThompsonSampling(Settings())
    everywhere = np.ones(len(log), bool)
    backwards = LoggedArms(-m, log.arms.var, log.arms.segment_sends, log.arms.seconds_since_push)
    out = gate.compare(log, everywhere, policy, log.arms, backwards)
    assert not out["serves"] and out["reason"] == "worse" and out["difference"]["ci_high"] < 0
    assert out["serving"]["ess"] == pytest.approx(len(log))  # the logger replayed: every weight 1
    assert out["serving"]["ci_low"] <= out["serving"]["estimate"] <= out["serving"]["ci_high"]
    same = gate.compare(log, everywhere, policy, log.arms, log.arms)
    assert same["serves"] and same["reason"] == "not_worse"
    assert same["difference"] == {"estimate": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    # sharper (less noisy) arms of the right sign send where sending earns: not worse
    sharp = LoggedArms(m, np.full(len(log), 0.25), log.arms.segment_sends, log.arms.seconds_since_push)
    better = gate.compare(log, everywhere, policy, log.arms, sharp)
    assert better["serves"] and better["difference"]["estimate"] > 0


@pytest.mark.parametrize("scored, sends, compared", [(gate.MIN_SCORED - 1, None, False), (gate.MIN_SCORED, None, True),
                                                     (None, gate.MIN_SENDS - 1, False)])
def test_too_few_to_tell_serves(scored, sends, compared):
    log, m = synthetic(1000, seed=1)
    mask = np.zeros(len(log), bool)
    if scored is not None:
        mask[:scored] = True
    else:  # every row scored, but only ``sends`` of the logged sends among them
        mask[:] = True
        mask[np.flatnonzero(log.sent)[sends:]] = False
    backwards = LoggedArms(-m, log.arms.var, log.arms.segment_sends, log.arms.seconds_since_push)
    out = gate.compare(log, mask, ThompsonSampling(Settings()), log.arms, backwards)
    assert ("difference" in out) == compared
    if not compared:
        assert out["serves"] and out["reason"] == "too_few" and out["scored"] == int(mask.sum())
