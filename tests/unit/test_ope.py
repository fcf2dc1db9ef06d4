"""The OPE estimators against textbook loops, on synthetic logs with known truth, and on bad input."""

import math

import numpy as np
import pytest

from bandit_push import ope

# A small fixed log: reward, logging propensity of the logged action, candidate's probability of it,
# reward model on the logged action, reward model's expectation under the candidate.
LOG = [
    (1.0, 0.5, 0.2, 0.6, 0.4),
    (0.0, 0.25, 0.5, 0.3, 0.35),
    (1.0, 0.1, 0.9, 0.5, 0.55),
    (0.0, 0.8, 0.1, 0.2, 0.3),
    (1.0, 0.4, 0.4, 0.7, 0.5),
    (0.0, 0.05, 0.3, 0.1, 0.2),
]
R, P, PI, Q, QPI = (np.array(c) for c in zip(*LOG))


def loop_ips(clip=None):
    total = 0.0
    for r, p, pi, _, _ in LOG:
        w = pi / p if clip is None else min(pi / p, clip)
        total += w * r
    return total / len(LOG)


def loop_snips():
    num = den = 0.0
    for r, p, pi, _, _ in LOG:
        num += pi / p * r
        den += pi / p
    return num / den


def loop_dr():
    return sum(qpi + pi / p * (r - q) for r, p, pi, q, qpi in LOG) / len(LOG)


def test_each_estimator_equals_the_textbook_loop():
    assert ope.ips(R, P, PI).estimate == pytest.approx(loop_ips(), rel=1e-12)
    assert ope.ips(R, P, PI, clip=2.0).estimate == pytest.approx(loop_ips(clip=2.0), rel=1e-12)
    assert ope.snips(R, P, PI).estimate == pytest.approx(loop_snips(), rel=1e-12)
    assert ope.direct_method(QPI).estimate == pytest.approx(sum(QPI) / len(QPI), rel=1e-12)
    assert ope.doubly_robust(R, P, PI, Q, QPI).estimate == pytest.approx(loop_dr(), rel=1e-12)


def test_ess_and_analytic_interval_match_the_formulas():
    w = [pi / p for _, p, pi, _, _ in LOG]
    est = ope.ips(R, P, PI)
    assert est.ess == pytest.approx(sum(w) ** 2 / sum(x * x for x in w))
    terms = [x * r for x, (r, *_) in zip(w, LOG)]
    mean = sum(terms) / len(terms)
    se = math.sqrt(sum((t - mean) ** 2 for t in terms) / (len(terms) - 1) / len(terms))
    assert est.std_error == pytest.approx(se)
    assert (est.normal_low, est.normal_high) == pytest.approx((mean - 1.959964 * se, mean + 1.959964 * se))
    assert est.n == 6 and est.ci_low <= est.estimate <= est.ci_high


def test_bootstrap_is_seeded_and_the_shared_resampler_matches_a_loop():
    a, b = ope.ips(R, P, PI, seed=7), ope.ips(R, P, PI, seed=7)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    cols = np.column_stack([R, P])
    sums = ope.resampled_sums(cols, 5, 3)
    idx = np.random.default_rng(3).integers(0, 6, size=(5, 6), dtype=np.int32)
    for i in range(5):
        assert sums[i].tolist() == pytest.approx([sum(R[j] for j in idx[i]), sum(P[j] for j in idx[i])])


def simulate(rng, n, n_actions=4):
    """A contextual bandit: 2 contexts, known logging and candidate policies, Bernoulli rewards."""
    ctr = np.array([[0.10, 0.30, 0.50, 0.20], [0.40, 0.15, 0.25, 0.60]])[:, :n_actions]
    logging = np.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]])[:, :n_actions]
    target = np.array([[0.1, 0.2, 0.6, 0.1], [0.25, 0.05, 0.1, 0.6]])[:, :n_actions]
    truth = float(0.5 * (target * ctr).sum(axis=1).sum())
    x = rng.integers(0, 2, n)
    u = rng.random(n)[:, None]
    a = (u > np.cumsum(logging[x], axis=1)).sum(axis=1)
    r = (rng.random(n) < ctr[x, a]).astype(float)
    # a deliberately imperfect reward model: true CTRs shrunk towards 0.3
    q = 0.7 * ctr + 0.09
    return dict(r=r, p=logging[x, a], pi=target[x, a], q=q[x, a], qpi=(target * q).sum(axis=1)[x]), truth


def test_bootstrap_interval_covers_the_truth_about_95_percent_of_the_time():
    reps = 200
    covered = {"ips": 0, "snips": 0, "dr": 0}
    for seed in range(reps):
        log, truth = simulate(np.random.default_rng(seed), 400)
        for est in (ope.ips(log["r"], log["p"], log["pi"], n_bootstrap=400, seed=seed),
                    ope.snips(log["r"], log["p"], log["pi"], n_bootstrap=400, seed=seed),
                    ope.doubly_robust(log["r"], log["p"], log["pi"], log["q"], log["qpi"], n_bootstrap=400,
                                      seed=seed)):
            covered[est.estimator] += est.ci_low <= truth <= est.ci_high
    for name, hits in covered.items():
        assert 0.90 <= hits / reps <= 0.99, (name, hits)


