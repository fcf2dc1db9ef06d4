"""``bandit-push experiments``: the same operations as the API, on the same Redis, as tables."""
from __future__ import annotations

import json

from bandit_push import experiments
from bandit_push.cli import main
from bandit_push.decide import DecisionEngine


def test_cli_lifecycle_and_report(store, settings, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BANDIT_PUSH_PREFIX", settings.prefix)
    assert main(["experiments", "create", "--name", "cost test", "--variant", "control", "1", "thompson",
                 "--variant", "frugal", "2", "thompson", "cost=0.5", "max_per_day=2", "--start"]) == 0
    out = capsys.readouterr().out
    assert "cost test [running]" in out and '{"max_per_day":2}' in out
    (x,) = experiments.list_all(store)
    assert x.variants[1].weight == 2 and x.variants[1].policy == {"name": "thompson", "cost": 0.5}
    # a file holds the API's JSON body; errors name the field and exit 2 without writing anything
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "b", "variants": [{"name": "a", "policy": {"name": "thompson"}},
                                                         {"name": "b", "policy": {"name": "ucb", "cost": "x"}}]}))
    assert main(["experiments", "create", "--file", str(bad)]) == 2
    assert "variants[1].policy.cost" in capsys.readouterr().err
    assert len(experiments.list_all(store)) == 1
    engine = DecisionEngine(store, settings)
    for i in range(60):
        engine.decide(f"u{i}", now=1790000000.0)
    assert main(["experiments", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "name", "status", "variants", "segments", "users"]
    assert lines[2].split()[-1] == "60"
    assert main(["experiments", "report", str(x.id)]) == 0
    out = capsys.readouterr().out
    assert "sends_per_user" in out and "sample ratio:" in out and out.rstrip().endswith(".")
    assert main(["experiments", "report", str(x.id), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["experiment"]["id"] == x.id
    assert main(["experiments", "stop", str(x.id)]) == 0 and "[stopped]" in capsys.readouterr().out
    assert main(["experiments", "start", str(x.id)]) == 2
    assert "it is stopped" in capsys.readouterr().err
