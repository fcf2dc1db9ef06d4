"""Engagement feedback: attributed to its decision, counted once, credited to the decision's arm."""
from __future__ import annotations

from dataclasses import dataclass

from bandit_push import ids
from bandit_push.config import OUTCOMES, Settings
from bandit_push.experiments import experiment_of_space
from bandit_push.keys import decision_space
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
    """
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    # an id not of ours (or of the format before ids named their record's slot) is unknown, asking nothing
    ours = [ev for ev in events if decision_space(ev.decision_id) is not None]
    for ev in ours:
        space = decision_space(ev.decision_id) or ""
        experiment = experiment_of_space(space)
        store.feedback_script(
            keys=[keys.decision(ev.decision_id), keys.arms(space),
                  keys.experiment_users(experiment) if experiment is not None else keys.decision(ev.decision_id)],
            args=[OUTCOMES.index(ev.event) + 1, ev.event, repr(ev.ts), settings.attribution_window_hours * 3600.0,
                  settings.half_life_hours * 3600.0, len(OUTCOMES), "" if ev.value is None else repr(ev.value), space,
                  "1" if experiment is not None else "0", _XREC_SLOT.get(ev.event, 0),
                  repr(float(settings.weights.get(ev.event, 0.0)))],
            client=pipe)
    # (the script answers the record's user in its stored form: the keys below are built from the id itself)
    answers = iter(pipe.execute() if ours else [])
    results = [next(answers) if decision_space(ev.decision_id) is not None else ("unknown", "", "") for ev in events]
    results = [(r[0], ids.load(r[1]), r[2]) for r in results]
    statuses = [r[0] for r in results]
    # the user's own evidence (engagement.py): after the decision's flag is set, so a retry (a duplicate) completes
    # a credit that a crash cut short, and the credit counts once per decision ('ue' in the record)
    engaged = [(ev, r[1]) for ev, r in zip(events, results)
               if r[0] in ("accepted", "duplicate") and r[1] and ev.event in _ENGAGED]
    if engaged:
        pipe = store.redis.pipeline(transaction=False)
        for ev, user_id in engaged:
            store.user_evidence_script(keys=[keys.decision(ev.decision_id), keys.user(user_id)],
                                       args=[settings.half_life_hours * 3600.0], client=pipe)
        pipe.execute()
    opt_outs = {r[1] for ev, r in zip(events, results) if ev.event == "unsubscribed" and r[1]}
    if opt_outs:
        pipe = store.redis.pipeline(transaction=False)
        for user_id in opt_outs:
            store.upsert_user_script(keys=[keys.user(user_id)], args=["", "", "1"], client=pipe)
        created = sum(int(c) for c in pipe.execute())
        if created:  # (users deleted since their decision: back as new, opted out)
            store.redis.hincrby(keys.segment_sizes(), "new", created)
    return statuses
