"""Decisions: recent ones with the reasons' breakdown per hour; one decision or one user looked up by id.

The page reads the decision log through :mod:`bandit_push.decision_log` (the export's reader), hour by
hour, at most :data:`PER_HOUR` records of each hour, so its cost stays bounded however busy the service is;
the hour's total comes from the size of its index (:func:`~bandit_push.decision_log.count_hint`).
"""
from __future__ import annotations

import math
import time
from itertools import islice
from typing import Any

from flask import render_template, request

from bandit_push_api.services import services
from bandit_push import decision_log, users
from bandit_push.errors import InvalidArgument, NotFound

from bandit_push_api.console.blueprint import bp

PER_HOUR = 60  #: records read per hour, at most
HOURS = 12  #: the default window: an hour costs three or four round trips to Redis and up to PER_HOUR records
RECENT = 25
#: the breakdown's series: sent, then why not (the policy's own answers, then the guardrails)
ANSWERS = ("sent", "policy", "pacing", "holdout", "opted_out", "quiet_hours", "daily_cap", "min_gap")


def hours_of(store, settings, now: float, hours: int) -> list[dict[str, Any]]:
    """The last ``hours`` UTC hours: their decisions' answers (sent, or the reason not to) from up to
    :data:`PER_HOUR` records, and how many decisions each hour holds (about how many, when more than were read)."""
    out = []
    last = math.floor(now / 3600)
    for hour in range(last - hours + 1, last + 1):
        since, until = hour * 3600.0, (hour + 1) * 3600.0
        rows = list(islice(decision_log.export(store, settings, since, until, now, include_open=True,
                                               batch=PER_HOUR), PER_HOUR))  # (one batch: no record read past it)
        counts: dict[str, int] = {}
        for r in rows:
            key = "sent" if r["sent"] else r["reason"]
            counts[key] = counts.get(key, 0) + 1
        total = len(rows)
        if total == PER_HOUR:  # cut: the index's size tells about how many the hour holds
            total = max(total, decision_log.count_hint(store, settings, since, until, now, include_open=True))
        out.append({"hour": since, "read": len(rows), "total": total, "counts": counts, "rows": rows})
    return out


def _series(hours: list[dict[str, Any]]) -> list[str]:
    """The breakdown's series in a stable order (:data:`ANSWERS`, then any other reason)."""
    seen = {k for h in hours for k in h["counts"]}
    return [k for k in ANSWERS if k in seen] + sorted(seen - set(ANSWERS))


@bp.get("/decisions")
def decisions_page():
    s = services()
    now = time.time()
    raw = request.args.get("hours", str(HOURS))
    hours = int(raw) if raw.isdigit() and 1 <= int(raw) <= 168 else HOURS
    by_hour = hours_of(s.store, s.settings, now, hours)
    series = _series(by_hour)
    latest: list[dict[str, Any]] = []
    for h in reversed(by_hour):  # the latest hours that hold RECENT decisions
        latest += h["rows"]
        if len(latest) >= RECENT:
            break
    # by time: an hour's index is in order of arrival, and the gateway's clock may run otherwise
    recent = sorted(latest, key=lambda r: r["ts"], reverse=True)[:RECENT]
    lookup = _lookup(s, now)
    # an hour read in part counts for its whole: its shares times its total
    chart = {"t": [h["hour"] for h in by_hour],
             "series": {k: [round(h["counts"].get(k, 0) * h["total"] / h["read"], 1) if h["read"] else 0
                            for h in by_hour] for k in series}}
    return render_template("console/decisions.html", by_hour=by_hour, series=series, chart=chart, recent=recent,
                           hours=hours, per_hour=PER_HOUR, now=now, **lookup)


def _lookup(s, now: float) -> dict[str, Any]:
    """The decision or user the form asked for (``decision_id`` or ``user_id``), or the error saying why not."""
    out: dict[str, Any] = {"decision": None, "user": None, "lookup_error": None,
                           "decision_id": request.args.get("decision_id", "").strip(),
                           # (not stripped: an id may begin or end with a space)
                           "user_id": request.args.get("user_id", "")}
    try:
        if out["decision_id"]:
            out["decision"] = decision(s.store, s.settings, out["decision_id"], now)
        elif out["user_id"]:
            uid = out["user_id"]
            if len(uid) > s.settings.max_id_length or not uid.isprintable():
                raise InvalidArgument(f"user_id must be 1 to {s.settings.max_id_length} printable characters",
                                      field="user_id")
            out["user"] = users.get(s.store, s.settings, uid, now=now)
    except (InvalidArgument, NotFound) as e:
        out["lookup_error"] = e
    return out


def decision(store, settings, decision_id: str, now: float) -> dict[str, Any]:
    """One decision as the log holds it, and what drove it: what ``GET /v1/decisions/<id>`` answers."""
    if len(decision_id) > 128 or not decision_id.isprintable():
        raise InvalidArgument("decision_id must be 1 to 128 printable characters", field="decision_id")
    return decision_log.lookup(store, settings, decision_id, now)
