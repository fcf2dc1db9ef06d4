"""How the console writes numbers, units, times and the geometry of its interval bars (presentation only)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

from bandit_push_api.console.blueprint import bp

#: each report metric's unit (in its row or column header) and whether it is a rate: shown in %, differences in pp
METRICS: dict[str, tuple[str, bool]] = {
    "net_value_per_user": ("pts per user", False),
    "sends_per_user": ("sends per user", False),
    "conversions_per_user": ("per user", False),
    "events_per_user": ("per user", False),
    "purchases_per_user": ("per user", False),
    "ctr": ("% of sends clicked", True),
    "unsubscribe_rate": ("% of users", True),
}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@bp.app_template_filter("num")
def num(x, sig: int = 3) -> str:
    """``x`` to ``sig`` significant digits; a dash for none."""
    if not _finite(x):
        return "—"
    if x == 0:
        return "0"
    if 10 ** (sig - 1) <= abs(x) < 1e9 or float(x).is_integer() and abs(x) < 1e9:
        return str(round(x))  # no exponent for a number with more integer digits than sig
    return f"{x:.{sig}g}" if abs(x) >= 1e-4 else f"{x:.{sig - 1}e}"


@bp.app_template_filter("signed")
def signed(x, sig: int = 3) -> str:
    return ("+" if _finite(x) and x > 0 else "") + num(x, sig)


@bp.app_template_filter("pct")
def pct(x, sig: int = 3, sign: bool = False) -> str:
    """A fraction as a percentage: 0.1234 -> 12.3%."""
    if not _finite(x):
        return "—"
    return (signed if sign else num)(x * 100, sig) + "%"


@bp.app_template_filter("unit")
def unit(metric: str) -> str:
    """The unit a metric's header names (its cells show bare numbers, or % for rates)."""
    return METRICS.get(metric, ("", False))[0]


@bp.app_template_filter("metric_value")
def metric_value(x, metric: str) -> str:
    """A metric's value: ``0.25``, or ``1.5%`` for a rate."""
    return pct(x) if METRICS.get(metric, ("", False))[1] else num(x)


@bp.app_template_filter("metric_diff")
def metric_diff(x, metric: str) -> str:
    """A difference of a metric, signed: in percentage points for rates (``+1.2 pp``)."""
    if METRICS.get(metric, ("", False))[1]:
        return signed(x * 100) + " pp" if _finite(x) else "—"
    return signed(x)


@bp.app_template_filter("when")
def when(ts) -> str:
    """Epoch seconds as UTC time."""
    if not _finite(ts):
        return "—"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.app_template_filter("short_time")
def short_time(ts) -> str:
    """Epoch seconds as a compact UTC time, for tables: ``12-07 13:05:09``."""
    if not _finite(ts):
        return "—"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%m-%d %H:%M:%S")


def _span(s: float) -> str:
    """A length of time: ``42 s``, ``5 min``, ``3.2 h``, ``2.1 d``."""
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


@bp.app_template_filter("ago")
def ago(ts, now: float | None = None) -> str:
    """How long before ``now`` (the server's clock by default) ``ts`` was: ``5 min ago``."""
    if not _finite(ts):
        return "—"
    s = (time.time() if now is None else now) - ts
    return "in the future" if s < 0 else _span(s) + " ago"


@bp.app_template_filter("duration")
def duration(seconds) -> str:
    """Seconds as a length of time; ``never`` for none (e.g. never pushed)."""
    return _span(seconds) if _finite(seconds) and seconds >= 0 else "never"


@dataclass(frozen=True)
class Scale:
    """A linear map of values onto ``[pad, width - pad]`` pixels, always including zero."""

    lo: float
    hi: float
    width: int = 260
    pad: int = 10

    def x(self, v: float) -> float:
        v = min(max(v, self.lo), self.hi)  # a bar past the scale is clipped at its edge
        return round(self.pad + (v - self.lo) / (self.hi - self.lo) * (self.width - 2 * self.pad), 1)

    @property
    def zero(self) -> float:
        return self.x(0.0)


def scale(values: Iterable, width: int = 260) -> Scale:
    """The scale that holds every finite value and zero, with a little margin."""
    vals = [v for v in values if _finite(v)] + [0.0]
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    margin = (hi - lo) * 0.05
    return Scale(lo - margin, hi + margin, width)


@bp.app_template_filter("heat")
def heat(v, vmax: float) -> str:
    """A heat-map cell's class: ``hn5`` .. ``h0`` .. ``hp5``, by the value's share of the largest magnitude."""
    if not _finite(v) or not vmax:
        return "h0"
    level = max(-5, min(5, round(v / vmax * 5)))
    return "h0" if level == 0 else f"h{'p' if level > 0 else 'n'}{abs(level)}"
