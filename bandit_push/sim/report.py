"""The report of a simulation: an HTML page a growth team can open (how to read it, the table, the figures), the
table as Markdown and JSON, and three PNGs (matplotlib, the ``[sim]`` extra)."""
from __future__ import annotations

import html
import json
import os
from typing import Any

import numpy as np

from bandit_push.sim.driver import Result
from bandit_push.sim.evaluate import HEAD, NEAR_ZERO, table_cells


def write(directory: str, rows: list[dict[str, Any]], table: str, results: list[Result], learned: dict[str, list],
          truth: dict[str, dict[tuple[str, ...], float]], about: list[str] | None = None) -> list[str]:
    """Write ``report.html``, ``table.md``, ``results.json`` and, when matplotlib is installed, the figures; returns
    the paths, the page's first. ``truth``: per learned policy, the simulator's net value per (segment, recency,
    daypart); ``about``: lines that say what was run (population, seed, best fixed cadence, oracle)."""
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, "report.html"), os.path.join(directory, "table.md"),
             os.path.join(directory, "results.json")]
    with open(paths[1], "w") as f:
        f.write(table + "\n")
    with open(paths[2], "w") as f:
        json.dump({"rows": rows, "learned": learned,
                   "truth": {label: [{"context": list(c), "net_value": v} for c, v in t.items()]
                             for label, t in truth.items()}}, f, indent=1, allow_nan=False)
    figures = _figures(directory, results, learned, truth)
    with open(paths[0], "w", encoding="utf-8") as f:
        f.write(_page(rows, about or [], [os.path.basename(p) for p in figures], results[0].weights))
    return paths + figures


