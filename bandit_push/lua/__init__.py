"""The Lua library: one file per command in ``bandit_push/lua/``, shared helpers in ``lua/includes/``.

A command file starts with its KEYS/ARGV/returns header and names the includes it uses with
``--- @include "<name>"`` lines (BullMQ's convention); an include may name others. From the same files the
loader builds both forms the store runs:

- :func:`script`: one command as an EVALSHA script, its includes (each once, dependencies first) then its body;
- :func:`library`: one Redis Functions library (Redis 7+): every include once at its top, each command
  registered as the function ``<library>_<command>`` with its body as the function's.

The ``schema`` include is generated from :mod:`bandit_push.schema`. No setting is spliced into the text:
commands take theirs as arguments (decide: a config digest and JSON, see ``includes/config.lua``).
"""
from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

from bandit_push import schema

DIR = Path(__file__).resolve().parent
COMMANDS = tuple(sorted(p.stem for p in DIR.glob("*.lua")))
_INCLUDE = re.compile(r'^--- @include "([a-z_]+)"[ \t]*\n', re.M)
# a Functions library may not read globals while it loads: base.lua binds its locals on a call's first line
_BIND = "if not floor then bind_globals() end\n"


@functools.cache
def _file(name: str, include: bool) -> str:
    if include and name == "schema":
        return schema.lua_source()
    return (DIR / "includes" / f"{name}.lua" if include else DIR / f"{name}.lua").read_text()


def _names(text: str) -> list[str]:
    return _INCLUDE.findall(text)


def _resolve(text: str) -> list[str]:
    """The includes ``text`` names, with what they name, each once, every include after the ones it needs."""
    out: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise ValueError(f"Lua includes form a cycle: {' -> '.join(path + (name,))}")
        if name not in out:
            for dep in _names(_file(name, True)):
                visit(dep, path + (name,))
            out.append(name)

    for name in _names(text):
        visit(name, ())
    return out


def includes_of(command: str) -> list[str]:
    """The includes ``command`` needs, in the order they are spliced."""
    return _resolve(_file(command, False))


def _strip(text: str) -> str:
    return _INCLUDE.sub("", text)


def prelude(*names: str) -> str:
    """The includes ``names`` (with what they need; none named: every include) as the start of a script, globals
    bound: for tests and benchmarks that call the helpers in an EVAL of their own."""
    if not names:
        names = tuple(sorted(p.stem for p in (DIR / "includes").glob("*.lua")))
    order = _resolve("".join(f'--- @include "{n}"\n' for n in names))
    return _join(order) + (_BIND if "base" in order else "")


def _join(names: list[str]) -> str:
    return "".join(f"-- [{n}.lua]\n{_strip(_file(n, True))}" for n in names)


@functools.cache
def script(command: str) -> str:
    """``command`` as an EVALSHA script."""
    names = includes_of(command)
    return _join(names) + (_BIND if "base" in names else "") + f"-- [{command}.lua]\n" + _strip(_file(command, False))


def library(name: str) -> str:
    """Every command as one Redis Functions library ``name``; command ``c`` is the function ``<name>_c``."""
    names: list[str] = []
    for command in COMMANDS:
        names += [n for n in includes_of(command) if n not in names]
    parts = [f"#!lua name={name}\n", _join(names)]
    for command in COMMANDS:
        bind = _BIND if "base" in includes_of(command) else ""
        parts.append(f"-- [{command}.lua]\nredis.register_function('{name}_{command}', function(KEYS, ARGV)\n"
                     f"{bind}{_strip(_file(command, False))}end)\n")
    return "".join(parts)


@functools.cache
def digest() -> str:
    """A digest of the library's code (16 hex digits): libraries of different code get different names."""
    return hashlib.sha1(library("").encode()).hexdigest()[:16]

