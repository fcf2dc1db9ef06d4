"""The Lua library as Redis Functions where the server has them (7.0+), as EVALSHA scripts where it does not (the
embedded Redis 6.2): the same decisions either way, the library loaded again when the server lost it (and sent
decide's config again), removed with its prefix."""
import random

from bandit_push.decide import DecisionEngine
from bandit_push.store import Store

T0 = 1_780_000_000.0


def _run(store, settings) -> list[tuple]:
    """Three rounds of decides for six users, 5 h apart (sends, gaps, the recency buckets move), seeded draws."""
    engine = DecisionEngine(store, settings, rng=random.Random(5))
    out = []
    for r in range(3):
        for u in range(6):
            d = engine.decide(f"u{u}", now=T0 + r * 5 * 3600 + u)
            out.append((d.send, d.reason, d.segment, d.propensity, d.context["recency"], d.items_source))
    return out, engine


def test_function_and_script_decide_alike(store, settings):
    other = Store.connect(settings.replace(prefix=settings.prefix + "s:", redis_functions=False))
    try:
        by_function, engine = _run(store, settings)
        by_script, script_engine = _run(other, other.settings)
        assert by_function == by_script and any(send for send, *_ in by_function)
        assert other.decide_script.function is None
        if not store.functions:  # Redis 6.2 (the embedded one): the script, and no library anywhere
            assert store.decide_script.function is None
            return
        name = store.library.name
        assert store.decide_script.function == f"{name}_decide" and store.libraries() == [name]
        # a server that lost its functions (FUNCTION FLUSH, a failover to a replica without them): loaded again,
        # and decide's config sent again (the library answers that it does not know it)
        store.redis.function_delete(name)
        assert engine.decide("u9", now=T0).segment == "new"
        assert store.libraries() == [name]
        store.delete_prefix()
        assert store.libraries() == []
    finally:
        other.delete_prefix()
        other.close()


def test_a_server_that_refuses_function_load_gets_the_script(tmp_path, settings):
    """An ACL user without FUNCTION: the engine says so in the log and decides with EVALSHA."""
    import redis as redis_py
    from redis_proc import RedisProcess

    server = RedisProcess(str(tmp_path), aof=False)
    server.start()
    try:
        admin = redis_py.Redis.from_url(server.url)
        if int(admin.info("server")["redis_version"].split(".")[0]) < 7:
            raise AssertionError("the fault tests' redis-server must be 7.0 or later (it runs Functions)")
        admin.execute_command("ACL", "SETUSER", "gw", "on", ">pw", "~*", "+@all", "-function")
        url = server.url.replace("redis://", "redis://gw:pw@")
        store = Store.connect(settings.replace(redis_url=url))
        engine = DecisionEngine(store, store.settings)
        d = engine.decide("acl", now=T0)
        assert store.functions and store.decide_script.function is None and d.segment == "new"
        store.close()
    finally:
        server.kill()
