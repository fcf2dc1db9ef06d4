"""Every stored hash field name and packed layout, named once; the key strings are in :mod:`bandit_push.keys`.

The stored schema is a persisted API (tests/unit/test_schema.py pins it; docs/schema.md describes each key).
Python modules read these names; the Lua library gets them as the tables of :func:`lua_source`, which the
loader (:mod:`bandit_push.lua`) includes as ``schema``: ``USER.segment`` in Lua is ``USER["segment"]`` here.
"""
from __future__ import annotations

import json
import struct

#: the user hash (keys.user): state, time zone, behaviour features
USER = {
    "segment": "sg",          # segment id ('new' until segmented)
    "tz_name": "tzn",         # IANA time zone name, as the client set it
    "tz_rule": "tzr",         # its POSIX rule (tzrule.py), what decide evaluates
    "opted_out": "oo",        # '1' when opted out
    "last_push": "lp",        # epoch seconds of the last push (decide's text of its `now`)
    "index": "ix",            # dense user index (interaction records, the MF model's rows)
    "first_event": "ff", "last_event": "fl", "last_purchase": "fp",  # epoch seconds
    "purchase_value": "fm",   # summed purchase values
    "event_count": "f:",      # prefix: f:<event type> -> count
    "evidence": "pe",         # the user's engagement evidence "t E X[ u m]" (engagement.py; u m: an open episode)
}

#: the decision record (keys.decision); feedback adds one flag per event
DECISION = {
    "user": "u", "segment": "s",
    "context": "a",           # '<recency bucket>|<daypart>' (indices)
    "sent": "x",              # '1' | '0'
    "time": "t",              # the decision's time (its request's text of `now`)
    "space": "v",             # policy space whose arms it credits
    "log": "d",               # LOG_FIELDS, tab-separated: only the decision log reads them
    "items": "i",             # item ids, space-separated
    "channel": "c",           # only when the request named one
    "load": "f",              # a pushed decision's pacing load arm ('L' or the load), when pacing ran
    "seen": "z",              # SEEN, packed: what the policy saw
    "gap": "l",               # seconds since the last push, text: a refusal before the policy, if pushed before
    "why": "y",               # WHY, packed: what drove the net value (GET /v1/decisions/<id>)
    "evidence_credited": "ue",  # '1' once the decision's engagement counted in the user's evidence
    "event": "e:",            # prefix: e:<event> -> "<ts>[ late][ v=<value>]" (count-once flag)
}
#: the parts of DECISION["log"], in order: propensity, reason, policy, model label
LOG_FIELDS = ("q", "r", "p", "m")

#: arms hashes (keys.arms): fields '<segment>|<recency>|<daypart>' (a context's arm) and these
ARM = {
    "segment_totals": "|N",   # suffix of '<segment>|N': the segment's totals (the pooled prior's parent)
    "space_totals": "*|N",    # the whole space's totals
    "load": "|F",             # suffix of '<segment>|F<load>': pacing's load arms ('<segment>|FL': not pushed lately)
}
#: an arm's value: ARM_MAGIC then little-endian doubles t, n, one count per outcome (config.OUTCOMES)
ARM_MAGIC = "B"

#: the popular lists hash (keys.popular_top): segment id -> "item score item score ...", and these
POPULAR = {"all": "*", "refreshed": "@ts", "day": "@day"}
#: the service counters hash (keys.counters): the next dense user index, the next experiment id
COUNTERS = {"users": "users", "experiments": "experiments"}
#: an API key's token bucket (keys.rate_bucket)
BUCKET = {"tokens": "k", "time": "t"}
#: an experiment's hash (keys.experiment)
EXPERIMENT = {"definition": "def", "status": "status", "created": "created", "started": "started",
              "stopped": "stopped"}
#: a model version's hash (keys.model_version): 'meta' (JSON) and 'a:<array name>' (raw bytes)
MODEL = {"meta": "meta", "array": "a:"}

#: an experiment's per-user counters (keys.experiment_users): one text value, these columns space-separated
XREC_COLUMNS = ("variant", "first_exposure", "sends", "clicks", "conversions", "unsubscribed", "net_value",
                "events", "purchases")
#: column -> its 1-based position (what the Lua indexes)
XREC = {name: i + 1 for i, name in enumerate(XREC_COLUMNS)}

#: what the policy saw (DECISION["seen"]): posterior mean, variance, segment's decayed sends, seconds since push
SEEN = "<dddd"
#: what drove a decision (DECISION["why"]): the context's engagement value and negative value, their variance
#: (doubles); the user's engagement multiplier's mean and variance, what the engagement model predicted, the user's
#: decayed evidence E and X, their organic features x1 and x2, the engagement part's variance (floats: shown, and
#: what another version of the engagement model is scored on); applied (1) or not (0)
WHY = "<dddffffffffB"
#: the names of WHY's fields, in order (decision_log.decode)
WHY_FIELDS = ("mp", "mn", "var_ctx", "th", "vth", "g", "e", "x", "x1", "x2", "vp", "applied")
#: one interaction record (keys.interactions): user index, item index (2^32-1: none), type code, epoch second
INTERACTION = "<IIBI"
#: a user's precomputed items (keys.user_recs): header <I f f (MF version, lowest, highest score), then per
#: item 3 bytes of dense item index and a 16-bit quantised score (toplists.py)
RECS = {"header": "<Iff", "header_size": struct.calcsize("<Iff"), "entry_size": 5}


def _lua(value: object) -> str:
    """A Lua literal of a str/int or a flat dict of them (json.dumps quotes strings as Lua reads them here)."""
    if isinstance(value, dict):
        return "{\n" + "".join(f"  {k} = {_lua(v)},\n" for k, v in value.items()) + "}"
    return json.dumps(value)


def lua_source() -> str:
    """The schema as Lua locals, for the library's ``schema`` include."""
    tables = {"USER": USER, "DECISION": DECISION, "ARM": ARM, "POPULAR": POPULAR,
              "BUCKET": BUCKET, "EXPERIMENT": EXPERIMENT, "XREC": XREC, "RECS": RECS}
    lines = ["-- The stored schema, generated from bandit_push/schema.py (edit it there)."]
    lines += [f"local {name} = {_lua(t)}" for name, t in tables.items()]
    lines += [f"local ARM_MAGIC, ARM_MAGIC_BYTE = {_lua(ARM_MAGIC)}, {ord(ARM_MAGIC)}",
              f"local SEEN, WHY, INTERACTION = {_lua(SEEN)}, {_lua(WHY)}, {_lua(INTERACTION)}"]
    return "\n".join(lines) + "\n"
