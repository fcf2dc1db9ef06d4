"""The report of a simulation: a table (Markdown and JSON) and three PNGs (matplotlib, the ``[sim]`` extra)."""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from bandit_push.sim.driver import Result


def write(directory: str, rows: list[dict[str, Any]], table: str, results: list[Result], learned: dict[str, list],
          truth: dict[str, dict[tuple[str, ...], float]]) -> list[str]:
    """Write ``table.md``, ``results.json`` and, when matplotlib is installed, the figures; returns the paths.
    ``truth``: per learned policy, the simulator's net value per (segment, recency, daypart)."""
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, "table.md"), os.path.join(directory, "results.json")]
    with open(paths[0], "w") as f:
        f.write(table + "\n")
    with open(paths[1], "w") as f:
        json.dump({"rows": rows, "learned": learned,
                   "truth": {label: [{"context": list(c), "net_value": v} for c, v in t.items()]
                             for label, t in truth.items()}}, f, indent=1)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[sim]'): figures skipped")
        return paths
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

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in results:
        if r.label.startswith(("every", "cap", "never", "oracle")):
            continue
        for seg in sorted({s for s, _ in r.segment_day}):
            rate = [r.segment_day[(seg, d)][1] / max(r.segment_day[(seg, d)][0], 1) if (seg, d) in r.segment_day else 0
                    for d in range(r.days)]
            ax.plot(days, rate, label=f"{r.label}: {seg}")
    ax.set_xlabel("day")
    ax.set_ylabel("sends / decisions past the guardrails")
    ax.legend(fontsize=7)
    ax.grid(alpha=.3)
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


def _save(fig, directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path
