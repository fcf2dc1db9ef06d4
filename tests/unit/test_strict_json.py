"""The app's JSON provider writes strict JSON: a non-finite number is an error, never ``NaN`` text."""
from __future__ import annotations

import math

import pytest
from flask import Flask

from bandit_push_api.errors import StrictJSONProvider


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_number_is_never_written(value):
    app = Flask(__name__)
    app.json = StrictJSONProvider(app)
    with pytest.raises(ValueError, match="not JSON compliant"):
        app.json.dumps({"propensity": value})


def test_keys_keep_the_order_the_view_built():
    app = Flask(__name__)
    app.json = StrictJSONProvider(app)
    assert app.json.dumps({"b": 1, "a": 0.5}) == '{"b": 1, "a": 0.5}'
