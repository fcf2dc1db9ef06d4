"""Ids in URL paths: one path segment each, with a ``/`` inside an id sent percent-encoded (``%2F``).

WSGI servers decode ``%2F`` into ``/`` before routing sees the path, which made ``PUT /v1/users/x/items``
and ``GET /v1/users/x/items`` (user ``x``'s items) ambiguous: the first created the user ``x/items``. Here a
``%2F`` (or ``%1F``) in the raw request line makes :class:`EncodedSlashes` decode the path segment by
segment from the server's raw URI, marking each encoded ``/`` with the unit separator (a control character,
which no id may hold: an encoded one becomes NUL, refused as such), and the ``id`` converter turns the mark
back into ``/``. Every other request passes through untouched.
"""
from __future__ import annotations

from urllib.parse import quote, unquote_to_bytes, urlsplit

from werkzeug.routing import BaseConverter

_MARK = "\x1f"


class IdConverter(BaseConverter):
    """``<id:name>``: one path segment, percent-decoded, ``%2F`` included."""

    def to_python(self, value: str) -> str:
        return value.replace(_MARK, "/")

    def to_url(self, value: str) -> str:
        return quote(value, safe="")


class EncodedSlashes:
    """WSGI middleware: rebuild ``PATH_INFO`` from the raw URI (gunicorn's and werkzeug's ``RAW_URI``) when it
    holds ``%2F`` or ``%1F``, keeping each encoded ``/`` inside its segment."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        raw = environ.get("RAW_URI")
        if raw and "%" in raw and ("%2F" in raw.upper() or "%1F" in raw.upper()):
            path = urlsplit(raw).path
            segments = [unquote_to_bytes(seg).decode("latin-1")  # (PATH_INFO carries bytes as latin-1)
                        .replace(_MARK, "\x00").replace("/", _MARK) for seg in path.split("/")]
            path_info = "/".join(segments)
            script = environ.get("SCRIPT_NAME", "")
            if path_info.startswith(script):
                environ["PATH_INFO"] = path_info[len(script):]
        return self.app(environ, start_response)
