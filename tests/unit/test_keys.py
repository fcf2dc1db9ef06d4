"""The key schema is a persisted API: a change here is a migration, not a refactor."""

import pytest
from redis.crc import key_slot as redis_key_slot

from bandit_push import keys as keys_mod
from bandit_push.keys import Keys, decision_slot, decision_space, key_slot, slot_tags


def test_key_strings_are_pinned():
    k = Keys("bp:")
    assert k.user("alice") == "bp:u:{alice}"
    assert k.user_pushes("alice") == "bp:u:{alice}:pushed"
    assert k.event_seen("alice", "e1") == "bp:u:{alice}:ev:e1"
    assert k.decision("0000ab12ab12ab12ab12.default") == "bp:d:{06S}0000ab12ab12ab12ab12.default"
    assert k.decision("3fff0000000000000000.x3v1") == "bp:d:{6ZJ}3fff0000000000000000.x3v1"
    assert k.decision_log(0, 493000) == "bp:dlog:{06S}:493000" and k.decision_log(1, 7) == "bp:dlog:{Qi}:7"
    assert k.decision_log_slots(493000) == "bp:dlog:slots:493000"
    assert k.credited("x3v1", "0000ab12ab12ab12ab12.x3v1", "clicked") == "bp:cr:{x3v1}:0000ab12ab12ab12ab12.x3v1:clicked"
    assert k.experiment_credited(3, "0000ab12ab12ab12ab12.x3v1", "opened") == \
        "bp:xu:{06S}:3:cr:0000ab12ab12ab12ab12.x3v1:opened"  # (the decision's slot: its user's)
    assert k.arms("default") == "bp:arms:{default}"
    assert k.segment_sizes() == "bp:segsize"
    assert k.popular_day(20000) == "bp:pop:20000"
    assert k.popular_counted(20000, 7, "e1") == "bp:pop:ev:{Bc}20000:7:e1"  # (the tag of bp:pop:20000's slot)
    assert k.interaction_counted(20000, 7, "e1") == "bp:ix:ev:{4zb}20000:7:e1"
    assert key_slot(k.popular_counted(20000, 7, "e1")) == key_slot(k.popular_day(20000))
    assert key_slot(k.interaction_counted(20000, 7, "e1")) == key_slot(k.interactions(20000))
    assert k.experiment_event_counted(3, "alice", 7, "e1") == "bp:xu:{6nk}:3:ev:7:e1"  # (alice's slot, 749)
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
    assert k.experiment_users(12, "alice") == "bp:xu:{6nk}:12" == k.experiment_users_of_slot(12, 749)
    assert key_slot(k.experiment_users(12, "alice")) == key_slot(k.user("alice")) == 749
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


def test_slot_tags_hash_to_their_slots_as_redis_cluster_computes_them():
    tags = slot_tags()
    assert len(tags) == keys_mod.SLOTS and tags[:4] == ("06S", "Qi", "5L5", "4Iu")  # (Redis's crc16_slottable.h)
    assert max(map(len, tags)) == 3 and all(t.isalnum() for t in tags)
    assert [redis_key_slot(f"d:{{{t}}}x".encode()) for t in tags] == list(range(keys_mod.SLOTS))


@pytest.mark.parametrize("did, slot, space", [
    ("0000ab12ab12ab12ab12.default", 0, "default"), ("3fffab12ab12ab12ab12.x12v0", 16383, "x12v0"),
    ("4000ab12ab12ab12ab12.default", None, None),  # past the last slot
    ("30dcfbb2eb0c7148b7ca", None, None), ("30dcfbb2eb0c7148b7c.default", None, None),
    ("30DCfbb2eb0c7148b7ca.default", None, None), ("not-a-decision", None, None),
    ("0000ab12ab12ab12ab12.a b", None, None), ("0000ab12ab12ab12ab12.default\n", None, None)])
def test_a_decision_id_names_its_slot_and_space(did, slot, space):
    assert (decision_slot(did), decision_space(did)) == (slot, space)
    if slot is None:
        with pytest.raises(ValueError):
            Keys().decision(did)
    else:
        assert key_slot(Keys().decision(did)) == slot
