"""The one exception the fuzzing makes to schemathesis's checks, shared by the pytest run and the CLI run
(``SCHEMATHESIS_HOOKS=fuzz_checks``): see :func:`positive_data_acceptance_but_documented`."""
from __future__ import annotations

import json

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

#: the 400 codes of the constraints the OpenAPI document's description lists as ones no schema can state
DOCUMENTED_400 = {"timestamp_out_of_range", "invalid_window", "duplicate_variant", "unknown_timezone"}


@schemathesis.check
def positive_data_acceptance_but_documented(ctx, response, case):
    """schemathesis's ``positive_data_acceptance``, except for a 400 whose code is one of :data:`DOCUMENTED_400`:
    four constraints span fields, move with the clock or look a value up, so a schema-valid request can break
    one (the OpenAPI description says so, and each has its own code)."""
    if response.status_code == 400:
        try:
            if json.loads(response.content)["error"] in DOCUMENTED_400:
                return None
        except (ValueError, KeyError, TypeError):
            pass
    return positive_data_acceptance(ctx, response, case)
