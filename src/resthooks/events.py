"""The event catalogue: which ``entity/action`` names a host offers to its clients."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ._schemas import EventSchema, schema_json
from .errors import PayloadError, ValidationError

__all__ = ["CAPSULE_EVENTS", "EventCatalogue"]

_NAME = re.compile(r"[a-z][a-z0-9_]*(?:[.-][a-z0-9_]+)*")
_MAX_DESCRIPTION = 4096
_MAX_EXAMPLE_BYTES = 64 * 1024


class EventCatalogue:
    """An immutable set of ``entity/action`` event names, optionally documented.

    Each event may carry a JSON Schema of its entities, a description and an example: the
    OpenAPI document (:func:`resthooks.openapi.openapi_document`) publishes them, and
    ``Dispatcher(validate_payloads=True)`` checks every emit against the schemas.

    Args:
        entities: A mapping of entity name to the actions it supports, for example
            ``{"party": ["created", "updated"]}``. Names are lower case letters, digits,
            ``_``, ``-`` and ``.``; an entity needs at least one action.
        schemas: Event name -> the JSON Schema (2020-12, OpenAPI 3.1's dialect) of ONE entity
            of its payload (the items of the body's ``payload`` list). Needs the
            ``resthooks[schemas]`` extra (the ``jsonschema`` package). A ``$ref`` must point
            inside the schema (``#/$defs/...``): nothing is ever fetched. At most 256 KiB
            of JSON per schema.
        descriptions: Event name -> a sentence or two for the people writing receivers
            (at most 4,096 characters).
        examples: Event name -> one example entity, a JSON object; it must match the event's
            schema, if it has one.

    Raises:
        ValidationError: Naming ``entities``, if a name is malformed, an entity has no
            actions or there is no entity; naming ``schemas``, ``descriptions`` or
            ``examples`` for an event not in the catalogue, a schema that is not a valid JSON
            Schema 2020-12 (the message says where in it), a reference that points nowhere,
            an example that does not match its schema, or a value that is not JSON.
        ConfigurationError: For ``schemas`` without the ``jsonschema`` package.

    .. versionchanged:: 0.2.0
       ``schemas``, ``descriptions`` and ``examples``.

    Example:
        >>> catalogue = EventCatalogue({"invoice": ["paid", "voided"]})
        >>> "invoice/paid" in catalogue
        True
        >>> sorted(catalogue)
        ['invoice/paid', 'invoice/voided']
        >>> try:
        ...     catalogue.validate("invoice/sent")
        ... except ValidationError as err:
        ...     print(err.field, "|", err.message)
        event | unknown event 'invoice/sent'; invoice supports: paid, voided

        With a schema, a payload can be checked (what ``validate_payloads=True`` does on emit):

        >>> documented = EventCatalogue(
        ...     {"invoice": ["paid"]},
        ...     schemas={"invoice/paid": {
        ...         "type": "object",
        ...         "required": ["id", "total"],
        ...         "properties": {"id": {"type": "integer"}, "total": {"type": "string"}},
        ...     }},
        ...     descriptions={"invoice/paid": "An invoice was paid in full."},
        ...     examples={"invoice/paid": {"id": 7, "total": "120.00"}},
        ... )
        >>> documented.validate_payload("invoice/paid", [{"id": 7, "total": 120}])
        Traceback (most recent call last):
        ...
        resthooks.errors.PayloadError: payload: $.payload[0].total: does not match the schema ...
    """

    __slots__ = ("_descriptions", "_entities", "_events", "_examples", "_schemas")

    def __init__(
        self,
        entities: Mapping[str, Iterable[str]],
        *,
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
        descriptions: Mapping[str, str] | None = None,
        examples: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        built: dict[str, tuple[str, ...]] = {}
        if not isinstance(entities, Mapping):
            raise ValidationError(
                "entities", f"must be a mapping of entity to actions, not {type(entities).__name__}"
            )
        for entity, actions in entities.items():
            if not isinstance(entity, str) or not _NAME.fullmatch(entity):
                raise ValidationError("entities", f"malformed entity name {entity!r}")
            if isinstance(actions, str) or not isinstance(actions, Iterable):
                raise ValidationError(
                    "entities", f"actions of {entity!r} must be a collection of names"
                )
            listed = list(actions)
            for action in listed:
                if not isinstance(action, str) or not _NAME.fullmatch(action):
                    raise ValidationError(
                        "entities", f"malformed action name {action!r} of {entity!r}"
                    )
            acts = tuple(dict.fromkeys(listed))
            if not acts:
                raise ValidationError("entities", f"entity {entity!r} has no actions")
            built[entity] = acts
        if not built:
            raise ValidationError("entities", "a catalogue needs at least one entity")
        self._entities = built
        self._events = frozenset(f"{e}/{a}" for e, acts in built.items() for a in acts)
        self._descriptions: dict[str, str] = self._documented(
            descriptions, "descriptions", _description
        )
        # EventSchema imports jsonschema (the extra) when the first schema is built.
        self._schemas: dict[str, EventSchema] = self._documented(schemas, "schemas", EventSchema)
        self._examples: dict[str, str] = self._documented(examples, "examples", _example)
        for event, text in self._examples.items():
            if event in self._schemas:
                try:
                    self._schemas[event].check([json.loads(text)], root="$")
                except PayloadError as exc:
                    raise ValidationError(
                        "examples",
                        f"the example of {event!r} does not match its schema: {exc.message}",
                    ) from None

    def _documented(self, given: object, field: str, build: Any) -> dict[str, Any]:
        """Check a mapping of event -> documentation, in the catalogue's event order."""
        if given is None:
            return {}
        if not isinstance(given, Mapping):
            raise ValidationError(
                field, f"must be a mapping of event name to value, not {type(given).__name__}"
            )
        for event in given:
            if not isinstance(event, str) or event not in self._events:
                raise ValidationError(
                    field,
                    f"{_shown(event)} is not an event of the catalogue (events are "
                    "entity/action, as listed in entities)",
                )
        return {event: build(event, given[event]) for event in self if event in given}

    @property
    def entities(self) -> Mapping[str, tuple[str, ...]]:
        """Entity name -> its actions, in the order given."""
        return dict(self._entities)

    def __contains__(self, event: object) -> bool:
        return event in self._events

    def __iter__(self) -> Iterator[str]:
        return (f"{e}/{a}" for e, acts in self._entities.items() for a in acts)

    def __len__(self) -> int:
        return len(self._events)

    def __repr__(self) -> str:
        documented = [
            f"{name}=<{len(value)} event{'s' if len(value) != 1 else ''}>"
            for name, value in (
                ("schemas", self._schemas),
                ("descriptions", self._descriptions),
                ("examples", self._examples),
            )
            if value
        ]
        return f"EventCatalogue({', '.join([repr(self._entities), *documented])})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventCatalogue):
            return NotImplemented
        return (
            self._events == other._events
            and self._descriptions == other._descriptions
            and self._examples == other._examples
            and {e: s.text for e, s in self._schemas.items()}
            == {e: s.text for e, s in other._schemas.items()}
        )

    def __hash__(self) -> int:
        return hash(self._events)

    def validate(self, event: object, *, field: str = "event") -> str:
        """Return ``event`` if it is in the catalogue.

        Raises:
            ValidationError: Naming ``field``; the message lists the known actions of the
                entity, or the known entities when the entity itself is unknown.
        """
        if not isinstance(event, str):
            raise ValidationError(field, f"must be a string, not {type(event).__name__}")
        if event in self._events:
            return event
        shown = event if len(event) <= 100 else event[:100] + "..."
        entity = event.partition("/")[0]
        if entity in self._entities:
            known = ", ".join(self._entities[entity])
            raise ValidationError(field, f"unknown event {shown!r}; {entity} supports: {known}")
        known_entities = ", ".join(self._entities)
        raise ValidationError(
            field,
            f"unknown event {shown!r}; events are entity/action with entity one of: "
            f"{known_entities}",
        )

    def expand(self, pattern: object, *, field: str = "event") -> tuple[str, ...]:
        """The events ``pattern`` names: itself if it is an event of the catalogue,
        every action of an entity for ``entity/*``, every event for ``*``.

        Every catalogue allows these two patterns and no others (no ``*`` inside a name, no
        ``*/created``). A pattern is a shorthand, expanded when it is used: a subscription to
        ``party/*`` is one hook per ``party`` event the catalogue has then; an event added
        to the catalogue later is not covered until the pattern is subscribed again (which
        adds the hooks of the new events and returns the existing ones).

        Raises:
            ValidationError: Naming ``field``, as :meth:`validate` does, for a name that is
                neither an event nor one of these patterns.

        .. versionadded:: 0.2.0

        Example:
            >>> CAPSULE_EVENTS.expand("party/*")
            ('party/created', 'party/updated', 'party/deleted')
            >>> CAPSULE_EVENTS.expand("task/completed")
            ('task/completed',)
            >>> len(CAPSULE_EVENTS.expand("*"))
            19
        """
        if pattern == "*":
            return tuple(self)
        if isinstance(pattern, str) and pattern.endswith("/*"):
            actions = self._entities.get(pattern[:-2])
            if actions is not None:
                return tuple(f"{pattern[:-2]}/{action}" for action in actions)
        return (self.validate(pattern, field=field),)

    # -- documentation -------------------------------------------------------------------------

    def schema(self, event: str) -> dict[str, Any] | None:
        """The JSON Schema of one entity of ``event``'s payload (a copy), or ``None``.

        .. versionadded:: 0.2.0
        """
        found = self._schemas.get(event)
        return None if found is None else json.loads(found.text)

    def description(self, event: str) -> str:
        """The description of ``event`` (``""`` when it has none).

        .. versionadded:: 0.2.0
        """
        return self._descriptions.get(event, "")

    def example(self, event: str) -> dict[str, Any] | None:
        """An example entity of ``event`` (a copy), or ``None``.

        .. versionadded:: 0.2.0
        """
        text = self._examples.get(event)
        return None if text is None else json.loads(text)

    @property
    def has_schemas(self) -> bool:
        """Whether any event has a schema.

        .. versionadded:: 0.2.0
        """
        return bool(self._schemas)

    def validate_payload(self, event: str, payload: object) -> None:
        """Check a payload, as JSON, against ``event``'s schema (nothing to check without one).

        Args:
            event: An event of the catalogue.
            payload: The ``payload`` of the body the receiver gets, as JSON values (a list of
                entities; one entity alone is taken as a list of one).

        Raises:
            PayloadError: At the first entity that does not match; ``path`` names what
                failed from the root of the body (``$.payload[0].total``).
            ValidationError: Naming ``event``, for an event not in the catalogue.

        .. versionadded:: 0.2.0
        """
        self.validate(event)
        found = self._schemas.get(event)
        if found is not None:
            found.check(payload if isinstance(payload, list) else [payload])


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:100] + "..."


def _description(event: str, text: object) -> str:
    if not isinstance(text, str):
        raise ValidationError(
            "descriptions", f"the description of {event!r} must be a str, not {type(text).__name__}"
        )
    if len(text) > _MAX_DESCRIPTION:
        raise ValidationError(
            "descriptions",
            f"the description of {event!r} is {len(text)} characters, more than {_MAX_DESCRIPTION}",
        )
    if "\x00" in text or any("\ud800" <= ch <= "\udfff" for ch in text):
        raise ValidationError(
            "descriptions",
            f"the description of {event!r} holds a NUL or a lone surrogate: it must be text",
        )
    return text


def _example(event: str, value: object) -> str:
    label = f"the example of {event!r}"
    if not isinstance(value, Mapping):
        raise ValidationError(
            "examples", f"{label} must be one entity, a JSON object, not {type(value).__name__}"
        )
    return schema_json(value, "examples", label, limit=_MAX_EXAMPLE_BYTES)


CAPSULE_EVENTS = EventCatalogue(
    {
        "party": ["created", "updated", "deleted"],
        "kase": ["created", "updated", "deleted", "closed", "moved"],
        "opportunity": ["created", "updated", "deleted", "closed", "moved"],
        "task": ["created", "updated", "completed"],
        "user": ["created", "updated", "deleted"],
    }
)
"""Capsule CRM's 19 REST hook events, the default catalogue."""
