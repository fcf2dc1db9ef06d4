import random
import zoneinfo
from datetime import datetime

import pytest

from bandit_push.tzrule import posix_rule, utc_offset

# Zones whose TZif data lists explicit future transitions (Ramadan DST) that no POSIX rule captures.
EXPLICIT_FUTURE = {"Africa/Casablanca", "Africa/El_Aaiun"}


def test_reference_agrees_with_zoneinfo_for_every_zone():
    rng = random.Random(3)
    mismatches = []
    for name in sorted(zoneinfo.available_timezones() - EXPLICIT_FUTURE):
        rule, zone = posix_rule(name), zoneinfo.ZoneInfo(name)
        for _ in range(40):
            ts = rng.uniform(1.80e9, 2.0e9)  # 2027..2033, after every zone's last rule change
            want = int(datetime.fromtimestamp(ts, zone).utcoffset().total_seconds())
            if utc_offset(rule, ts) != want:
                mismatches.append((name, ts))
    assert mismatches == []


def test_transition_instants_exact():
    rule = posix_rule("Europe/Berlin")
    # 2030-03-31 01:00 UTC: CET -> CEST; 2030-10-27 01:00 UTC: back
    assert utc_offset(rule, 1901149200 - 1) == 3600 and utc_offset(rule, 1901149200) == 7200
    assert utc_offset(rule, 1919293200 - 1) == 7200 and utc_offset(rule, 1919293200) == 3600
    sydney = posix_rule("Australia/Sydney")  # southern hemisphere: DST spans new year
    assert utc_offset(sydney, 1893456000) == 39600  # 2030-01-01
    assert utc_offset(sydney, 1909000000) == 36000  # 2030-06-29


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime", "Europe"])
def test_unknown_zone_is_keyerror(name):
    with pytest.raises(KeyError):
        posix_rule(name)
