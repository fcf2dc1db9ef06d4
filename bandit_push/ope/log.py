"""Read an exported decision log (newline-delimited JSON, :mod:`bandit_push.decision_log`) into arrays.

Every line is checked against the schema before any number is computed: a malformed line raises
:class:`~bandit_push.errors.InvalidLog` naming its line number, never a silently wrong estimate.
Pure Python/numpy: no Redis, no service.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import numpy.typing as npt

from bandit_push.errors import InvalidLog
from bandit_push.policies import LoggedArms

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class DecisionLog:
    """A decision log as arrays of shape (n,), one row per decision, in file order.

    ``refused``: a guardrail (or the holdout) answered before the policy ran, so no arm was seen;
    ``propensity``: the logging policy's probability of the action it took; ``reward``: net value of
    the attributed outcomes; ``user_day``/``cell``: integer codes of (user, UTC day) and of the
    context (segment, recency, daypart). ``open_rows`` counts lines left out because their
    attribution window had not closed.
    """

    sent: npt.NDArray[np.bool_]
    propensity: npt.NDArray[np.float64]
    refused: npt.NDArray[np.bool_]
    holdout: npt.NDArray[np.bool_]
    arms: LoggedArms
    reward: npt.NDArray[np.float64]
    user_day: npt.NDArray[np.int64]
    cell: npt.NDArray[np.int64]
    policies: tuple[str, ...]
    open_rows: int = 0

    def __len__(self) -> int:
        return int(self.sent.shape[0])


def _num(value: Any, line: int, name: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise InvalidLog(f"line {line}: {name} must be a finite number in [{lo:g}, {hi:g}], got {value!r}",
                         field=f"line {line}")
    return float(value)


def _str(value: Any, line: int, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidLog(f"line {line}: {name} must be a non-empty string, got {value!r}", field=f"line {line}")
    return value


def _row(obj: Any, line: int) -> tuple:
    if not isinstance(obj, dict):
        raise InvalidLog(f"line {line}: not a JSON object", field=f"line {line}")
    if obj.get("schema_version") != SCHEMA_VERSION:
        raise InvalidLog(f"line {line}: schema_version must be {SCHEMA_VERSION}, got {obj.get('schema_version')!r}",
                         field=f"line {line}")
    for name in ("ts", "user_id", "segment", "recency", "daypart", "sent", "propensity", "reason", "reward", "policy"):
        if name not in obj:
            raise InvalidLog(f"line {line}: field {name} is missing", field=f"line {line}")
    if not isinstance(obj["sent"], bool):
        raise InvalidLog(f"line {line}: sent must be true or false, got {obj['sent']!r}", field=f"line {line}")
    ts = _num(obj["ts"], line, "ts")
    prop = _num(obj["propensity"], line, "propensity", 0.0, 1.0)
    if prop == 0:
        raise InvalidLog(f"line {line}: propensity of the logged action is 0", field=f"line {line}")
    reward = _num(obj["reward"], line, "reward")
    arm = obj.get("arm")
    if arm is None:
        stats = (math.nan, math.nan, math.nan)
    elif isinstance(arm, dict):
        stats = (_num(arm.get("mean"), line, "arm.mean"), _num(arm.get("var"), line, "arm.var", 0.0),
                 _num(arm.get("segment_sends"), line, "arm.segment_sends", 0.0))
        if stats[1] == 0:
            raise InvalidLog(f"line {line}: arm.var must be positive", field=f"line {line}")
    else:
        raise InvalidLog(f"line {line}: arm must be an object or null", field=f"line {line}")
    gap = obj.get("seconds_since_push")
    gap = math.nan if gap is None else _num(gap, line, "seconds_since_push")
    reason = _str(obj["reason"], line, "reason")
    if arm is None and reason == "policy":
        raise InvalidLog(f"line {line}: arm is null but reason is policy (the policy ran)", field=f"line {line}")
    closed = obj.get("closed", True)
    if not isinstance(closed, bool):
        raise InvalidLog(f"line {line}: closed must be true or false", field=f"line {line}")
    user = _str(obj["user_id"], line, "user_id")
    cell = "|".join(_str(obj[k], line, k) for k in ("segment", "recency", "daypart"))
    return (obj["sent"], prop, arm is None, reason == "holdout", *stats, gap, reward,
            f"{user}\n{math.floor(ts / 86400)}", cell, _str(obj["policy"], line, "policy"), closed)


def parse_lines(lines: Iterable[str]) -> DecisionLog:
    """A :class:`DecisionLog` from the lines of an export (blank lines are skipped; open rows left out)."""
    def objects() -> Iterator[tuple[int, Any]]:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except ValueError as e:
                raise InvalidLog(f"line {number}: not valid JSON ({e})", field=f"line {number}") from None

    return _parse(objects())


def parse_rows(rows: Iterable[dict[str, Any]]) -> DecisionLog:
    """A :class:`DecisionLog` from export rows as :func:`bandit_push.decision_log.export` yields them (no JSON text
    in between), checked as lines are; "line" in an error is the row's 1-based position."""
    return _parse(enumerate(rows, start=1))


def _parse(objects: Iterable[tuple[int, Any]]) -> DecisionLog:
    rows = []
    open_rows = 0
    for number, obj in objects:
        row = _row(obj, number)
        if not row[-1]:
            open_rows += 1
            continue
        rows.append(row[:-1])
    if not rows:
        raise InvalidLog("the log holds no closed decisions to evaluate", field="log")
    cols = list(zip(*rows))
    user_day = np.unique(np.array(cols[9], dtype=object), return_inverse=True)[1].astype(np.int64)
    cell = np.unique(np.array(cols[10], dtype=object), return_inverse=True)[1].astype(np.int64)
    f = lambda i: np.array(cols[i], dtype=np.float64)  # noqa: E731
    return DecisionLog(
        sent=np.array(cols[0], dtype=bool), propensity=f(1), refused=np.array(cols[2], dtype=bool),
        holdout=np.array(cols[3], dtype=bool),
        arms=LoggedArms(mean=f(4), var=f(5), segment_sends=f(6), seconds_since_push=f(7)),
        reward=f(8), user_day=user_day, cell=cell, policies=tuple(sorted(set(cols[11]))), open_rows=open_rows)


def read_log(path: str | Path) -> DecisionLog:
    """Read an export file (see :func:`parse_lines`)."""
    with open(path, encoding="utf-8") as f:
        return parse_lines(f)