def _figures(directory: str, results: list[Result], learned: dict[str, list],
             truth: dict[str, dict[tuple[str, ...], float]]) -> list[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[sim]'): figures skipped")
        return []
    paths: list[str] = []
    days = np.arange(1, results[0].days + 1)

    fig, ax = plt.subplots(figsize=(8, 5))
    fixed = [r for r in results if r.label.startswith("every ")]
    best = max(fixed, key=lambda r: r.expected).label if fixed else None
    shown = []
    for r in results:
        curve = np.cumsum(r.day_expected) / r.users
        if r.label.startswith(("every ", "cap ")) and r.label != best:
            ax.plot(days, curve, color="0.8", lw=0.7)  # the other fixed rules, unlabelled
        else:
            ax.plot(days, curve, label=r.label + (" (best fixed cadence)" if r.label == best else ""), lw=2)
            if r.label != "always":  # it loses far more than the rest: scaled to it, the others look flat
                shown.append(curve)
    lo, hi = min(c.min() for c in shown), max(c.max() for c in shown)
    ax.set_ylim(lo - 0.3 * (hi - lo + 0.1), hi + 0.2 * (hi - lo + 0.1))
    ax.set_title("grey: the other fixed cadences and caps (lines below the frame are cut off)")
    ax.set_xlabel("day")
    ax.set_ylabel("cumulative expected net value per user")
    ax.legend(fontsize=7)
    ax.grid(alpha=.3)
    paths.append(_save(fig, directory, "cumulative_value.png"))

    fig = send_rate_figure(results)
    if fig is not None:
        paths.append(_save(fig, directory, "send_rate_by_segment.png"))

    fig, ax = plt.subplots(figsize=(6, 6))
    for label, segs in learned.items():
        xs, ys = [], []
        for seg in segs:
            for c in seg["contexts"]:
                key = (seg["segment"], c["recency"], c["daypart"])
                if key in truth.get(label, {}) and c["sends"] >= 5:
                    xs.append(truth[label][key])
                    ys.append(c["net_value"]["mean"])
        ax.scatter(xs, ys, label=label, s=14)
    every = [v for t in truth.values() for v in t.values()] or [0.0]
    lim = [min(every) - 0.02, max(every) + 0.02]
    ax.plot(lim, lim, "k--", lw=1)
    ax.set_xlabel("simulator's truth: net value of a push in the segment's context\n"
                  "(its members' true types, recency bucket x daypart)")
    ax.set_ylabel("learned posterior mean (contexts with >= 5 decayed sends)")
    ax.legend(fontsize=7)
    ax.grid(alpha=.3)
    paths.append(_save(fig, directory, "learned_vs_truth.png"))
    return paths


def send_rate_figure(results: list[Result]):
    """Per learned policy, one panel: each segment's daily share of decisions past the guardrails that sent, in a
    colour of its own within the panel, the legend beside the panels (not over the data). None without one."""
    import matplotlib.pyplot as plt

    learned = [r for r in results if not r.label.startswith(("every", "cap", "never", "always", "oracle"))]
    if not learned:
        return None
    days = np.arange(1, learned[0].days + 1)
    fig, axes = plt.subplots(1, len(learned), figsize=(4.5 * len(learned) + 2, 4.5), sharey=True, squeeze=False)
    for ax, r in zip(axes[0], learned):
        segs = sorted({s for s, _ in r.segment_day})
        cmap = plt.get_cmap("tab10" if len(segs) <= 10 else "tab20")  # distinct hues first
        colours = cmap(np.arange(cmap.N))
        for i, seg in enumerate(segs):
            rate = [r.segment_day[(seg, d)][1] / max(r.segment_day[(seg, d)][0], 1) if (seg, d) in r.segment_day
                    else np.nan for d in range(r.days)]
            ax.plot(days, rate, label=seg, color=colours[i % len(colours)], marker="o", ms=3)
        ax.set_title(r.label), ax.set_xlabel("day"), ax.grid(alpha=.3)
        ax.legend(title="segment", fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    axes[0][0].set_ylabel("sends / decisions past the guardrails")
    return fig


def _page(rows: list[dict[str, Any]], about: list[str], figures: list[str], weights: dict[str, float]) -> str:
    """The report as one HTML page: what was run, how to read it, the table, the figures."""
    e = html.escape
    worth = ", ".join(f"{'an' if k[0] in 'aeiou' else 'a'} {k} {v:+g}" for k, v in weights.items() if v)
    head = "".join(f"<th>{e(h)}</th>" for h in HEAD)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in table_cells(r)) + "</tr>" for r in rows)
    captions = {"cumulative_value.png": "Cumulative expected net value per user, day by day.",
                "send_rate_by_segment.png": "What each learned policy sends, per segment and day.",
                "learned_vs_truth.png": "What each learned policy believes a push is worth in a context, against "
                                        "the simulator's truth (on the diagonal: learned right)."}
    figs = "".join(f'<figure><img src="{e(f)}" alt="{e(f)}"><figcaption>{e(captions.get(f, f))}</figcaption>'
                   f"</figure>" for f in figures)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bandit-push simulation</title>
<style>body{{font-family:sans-serif;max-width:75em;margin:2em auto;line-height:1.4}}
table{{border-collapse:collapse;font-size:90%}}td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:right}}
td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>Learned send policies against fixed cadences</h1>
<p>{"<br>".join(e(line) for line in about)}</p>
<h2>How to read this</h2>
<p>Every policy met the same simulated users, push opportunities and random outcomes. A row says how often it
pushed (sends per user per day), how users responded (click-through and conversion per delivered push, the share
of users who unsubscribed and unsubscribes per push) and what that was worth: <b>net value per user</b> counts the
outcomes that happened ({e(worth)}), <b>expected per user</b>
the expected value of each push given the moment it was sent, without the luck of the draws, so it is the figure
to compare policies by. <b>- best fixed</b> is a policy's expected value per user minus the best fixed cadence's;
<b>x best fixed</b> and <b>x oracle</b> are ratios to that cadence's and to the oracle's (each user type given its
best fixed rule: what knowing every user would earn), shown as n/m (not meaningful) when the base earns less than
{NEAR_ZERO} per user. A few hundred users over a week is a small sample: the learned policies are still exploring,
and differences of a few hundredths are noise.</p>
<h2>The table</h2>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Figures</h2>
{figs or "<p>No figures: matplotlib is not installed (pip install -e '.[sim]').</p>"}
</body></html>
"""


def _save(fig, directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # (legends beside the axes are kept in the frame)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path
