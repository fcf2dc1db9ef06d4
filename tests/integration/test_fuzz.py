"""Schemathesis against the live app, driven by its own OpenAPI document: no 5xx, every response as documented.

The app serves real HTTP on loopback, on the test's real Redis, with API keys configured (an admin key
is sent, so every operation goes through the auth layer) and rate limits off. The run is bounded:
``max_examples`` per operation, positive and negative (schema-violating) data; `ignored_auth` also
sends each secured operation without the key and expects 401.
"""
from __future__ import annotations

import logging
import threading
from importlib import resources

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from werkzeug.serving import make_server
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, ignored_auth, negative_data_rejection,
                                               response_headers_conformance, response_schema_conformance,
                                               status_code_conformance)

from bandit_push.config import parse_api_keys

ADMIN = "fuzz-admin-key"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, ignored_auth]


@pytest.fixture(scope="module")
def keyed_server(redis_url):
    """One keyed app on a real HTTP server for the whole module (hypothesis runs many examples per test)."""
    import uuid

    from bandit_push_api import create_app
    from bandit_push.config import Settings

    app = create_app(Settings(redis_url=redis_url, prefix=f"bpt:{uuid.uuid4().hex[:10]}:", quiet_hours="off", seed=7,
                              api_keys=parse_api_keys(f"admin:{ADMIN}"),
                              rate_limits={"admin": 0, "gateway": 0, "read": 0}))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request would drown the report
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
    store = app.extensions["bandit_push"].store
    store.delete_prefix()
    store.close()


schema = schemathesis.openapi.from_dict(__import__("json").loads(
    resources.files("bandit_push_api").joinpath("openapi.json").read_text()))


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_document(case, keyed_server):
    case.call_and_validate(base_url=keyed_server, headers={"Authorization": f"Bearer {ADMIN}"}, checks=CHECKS)
