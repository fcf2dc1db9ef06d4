"""The simulation's table and figures say what they show: no ratio to a base that earned about nothing, and a
send-rate figure whose lines can be told apart."""
from __future__ import annotations

import numpy as np
import pytest

from bandit_push.sim.driver import Result
from bandit_push.sim.evaluate import NEAR_ZERO, format_table, summarise


def _result(label: str, expected_per_user: float, users: int = 100) -> Result:
    return Result(label, users, 7, {"clicked": 1.0}, expected=expected_per_user * users)


def test_ratios_to_a_near_zero_base_are_marked_and_differences_shown():
    rows, best = summarise([_result("thompson", 0.08), _result("every 2h", -6.855), _result("every 168h+quiet", 0.005)],
                           _result("oracle", 0.087))
    assert best.label == "every 168h+quiet"
    by = {r["policy"]: r for r in rows}
    assert by["every 2h"]["vs_best_fixed"] is None and by["every 2h"]["minus_best_fixed"] == pytest.approx(-6.86)
    assert by["thompson"]["minus_best_fixed"] == pytest.approx(0.075)
    assert by["thompson"]["vs_oracle"] == pytest.approx(0.08 / 0.087)
    table = format_table(rows)
    assert "-1371" not in table and "| -6.855 | -6.860 | n/m | -78.79 |" in table
    rows, _ = summarise([_result("every 24h", 0.5)], _result("oracle", NEAR_ZERO / 2))
    assert rows[0]["vs_best_fixed"] == 1.0 and rows[0]["vs_oracle"] is None


def test_the_send_rate_figure_has_a_panel_per_policy_distinct_colours_and_the_legend_beside_the_data():
    import matplotlib
    matplotlib.use("Agg")
    from bandit_push.sim.report import send_rate_figure

    results = []
    for label in ("thompson", "ucb", "every 24h", "always"):
        r = _result(label, 0.1)
        r.segment_day = {(seg, d): [10, (i + d) % 10] for i, seg in enumerate(["new", "default"] + [f"s{k}" for k in
                                                                                                range(1, 7)])
                         for d in range(7)}
        results.append(r)
    fig = send_rate_figure(results)
    fig.canvas.draw()
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["thompson", "ucb"]  # the learned policies, one panel each
    for ax in axes:
        colours = [tuple(np.round(line.get_color(), 3)) for line in ax.get_lines()]
        assert len(colours) == 8 and len(set(colours)) == 8
        assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1  # beside the data, not on it
