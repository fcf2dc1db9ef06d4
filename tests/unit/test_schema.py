"""The stored schema is a persisted API: field names and packed layouts are pinned here (a change is a
migration, not a refactor), and the Lua library is built from the same names."""
import struct

from bandit_push import interactions, lua, schema, toplists


def test_field_names_are_pinned():
    assert schema.USER == {"segment": "sg", "tz_name": "tzn", "tz_rule": "tzr", "opted_out": "oo",
                           "last_push": "lp", "index": "ix", "first_event": "ff", "last_event": "fl",
                           "last_purchase": "fp", "purchase_value": "fm", "event_count": "f:", "evidence": "pe"}
    assert schema.DECISION == {"user": "u", "segment": "s", "context": "a", "sent": "x", "time": "t", "space": "v",
                               "log": "d", "items": "i", "channel": "c", "load": "f", "seen": "z", "gap": "l",
                               "why": "y", "evidence_credited": "ue", "event": "e:"}
    assert schema.LOG_FIELDS == ("q", "r", "p", "m")
    assert schema.ARM == {"segment_totals": "|N", "space_totals": "*|N", "load": "|F"}
    assert schema.POPULAR == {"all": "*", "refreshed": "@ts", "day": "@day"}
    assert schema.COUNTERS == {"users": "users", "experiments": "experiments"}
    assert schema.BUCKET == {"tokens": "k", "time": "t"}
    assert schema.EXPERIMENT == {"definition": "def", "status": "status", "created": "created",
                                 "started": "started", "stopped": "stopped"}
    assert schema.MODEL == {"meta": "meta", "array": "a:"}
    assert schema.XREC_COLUMNS == ("variant", "first_exposure", "sends", "clicks", "conversions", "unsubscribed",
                                   "net_value", "events", "purchases")
    assert schema.XREC["clicks"] == 4 and schema.XREC["purchases"] == 9


def test_packed_layouts_are_pinned_and_match_the_numpy_readers():
    assert (schema.ARM_MAGIC, schema.SEEN, schema.WHY, schema.INTERACTION) == ("B", "<dddd", "<dddffffffffB", "<IIBI")
    assert len(schema.WHY_FIELDS) == len(struct.unpack(schema.WHY, bytes(struct.calcsize(schema.WHY))))
    assert struct.calcsize(schema.INTERACTION) == interactions.RECORD.itemsize == 13
    assert interactions.RECORD.names == ("user", "item", "type", "ts")
    assert schema.RECS == {"header": "<Iff", "header_size": 12, "entry_size": 5}
    assert toplists.HEADER.itemsize == schema.RECS["header_size"]
    packed = toplists.pack(7, [3, 70000], [2.0, 1.0])
    assert len(packed) == 12 + 2 * schema.RECS["entry_size"] and struct.unpack("<Iff", packed[:12]) == (7, 1.0, 2.0)


def test_the_lua_library_reads_the_schema_from_this_module():
    text = lua.library("bandit_push")
    assert 'segment = "sg",' in text and "local ARM_MAGIC, ARM_MAGIC_BYTE = \"B\", 66" in text
    # no field name of the user hash or the record is spelled in the Lua sources themselves
    sources = "".join(p.read_text() for p in lua.DIR.rglob("*.lua"))
    for name in ("'sg'", "'lp'", "'oo'", "'tzr'", "'pe'", "'x'", "'e:'", "'z'", "'y'", "'ue'"):
        assert name not in sources


def test_every_command_is_headed_and_built_from_its_files():
    for command in lua.COMMANDS:
        head = (lua.DIR / f"{command}.lua").read_text().split("\n\n")[0]
        assert "-- KEYS[1] =" in head, command
        assert "-- returns" in head, command
        script = lua.script(command)
        assert "@include" not in script and f"-- [{command}.lua]" in script
        assert f"redis.register_function('bandit_push_{command}'" in lua.library("bandit_push")
    # each include once, after the ones it needs
    order = lua.includes_of("decide")
    assert len(order) == len(set(order)) and order.index("base") < order.index("tz") < order.index("guardrails")
