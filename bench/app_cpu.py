"""CPU per request of the Flask app called as a WSGI callable (no server, no HTTP parsing): ``POST /v1/decide``
against the bare ``GET /v1/ping`` of bench/trip_app.py, in alternating rounds, on a small population; and what
checking a decide body against the OpenAPI document costs, by the validator the app uses and by a pure-Python
one (openapi-schema-validator, of the test extra).

CPU time, not wall time, is what it reads, so it is quieter than bench/serve.py on a shared machine; run it from
two trees (``cd OTHER && PYTHONPATH=. ../this/.venv/bin/python bench/app_cpu.py``) to compare their request
handling. bench/serve.py stays the end-to-end figure.

Usage: .venv/bin/python bench/app_cpu.py [--redis-url URL] [--users 2000] [--n 2000] [--rounds 5]
(default redis://127.0.0.1:6379/15; keys under the prefix bpapp:, deleted before and afterwards)
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

from bandit_push.config import Settings
from bandit_push.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
from population import Plan, populate, wsgi_client  # noqa: E402
from trip_app import create  # noqa: E402


def per_call(f: Callable[[], object], n: int) -> float:
    """Microseconds of this process's CPU per call of ``f``."""
    t = time.process_time()
    for _ in range(n):
        f()
    return (time.process_time() - t) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--n", type=int, default=2000, help="requests per round and endpoint")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    s = Settings(redis_url=a.redis_url, prefix="bpapp:", quiet_hours="off", seed=1)
    store = Store.connect(s)
    try:
        store.delete_prefix()
        day = int(time.time() // 86400) * 86400
        plan = Plan(users=a.users, segments=10, t_end=day - 200 * 86400 + 12 * 3600, seed=1)
        populate(s, plan, procs=1)
        app = create(s)
        clock = [plan.t_end + 4 * 86400]
        call, decide = wsgi_client(app, a.users, random.Random(1), clock)
        per_call(decide, 200)  # loads the script, warms the caches
        rounds = [(per_call(decide, a.n), per_call(lambda: call("GET", "/v1/ping"), a.n)) for _ in range(a.rounds)]
        d, p = statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)
        print(f"app CPU per request, median of {a.rounds} alternating rounds: POST /v1/decide {d:.1f} us, "
              f"GET /v1/ping {p:.1f} us, difference {d - p:.1f} us")
        schemas = getattr(app.extensions["bandit_push"], "schemas", None)
        if schemas is not None:  # (a tree that checks bodies against the document)
            from openapi_schema_validator import OAS30Validator

            body = {"user_id": "u-1001", "now": clock[0], "k": 3}
            document = json.loads(app.extensions["bandit_push_openapi"])
            pure = OAS30Validator({"$ref": "#/components/schemas/DecideRequest", "components": document["components"]})
            fast = per_call(lambda: schemas.check("DecideRequest", body), 20_000)
            slow = per_call(lambda: list(pure.iter_errors(body)), 500)
            print(f"checking a decide body against the document: {fast:.2f} us (jsonschema_rs, the app's), "
                  f"{slow:.1f} us (openapi-schema-validator); {fast / d:.2%} and {slow / d:.0%} of the app's decide")
        app.extensions["bandit_push"].store.close()
    finally:
        store.delete_prefix()
        store.close()


if __name__ == "__main__":
    main()
