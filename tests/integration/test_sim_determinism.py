"""A seeded in-process simulation repeats bit for bit: same decisions, same pushes, same segments.

The two runs use different key prefixes, as two policies of one study do, so anything that follows
the server's key order (SCAN, HSCAN) rather than the data shows up as a difference.
"""
from bandit_push import models
from bandit_push.sim.driver import run
from bandit_push.sim.gateway import InProcessGateway
from bandit_push.sim.params import SimParams
from bandit_push.sim.population import Population
from bandit_push.store import Store

# the first refit at the end of the warm-up, then one a day: three clusterings, warm-started after the first
SMALL = SimParams(users=60, days=3, warmup_days=7, mix="enthusiastic", seed=2)


def _run_once(pop: Population, settings, tag: str):
    s = settings.replace(prefix=f"{settings.prefix}{tag}:")
    store = Store.connect(s)
    try:
        gw = InProcessGateway(store, s)
        decided = []
        decide_many = gw.decide_many

        def recording(asks):
            answers = decide_many(asks)
            decided.extend((uid, now, a.send, tuple(a.items), a.segment, a.reason, a.context)
                           for (uid, now, _), a in zip(asks, answers))
            return answers

        gw.decide_many = recording  # type: ignore[method-assign]
        res = run(pop, gw, "thompson", dict(s.weights))
        segments = [store.redis.hget(store.keys.user(uid), "sg") for uid in pop.user_ids]
        fits = int(models.current(store, "segments") or 0)
        stored = models.load(store, "segments")
        model = (stored.meta["ids"], stored.meta["sizes"], stored.arrays["centroids"].tobytes())
        # a push's decision id is a random token (unique across processes), not a result: left out
        pushes = [(i, ts, events, expected) for i, _, ts, events, expected in res.pushes]
        return res, decided, pushes, segments, fits, model
    finally:
        store.delete_prefix()
        store.close()


def test_in_process_simulation_repeats_exactly(settings):
    pop = Population(SMALL)
    s = settings.replace(quiet_hours="22:00-08:00")  # the simulator's usual guardrails
    a = _run_once(pop, s, "a")
    b = _run_once(pop, s, "b")
    res_a, decided_a, pushes_a, segments_a, fits, model_a = a
    res_b, decided_b, pushes_b, segments_b, _, model_b = b
    assert fits >= 2 and res_a.sends > 0
    assert len({x for x in segments_a if x not in ("new", None)}) >= 2  # learned segments, several of them
    assert segments_a == segments_b
    assert model_a == model_b
    assert decided_a == decided_b
    assert pushes_a == pushes_b
    assert (res_a.expected, res_a.value, dict(res_a.outcomes)) == (res_b.expected, res_b.value, dict(res_b.outcomes))
    assert res_a.segment_day == res_b.segment_day
