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
    assert k.user_ids() == "bp:users:ids"
    assert k.user_recs("alice") == "bp:u:{alice}:recs"
    assert k.user_recent("alice") == "bp:u:{alice}:rx"
    assert k.item_by_index() == "bp:items:byix"
    assert k.model_current() == "bp:models:current"
    assert k.model_versions("mf") == "bp:models:mf:versions"
    assert k.model_kept() == "bp:models:kept"
    assert k.model_version("mf", "3") == "bp:models:mf:v:3"
    assert k.refit_lock("mf") == "bp:lock:refit:mf"
    assert k.rate_bucket("0123abcd") == "bp:rl:{0123abcd}"
    assert k.user_event_marks("a*b?[c]") == "bp:u:{a\\*b\\?\\[c\\]}:ev:*"
    assert k.experiment(12) == "bp:x:{12}"
    assert k.experiment_users(12) == "bp:x:{12}:users"
    assert k.experiments() == "bp:x:all"
    assert k.experiments_running() == "bp:x:running"
    assert k.experiments_active() == "bp:x:active"
    assert k.experiments_version() == "bp:x:version"
    assert Keys("other:").user("x") == "other:u:{x}"
    assert k.users_match() == "bp:u:{*}"
    assert k.user_of("bp:u:{alice}") == "alice" and k.user_of("bp:u:{alice}:recs") is None
    assert k.user_of("bp:u:{a}:ev:{b}") is None and k.user_of("bp:x:{1}") is None


def test_a_user_tag_is_exactly_the_user_whatever_the_id_holds():
    """The tag is the id's stored form (bandit_push.ids): no brace inside, so it is the whole user and no user's id
    names another user's key (user ``x}:ev:e`` is not user ``x``'s event mark ``e``)."""
    k = Keys("bp:")
    assert k.user("BANK CHARGES") == "bp:u:{BANK%20CHARGES}"
    assert k.user("x}:ev:e") == "bp:u:{x%7D:ev:e}" != k.event_seen("x", "e").removesuffix(":ev:e") + ":ev:e"
    assert k.event_seen("x", "e") == "bp:u:{x}:ev:e" and k.user("x}:ev:e").count("}") == 1
    assert k.user_pushes("{a}") == "bp:u:{%7Ba%7D}:pushed" and k.user_recs("a b") == "bp:u:{a%20b}:recs"
    assert k.user_recent("%41") == "bp:u:{%2541}:rx"
    assert k.user_event_marks("a b*") == "bp:u:{a%20b\\*}:ev:*"
    for uid in ("BANK CHARGES", "x}:ev:e", "{", "%41", " a "):
        assert k.user_of(k.user(uid)) == uid
