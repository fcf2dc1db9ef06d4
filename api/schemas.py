"""Request bodies checked against the OpenAPI document itself (``openapi.json``): the contract is one text.

Each body is validated against its schema in the document, with this deployment's limits in place of the
defaults the document shows (``max_id_length``, ``max_k``, ``max_batch``), by
``jsonschema_rs`` (compiled: a decide body takes about a microsecond, where a pure-Python validator took
hundreds; ``bench/validation.py``). The first error, in the order the routes always answered (unknown fields,
then missing ones, then each field in the document's order), becomes a 400 that names the field in the
service's own words. What a schema cannot say stays with the routes: a timestamp's window around the server
clock and its ISO 8601 parse, an IANA time zone, a decision that exists.
"""
from __future__ import annotations

import copy
from typing import Any

import jsonschema_rs

from bandit_push import ids
from bandit_push.config import Settings
from bandit_push.errors import InvalidArgument

#: the request bodies the routes check, by schema name
BODIES = ("DecideRequest", "FeedbackEvent", "FeedbackBatch", "ShopEvent", "EventBatch", "UserUpdate")

_TYPES = {"string": "a string", "integer": "an integer", "number": "a finite number", "boolean": "true or false",
          "object": "an object", "array": "a list"}
#: errors about the object itself come before those of its fields, the item_id rule (anyOf) after them
_RANK = {"additionalProperties": 0, "required": 1}


class RequestSchemas:
    """The request bodies' schemas of ``document`` with the limits of ``settings``, compiled once per app."""

    def __init__(self, document: dict[str, Any], settings: Settings):
        schemas = _json_schema(copy.deepcopy(document["components"]["schemas"]))
        for name in ("Id", "OptionalId"):
            schemas[name]["maxLength"] = settings.max_id_length
        schemas["DecideRequest"]["properties"]["k"]["maximum"] = settings.max_k
        for name in ("FeedbackBatch", "EventBatch"):
            schemas[name]["properties"]["events"]["maxItems"] = settings.max_batch
        for name in ("Timestamp", "OptionalTimestamp"):  # the window is the routes' to say, both ends at once
            del schemas[name]["oneOf"][0]["minimum"]  # (its upper end moves with the clock: no schema holds it)
        self.schemas = schemas
        self._order = {name: i for s in schemas.values() for i, name in enumerate(s.get("properties", ()))}
        self._validators = {
            name: jsonschema_rs.Draft4Validator({"$ref": f"#/components/schemas/{name}",
                                                 "components": {"schemas": schemas}}, validate_formats=False)
            for name in BODIES}

    def check(self, name: str, body: Any) -> None:
        """Raise :class:`InvalidArgument` naming the field if ``body`` does not match the schema ``name``."""
        validator = self._validators[name]
        try:
            if validator.is_valid(body):
                return
            errors = list(validator.iter_errors(body))
        except UnicodeEncodeError:  # a lone surrogate (JSON allows its escape; no text can hold it)
            where = _field(_surrogate_path(body))
            raise InvalidArgument(f"{where} must be printable characters; it holds a lone surrogate",
                                  field=where) from None
        except ValueError:  # nested deeper than the validator follows (json.loads takes ~1,000 levels)
            where = _field(_deepest_path(body))
            raise InvalidArgument(f"{where or 'request body'} is nested too deeply", field=where or "body") from None
        raise self._error(min(errors, key=self._rank), name)

    def check_batch(self, name: str, body: Any) -> dict[int, InvalidArgument]:
        """Check a batch (``{"events": [...]}``) against the schema ``name``: an error of the batch itself raises
        as :meth:`check` does; the bad entries' errors are returned by index, each entry's first, so that the route
        names every bad entry at once."""
        validator = self._validators[name]
        try:
            if validator.is_valid(body):
                return {}
            errors = list(validator.iter_errors(body))
        except ValueError:  # (a lone surrogate or too deep a nesting: :meth:`check` names it)
            self.check(name, body)
            raise
        outer = [e for e in errors if len(e.instance_path) < 2]
        if outer:
            raise self._error(min(outer, key=self._rank), name)
        bad: dict[int, Any] = {}
        for e in sorted(errors, key=self._rank):
            bad.setdefault(e.instance_path[1], e)
        return {i: self._error(e, name) for i, e in sorted(bad.items())}

    def _rank(self, e: Any) -> tuple:
        path = [(0, p) if isinstance(p, int) else (1, self._order.get(p, 99)) for p in e.instance_path]
        kind = e.kind.name
        return (*path, (2, 0) if kind == "anyOf" else (-1, _RANK.get(kind, 2)))

    def _error(self, e: Any, name: str) -> InvalidArgument:
        kind, path = e.kind, list(e.instance_path)
        field = _field(path)
        where = f"{field}." if field else ""
        if kind.name == "additionalProperties":
            extra = sorted(kind.unexpected)[0]
            allowed = sorted(_schema_at(self.schemas, name, path).get("properties", ()))
            return InvalidArgument(f"unknown field {where}{extra}; allowed: {allowed}", field=f"{where}{extra}",
                                   code="unknown_field")
        if kind.name == "required":
            return InvalidArgument(f"field {where}{kind.property} is required", field=f"{where}{kind.property}",
                                   code="missing_field")
        if kind.name == "anyOf":  # ShopEvent's one alternative: view, add_to_cart and purchase name their item
            return InvalidArgument(f"field {where}item_id is required for a {e.instance.get('type')} event",
                                   field=f"{where}item_id", code="missing_field")
        schema = _schema_at(self.schemas, name, path)
        if kind.name == "pattern" and schema.get("pattern") == self.schemas["Id"]["pattern"]:  # an id: say what is wrong
            bad = ids.unfit(e.instance) or "it holds a character an id may not hold"
            return InvalidArgument(f"{field} must be printable characters; {bad}", field=field)
        parent = _schema_at(self.schemas, name, path[:-1]) if path else {}
        # a required field sent as null is missing (a batch's null list is a wrong list: it names no entry)
        if e.instance is None and path and path[-1] in parent.get("required", ()) and path[-1] != "events":
            return InvalidArgument(f"field {field} is required", field=field, code="missing_field")
        return InvalidArgument(_sentence(field, kind, schema), field=field or "body")


