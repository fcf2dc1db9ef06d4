"""Every Redis key string, and nothing else. The schema is a persisted API: tests pin it.

Layout ``<prefix><entity>:<id>[:<facet>]``. Per-user keys carry the user id as
hash tag so that what one script touches for a user shares a slot. Shared
policy state (arms, popular lists) sits under its own tags. Every method takes a
user id as the client sent it and tags the key with its stored form
(:func:`bandit_push.ids.store`), which never holds a brace: the tag is exactly the
user, and no user's id can name another user's keys.
"""
from __future__ import annotations

import functools
import itertools
import re
import string
from dataclasses import dataclass

from redis.crc import key_slot as redis_key_slot

from bandit_push import ids

SLOTS = 16384  #: Redis Cluster's hash slots
#: a decision id: its record's slot (4 hex digits), 16 random hex digits, ``.`` and its policy space
_DECISION_ID = re.compile(r"([0-3][0-9a-f]{3})[0-9a-f]{16}\.([A-Za-z0-9_-]{1,64})")


def key_slot(key: str) -> int:
    """The Redis Cluster slot of ``key`` (redis-py's own computation: CRC16 of its hash tag, modulo 16,384)."""
    return redis_key_slot(key.encode())


@functools.cache
def slot_tags() -> tuple[str, ...]:
    """Per slot, the shortest alphanumeric string that hashes to it (the first in ``0-9A-Za-z`` order): a hash tag
    that puts a key in a chosen slot (built once, about 0.1 s; the same table as Redis's ``crc16_slottable.h``)."""
    tags: list[str | None] = [None] * SLOTS
    alphabet = string.digits + string.ascii_uppercase + string.ascii_lowercase
    for n in itertools.count(1):
        for chars in itertools.product(alphabet, repeat=n):
            tag = "".join(chars)
            slot = key_slot(tag)
            if tags[slot] is None:
                tags[slot] = tag
        if None not in tags:
            return tuple(t for t in tags if t is not None)
    raise AssertionError("unreachable")


def decision_slot(decision_id: str) -> int | None:
    """The slot a decision id names (where its record lives), or None if ``decision_id`` is not one of ours."""
    m = _DECISION_ID.fullmatch(decision_id)
    return int(m.group(1), 16) if m else None


def decision_space(decision_id: str) -> str | None:
    """The policy space a decision id names, or None if ``decision_id`` is not one of ours."""
    m = _DECISION_ID.fullmatch(decision_id)
    return m.group(2) if m else None


