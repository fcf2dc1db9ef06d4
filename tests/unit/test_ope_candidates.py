"""Candidate policies on a decision log: probabilities from the logged arms, the estimators against
plain loops on a small fixed log, interval coverage on synthetic logs with known truth, malformed lines."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bandit_push import cli, ope
from bandit_push.config import OUTCOMES, Settings
from bandit_push.errors import InvalidLog
from bandit_push.ope.evaluate import PRIOR_SENDS, evaluate, inputs
from bandit_push.ope.log import parse_lines
from bandit_push.policies import ArmView, LoggedArms, from_config, net_value_posterior, phi, phi_array

SETTINGS = Settings()


def line(user="u1", ts=1772366400.0, sent=True, propensity=0.5, reward=0.0, arm=(0.02, 0.01, 5.0), gap=None,
         reason="policy", segment="new", recency=">=168h", daypart="morning", closed=True, **extra) -> str:
    row = {"schema_version": 1, "decision_id": "x", "ts": ts, "user_id": user, "segment": segment,
           "recency": recency, "daypart": daypart, "channel": None, "policy": "thompson", "policy_space": "default",
           "model": "popular", "items": [], "sent": sent, "propensity": propensity, "reason": reason,
           "arm": None if arm is None else {"mean": arm[0], "var": arm[1], "segment_sends": arm[2]},
           "seconds_since_push": gap, "outcomes": {}, "reward": reward, "closed": closed}
    row.update(extra)
    return json.dumps(row)


def test_send_probabilities_from_the_log_equal_each_policys_own():
    rng = np.random.default_rng(3)
    n = rng.uniform(0, 300, 500)
    counts = np.minimum(rng.uniform(0, 0.4, (500, len(OUTCOMES))) * n[:, None], n[:, None])
    sends = rng.uniform(0, 5000, 500)
    gaps = np.where(rng.random(500) < 0.1, np.nan, rng.uniform(0, 72, 500) * 3600)
    mean, var = net_value_posterior(n, counts, from_config({"name": "thompson"}, SETTINGS).prior)
    logged = LoggedArms(mean, var, sends, gaps)
    for config in ({"name": "thompson", "cost": 0.1}, {"name": "thompson"}, {"name": "ucb", "ucb_c": 1.5},
                   {"name": "ucb", "cost": -0.2}, {"name": "cadence", "cadence_gap_hours": 12}, {"name": "holdout"}):
        policy = from_config(config, SETTINGS)
        got = policy.send_probabilities(logged)
        want = [policy.send_probability(ArmView(n[i], counts[i], sends[i], None if math.isnan(gaps[i]) else gaps[i] / 3600))
                for i in range(500)]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-15, err_msg=str(config))
        assert 0 < got.mean() < 1 or config["name"] == "holdout"
    z = np.linspace(-8, 8, 1001)
    np.testing.assert_allclose(phi_array(z), [phi(x) for x in z], rtol=0, atol=1e-16)


# A small fixed log: (user, day, sent, logging propensity of the logged action, reward, arm mean, arm var,
# reason, recency). Two contexts (cells), a refusal, a deterministic row (propensity 1).
FIXED = [
    ("a", 0, True, 0.60, 1.0, 0.05, 0.010, "policy", ">=168h"),
    ("a", 0, False, 0.70, 0.0, -0.02, 0.004, "policy", "<3h"),
    ("b", 0, True, 0.30, 6.0, 0.01, 0.020, "policy", ">=168h"),
    ("b", 1, True, 0.55, -0.1, 0.03, 0.008, "policy", "<3h"),
    ("c", 1, False, 1.00, 0.0, None, None, "min_gap", "<3h"),
    ("c", 1, False, 0.45, 0.0, 0.00, 0.015, "policy", ">=168h"),
    ("d", 2, True, 1.00, 0.0, 0.20, 0.001, "policy", ">=168h"),
    ("d", 2, False, 0.90, 0.0, -0.10, 0.002, "policy", "<3h"),
]
COST = 0.02


def test_each_estimator_equals_a_textbook_computation_on_a_small_fixed_log():
    lines = [line(user=u, ts=1772366400.0 + day * 86400, sent=s, propensity=p, reward=r, reason=why, recency=rec,
                  arm=None if m is None else (m, v, 10.0))
             for u, day, s, p, r, m, v, why, rec in FIXED]
    log = parse_lines(lines)
    rep = evaluate({"name": "thompson", "cost": COST}, log, SETTINGS, n_bootstrap=50)

    # by hand: the candidate's send probability, the weight of the logged action, the cell reward model
    n = len(FIXED)
    p_send = [0.0 if m is None else phi((m - COST) / math.sqrt(v)) for _, _, _, _, _, m, v, _, _ in FIXED]
    w = [(ps if s else 1 - ps) / p for ps, (_, _, s, p, *_) in zip(p_send, FIXED)]
    rewards = [row[4] for row in FIXED]
    sent_rewards = [row[4] for row in FIXED if row[2]]
    base = sum(sent_rewards) / len(sent_rewards)
    q = {}
    for rec in ("<3h", ">=168h"):
        cell = [row[4] for row in FIXED if row[2] and row[8] == rec]
        q[rec] = (sum(cell) + PRIOR_SENDS * base) / (len(cell) + PRIOR_SENDS)
    ips = sum(wi * r for wi, r in zip(w, rewards)) / n
    snips = sum(wi * r for wi, r in zip(w, rewards)) / sum(w)
    dm = sum(ps * q[row[8]] for ps, row in zip(p_send, FIXED)) / n
    dr = sum(ps * q[row[8]] + wi * (row[4] - (q[row[8]] if row[2] else 0.0))
             for ps, wi, row in zip(p_send, w, FIXED)) / n
    user_days = len({(row[0], row[1]) for row in FIXED})
    got = rep.per_decision
    assert got["ips"].estimate == pytest.approx(ips, rel=1e-12)
    assert got["snips"].estimate == pytest.approx(snips, rel=1e-12)
    assert got["dm"].estimate == pytest.approx(dm, rel=1e-12)
    assert got["dr"].estimate == pytest.approx(dr, rel=1e-12)
    assert rep.per_user_day["ips"].estimate == pytest.approx(ips * n / user_days, rel=1e-12)
    assert rep.per_user_day["dr"].estimate == pytest.approx(dr * n / user_days, rel=1e-12)
    assert rep.per_user_day["snips"].estimate == pytest.approx(snips * n / user_days, rel=1e-12)
    assert got["ips"].ess == pytest.approx(sum(w) ** 2 / sum(x * x for x in w), rel=1e-12)
    # the refusal stays a refusal (weight 1 on not sending); the deterministic send leaves not-sending unsupported
    x = inputs(from_config({"name": "thompson", "cost": COST}, SETTINGS), log)
    assert x.target_send[4] == 0.0 and x.target_prob[4] == 1.0
    assert x.unsupported[6] == pytest.approx(1 - p_send[6]) and x.unsupported[[0, 1, 2, 3, 5, 7]].sum() == 0
    assert "missing_support" in got["ips"].warning_codes


def test_shared_bootstrap_draw_gives_the_librarys_own_intervals():
    log = parse_lines(synthetic(np.random.default_rng(5), 100))
    rep = evaluate({"name": "thompson", "cost": 0.05}, log, SETTINGS, clip=5.0, n_bootstrap=300, seed=9)
    x = inputs(from_config({"name": "thompson", "cost": 0.05}, SETTINGS), log)
    r = log.reward
    for name, own in (("ips", ope.ips(r, x.logging_prob, x.target_prob, clip=5.0, n_bootstrap=300, seed=9)),
                      ("snips", ope.snips(r, x.logging_prob, x.target_prob, clip=5.0, n_bootstrap=300, seed=9)),
                      ("dm", ope.direct_method(x.reward_hat_target, n_bootstrap=300, seed=9)),
                      ("dr", ope.doubly_robust(r, x.logging_prob, x.target_prob, x.reward_hat, x.reward_hat_target,
                                               clip=5.0, n_bootstrap=300, seed=9))):
        got = rep.per_decision[name]
        assert (got.estimate, got.ci_low, got.ci_high) == pytest.approx((own.estimate, own.ci_low, own.ci_high),
                                                                         rel=1e-12), name


def synthetic(rng: np.random.Generator, user_days: int, per_day: int = 4):
    """A Thompson (cost 0) log over contexts whose true reward of a push depends on the cell; 20% refused."""
    n = user_days * per_day
    cell = rng.integers(0, 4, n)
    mean = rng.normal(0.02, 0.05, n)
    var = rng.uniform(0.002, 0.03, n)
    refused = rng.random(n) < 0.2
    p0 = np.where(refused, 0.0, phi_array(mean / np.sqrt(var)))
    sent = rng.random(n) < p0
    click = np.array([0.05, 0.15, 0.3, 0.1])[cell]
    reward = np.where(sent, (rng.random(n) < click) * 1.0 - (rng.random(n) < 0.1) * 0.5, 0.0)
    prop = np.where(sent, p0, 1 - p0)
    lines = [line(user=f"u{i // per_day}", sent=bool(sent[i]), propensity=float(prop[i]), reward=float(reward[i]),
                  arm=None if refused[i] else (float(mean[i]), float(var[i]), 1.0),
                  reason="daily_cap" if refused[i] else "policy", daypart=["morning", "afternoon", "evening", "night"][cell[i]])
             for i in range(n)]
    return lines


def truth(candidate_cost: float) -> float:
    """The candidate's value per decision on the synthetic population, by a large Monte Carlo."""
    rng = np.random.default_rng(12345)
    m = 2_000_000
    cell = rng.integers(0, 4, m)
    mean = rng.normal(0.02, 0.05, m)
    var = rng.uniform(0.002, 0.03, m)
    p1 = (rng.random(m) >= 0.2) * phi_array((mean - candidate_cost) / np.sqrt(var))
    return float(np.mean(p1 * (np.array([0.05, 0.15, 0.3, 0.1])[cell] - 0.1 * 0.5)))


