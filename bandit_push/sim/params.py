"""Every parameter of the simulated population, in one documented place.

The numbers are chosen to be plausible for an e-commerce app, not fitted to any
policy. Published push benchmarks put reaction (open) rates at roughly 3-8% of
pushes and click-throughs at a few percent (Airship's 2018-2023 push benchmark
reports; Localytics' opt-out studies), and opt-outs per push well under 1%: a
user who receives a push a day for a month and opts out at 0.1-0.5% per push ends
the month opted out with a 3-15% chance, which is the range those reports give
for monthly push opt-out. Night-time pushes and bursts of pushes are the usual
named reasons for opting out, so the unsubscribe hazard rises with both.

The policy under test never reads these values: it sees only HTTP answers.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Shopping event types in the order the service defines them (bandit_push.config.EVENT_TYPES).
EVENTS = ("view", "search", "add_to_cart", "purchase", "app_open")


@dataclass(frozen=True)
class UserType:
    """A kind of user: how they respond to a push when fresh, and how they shop on their own."""

    name: str
    open_rate: float          #: P(open | push) for a rested user at their most responsive hour, average items
    click_given_open: float   #: P(click | opened)
    convert_given_click: float  #: P(purchase | clicked)
    unsub_rate: float         #: P(unsubscribe | push), rested, in the daytime
    fatigue_sensitivity: float  #: engagement is multiplied by exp(-sensitivity x fatigue)
    events_per_day: float     #: organic shopping events per day (Poisson)
    event_mix: tuple[float, ...]  #: shares over EVENTS
    purchase_value: float     #: mean order value (exponential)


#: Enthusiasts shop often and like pushes; casual users rarely shop and tire fast.
TYPES: tuple[UserType, ...] = (
    UserType("enthusiast", open_rate=0.14, click_given_open=0.55, convert_given_click=0.12, unsub_rate=0.0003,
             fatigue_sensitivity=0.20, events_per_day=3.0, event_mix=(0.55, 0.12, 0.12, 0.06, 0.15),
             purchase_value=45.0),
    UserType("regular", open_rate=0.08, click_given_open=0.45, convert_given_click=0.08, unsub_rate=0.0006,
             fatigue_sensitivity=0.35, events_per_day=0.8, event_mix=(0.55, 0.15, 0.10, 0.05, 0.15),
             purchase_value=35.0),
    UserType("casual", open_rate=0.035, click_given_open=0.35, convert_given_click=0.05, unsub_rate=0.0015,
             fatigue_sensitivity=0.55, events_per_day=0.15, event_mix=(0.60, 0.15, 0.08, 0.02, 0.15),
             purchase_value=30.0),
)

#: Population mixes: share of each type, in TYPES order.
MIXES: dict[str, tuple[float, ...]] = {
    "balanced": (0.3, 0.4, 0.3),
    "enthusiastic": (0.6, 0.3, 0.1),
    "casual": (0.1, 0.3, 0.6),
}

#: Time zones and their share of users (the benchmark population's spread).
TIMEZONES: tuple[tuple[str, float], ...] = (
    ("Europe/London", 0.15), ("Europe/Berlin", 0.2), ("America/New_York", 0.2), ("America/Chicago", 0.1),
    ("America/Los_Angeles", 0.1), ("America/Sao_Paulo", 0.05), ("Asia/Kolkata", 0.1), ("Asia/Tokyo", 0.05),
    ("Australia/Sydney", 0.05))

#: Responsiveness by local hour 0..23 (multiplies the open rate): low at night, a morning bump, an evening peak.
HOURLY_RESPONSE: tuple[float, ...] = (
    0.25, 0.15, 0.1, 0.1, 0.1, 0.2, 0.45, 0.7, 0.8, 0.75, 0.7, 0.7,
    0.8, 0.75, 0.65, 0.65, 0.7, 0.85, 1.0, 1.0, 0.95, 0.8, 0.6, 0.4)


@dataclass(frozen=True)
class SimParams:
    """The simulated population. Construct with defaults and ``dataclasses.replace`` what a study varies."""

    users: int = 2000
    days: int = 30                      #: days of pushing after the warm-up
    warmup_days: int = 14               #: days of organic events only (a cold start for the policy)
    start: float = 1769990400.0         #: 2026-02-02 00:00 UTC: the first pushing day (warm-up before it)
    seed: int = 1
    mix: str = "balanced"               #: a key of MIXES
    types: tuple[UserType, ...] = TYPES
    timezones: tuple[tuple[str, float], ...] = TIMEZONES
    hourly_response: tuple[float, ...] = HOURLY_RESPONSE

    #: the gateway asks about a push every this many hours per user (a per-user phase, +-jitter)
    opportunity_every_hours: float = 4.0
    opportunity_jitter_hours: float = 0.5

    #: fatigue = sum over the user's past pushes of exp(-age / recovery); one push fades to 1/e in this time
    fatigue_recovery_hours: float = 48.0
    #: the unsubscribe hazard is multiplied by (1 + this x fatigue): bursts of pushes drive opt-outs
    unsub_fatigue_gain: float = 0.5
    #: and by this between 22:00 and 07:00 local time
    unsub_night_multiplier: float = 3.0
    night_hours: tuple[int, int] = (22, 7)
    p_delivered: float = 0.97           #: some pushes never reach the device
    p_dismiss_unopened: float = 0.15    #: an unopened push is swiped away (reported as dismissed)

    #: items: categories, items per category, and the share of a user's organic events in their favourite one
    categories: int = 8
    items_per_category: int = 60
    favourite_share: float = 0.6
    item_popularity_zipf: float = 1.1   #: Zipf exponent of item popularity within a category
    #: the open rate is multiplied by (1 - b/2 + b x share of pushed items in the favourite category)
    item_match_boost: float = 0.5

    #: feedback delays (mean, minutes; exponential): open after delivery, conversion after the click, ...
    delay_open_min: float = 45.0
    delay_convert_min: float = 90.0
    delay_dismiss_min: float = 120.0
    delay_unsub_min: float = 30.0
    k: int = 3                          #: items asked for per decision

    def weights(self) -> tuple[float, ...]:
        """Share of each type in the population."""
        return MIXES[self.mix]

    def validate(self) -> "SimParams":
        """Fail, naming the parameter, on values the simulator cannot run with."""
        if self.mix not in MIXES:
            raise ValueError(f"mix must be one of {sorted(MIXES)}")
        if self.users < 1 or self.days < 1 or self.warmup_days < 0:
            raise ValueError("users and days must be >= 1, warmup_days >= 0")
        if len(self.hourly_response) != 24:
            raise ValueError("hourly_response needs 24 values")
        if len(MIXES[self.mix]) != len(self.types):
            raise ValueError("mix needs one share per type")
        return self