@dataclass(frozen=True)
class Keys:
    """Key builder for one deployment prefix."""

    prefix: str = "bp:"

    def user(self, user_id: str) -> str:
        """Hash: state, time zone rule, recent pushes, behaviour features of one user."""
        return f"{self.prefix}u:{{{ids.store(user_id)}}}"

    def users_match(self) -> str:
        """MATCH pattern of every user hash (:meth:`user`), for refit jobs' SCAN; it also matches a per-user key
        whose suffix ends in a brace, which :meth:`user_of` tells apart."""
        return f"{self.prefix}u:{{*}}"

    def user_of(self, key: str) -> str | None:
        """The user id of a :meth:`user` key, None for any other key :meth:`users_match` matches."""
        head = f"{self.prefix}u:{{"
        if not (key.startswith(head) and key.endswith("}")) or "}" in key[len(head):-1]:
            return None
        return ids.load(key[len(head):-1])

    def user_pushes(self, user_id: str) -> str:
        """String: the user's push times of the last 24 h and items pushed within the exclusion window.

        Kept apart from the user hash so that the hash stays small (listpack-encoded); expires.
        """
        return f"{self.prefix}u:{{{ids.store(user_id)}}}:pushed"

    def event_seen(self, user_id: str, event_id: str) -> str:
        """String: marks a shopping event id of one user as recorded (count-once for retries); expires."""
        return f"{self.prefix}u:{{{ids.store(user_id)}}}:ev:{event_id}"

    def decision(self, decision_id: str) -> str:
        """Hash: one decision record, with its per-event dedup flags, in the slot its id names (its user's: see
        :func:`decision_slot`). Expires. ValueError for an id that is not a decision id."""
        slot = decision_slot(decision_id)
        if slot is None:
            raise ValueError(f"not a decision id: {decision_id!r}")
        return f"{self.prefix}d:{{{slot_tags()[slot]}}}{decision_id}"

    def decision_log(self, slot: int, hour: int) -> str:
        """String: the ids of the decisions made in one UTC hour (hours since epoch) whose records are in
        ``slot``, space-separated, appended by decide. Expires an hour after the slot's last record of the hour."""
        return f"{self.prefix}dlog:{{{slot_tags()[slot]}}}:{hour}"

    def decision_log_slots(self, hour: int) -> str:
        """String, a bitmap: bit ``s`` set when slot ``s`` has a :meth:`decision_log` index of the hour (the
        export reads only those). Expires with the hour's last index."""
        return f"{self.prefix}dlog:slots:{hour}"

    def arms(self, space: str) -> str:
        """Hash: arm statistics of one policy space (``default`` or an experiment variant).

        Fields ``<segment>|<recency>|<daypart>`` (a context's arm), ``<segment>|N`` (the segment's totals) and
        ``*|N`` (the space's) each hold ``t n <outcome counts...>``: the reference time, the decayed sends and
        outcome counts, as ``B`` and little-endian doubles (``arms.arm_values`` reads them).
        """
        return f"{self.prefix}arms:{{{space}}}"

    def credited(self, space: str, decision_id: str, event: str) -> str:
        """String: marks a (decision, event) credited to the arms of ``space`` (in their slot: count-once across a
        retry of the two commands of a feedback); expires with the decision."""
        return f"{self.prefix}cr:{{{space}}}:{decision_id}:{event}"

    def segment_sizes(self) -> str:
        """Hash: segment id -> number of users in it."""
        return f"{self.prefix}segsize"

    def popular_day(self, day: int) -> str:
        """Hash for one UTC day (days since epoch): ``<segment>|<item>`` -> weighted events."""
        return f"{self.prefix}pop:{day}"

    def popular_top(self) -> str:
        """Hash: segment id (``*`` global) -> ``"item score item score ..."``; ``@ts`` -> refresh time."""
        return f"{self.prefix}top"

    def popular_counted(self, day: int, user_index: int | str, event_id: str) -> str:
        """String: marks an event id of the user of dense index ``user_index`` counted in the day's popularity (in
        its slot: count-once across a retry of an event's commands; the index, not the id, so that no marker names
        a deleted user); expires with the event dedup."""
        slot = key_slot(self.popular_day(day))
        return f"{self.prefix}pop:ev:{{{slot_tags()[slot]}}}{day}:{user_index}:{event_id}"

    def interactions(self, day: int) -> str:
        """String: packed interaction records of one UTC day, appended to (13 bytes each)."""
        return f"{self.prefix}ix:{day}"

    def interaction_counted(self, day: int, user_index: int | str, event_id: str) -> str:
        """String: marks an event id of the user of dense index ``user_index`` appended to the day's interaction
        chunk (in the chunk's slot: count-once across a retry of an event's commands); expires with the event
        dedup."""
        slot = key_slot(self.interactions(day))
        return f"{self.prefix}ix:ev:{{{slot_tags()[slot]}}}{day}:{user_index}:{event_id}"

    def interaction_days(self) -> str:
        """Sorted set: the days that have an interaction chunk, by day number."""
        return f"{self.prefix}ix:days"

    def interactions_compacted(self) -> str:
        """Set: the days whose interaction chunk has been compacted since its last append."""
        return f"{self.prefix}ix:compacted"

    def item_index(self) -> str:
        """Hash: item id -> dense item index used in interaction records."""
        return f"{self.prefix}items:idx"

    def item_ids(self) -> str:
        """List: dense item index -> item id."""
        return f"{self.prefix}items:ids"

    def user_ids(self) -> str:
        """List: dense user index -> user id (``""`` once the user is deleted); what the MF refit names lists by."""
        return f"{self.prefix}users:ids"

    def user_recs(self, user_id: str) -> str:
        """String: the user's precomputed ranked items, packed (see :mod:`bandit_push.toplists`)."""
        return f"{self.prefix}u:{{{ids.store(user_id)}}}:recs"

    def user_recent(self, user_id: str) -> str:
        """String: the user's packed interactions since the current MF version (for fold-in); expires."""
        return f"{self.prefix}u:{{{ids.store(user_id)}}}:rx"

    def item_by_index(self) -> str:
        """Hash: dense item index -> item id (what the decide script reads to name packed items)."""
        return f"{self.prefix}items:byix"

    def model_current(self) -> str:
        """Hash: model name (``mf``, ``segments``) -> the version serving now. Publishing flips one field."""
        return f"{self.prefix}models:current"

    def model_kept(self) -> str:
        """Hash: model name -> its latest version kept, not served (a gate judged it worse than the serving one)."""
        return f"{self.prefix}models:kept"

    def model_versions(self, name: str) -> str:
        """Sorted set: a model's published versions by publish time (for garbage collection)."""
        return f"{self.prefix}models:{name}:versions"

    def model_version(self, name: str, version: str) -> str:
        """Hash: one model version: ``meta`` (JSON) and ``a:<array>`` raw bytes (dtype, shape in meta)."""
        return f"{self.prefix}models:{name}:v:{version}"

    def refit_lock(self, name: str) -> str:
        """String: the refit lock of one model; its value names the holder (an RQ job id or ``cli:...``)."""
        return f"{self.prefix}lock:refit:{name}"

    def rate_bucket(self, key_id: str) -> str:
        """Hash: the token bucket of one API key (``key_id``: a prefix of the key's sha256, never the key)."""
        return f"{self.prefix}rl:{{{key_id}}}"

    def user_event_marks(self, user_id: str) -> str:
        """MATCH pattern of a user's event-id markers (:meth:`event_seen`), for deleting a user's data."""
        return f"{self.prefix}u:{{{_glob_escape(ids.store(user_id))}}}:ev:*"

    def counters(self) -> str:
        """Hash of service-wide counters (next user index, ...)."""
        return f"{self.prefix}counters"

    # -- experiments ---------------------------------------------------------------------------

    def experiment(self, experiment_id: int | str) -> str:
        """Hash: one experiment's definition (``def``, JSON), ``status`` and its timestamps."""
        return f"{self.prefix}x:{{{experiment_id}}}"

    def experiment_users(self, experiment_id: int | str, user_id: str) -> str:
        """Hash: the per-user counters of the experiment for the users of ``user_id``'s slot (the user's field is
        its stored id): ``"<variant> <first exposure ts> <sends> <clicks> <conversions> <unsubscribed> <net value>
        <events> <purchases>"``, written from first exposure. In the user's slot, so decide and feedback write
        them with the user's keys; a report reads every slot's (:meth:`experiment_users_of_slot`)."""
        return self.experiment_users_of_slot(experiment_id, key_slot(self.user(user_id)))

    def experiment_users_of_slot(self, experiment_id: int | str, slot: int) -> str:
        """Hash: the per-user counters of the experiment for the users whose keys are in ``slot``."""
        return f"{self.prefix}xu:{{{slot_tags()[slot]}}}:{experiment_id}"

    def experiment_credited(self, experiment_id: int | str, decision_id: str, event: str) -> str:
        """String: marks a (decision, event) counted in the experiment's per-user counters (in their slot, the
        decision's: count-once across a retry of a feedback's commands); expires with the decision."""
        slot = decision_slot(decision_id)
        if slot is None:
            raise ValueError(f"not a decision id: {decision_id!r}")
        return f"{self.experiment_users_of_slot(experiment_id, slot)}:cr:{decision_id}:{event}"

    def experiment_event_counted(self, experiment_id: int | str, user_id: str, user_index: int | str,
                                 event_id: str) -> str:
        """String: marks an event id of ``user_id`` (dense index ``user_index``) counted in the experiment's per-user
        counters (their slot, the user's); expires with the event dedup."""
        return f"{self.experiment_users(experiment_id, user_id)}:ev:{user_index}:{event_id}"

    def experiments(self) -> str:
        """Sorted set: every experiment id, by id (creation order)."""
        return f"{self.prefix}x:all"

    def experiments_running(self) -> str:
        """Sorted set: running experiment ids by start order (older first: it wins an overlap)."""
        return f"{self.prefix}x:running"

    def experiments_active(self) -> str:
        """Sorted set: running and paused experiment ids (events of their users still count)."""
        return f"{self.prefix}x:active"

    def experiments_version(self) -> str:
        """String: the registry version, incremented on every start, pause and stop; decide checks it."""
        return f"{self.prefix}x:version"


def _glob_escape(text: str) -> str:
    """``text`` with Redis glob characters escaped, so that an id like ``a*`` matches only itself."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
