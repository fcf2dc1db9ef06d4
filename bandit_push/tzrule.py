"""Time zones as compact POSIX rules that the decide Lua script can evaluate.

A decide must cost one Redis round trip, yet quiet hours and dayparts depend on
the user's local time, which depends on the time zone stored with the user. So
the user's record holds the zone's current rule (the POSIX TZ string at the end
of its TZif file, e.g. ``CET-1CEST,M3.5.0,M10.5.0/3``) reduced to numbers:

    "<std offset s>"                                         fixed offset
    "<std>,<dst>,<sm>,<sw>,<sd>,<st>,<em>,<ew>,<ed>,<et>"    with daylight saving

offsets in seconds east of UTC, transitions as month, week (5 = last), weekday
(0 = Sunday) and seconds after local midnight. Every zone in the IANA database
has a rule of one of these two forms. Historical rule changes are not
represented: for timestamps before a zone's last rule change the offset can be
off by the old difference (it affects dayparts of replayed history only).
:func:`utc_offset` is the reference the Lua copy is tested against.
"""
from __future__ import annotations

import functools
import os
import re
import zoneinfo
from importlib import resources

_OFFSET = r"[+-]?\d{1,3}(?::\d{1,2}){0,2}"
_NAME = r"(?:<[^>]+>|[A-Za-z]{3,})"
_DATE = r"M(\d{1,2})\.(\d)\.(\d)(?:/(" + _OFFSET + r"))?"
_RULE = re.compile(rf"^{_NAME}({_OFFSET})(?:{_NAME}({_OFFSET})?,{_DATE},{_DATE})?$")


def _seconds(text: str | None, default: int) -> int:
    if text is None:
        return default
    sign = -1 if text.startswith("-") else 1
    parts = [int(p) for p in text.lstrip("+-").split(":")] + [0, 0]
    return sign * (parts[0] * 3600 + parts[1] * 60 + parts[2])


def _tzif_bytes(name: str) -> bytes:
    if not name or name.startswith(("/", ".")) or ".." in name or name not in _available():
        raise KeyError(name)
    for base in zoneinfo.TZPATH:
        path = os.path.join(base, name)
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                return fh.read()
    package = "tzdata.zoneinfo." + ".".join(name.split("/")[:-1]) if "/" in name else "tzdata.zoneinfo"
    return resources.files(package).joinpath(name.split("/")[-1]).read_bytes()


@functools.lru_cache(maxsize=None)
def _available() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@functools.lru_cache(maxsize=1024)
def posix_rule(name: str) -> str:
    """The compact rule string of IANA zone ``name``; KeyError if there is no such zone."""
    footer = _tzif_bytes(name).rstrip(b"\n").rsplit(b"\n", 1)[-1].decode("ascii")
    m = _RULE.match(footer)
    if not m:
        raise KeyError(name)
    std = -_seconds(m.group(1), 0)  # POSIX offsets count west of UTC
    if m.group(3) is None:
        return str(std)
    dst = -_seconds(m.group(2), 0) if m.group(2) else std + 3600
    start = [int(m.group(3)), int(m.group(4)), int(m.group(5)), _seconds(m.group(6), 7200)]
    end = [int(m.group(7)), int(m.group(8)), int(m.group(9)), _seconds(m.group(10), 7200)]
    return ",".join(str(x) for x in [std, dst, *start, *end])


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _civil_year(days: int) -> int:
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    month = (5 * doy + 2) // 153
    return yoe + era * 400 + (1 if month >= 10 else 0)


def _rule_day(y: int, m: int, w: int, d: int) -> int:
    first = _days_from_civil(y, m, 1)
    day = first + (d - (first + 4) % 7) % 7 + (w - 1) * 7  # 1970-01-01 was a Thursday
    nxt = _days_from_civil(y + (m == 12), m % 12 + 1, 1)
    while day >= nxt:
        day -= 7
    return day


def utc_offset(rule: str, ts: float) -> int:
    """Seconds east of UTC in effect at UTC epoch second ``ts`` under ``rule``."""
    f = [int(x) for x in rule.split(",")]
    std = f[0]
    if len(f) == 1:
        return std
    dst = f[1]
    year = _civil_year(int((ts + std) // 86400))
    start = _rule_day(year, f[2], f[3], f[4]) * 86400 + f[5] - std
    end = _rule_day(year, f[6], f[7], f[8]) * 86400 + f[9] - dst
    in_dst = start <= ts < end if start < end else not (end <= ts < start)
    return dst if in_dst else std
