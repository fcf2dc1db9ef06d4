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
    ({"BANDIT_PUSH_API_KEYS": "root:secret"}, "api_keys"),
    ({"BANDIT_PUSH_API_KEYS": "gateway:sha256:abc"}, "api_keys"),
    ({"BANDIT_PUSH_RATE_LIMITS": "robots=5"}, "rate_limits"),
    ({"BANDIT_PUSH_RATE_LIMITS": "gateway=-1"}, "rate_limits"),
    ({"BANDIT_PUSH_RATE_BURSTS": "gateway=0"}, "rate_bursts"),
    ({"BANDIT_PUSH_TIMESTAMP_MAX_AHEAD_DAYS": "0"}, "timestamp_max_ahead_days"),
    ({"BANDIT_PUSH_MF_FACTORS": "0"}, "mf_factors"),
    ({"BANDIT_PUSH_MF_HALF_LIFE_DAYS": "-1"}, "mf_half_life_days"),
    ({"BANDIT_PUSH_MF_POPULAR_BLEND": "-0.5"}, "mf_popular_blend"),
])
def test_bad_settings_fail_fast_naming_the_setting(env, field):
    with pytest.raises(ConfigError) as e:
        Settings.from_env(env)
    assert e.value.field == field


def test_security_settings_from_env():
    s = Settings.from_env({"BANDIT_PUSH_API_KEYS": "gateway:k1, gateway:k2,admin:sha256:" + "AB" * 32,
                           "BANDIT_PUSH_RATE_LIMITS": "gateway=100", "BANDIT_PUSH_TIMESTAMP_MIN": "1e9"})
    assert [scope for scope, _ in s.api_keys] == ["gateway", "gateway", "admin"]
    assert s.api_keys[2][1] == "ab" * 32  # digests are compared in lower case
    assert s.rate_limits == {"admin": 50.0, "gateway": 100.0, "read": 50.0}
    assert s.timestamp_min == 1e9


def test_a_switch_reads_true_or_false_and_nothing_else():
    assert Settings.from_env({"BANDIT_PUSH_REDIS_FUNCTIONS": "off"}).redis_functions is False
    assert Settings.from_env({"BANDIT_PUSH_ALLOW_REPURCHASE": "Yes"}).allow_repurchase is True
    with pytest.raises(ConfigError) as e:  # a typo must not quietly mean false
        Settings.from_env({"BANDIT_PUSH_REDIS_FUNCTIONS": "ture"})
    assert "BANDIT_PUSH_REDIS_FUNCTIONS" in str(e.value)


def test_the_policy_setting_names_exactly_the_registered_policies():
    from bandit_push.config import POLICY_NAMES
    from bandit_push.policies import POLICIES

    assert set(POLICY_NAMES) == set(POLICIES)  # config validates names without importing the policies
    for name in POLICY_NAMES:
        assert Settings(policy=name).validate().policy == name
    with pytest.raises(ConfigError, match="unknown policy"):
        Settings(policy="epsilon").validate()
