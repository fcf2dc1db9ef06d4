"""The simulated population: who the users are, what they do on their own, how they answer a push.

Everything random is drawn up front from per-user streams (``numpy`` generators
seeded with ``(seed, user)``), so that every policy meets the **same** users, the
same organic events, the same push opportunities and, at the j-th opportunity of
a user, the same uniform numbers deciding the outcome of a push made there
(common random numbers: policy comparisons are paired).

The truth of a push (see :meth:`Population.probabilities`):

* responsiveness ``r = open_rate(type) x hourly_response(local hour) x item match x exp(-s x F)``,
  where ``F = sum over the user's delivered pushes of exp(-age / recovery)`` is the fatigue;
* opened with probability ``r``; clicked given opened, converted given clicked (type rates);
  an unopened push is dismissed with a fixed probability;
* unsubscribe hazard ``unsub_rate(type) x (1 + gain x F) x (night multiplier at night)``.

Pushes' outcomes do not feed back into the organic events (the organic stream is the
user's own behaviour), which keeps the popular items - hence the items of a push at a
given moment - independent of the policy except through the service's own exclusion of
recently pushed items.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bandit_push.sim.params import EVENTS, SimParams
from bandit_push.tzrule import posix_rule, utc_offset

HOUR = 3600.0
DAY = 86400.0
#: uniforms per opportunity: deliver, open, click, convert, dismiss, unsubscribe, 4 delays
DRAWS = 10


@dataclass(frozen=True)
class Outcome:
    """What a user did after one push: the feedback events (name, ts) the gateway reports."""

    events: tuple[tuple[str, float], ...]
    delivered: bool
    unsubscribed: bool
    #: the push's expected net value given the state it was made in (hour, fatigue, items; delivery included):
    #: what the push earns on average, without the luck of this one draw
    expected: float


class HourlyOffsets:
    """``utc_offset(rule, t)`` memoised per rule and UTC hour: an hour whose first and last second have the
    same offset has it throughout (a time-zone rule changes its offset at most once in an hour, at a whole
    second), an hour with a transition is computed exactly at every call."""

    def __init__(self) -> None:
        self._hours: dict[tuple[str, int], int | None] = {}

    def __call__(self, rule: str, t: float) -> int:
        hour = int(t // 3600)
        key = (rule, hour)
        off = self._hours.get(key, False)
        if off is False:
            a, b = utc_offset(rule, hour * 3600), utc_offset(rule, hour * 3600 + 3599)
            off = self._hours[key] = a if a == b else None
        return utc_offset(rule, t) if off is None else off


class Population:
    """Users, their organic events and push opportunities for one :class:`SimParams`; seeded."""

    def __init__(self, params: SimParams):
        self.params = p = params.validate()
        n = p.users
        top = np.random.default_rng([p.seed, 0x5EED])
        self.user_ids = [f"sim{p.seed}-{i}" for i in range(n)]
        self.type = top.choice(len(p.types), size=n, p=np.asarray(p.weights()) / sum(p.weights()))
        zones, shares = zip(*p.timezones)
        self.tz = [zones[z] for z in top.choice(len(zones), size=n, p=np.asarray(shares) / sum(shares))]
        rules = {z: posix_rule(z) for z in zones}
        self.tz_rule = [rules[z] for z in self.tz]
        self.offset = HourlyOffsets()
        self.favourite = top.integers(0, p.categories, size=n)
        self._types = self.type.tolist()
        self._favourite_prefix = [f"c{c}-" for c in self.favourite.tolist()]
        self.t0 = p.start - p.warmup_days * DAY      # first organic event
        self.t_end = p.start + p.days * DAY
        self.items = [f"c{c}-{j}" for c in range(p.categories) for j in range(p.items_per_category)]
        zipf = 1.0 / np.arange(1, p.items_per_category + 1) ** p.item_popularity_zipf
        self._item_p = zipf / zipf.sum()

        ev_rows, opp_rows = [], []
        draws = []
        for i in range(n):
            rng = np.random.default_rng([p.seed, i])
            ev_rows.append(self._organic(i, rng))
            times = self._opportunities(rng)
            opp_rows.append(times)
            draws.append(rng.random((len(times), DRAWS)))
        # organic events, sorted by time: user, ts, type index, item index (-1 none), value
        ev = np.concatenate(ev_rows) if ev_rows else np.zeros((0, 5))
        ev = ev[np.lexsort((ev[:, 0], ev[:, 1]))]
        self.ev_user = ev[:, 0].astype(np.int64)
        self.ev_ts = ev[:, 1]
        self.ev_type = ev[:, 2].astype(np.int64)
        self.ev_item = ev[:, 3].astype(np.int64)
        self.ev_value = ev[:, 4]
        # opportunities, sorted by time: user, ts, the index of its draws
        users = np.concatenate([np.full(len(t), i) for i, t in enumerate(opp_rows)])
        ts = np.concatenate(opp_rows)
        order = np.lexsort((users, ts))
        self.opp_user = users[order]
        self.opp_ts = ts[order]
        self.opp_draws = np.concatenate(draws)[order]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_event_rows", None)  # caches: rebuilt where needed (a process pool's pickle stays small)
        state.pop("_plan", None)
        return state

    def event_rows(self) -> list[dict]:
        """Every organic event as a row of ``POST /v1/events`` (user id, type, ts, item id and value when
        there are), in time order; built once and shared by every replay: not to be modified."""
        rows = self.__dict__.get("_event_rows")
        if rows is None:
            uids, items = self.user_ids, self.items
            rows = []
            for u, ts, kind, item, value in zip(self.ev_user.tolist(), self.ev_ts.tolist(), self.ev_type.tolist(),
                                                self.ev_item.tolist(), self.ev_value.tolist()):
                row = {"user_id": uids[u], "type": EVENTS[kind], "ts": ts}
                if item >= 0:
                    row["item_id"] = items[item]
                if value > 0:
                    row["value"] = value
                rows.append(row)
            self._event_rows = rows
        return rows

    # -- generation -----------------------------------------------------------------------------

    def _organic(self, i: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        p, ut = self.params, self.params.types[self.type[i]]
        span = self.t_end - self.t0
        count = rng.poisson(ut.events_per_day * span / DAY)
        ts = self.t0 + rng.random(count) * span
        # shopping happens in waking hours: move events that fall at night (local) by 12 h
        rule, offset = self.tz_rule[i], self.offset
        local = np.array([((t + offset(rule, t)) % DAY) / HOUR for t in ts.tolist()])
        ts = np.where((local < 7) | (local >= 23), ts + 12 * HOUR, ts)
        ts = ts[ts < self.t_end]
        count = len(ts)
        kinds = rng.choice(len(EVENTS), size=count, p=np.asarray(ut.event_mix) / sum(ut.event_mix))
        fav = rng.random(count) < p.favourite_share
        cat = np.where(fav, self.favourite[i], rng.integers(0, p.categories, size=count))
        item = cat * p.items_per_category + rng.choice(p.items_per_category, size=count, p=self._item_p)
        has_item = np.isin(kinds, [EVENTS.index(e) for e in ("view", "add_to_cart", "purchase")])
        value = np.where(kinds == EVENTS.index("purchase"), rng.exponential(ut.purchase_value, size=count), 0.0)
        return np.column_stack([np.full(count, i), ts, kinds, np.where(has_item, item, -1), np.round(value, 2)])

    def _opportunities(self, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        p = self.params
        every = p.opportunity_every_hours * HOUR
        grid = p.start + rng.random() * every + np.arange(0, p.days * DAY, every)
        jitter = (rng.random(len(grid)) * 2 - 1) * p.opportunity_jitter_hours * HOUR
        t = np.sort(grid + jitter)
        return t[(t >= p.start) & (t < self.t_end)]

    # -- truth ----------------------------------------------------------------------------------

    def local_hour(self, i: int, t: float) -> int:
        """The user's local hour at ``t``, by the same time-zone rule the service evaluates."""
        return int(((t + self.offset(self.tz_rule[i], t)) % DAY) // HOUR)

    def fatigue(self, pushes: list[float], t: float) -> float:
        """Sum over delivered pushes before ``t`` of exp(-age / recovery) (pushes older than 20 recoveries
        add less than 2e-9 each and are skipped)."""
        tau = self.params.fatigue_recovery_hours * HOUR
        total = 0.0
        for s in reversed(pushes):
            if t - s > 20 * tau:
                break
            if s < t:
                total += math.exp(-(t - s) / tau)
        return total

    def match(self, i: int, items: list[str]) -> float:
        """Share of the pushed items in the user's favourite category (0.5 if no items: an average push)."""
        if not items:
            return 0.5
        fav = self._favourite_prefix[i]
        return sum(1 for it in items if it.startswith(fav)) / len(items)

    def probabilities(self, type_index: int, hour: int, fatigue: float, match: float) -> dict[str, float]:
        """P(outcome | delivered push) for a user of a type, at a local hour, with a fatigue and item match."""
        p, ut = self.params, self.params.types[type_index]
        item = 1 - p.item_match_boost / 2 + p.item_match_boost * match
        p_open = min(0.95, ut.open_rate * p.hourly_response[hour] * item * math.exp(-ut.fatigue_sensitivity * fatigue))
        night_a, night_b = p.night_hours
        night = hour >= night_a or hour < night_b
        p_unsub = min(0.5, ut.unsub_rate * (1 + p.unsub_fatigue_gain * fatigue) * (p.unsub_night_multiplier if night else 1))
        return {"opened": p_open, "clicked": p_open * ut.click_given_open,
                "converted": p_open * ut.click_given_open * ut.convert_given_click,
                "dismissed": (1 - p_open) * p.p_dismiss_unopened, "unsubscribed": p_unsub}

    def expected_value(self, type_index: int, hour: int, fatigue: float, match: float,
                       weights: dict[str, float]) -> float:
        """Expected net value of one push (the service's outcome weights), delivery included."""
        return self._expected(self.probabilities(type_index, hour, fatigue, match), weights)

    def _expected(self, probs: dict[str, float], weights: dict[str, float]) -> float:
        return self.params.p_delivered * (
            sum(weights.get(o, 0.0) * q for o, q in probs.items()) + weights.get("delivered", 0.0))

    def respond(self, i: int, t: float, items: list[str], pushes: list[float],
                u: npt.NDArray[np.float64] | list[float], weights: dict[str, float]) -> Outcome:
        """The outcome of a push to user ``i`` at ``t``, decided by the opportunity's uniforms ``u``;
        ``weights`` (the service's outcome weights) price its :attr:`Outcome.expected` value."""
        p = self.params
        probs = self.probabilities(self._types[i], self.local_hour(i, t), self.fatigue(pushes, t), self.match(i, items))
        expected = self._expected(probs, weights)
        if not isinstance(u, list):
            u = u.tolist()  # (the same numbers: plain floats read faster than an array's items)
        if u[0] >= p.p_delivered:
            return Outcome((), False, False, expected)
        cap = 20 * HOUR  # every report arrives within the service's default 24 h attribution window

        def delay(x: float, mean_min: float) -> float:
            return min(cap, -math.log1p(-x) * mean_min * 60)

        events = [("delivered", t + 5)]
        if u[1] < probs["opened"]:
            t_open = t + 5 + delay(u[6], p.delay_open_min)
            events.append(("opened", t_open))
            if u[2] < probs["clicked"] / probs["opened"]:
                events.append(("clicked", t_open + 15))
                if u[3] < probs["converted"] / probs["clicked"]:
                    events.append(("converted", t_open + 15 + delay(u[7], p.delay_convert_min)))
        elif u[4] < p.p_dismiss_unopened:
            events.append(("dismissed", t + 5 + delay(u[8], p.delay_dismiss_min)))
        unsub = bool(u[5] < probs["unsubscribed"])
        if unsub:
            events.append(("unsubscribed", t + 5 + delay(u[9], p.delay_unsub_min)))
        return Outcome(tuple(events), True, unsub, expected)
