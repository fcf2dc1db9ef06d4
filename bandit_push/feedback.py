"""Engagement feedback: attributed to its decision, counted once, credited to the decision's arm."""
from __future__ import annotations

from dataclasses import dataclass

from bandit_push import ids
from bandit_push.config import OUTCOMES, Settings
from bandit_push.experiments import experiment_of_space
from bandit_push.keys import decision_slot, decision_space
from bandit_push.schema import XREC
from bandit_push.store import Store

#: the per-user experiment counter an outcome increments (its 1-based column in schema.XREC)
_XREC_SLOT = {"clicked": XREC["clicks"], "converted": XREC["conversions"], "unsubscribed": XREC["unsubscribed"]}
#: feedback that marks a pushed decision engaged (the user's evidence)
_ENGAGED = frozenset({"opened", "clicked", "converted"})
#: statuses the feedback script answers
STATUSES = ("accepted", "duplicate", "late", "unknown", "not_sent")


@dataclass(frozen=True)
class FeedbackEvent:
    decision_id: str
    event: str
    ts: float
    value: float | None = None


def record(store: Store, settings: Settings, events: list[FeedbackEvent]) -> list[str]:
    """Record a batch of feedback events; one status per event, in order.

    ``accepted``: credited to the arm; ``duplicate``: this (decision, event) was already
    recorded; ``late``: stored but past the attribution window, not credited;
    ``unknown``: no such decision (never made, or expired); ``not_sent``: the decision
    said not to send. A decision made under an experiment also counts an accepted outcome in the
    user's experiment counters (clicks, conversions, unsubscribed, net value by ``settings.weights``).
    An ``unsubscribed`` event opts the user out whatever its status
    (the opt-out is idempotent, so a retry after a failure still applies it).

    Two commands per event, each on one slot: the record's (the user's) marks the event and answers what to
    credit, then the arms' slot credits it once per (decision, event) (a marker set first), and so do the
    experiment's counters (in the record's slot too, by a command of their own with its marker). A report
    answered ``duplicate`` sends the credit again: a retry completes a credit that a crash (or a lost connection)
    cut between the two, and counts nothing twice.
    """
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    # an id not of ours (or of the format before ids named their record's slot) is unknown, asking nothing
    spaces = [decision_space(ev.decision_id) for ev in events]
    for ev, space in zip(events, spaces):
        if space is not None:
            store.feedback_script(
                keys=[keys.decision(ev.decision_id)],
                args=[ev.event, repr(ev.ts), settings.attribution_window_hours * 3600.0,
                      "" if ev.value is None else repr(ev.value), space],
                client=pipe)
    answers = iter(pipe.execute() if len(pipe) else [])
    # (the script answers the record's user in its stored form: the keys below are built from the id itself)
    results = [list(next(answers)) if space is not None else ["unknown", "", ""] for space in spaces]
    ttl = int(settings.decision_ttl_hours * 3600)
    pipe = store.redis.pipeline(transaction=False)
    for ev, r in zip(events, results):
        if len(r) > 3:  # what to credit: the arms of the decision's space, the experiment's counters
            space, (seg, ctx, t, load) = r[2], r[3:7]
            store.credit_script(keys=[keys.arms(space), keys.credited(space, ev.decision_id, ev.event)],
                                args=[OUTCOMES.index(ev.event) + 1, t, settings.half_life_hours * 3600.0,
                                      len(OUTCOMES), seg, ctx, load, ttl], client=pipe)
            experiment = experiment_of_space(space)
            if experiment is not None:
                store.experiment_credit_script(
                    keys=[keys.experiment_users_of_slot(experiment, decision_slot(ev.decision_id) or 0),
                          keys.experiment_credited(experiment, ev.decision_id, ev.event)],
                    args=[r[1], _XREC_SLOT.get(ev.event, 0), repr(float(settings.weights.get(ev.event, 0.0))), ttl],
                    client=pipe)
        # the user's own evidence (engagement.py): after the decision's flag is set, so a retry (a duplicate)
        # completes a credit that a crash cut short, and the credit counts once per decision ('ue' in the record)
        if r[0] in ("accepted", "duplicate") and r[1] and ev.event in _ENGAGED:
            store.user_evidence_script(keys=[keys.decision(ev.decision_id), keys.user(ids.load(r[1]))],
                                       args=[settings.half_life_hours * 3600.0], client=pipe)
    if len(pipe):
        pipe.execute()
    opt_outs = {ids.load(r[1]) for ev, r in zip(events, results) if ev.event == "unsubscribed" and r[1]}
    if opt_outs:
        pipe = store.redis.pipeline(transaction=False)
        for user_id in opt_outs:
            store.upsert_user_script(keys=[keys.user(user_id)], args=["", "", "1"], client=pipe)
        created = sum(int(c) for c in pipe.execute())
        if created:  # (users deleted since their decision: back as new, opted out)
            store.redis.hincrby(keys.segment_sizes(), "new", created)
    return [r[0] for r in results]