def test_clipping_reduces_variance():
    rng = np.random.default_rng(1)
    n = 2000
    p = np.where(rng.random(n) < 0.05, 0.01, 0.5)
    pi = np.full(n, 0.5)
    r = (rng.random(n) < 0.3).astype(float)
    plain, clipped = ope.ips(r, p, pi), ope.ips(r, p, pi, clip=5.0)
    assert clipped.std_error < plain.std_error / 3
    assert clipped.ci_high - clipped.ci_low < (plain.ci_high - plain.ci_low) / 3
    assert clipped.ess > plain.ess


def test_missing_support_tiny_propensity_and_low_ess_warnings():
    n = 1000
    r, p, pi = np.zeros(n), np.full(n, 0.5), np.full(n, 0.5)
    assert ope.ips(r, p, pi).warnings == ()
    unsupported = np.zeros(n)
    unsupported[:10] = 0.3
    for est in (ope.ips(r, p, pi, unsupported_mass=unsupported), ope.snips(r, p, pi, unsupported_mass=unsupported),
                ope.direct_method(np.zeros(n), unsupported_mass=unsupported),
                ope.doubly_robust(r, p, pi, r, r, unsupported_mass=unsupported)):
        assert "missing_support" in est.warning_codes
    p_tiny = p.copy()
    p_tiny[0] = 1e-6
    est = ope.ips(r, p_tiny, pi)
    assert est.warning_codes == ("tiny_propensity", "low_ess")
    assert "1 of 1000 rows" in est.warnings[0].message
    assert ope.ips(r, p_tiny, pi, tiny=1e-6).warning_codes == ("low_ess",)
    assert ope.ips(r, p_tiny, pi, tiny=1e-6, min_ess_fraction=0.0).warnings == ()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(rewards=[1.0, 0.0], logging_prob=[0.5], target_prob=[0.5, 0.5]), "logging_prob"),
        (dict(rewards=[1.0, 0.0], logging_prob=[0.5, 0.5], target_prob=[0.5]), "target_prob"),
        (dict(rewards=[1.0, 0.0], logging_prob=[0.5, 0.0], target_prob=[0.5, 0.5]), "logging_prob"),
        (dict(rewards=[1.0, 0.0], logging_prob=[0.5, -0.1], target_prob=[0.5, 0.5]), "logging_prob"),
        (dict(rewards=[1.0, 0.0], logging_prob=[0.5, 1.5], target_prob=[0.5, 0.5]), "logging_prob"),
        (dict(rewards=[1.0, 0.0], logging_prob=[0.5, 0.5], target_prob=[0.5, 1.01]), "target_prob"),
        (dict(rewards=[1.0, float("nan")], logging_prob=[0.5, 0.5], target_prob=[0.5, 0.5]), "rewards"),
        (dict(rewards=[1.0, 0.0], logging_prob=[0.5, float("nan")], target_prob=[0.5, 0.5]), "logging_prob"),
        (dict(rewards=[1.0, 0.0], logging_prob=[0.5, 0.5], target_prob=[float("nan"), 0.5]), "target_prob"),
        (dict(rewards=[], logging_prob=[], target_prob=[]), "rewards"),
    ],
)
def test_malformed_inputs_raise_value_error_naming_the_array(kwargs, name):
    for fn in (ope.ips, ope.snips):
        with pytest.raises(ValueError, match=name):
            fn(**kwargs)
    with pytest.raises(ValueError, match=name):
        ope.doubly_robust(**kwargs, reward_hat=kwargs["rewards"], reward_hat_target=kwargs["rewards"])


def test_malformed_model_inputs_and_clip():
    with pytest.raises(ValueError, match="reward_hat_target"):
        ope.doubly_robust(R, P, PI, Q, QPI[:-1])
    with pytest.raises(ValueError, match="reward_hat"):
        ope.doubly_robust(R, P, PI, np.append(Q[:-1], np.inf), QPI)
    with pytest.raises(ValueError, match="unsupported_mass"):
        ope.ips(R, P, PI, unsupported_mass=np.full(6, 2.0))
    with pytest.raises(ValueError, match="clip"):
        ope.ips(R, P, PI, clip=0.0)


def test_grouped_bootstrap_on_a_large_log_agrees_with_the_analytic_error():
    # above MAX_UNITS rows the bootstrap resamples shuffled groups of rows; its spread must stay the row-level one
    rng = np.random.default_rng(5)
    n = 200_000
    p, pi = rng.uniform(0.05, 1.0, n), rng.uniform(0.0, 1.0, n)
    r = (rng.random(n) < 0.2).astype(float)
    for est in (ope.ips(r, p, pi, n_bootstrap=300), ope.snips(r, p, pi, n_bootstrap=300)):
        assert est.replicates.std(ddof=1) == pytest.approx(est.std_error, rel=0.15), est.estimator
        assert est.ci_low == pytest.approx(est.normal_low, abs=est.std_error * 0.3)
        assert est.ci_high == pytest.approx(est.normal_high, abs=est.std_error * 0.3)
