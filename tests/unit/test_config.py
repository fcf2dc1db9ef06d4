import pytest

from bandit_push.config import Settings
from bandit_push.errors import ConfigError


def test_defaults_validate():
    s = Settings().validate()
    assert s.quiet_window() == (22 * 3600, 8 * 3600)
    assert s.daypart_of_hour()[3] == 3 and s.daypart_of_hour()[7] == 0  # 03:00 night, 07:00 morning


def test_from_env_reads_and_merges():
    s = Settings.from_env({"REDIS_URL": "redis://h:1/2", "BANDIT_PUSH_POLICY": "ucb", "BANDIT_PUSH_MAX_PER_DAY": "5",
                           "BANDIT_PUSH_WEIGHTS": "clicked=2", "BANDIT_PUSH_QUIET_HOURS": "off",
                           "BANDIT_PUSH_RECENCY_EDGES_HOURS": "2,24"})
    assert (s.redis_url, s.policy, s.max_per_day) == ("redis://h:1/2", "ucb", 5)
    assert s.weights["clicked"] == 2 and s.weights["unsubscribed"] == -30
    assert s.quiet_window() is None and s.recency_edges_hours == (2.0, 24.0)
    m = Settings.from_env({"BANDIT_PUSH_ALLOW_REPURCHASE": "true", "BANDIT_PUSH_SEGMENT_COUNT": "8"})
    assert m.allow_repurchase is True and m.segment_count == 8


@pytest.mark.parametrize("env, field", [
    ({"BANDIT_PUSH_POLICY": "greedy"}, "policy"),
    ({"BANDIT_PUSH_MAX_PER_DAY": "many"}, "max_per_day"),
    ({"BANDIT_PUSH_QUIET_HOURS": "late"}, "quiet_hours"),
    ({"BANDIT_PUSH_DEFAULT_TIMEZONE": "Mars/Olympus"}, "default_timezone"),
    ({"BANDIT_PUSH_WEIGHTS": "likes=1"}, "weights"),
    ({"BANDIT_PUSH_HALF_LIFE_HOURS": "0"}, "half_life_hours"),
    ({"BANDIT_PUSH_PREFIX": "a{b}"}, "prefix"),
    ({"BANDIT_PUSH_RECS_SIZE": "0"}, "recs_size"),
    ({"BANDIT_PUSH_RECS_SIZE": "5000"}, "recs_size"),
    ({"BANDIT_PUSH_SEGMENT_COUNT": "0"}, "segment_count"),
    ({"BANDIT_PUSH_MF_REFIT_HOURS": "0"}, "mf_refit_hours"),
    ({"BANDIT_PUSH_REFIT_RETRIES": "-1"}, "refit_retries"),
    ({"BANDIT_PUSH_MF_FACTORS": "0"}, "mf_factors"),
    ({"BANDIT_PUSH_MF_HALF_LIFE_DAYS": "-1"}, "mf_half_life_days"),
    ({"BANDIT_PUSH_MF_POPULAR_BLEND": "-0.5"}, "mf_popular_blend"),
])
def test_bad_settings_fail_fast_naming_the_setting(env, field):
    with pytest.raises(ConfigError) as e:
        Settings.from_env(env)
    assert e.value.field == field