def test_intervals_cover_a_candidates_true_value_about_95_percent_of_the_time():
    cost = 0.05
    per_decision = truth(cost)
    reps = 200
    covered = {f"{k}/{name}": 0 for k in ("decision", "user_day") for name in ("ips", "snips", "dr")}
    for seed in range(reps):
        log = parse_lines(synthetic(np.random.default_rng(seed), 150))
        rep = evaluate({"name": "thompson", "cost": cost}, log, SETTINGS, n_bootstrap=300, seed=seed)
        for name in ("ips", "snips", "dr"):
            est = rep.per_decision[name]
            covered[f"decision/{name}"] += est.ci_low <= per_decision <= est.ci_high
            day = rep.per_user_day[name]
            covered[f"user_day/{name}"] += day.ci_low <= per_decision * 4 <= day.ci_high
    print({k: v / reps for k, v in covered.items()})
    for name, hits in covered.items():
        assert 0.90 <= hits / reps <= 0.99, (name, hits)


@pytest.mark.parametrize("bad, message", [
    ("{not json", "not valid JSON"),
    ('[1, 2]', "not a JSON object"),
    (line(schema_version=2), "schema_version must be 1"),
    (line().replace('"propensity": 0.5, ', ""), "field propensity is missing"),
    (line(propensity=0.0), "propensity of the logged action is 0"),
    (line(propensity=1.5), "propensity must be a finite number in [0, 1]"),
    (line(sent="yes"), "sent must be true or false"),
    (line(reward="1"), "reward must be a finite number"),
    (line(arm=(0.1, -1.0, 3.0)), "arm.var must be a finite number"),
    (line(arm=None), "arm is null but reason is policy"),
    (line(user=""), "user_id must be a non-empty string"),
    (line().replace("0.5", "NaN"), "propensity must be a finite number"),
])
def test_a_malformed_line_is_an_error_naming_its_line(bad, message):
    with pytest.raises(InvalidLog) as err:
        parse_lines([line(), "", line(user="u2"), bad, line()])
    assert err.value.message.startswith("line 4: ") and message in err.value.message


def test_open_decisions_are_left_out_and_an_empty_log_is_an_error():
    log = parse_lines([line(), line(closed=False), line(user="u2")])
    assert len(log) == 2 and log.open_rows == 1
    with pytest.raises(InvalidLog, match="no closed decisions"):
        parse_lines([line(closed=False)])


def test_cli_names_the_bad_line_and_the_bad_policy(tmp_path, capsys):
    path = tmp_path / "log.ndjson"
    path.write_text("\n".join([line(), line(), line(propensity=-0.1)]) + "\n")
    assert cli.main(["evaluate", "--log", str(path), "--policy", '{"name": "thompson"}']) == 2
    assert "line 3: propensity" in capsys.readouterr().err
    path.write_text(line() + "\n")
    assert cli.main(["evaluate", "--log", str(path), "--policy", '{"name": "thompson"}', "--policy",
                     '{"name": "ucb", "gap": 3}']) == 2
    assert "policy[1]" in capsys.readouterr().err
    assert cli.main(["evaluate", "--log", str(path), "--policy", "thompson"]) == 2
    assert "--policy #1 is not JSON" in capsys.readouterr().err
