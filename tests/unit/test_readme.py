"""The README is the newcomer's contract: its commands and settings must match the code."""
from dataclasses import fields
from pathlib import Path

from bandit_push.config import Settings

README = (Path(__file__).parents[2] / "README.md").read_text()
CI = (Path(__file__).parents[2] / ".ci" / "run").read_text()


def test_every_setting_is_documented():
    missing = [f.name for f in fields(Settings)
               if ("REDIS_URL" if f.name == "redis_url" else f"BANDIT_PUSH_{f.name.upper()}") not in README]
    assert missing == []


def test_ci_runs_the_readme_test_command():
    command = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"
    assert command in README
    assert command.replace("pip install", "pip install -q") in CI


def test_every_decision_reason_is_explained():
    import json
    from importlib import resources

    doc = json.loads(resources.files("bandit_push_api").joinpath("openapi.json").read_text())
    reasons = doc["components"]["schemas"]["Decision"]["properties"]["reason"]["enum"]
    paragraph = README[README.index("`reason` is"):][:800]
    assert [r for r in reasons if f"`{r}`" not in paragraph] == []
