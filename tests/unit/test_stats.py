"""The statistics library against scipy references, hand computations and planted effects."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from bandit_push.stats import (
    Metric,
    analyse,
    delta_ratio,
    guardrail_check,
    mixture_radius,
    pooled_sd,
    posterior,
    posterior_from_summary,
    ratio_moments,
    sample_ratio_check,
    sequential_interval,
    welch,
    welch_from_summary,
)


@pytest.fixture
def fixed_arms():
    rng = np.random.default_rng(20261123)
    control = rng.lognormal(0.0, 1.0, 300) * rng.binomial(1, 0.4, 300)
    variant = rng.lognormal(0.1, 1.2, 260) * rng.binomial(1, 0.45, 260)
    return control, variant


def test_welch_agrees_with_scipy(fixed_arms):
    control, variant = fixed_arms
    est = welch(control, variant)
    ref = sps.ttest_ind(variant, control, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert est.difference == pytest.approx(variant.mean() - control.mean(), rel=1e-12)
    assert est.difference / est.se == pytest.approx(ref.statistic, rel=1e-10)
    assert est.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert est.df == pytest.approx(ref.df, rel=1e-10)
    assert (est.ci_low, est.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)


def test_relative_lift_delta_method_by_hand(fixed_arms):
    control, variant = fixed_arms
    est = welch(control, variant)
    mc, mv = control.mean(), variant.mean()
    vc, vv = control.var(ddof=1) / control.size, variant.var(ddof=1) / variant.size
    # gradient of mv/mc is (-mv/mc^2, 1/mc)
    se = np.sqrt((mv / mc**2) ** 2 * vc + (1 / mc) ** 2 * vv)
    z = sps.norm.ppf(0.975)
    assert est.relative_lift == pytest.approx(mv / mc - 1)
    assert (est.lift_ci_low, est.lift_ci_high) == pytest.approx((mv / mc - 1 - z * se, mv / mc - 1 + z * se))


def test_ratio_metric_matches_hand_delta_method():
    rng = np.random.default_rng(7)
    sends_c, sends_v = rng.poisson(4, 500), rng.poisson(4, 450)
    clicks_c, clicks_v = rng.binomial(sends_c, 0.10), rng.binomial(sends_v, 0.13)

    def by_hand(y, x):
        # Linearisation: the ratio's influence per user is (y - R x) / mean(x).
        r = y.sum() / x.sum()
        resid = (y - r * x) / x.mean()
        return r, resid.var(ddof=1) / y.size

    rc, vc = by_hand(clicks_c, sends_c)
    rv, vv = by_hand(clicks_v, sends_v)
    assert ratio_moments(clicks_c, sends_c)[:2] == pytest.approx((rc, vc), rel=1e-10)
    est = delta_ratio(clicks_c, sends_c, clicks_v, sends_v)
    se = np.sqrt(vc + vv)
    assert est.difference == pytest.approx(rv - rc)
    assert est.se == pytest.approx(se, rel=1e-10)
    assert est.p_value == pytest.approx(2 * sps.norm.sf(abs(rv - rc) / se), rel=1e-9)
    assert est.ci_low == pytest.approx(rv - rc - 1.959963984540054 * se)


def test_welch_summary_broadcasts_like_the_scalar_function(fixed_arms):
    control, variant = fixed_arms
    est = welch(control, variant)
    out = welch_from_summary(
        np.full(3, control.mean()), control.var(ddof=1), control.size, variant.mean(), variant.var(ddof=1),
        variant.size,
    )
    assert out["p_value"].shape == (3,)
    assert out["p_value"] == pytest.approx([est.p_value] * 3)


def test_posterior_matches_numerical_integration():
    d, se = 0.3, 0.2
    post = posterior(welch_like(d, se))
    assert post.prob_beat_control == pytest.approx(sps.norm.cdf(d / se))
    loss, _ = integrate.quad(lambda x: max(0.0, -x) * sps.norm.pdf(x, d, se), -5, 5, points=[0.0])
    assert post.expected_loss == pytest.approx(loss, rel=1e-6)
    # lower-is-better flips the sign of "better"
    prob, loss_low = posterior_from_summary(d, se, higher_is_better=False)
    assert prob == pytest.approx(1 - post.prob_beat_control)
    assert loss_low == pytest.approx(integrate.quad(lambda x: max(0.0, x) * sps.norm.pdf(x, d, se), -5, 5)[0])


def welch_like(d: float, se: float):
    """An Estimate with the given difference and standard error (other fields irrelevant)."""
    rng = np.random.default_rng(0)
    return dataclasses.replace(welch(rng.normal(size=10), rng.normal(size=10)), difference=d, se=se)


def test_sequential_interval_is_the_inverted_msprt():
    d, se, sigma, alpha = 0.1, 0.05, 1.2, 0.05
    iv = sequential_interval(d, se, sigma, alpha, mixing_sd=0.1)
    tau2, v = (0.1 * sigma) ** 2, se**2
    for theta in (iv.ci_low, iv.ci_high):
        # Johari et al.'s mixture likelihood ratio equals 1/alpha exactly at the interval's ends.
        lam = np.sqrt(v / (v + tau2)) * np.exp(tau2 * (d - theta) ** 2 / (2 * v * (v + tau2)))
        assert lam == pytest.approx(1 / alpha)
    assert iv.ci_high - d > sps.norm.ppf(0.975) * se  # wider than the fixed-horizon interval
    assert float(mixture_radius(v, tau2, alpha)) == pytest.approx(iv.ci_high - d)


def test_sequential_interval_covers_a_planted_effect_at_every_look():
    runs, days, per_day, delta = 1000, 14, 50, 0.2
    rng = np.random.default_rng(99)
    c = rng.normal(0.0, 1.0, (runs, days * per_day))
    v = rng.normal(delta, 1.0, (runs, days * per_day))
    looks = per_day * np.arange(1, days + 1)
    mc, mv = np.cumsum(c, 1)[:, looks - 1] / looks, np.cumsum(v, 1)[:, looks - 1] / looks
    vc = (np.cumsum(c * c, 1)[:, looks - 1] - looks * mc**2) / (looks - 1)
    vv = (np.cumsum(v * v, 1)[:, looks - 1] - looks * mv**2) / (looks - 1)
    out = welch_from_summary(mc, vc, looks, mv, vv, looks)
    radius = mixture_radius(out["se"] ** 2, (0.1 * pooled_sd(vc, looks, vv, looks)) ** 2)
    missed = np.any(np.abs(out["difference"] - delta) > radius, axis=1)
    detected = np.any(out["difference"] - radius > 0, axis=1)
    print(f"sequential: time-uniform miss rate {missed.mean():.3f}, detected by day 14 {detected.mean():.3f}")
    assert missed.mean() <= 0.05
    assert detected.mean() > 0.6  # valid, but not uselessly wide (fixed-horizon power here is 0.96)


def test_srm_fires_on_skewed_split_and_stays_quiet_on_fair_one():
    rng = np.random.default_rng(11)
    fair = rng.multinomial(20000, [0.5, 0.3, 0.2])
    ok = sample_ratio_check(dict(zip("ABC", fair)), {"A": 5, "B": 3, "C": 2})
    assert not ok.flagged and ok.p_value > 0.001
    assert ok.p_value == pytest.approx(sps.chisquare(fair, 20000 * np.array([0.5, 0.3, 0.2])).pvalue)
    skewed = sample_ratio_check({"A": 10000, "B": 10500}, {"A": 1, "B": 1})  # 2.4% short on A
    assert skewed.flagged and skewed.p_value < 0.001
    assert not sample_ratio_check({"A": 10000, "B": 10100}, {"A": 1, "B": 1}).flagged


def test_guardrail_is_one_sided():
    rng = np.random.default_rng(5)
    control = rng.binomial(1, 0.02, 5000).astype(float)
    worse = rng.binomial(1, 0.035, 5000).astype(float)
    better = rng.binomial(1, 0.005, 5000).astype(float)
    assert guardrail_check("unsubscribe_rate", "B", control, worse).breached
    assert not guardrail_check("unsubscribe_rate", "B", control, better).breached
    # For a higher-is-better guardrail, the same rise is an improvement, and a fall is harm.
    assert guardrail_check("retention", "B", control, worse, higher_is_better=True).p_value > 0.5
    assert guardrail_check("retention", "B", worse, control, higher_is_better=True).breached
    assert not guardrail_check("unsubscribe_rate", "B", control, worse, margin=0.03).breached


def test_planted_effect_detected_with_expected_power():
    runs, n, delta, alpha = 400, 300, 0.2, 0.05
    rng = np.random.default_rng(42)
    c = rng.normal(0.0, 1.0, (runs, n))
    v = rng.normal(delta, 1.0, (runs, n))
    out = welch_from_summary(c.mean(1), c.var(1, ddof=1), n, v.mean(1), v.var(1, ddof=1), n, alpha)
    empirical = float(np.mean(out["p_value"] < alpha))
    df, nc = 2 * n - 2, delta / np.sqrt(2 / n)
    crit = sps.t.ppf(1 - alpha / 2, df)
    expected = sps.nct.sf(crit, df, nc) + sps.nct.cdf(-crit, df, nc)  # about 0.69
    se = np.sqrt(expected * (1 - expected) / runs)
    print(f"power: empirical {empirical:.3f}, expected {expected:.3f} (se {se:.3f})")
    assert abs(empirical - expected) < 3 * se
    # The public per-experiment function gives the same answer as the vectorised one.
    assert welch(c[0], v[0]).p_value == pytest.approx(out["p_value"][0])


def _arm(rng, n, lift=0.0, unsubscribe=0.01):
    sends = rng.poisson(3, n)
    clicks = rng.binomial(sends, 0.1)
    conversions = rng.binomial(clicks, 0.3)
    return {
        "sends": sends, "clicks": clicks, "conversions": conversions, "events": rng.poisson(5, n),
        "net_value": conversions * 10.0 * (1 + lift) - 0.01 * sends,
        "unsubscribed": rng.binomial(1, unsubscribe, n),
    }


def test_report_in_words_and_json():
    rng = np.random.default_rng(3)
    won = analyse({"A": _arm(rng, 20000), "B": _arm(rng, 20000, lift=0.3)}, {"A": 1, "B": 1})
    assert re.fullmatch(r"variant B raises net value per user by \d+% \[\d+%, \d+%\] vs A; "
                        r"no guardrail breached\.", won.summary)
    assert "no guardrail breached" in won.summary
    payload = json.loads(json.dumps(won.to_json(), allow_nan=False))
    assert {c["metric"] for c in payload["comparisons"]} == {
        "net_value_per_user", "sends_per_user", "conversions_per_user", "events_per_user", "ctr"}
    ctr = next(c for c in won.comparisons if c.metric == "ctr")
    assert ctr.kind == "ratio" and ctr.sequential.ci_low < ctr.estimate.difference < ctr.sequential.ci_high

    flat = analyse({"A": _arm(rng, 2000), "B": _arm(rng, 2000, unsubscribe=0.03)}, {"A": 1, "B": 1})
    assert "inconclusive on net value per user" in flat.summary
    assert "guardrail breached: unsubscribe rate worse" in flat.summary

    skewed = analyse({"A": _arm(rng, 1000), "B": _arm(rng, 1300)}, {"A": 1, "B": 1},
                     metrics=[Metric("ctr", "clicks", "sends", label="CTR")])
    assert skewed.sample_ratio.flagged and skewed.summary.startswith("WARNING: sample-ratio mismatch")


def test_report_words_for_a_loss_and_against_a_holdout():
    rng = np.random.default_rng(8)
    lost = analyse({"A": _arm(rng, 20000), "B": _arm(rng, 20000, lift=-0.3)}, {"A": 1, "B": 1})
    low, high = re.fullmatch(r"variant B lowers net value per user by \d+% \[(\d+)%, (\d+)%\] vs A; "
                             r"no guardrail breached\.", lost.summary).groups()
    assert int(low) < int(high)

    holdout = _arm(rng, 3000)
    for column in ("sends", "clicks", "conversions", "net_value"):
        holdout[column] = np.zeros(3000)
    report = analyse({"holdout": holdout, "B": _arm(rng, 3000)}, {"holdout": 1, "B": 1})
    # Relative lift over zero means nothing: the words give the absolute difference instead.
    assert re.match(r"variant B raises net value per user by [\d.]+ \[[\d.]+, [\d.]+\] vs holdout", report.summary)
    assert [n.split(":")[0] for n in report.notes] == ["ctr for B vs holdout"]  # no sends, no CTR
    json.dumps(report.to_json(), allow_nan=False)
