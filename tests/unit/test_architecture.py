"""The promises of the layout, read from the source: no import cycles; the domain imports neither Flask nor RQ;
the API and worker folders are imported under the names they install as."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: folder -> the package it installs as (setup.py)
PACKAGES = {"bandit_push": "bandit_push", "api": "bandit_push_api", "workers": "bandit_push_workers"}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every module an import anywhere in the file names (function-level imports too); ``from package import
    module`` names the module, not the package."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
            names.update(subs if len(subs) == len(node.names) else subs | {node.module})
    return names


GRAPH = {m: {d for d in _imports(p) if d in MODULES and d != m} for m, p in MODULES.items()}


def _cycle() -> list[str] | None:
    """One import cycle among our modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted(GRAPH[m]):
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(GRAPH):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycles():
    assert _cycle() is None, " -> ".join(_cycle() or [])


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.split(".")[0] == "bandit_push"))
def test_the_domain_imports_neither_flask_nor_rq(module):
    third = {name.split(".")[0] for name in _imports(MODULES[module])}
    assert not third & {"flask", "werkzeug", "rq", "bandit_push_api", "bandit_push_workers"}


def test_nothing_imports_the_folders_by_their_short_names():
    for module, path in MODULES.items():
        assert not {name.split(".")[0] for name in _imports(path)} & {"api", "workers"}, module


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_500_lines(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= 500, f"{module}: {lines} lines; split it by concern"
