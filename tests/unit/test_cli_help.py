"""`bandit-push --help` and each command's: a description, help on every argument, and which Redis it uses."""
from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from bandit_push import cli


def _parsers(monkeypatch) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every (command, parser) of the CLI, the experiments actions included: main()'s parser, caught as it parses."""
    built = []

    def catch(self, *args, **kwargs):
        built.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    with pytest.raises(SystemExit):
        cli.main([])
    todo, seen = [("bandit-push", built[0])], []
    while todo:
        name, parser = todo.pop()
        seen.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [(f"{name} {sub}", p) for sub, p in action.choices.items()]
    return seen


def test_the_top_line_says_what_the_tool_does():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli.main(["--help"])
    text = out.getvalue()
    assert "``" not in text and "push notification" in text and "REDIS_URL" in text


def test_every_argument_has_help_and_every_command_says_which_redis_it_uses(monkeypatch):
    parsers = _parsers(monkeypatch)
    assert len(parsers) > 15
    missing = [f"{name} {a.option_strings or a.dest}" for name, p in parsers for a in p._actions
               if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and not a.help]
    assert missing == []
    commands = [(name, p.epilog or "") for name, p in parsers if name.count(" ") == 1]
    assert [name for name, epilog in commands if "REDIS_URL" not in epilog and "No Redis" not in epilog] == []
