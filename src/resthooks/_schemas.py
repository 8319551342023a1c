"""JSON Schema for event payloads, on the ``jsonschema`` package (the ``schemas`` extra).

Only this module imports ``jsonschema``, and only when a catalogue is given schemas: ``import
resthooks`` never does. The dialect is JSON Schema 2020-12, the one OpenAPI 3.1 uses, so the
schema a host validates with is the schema its OpenAPI document publishes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import ConfigurationError, PayloadError, ValidationError

__all__ = ["DIALECT", "EventSchema", "json_path", "schema_json"]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
"""The JSON Schema dialect of event schemas (OpenAPI 3.1's default)."""

MAX_SCHEMA_BYTES = 256 * 1024
"""The largest schema (as compact JSON) a catalogue takes for one event."""

_MESSAGE_CHARS = 300


def _jsonschema() -> Any:
    try:
        import jsonschema  # noqa: PLC0415 - the extra is imported only when schemas are used
    except ImportError as exc:
        raise ConfigurationError(
            "event schemas need the jsonschema package: pip install 'resthooks[schemas]'"
        ) from exc
    return jsonschema


def schema_json(value: object, field: str, label: str, *, limit: int) -> str:
    """``value`` as compact JSON text, or a ValidationError naming ``field``.

    The text is what the catalogue keeps (a copy no caller can change) and what the OpenAPI
    document shows, so it must be JSON a receiver can read: finite numbers, string keys,
    valid Unicode, no cycles, at most ``limit`` bytes.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a ValueError too: first
        raise ValidationError(field, f"{label} holds a string that is not valid Unicode") from None
    except (TypeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ValidationError(field, f"{label} is not JSON: {_capped(reason)}") from None
    if size > limit:
        raise ValidationError(field, f"{label} is {size} bytes of JSON, more than {limit}")
    return text


def json_path(parts: Iterator[object] | list[object], root: str = "$") -> str:
    """A JSON path (``$.payload[0].name``) of the keys and indexes in ``parts``."""
    path = root
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            path += f".{part}"
        else:
            path += f"[{json.dumps(str(part), ensure_ascii=False)}]"
    return path


def _capped(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 3] + "..."


_DATA = frozenset({"const", "enum", "examples", "default"})
_NAMED = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})


def _subschemas(node: object, at: list[object]) -> Iterator[tuple[list[object], dict[str, Any]]]:
    """Every schema object in ``node`` (a schema), with where it is.

    The values of ``const``, ``enum``, ``examples`` and ``default`` are data, not schemas,
    and are skipped; the values of ``properties`` and its kin are schemas whatever their
    names (a property may be called ``default``).
    """
    if isinstance(node, dict):
        yield at, node
        for key, value in node.items():
            if key in _DATA:
                continue
            if key in _NAMED and isinstance(value, dict):
                for name, sub in value.items():
                    yield from _subschemas(sub, [*at, key, name])
            else:
                yield from _subschemas(value, [*at, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _subschemas(value, [*at, index])


class EventSchema:
    """One event's payload schema, checked and compiled once.

    The schema describes ONE entity of the body's ``payload`` list.
    """

    __slots__ = ("_validator", "event", "schema", "text")

    def __init__(self, event: str, schema: object) -> None:
        label = f"the schema of {event!r}"
        if not isinstance(schema, Mapping):
            raise ValidationError(
                "schemas", f"{label} must be a JSON object (a mapping), not {type(schema).__name__}"
            )
        self.text = schema_json(schema, "schemas", label, limit=MAX_SCHEMA_BYTES)
        parsed: dict[str, Any] = json.loads(self.text)
        self.event = event
        self.schema = parsed
        dialect = parsed.get("$schema", DIALECT)
        if dialect not in (DIALECT, DIALECT + "#"):
            raise ValidationError(
                "schemas",
                f"{label} must be JSON Schema 2020-12 (OpenAPI 3.1's dialect), but its $schema "
                f"is {_capped(repr(dialect))}",
            )
        for where, ref in _outside_refs(parsed):
            raise ValidationError(
                "schemas",
                f"{label} has a $ref to {_capped(repr(ref))} at {json_path(where)}: a reference "
                "must point inside the schema (#/$defs/...); nothing is fetched",
            )
        jsonschema = _jsonschema()
        cls = jsonschema.Draft202012Validator
        try:
            cls.check_schema(parsed)
        except jsonschema.exceptions.SchemaError as exc:
            raise ValidationError(
                "schemas",
                f"{label} is not a valid JSON Schema: at {json_path(list(exc.absolute_path))}: "
                f"{_capped(exc.message)}",
            ) from None
        self._validator: Any = cls(parsed)  # jsonschema ships no type hints
        _check_refs(parsed, label)

    def check(self, entities: list[object], *, root: str = "$.payload") -> None:
        """Raise :class:`~resthooks.errors.PayloadError` at the first entity that does not match.

        The error names the JSON path of what failed, from the body's root
        (``$.payload[2].email``), and what the schema wanted.
        """
        for index, entity in enumerate(entities):
            try:
                errors = list(self._validator.iter_errors(entity))
            except RecursionError:
                raise PayloadError(
                    f"is nested too deeply to check against the schema of {self.event}",
                    path=json_path([index], root),
                ) from None
            if errors:
                jsonschema = _jsonschema()
                best = jsonschema.exceptions.best_match(errors)
                where = json_path([index, *best.absolute_path], root)
                raise PayloadError(
                    f"does not match the schema of {self.event}: {_capped(best.message)}",
                    path=where,
                )


def _check_refs(schema: dict[str, Any], label: str) -> None:
    """Resolve every ``$ref`` once now: a pointer to a missing ``$defs`` entry would otherwise
    fail only when an emit reaches it."""
    from referencing import Registry  # noqa: PLC0415 - jsonschema's own dependency, lazily
    from referencing.exceptions import Unresolvable  # noqa: PLC0415
    from referencing.jsonschema import DRAFT202012  # noqa: PLC0415

    given = schema.get("$id")
    base = given if isinstance(given, str) else "urn:resthooks:schema"
    resolver = (
        Registry().with_resource(base, DRAFT202012.create_resource(schema)).resolver(base_uri=base)
    )
    for where, node in _subschemas(schema, []):
        if where and "$id" in node:
            raise ValidationError(
                "schemas",
                f"{label} has an $id at {json_path(where)}: only the root of an event schema "
                "may have one",
            )
        ref = node.get("$ref")
        if isinstance(ref, str):
            try:
                resolver.lookup(ref)
            except Unresolvable:
                raise ValidationError(
                    "schemas",
                    f"{label} has a $ref to {_capped(repr(ref))} at "
                    f"{json_path([*where, '$ref'])} that points to nothing in the schema",
                ) from None


def _outside_refs(schema: dict[str, Any]) -> Iterator[tuple[list[object], object]]:
    """Every ``$ref`` (or ``$dynamicRef``) that does not point inside the schema."""
    for where, node in _subschemas(schema, []):
        for key in ("$ref", "$dynamicRef"):
            ref = node.get(key, "#")
            if not isinstance(ref, str) or not ref.startswith("#"):
                yield [*where, key], ref
