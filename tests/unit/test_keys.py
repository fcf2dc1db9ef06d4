"""The key schema is a persisted API: a change here is a migration, not a refactor."""
from bandit_push.keys import Keys


def test_key_strings_are_pinned():
    k = Keys("bp:")
    assert k.user("alice") == "bp:u:{alice}"
    assert k.user_pushes("alice") == "bp:u:{alice}:pushed"
    assert k.event_seen("alice", "e1") == "bp:u:{alice}:ev:e1"
    assert k.decision("ab12.default") == "bp:d:ab12.default"
    assert k.decision_log(493000) == "bp:dlog:493000"
    assert k.arms("default") == "bp:arms:{default}"
    assert k.segment_sizes() == "bp:segsize"
    assert k.popular_day(20000) == "bp:pop:20000"
    assert k.popular_top() == "bp:top"
    assert k.interactions(20000) == "bp:ix:20000"
    assert k.interaction_days() == "bp:ix:days"
    assert k.interactions_compacted() == "bp:ix:compacted"
    assert k.item_index() == "bp:items:idx"
    assert k.item_ids() == "bp:items:ids"
    assert k.counters() == "bp:counters"
    assert k.experiment(12) == "bp:x:{12}"
    assert k.experiment_users(12) == "bp:x:{12}:users"
    assert k.experiments() == "bp:x:all"
    assert k.experiments_running() == "bp:x:running"
    assert k.experiments_active() == "bp:x:active"
    assert k.experiments_version() == "bp:x:version"
    assert Keys("other:").user("x") == "other:u:{x}"
