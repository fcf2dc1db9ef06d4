"""User and item ids as Redis holds them: one reversible escaping, applied where an id enters Redis and undone
where it leaves (the domain's functions take and return ids as clients sent them).

An id is any string of printable characters (spaces, braces, ``@``, ``%``, non-ASCII letters): as a user's hash tag
(``u:{<id>}``) a brace would end the tag early (user ``x}:ev:e`` would name user ``x``'s keys), and in the packed
values (popular lists ``"item score ..."``, recent pushes ``"<item> <ts>"``, decide's answer, a decision's items) a
space would split an id in two. So Redis holds each id with every character that any of those readers treats as
special percent-encoded (``%XX`` per UTF-8 byte, upper-case hex): braces, whitespace (Python's ``str.split()`` and
Lua's ``%S`` separate on it) and control characters. An ordinary id has none and is stored as it is: existing data
and keys do not move, and the decide path pays one regular-expression search per id.

A ``%`` is escaped only where it would read as an escape, before two upper-case hex digits: ids that held a ``%``
before this escaping existed (``50%off``) keep their stored form, and only an id that already looked
percent-encoded (``a%20b``) is stored differently than before (no escaping can leave every old id in place and still
make room for spaces: a stored id must avoid them too). The stored form never holds a space, a brace, a control
character or other whitespace; :func:`load` undoes :func:`store` exactly (``tests/unit/test_ids.py``).
"""
from __future__ import annotations

import re
import unicodedata

#: the categories of the characters an id may not hold (those str.isprintable refuses, but for unassigned ones)
_KINDS = {"Cc": "a control character", "Cf": "a format character", "Co": "a private-use character",
          "Cs": "a lone surrogate", "Zs": "whitespace other than the space", "Zl": "a line separator",
          "Zp": "a paragraph separator"}
#: what is escaped wherever it stands: braces, control characters (C0, DEL, C1) and whitespace (all that
#: str.isspace counts, which includes every separator of str.split and of Lua's %s; tests/unit/test_ids.py checks)
_ALWAYS = ("{}" + "".join(map(chr, range(0x20))) + "".join(map(chr, range(0x7F, 0xA0))) + " \xa0\u1680"
           + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000")
#: those as their escapes, for str.translate (an id without a '%' needs nothing else)
_TABLE = str.maketrans({c: "".join(f"%{b:02X}" for b in c.encode()) for c in _ALWAYS})
#: what a stored id may not hold as it is: those, and a '%' that would read as an escape
_SPECIAL = re.compile("%(?=[0-9A-F]{2})|[" + re.escape(_ALWAYS) + "]")
#: the characters that may need escaping: one character class, searched about twice as fast as _SPECIAL
_MAYBE = re.compile("[%" + re.escape(_ALWAYS) + "]")
#: a run of escapes (one character may take several: its UTF-8 bytes)
_ESCAPES = re.compile(r"(?:%[0-9A-F]{2})+")


def _unescape(m: re.Match[str]) -> str:
    try:
        return bytes.fromhex(m.group().replace("%", "")).decode()
    except UnicodeDecodeError:  # not one of ours: an id stored as it was before this escaping existed
        return m.group()


def store(text: str) -> str:
    """``text`` (a user or item id) as Redis holds it: itself unless it has a special character."""
    if _MAYBE.search(text) is None:  # (the usual id: one search, no copy)
        return text
    if "%" not in text:
        return text.translate(_TABLE)
    return _SPECIAL.sub(lambda m: m.group().translate(_TABLE) if m.group() != "%" else "%25", text)


def load(stored: str) -> str:
    """The id whose stored form is ``stored`` (the inverse of :func:`store`)."""
    if "%" not in stored:
        return stored
    return _ESCAPES.sub(_unescape, stored)


def unfit(text: str) -> str | None:
    """Why ``text`` cannot be an id, in words (its first character that is not printable), or None if it can.

    Printable is Python's ``str.isprintable``: letters, marks, digits, punctuation, symbols and the space
    (braces, ``@``, ``%``, ``/`` included), not other whitespace, line separators, control, format or private-use
    characters: what would be invisible in a console or break a line of a log. A code point unassigned in the
    server's Unicode database passes (which ones are depends on the Python version, not on the id). The length
    (1 to ``max_id_length``) is the caller's to check.
    """
    if text.isprintable():
        return None
    for ch in text:
        if not ch.isprintable() and unicodedata.category(ch) != "Cn":
            return f"it holds U+{ord(ch):04X} ({_KINDS.get(unicodedata.category(ch), 'not printable')})"
    return None
