"""What the routes parse themselves, naming the bad field (every failure an InvalidArgument, 400): the body's JSON,
ids in paths, timestamps and query parameters. The bodies' fields are checked against the OpenAPI document
(:mod:`bandit_push_api.schemas`); these functions do what its schemas cannot say."""
from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, TypeVar

from flask import request

from bandit_push import ids
from bandit_push.config import TIMESTAMP_MIN
from bandit_push_api.services import services
from bandit_push.errors import InvalidArgument, InvalidBatch

MIN_TS = TIMESTAMP_MIN  # the default lower bound, 2000-01-01T00:00:00Z (setting timestamp_min)
T = TypeVar("T")


def json_body() -> dict[str, Any]:
    """The request body as a JSON object. Flask reads it (a Content-Length or a chunked body; 413 past
    ``max_body_bytes``); the JSON is strict: ``NaN`` and ``Infinity`` are refused, as they are not JSON."""
    raw = request.get_data(cache=False)
    if request.content_length is not None and len(raw) < request.content_length:
        # the client stopped sending: what did arrive may still parse, but it is not the request
        raise InvalidArgument(f"request body ended after {len(raw)} of the {request.content_length} bytes its "
                              "Content-Length announced", field="body", code="incomplete_body")
    if not raw:
        raise InvalidArgument("request body must be a JSON object", field="body", code="invalid_json")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise InvalidArgument(f"request body is not valid JSON: {e}", field="body", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be a JSON object", field="body", code="invalid_json")
    return body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def ident(value: Any, field: str, max_length: int) -> str:
    """A user or item id: 1 to ``max_length`` printable characters (spaces, braces, ``@`` and non-ASCII letters
    included; the rule is :func:`bandit_push.ids.unfit`'s). Whatever it holds, Redis stores it escaped
    (:mod:`bandit_push.ids`)."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{field} must be a string", field=field)
    if not 1 <= len(value) <= max_length:
        raise InvalidArgument(f"{field} must have 1 to {max_length} characters", field=field)
    bad = ids.unfit(value)
    if bad:
        raise InvalidArgument(f"{field} must be printable characters; {bad}", field=field)
    return value


def timestamp(value: Any, field: str, default: float | None = None) -> float:
    """Epoch seconds or an ISO 8601 string with a UTC offset (one without is refused), inside the window of the
    settings ``timestamp_min`` and ``timestamp_max_ahead_days`` (default: 2000-01-01 to a year ahead)."""
    if value is None:
        if default is None:
            raise InvalidArgument(f"field {field} is required", field=field, code="missing_field")
        return default
    if isinstance(value, bool):
        raise InvalidArgument(f"{field} must be epoch seconds or an ISO 8601 timestamp", field=field)
    if isinstance(value, (int, float)):
        try:
            ts = float(value)
        except OverflowError:  # an integer beyond any float: refused by the range check below
            ts = math.inf
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
        except ValueError:
            raise InvalidArgument(f"{field} must be epoch seconds or an ISO 8601 timestamp", field=field) from None
        if dt.tzinfo is None:  # read as UTC it would silently shift a gateway's local time: say so instead
            raise InvalidArgument(f"{field} must carry a UTC offset (Z or +01:00, e.g. 2026-11-23T17:30:00Z): "
                                  f"{value!r} has none", field=field)
        ts = dt.timestamp()
    else:
        raise InvalidArgument(f"{field} must be epoch seconds or an ISO 8601 timestamp", field=field)
    settings = services().settings
    lo, ahead = settings.timestamp_min, settings.timestamp_max_ahead_days
    if not math.isfinite(ts) or ts < lo or ts > time.time() + ahead * 86400.0:
        start = datetime.fromtimestamp(lo, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise InvalidArgument(f"{field} must lie between {start} and {ahead:g} days from now", field=field,
                              code="timestamp_out_of_range")
    return ts


def query_only(allowed: Iterable[str]) -> None:
    """Refuse query parameters the endpoint does not know, as :func:`only` does for body fields."""
    allowed = set(allowed)
    for name in request.args:
        if name not in allowed:
            raise InvalidArgument(f"unknown query parameter {name}; allowed: {sorted(allowed)}",
                                  field=name, code="unknown_field")


def query_timestamp(name: str, default: float) -> float:
    """A timestamp from the query string (epoch seconds or ISO 8601), like :func:`timestamp`."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value: Any = float(raw)
    except ValueError:
        value = raw  # an ISO string, or garbage that timestamp() refuses naming the parameter
    return timestamp(value, name)


def query_integer(name: str, lo: int, hi: int, default: int) -> int:
    """An integer from the query string, like :func:`integer`."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value: Any = int(raw)
    except ValueError:
        raise InvalidArgument(f"{name} must be an integer", field=name) from None
    return integer(value, name, lo, hi)


def integer(value: Any, field: str, lo: int, hi: int, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{field} must be an integer", field=field)
    if not lo <= value <= hi:
        raise InvalidArgument(f"{field} must be between {lo} and {hi}", field=field)
    return value


#: the bad entries of a batch an error names one by one (it counts them all)
MAX_NAMED_ERRORS = 100


def batch(items: list[Any], parse: Callable[[str, dict[str, Any]], T],
          bad: dict[int, InvalidArgument]) -> list[T]:
    """``parse(field prefix, entry)`` of each entry of a batch whose schema errors (by index) are ``bad``. All or
    nothing: with bad entries, one :class:`InvalidBatch` names each (up to :data:`MAX_NAMED_ERRORS`), so that the
    sender can fix the batch in one try."""
    out: list[T] = []
    errors: list[InvalidArgument] = []
    invalid = 0
    for i, item in enumerate(items):
        try:
            if i in bad:
                raise bad[i]
            out.append(parse(f"events[{i}].", item))
        except InvalidArgument as e:
            invalid += 1
            if len(errors) < MAX_NAMED_ERRORS:
                errors.append(e)
    if errors:
        raise InvalidBatch(errors, invalid, len(items))
    return out