def _sentence(field: str, kind: Any, schema: dict[str, Any]) -> str:
    """What the value of ``field`` must be, after the ``kind`` of error its ``schema`` found."""
    if kind.name == "type":
        if field == "events":
            return "events must be a non-empty list"
        return f"{field} must be {' or '.join(_TYPES.get(t, t) for t in kind.types if t != 'null')}"
    if kind.name in ("minimum", "maximum"):
        return f"{field} must be between {schema.get('minimum', -1e12):g} and {schema.get('maximum', 1e12):g}"
    if kind.name in ("minLength", "maxLength"):
        return f"{field} must have {schema.get('minLength', 0)} to {schema.get('maxLength')} characters"
    if kind.name == "pattern":
        return f"{field} must not contain whitespace, braces or control characters"
    if kind.name == "enum":
        return f"{field} must be one of {list(kind.options)}"
    if kind.name == "minItems":
        return f"{field} must be a non-empty list"
    if kind.name == "maxItems":
        return f"{field} holds more than {kind.limit} entries; at most {kind.limit} per request"
    if kind.name == "oneOf":  # the timestamps: a number or a string
        return f"{field} must be epoch seconds or an ISO 8601 timestamp"
    return f"{field} is not valid: {kind.name}"


def _field(path: list[Any]) -> str:
    """``['events', 3, 'type']`` -> ``events[3].type``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _schema_at(schemas: dict[str, Any], name: str, path: list[Any]) -> dict[str, Any]:
    """The schema (refs followed) that applies at ``path`` inside a body of schema ``name``."""
    schema = schemas[name]
    for p in path:
        while "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
        schema = schema.get("items", {}) if isinstance(p, int) else schema.get("properties", {}).get(p, {})
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 to JSON Schema: ``nullable: true`` becomes a ``null`` type (the rest is read alike)."""
    if isinstance(node, list):
        return [_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items()}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def _surrogate_path(node: Any, path: list[Any] | None = None) -> list[Any]:
    """The path to the first string (or key) holding a lone surrogate."""
    path = path or []
    if isinstance(node, str):
        return path if any("\ud800" <= c <= "\udfff" for c in node) else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(key, str) and any("\ud800" <= c <= "\udfff" for c in key):
            return [*path, key]
        found = _surrogate_path(value, [*path, key])
        if found:
            return found
    return []


def _deepest_path(body: Any) -> list[Any]:
    """The path to the field (of the body, or of a batch's entry) whose value nests deepest."""
    def depth(node: Any) -> int:
        deepest, todo = 0, [(node, 0)]
        while todo:  # (no recursion: the value may be nested past the interpreter's limit)
            node, d = todo.pop()
            deepest = max(deepest, d)
            todo += [(x, d + 1) for x in (node.values() if isinstance(node, dict) else node
                                          if isinstance(node, list) else ())]
        return deepest

    fields = [([k], v) for k, v in body.items()] if isinstance(body, dict) else []
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        fields += [(["events", i, k], v) for i, e in enumerate(body["events"]) if isinstance(e, dict)
                   for k, v in e.items()]
    return max(fields, key=lambda f: depth(f[1]), default=([], None))[0]
