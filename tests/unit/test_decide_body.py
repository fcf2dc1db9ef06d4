"""The decide route's response template against the JSON encoder's text of Decision.to_json()."""
from __future__ import annotations

import json
import math

import pytest

from bandit_push_api.routes.decide import _ENCODE, response_body
from bandit_push.decide import Decision, Item


def _decision(**changes) -> Decision:
    base = dict(decision_id="0123456789abcdef0123.default", send=True,
                items=[Item("sku-1", 0.123457), Item("sku-2", 1e-05), Item("sku-3", -2.5), Item("sku-4", 8.0)],
                segment="s12", reason="policy", propensity=0.87340000000000002, policy="thompson",
                context={"recency": "1d", "daypart": "evening"}, items_source="model", experiment=None)
    base.update(changes)
    return Decision(**base)


@pytest.mark.parametrize("changes", [
    {},
    {"send": False, "items": [], "reason": "quiet_hours", "propensity": 1.0, "items_source": "none"},
    {"experiment": {"id": "x1", "name": "caution \"on\"", "variant": "b"}, "policy": "ucb"},
    # ids are validated idents, but the body must stay right whatever they hold: quotes, backslashes, non-ASCII
    {"items": [Item('a"b\\c', 0.5), Item("zé→🙂", 3.14159), Item("x/y", 1e300)], "segment": "ség"},
    {"propensity": 0.1 + 0.2, "items": [Item("i", 1 / 3)]},
])
def test_the_template_writes_what_the_encoder_writes(changes):
    d = _decision(**changes)
    assert response_body(d) == _ENCODE(d.to_json())
    assert json.loads(response_body(d)) == d.to_json()


@pytest.mark.parametrize("changes", [
    {"propensity": math.nan},
    {"items": [Item("i", math.inf)]},
    {"context": {"recency": "1d", "daypart": "evening", "extra": "x"}},
])
def test_what_the_template_does_not_cover_goes_to_the_encoder(changes):
    d = _decision(**changes)
    assert response_body(d) == _ENCODE(d.to_json())
