"""The event catalogue: which ``entity/action`` names a host offers to its clients."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from .errors import ValidationError

__all__ = ["CAPSULE_EVENTS", "EventCatalogue"]

_NAME = re.compile(r"[a-z][a-z0-9_]*(?:[.-][a-z0-9_]+)*")


class EventCatalogue:
    """An immutable set of ``entity/action`` event names.

    Args:
        entities: A mapping of entity name to the actions it supports, for example
            ``{"party": ["created", "updated"]}``. Names are lower case letters, digits,
            ``_``, ``-`` and ``.``; an entity needs at least one action.

    Raises:
        ValidationError: Naming ``entities``, if a name is malformed, an entity has no
            actions or there is no entity.

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
    """

    __slots__ = ("_entities", "_events")

    def __init__(self, entities: Mapping[str, Iterable[str]]) -> None:
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
        return f"EventCatalogue({self._entities!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventCatalogue):
            return NotImplemented
        return self._events == other._events

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
