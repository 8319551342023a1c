"""The event catalogue: Capsule's default, hosts' own, and helpful errors."""

from __future__ import annotations

import pytest

from resthooks import CAPSULE_EVENTS, EventCatalogue, ValidationError


def test_capsule_catalogue_has_its_19_events() -> None:
    """CAPSULE_EVENTS holds exactly Capsule's 19 entity/action events."""
    expected = {
        *(f"party/{a}" for a in ("created", "updated", "deleted")),
        *(f"kase/{a}" for a in ("created", "updated", "deleted", "closed", "moved")),
        *(f"opportunity/{a}" for a in ("created", "updated", "deleted", "closed", "moved")),
        *(f"task/{a}" for a in ("created", "updated", "completed")),
        *(f"user/{a}" for a in ("created", "updated", "deleted")),
    }

    assert set(CAPSULE_EVENTS) == expected
    assert len(CAPSULE_EVENTS) == 19


def test_custom_catalogue_from_a_mapping() -> None:
    """A host builds its catalogue from entity -> actions; order and duplicates are tidied."""
    catalogue = EventCatalogue({"invoice": ("paid", "voided", "paid"), "order": ["shipped"]})

    assert list(catalogue) == ["invoice/paid", "invoice/voided", "order/shipped"]
    assert catalogue.entities == {"invoice": ("paid", "voided"), "order": ("shipped",)}
    assert "order/shipped" in catalogue
    assert "party/created" not in catalogue
    assert catalogue == EventCatalogue({"order": ["shipped"], "invoice": ["voided", "paid"]})
    assert hash(catalogue) == hash(
        EventCatalogue({"order": ["shipped"], "invoice": ["voided", "paid"]})
    )


def test_entities_cannot_be_changed_through_the_property() -> None:
    """Mutating the mapping returned by entities does not change the catalogue."""
    catalogue = EventCatalogue({"invoice": ["paid"]})

    catalogue.entities["hack"] = ("x",)  # type: ignore[index]

    assert list(catalogue) == ["invoice/paid"]


def test_unknown_action_lists_the_entitys_actions() -> None:
    """An unknown action of a known entity names the field and lists that entity's actions."""
    with pytest.raises(ValidationError) as info:
        CAPSULE_EVENTS.validate("task/deleted")

    assert info.value.field == "event"
    assert info.value.message.endswith("task supports: created, updated, completed")


def test_bare_entity_lists_its_actions() -> None:
    """An entity name without an action lists the entity's actions."""
    with pytest.raises(
        ValidationError, match="kase supports: created, updated, deleted, closed, moved"
    ):
        CAPSULE_EVENTS.validate("kase")


def test_unknown_entity_lists_the_known_entities() -> None:
    """An unknown entity lists every entity of the catalogue."""
    with pytest.raises(ValidationError) as info:
        CAPSULE_EVENTS.validate("invoice/paid")

    assert "entity one of: party, kase, opportunity, task, user" in info.value.message


def test_long_unknown_events_are_shortened_in_the_message() -> None:
    """The message quotes at most 100 characters of what it was given."""
    with pytest.raises(ValidationError) as info:
        CAPSULE_EVENTS.validate("x" * 10_000)

    assert len(info.value.message) < 300


def test_validate_names_the_given_field() -> None:
    """validate(field=...) names that field, for callers with their own wire names."""
    with pytest.raises(ValidationError) as info:
        CAPSULE_EVENTS.validate(3, field="topic")

    assert (info.value.field, info.value.message) == ("topic", "must be a string, not int")


@pytest.mark.parametrize(
    "entities",
    [
        {},
        {"invoice": []},
        {"invoice": "paid"},
        {"Invoice": ["paid"]},
        {"in voice": ["paid"]},
        {"invoice/x": ["paid"]},
        {"invoice": ["paid/now"]},
        {"invoice": [""]},
        {"invoice": [1]},
        {1: ["paid"]},
    ],
)
def test_malformed_catalogues_are_refused(entities: dict[object, object]) -> None:
    """Empty catalogues, entities without actions and malformed names raise ValueError."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by case on purpose
        EventCatalogue(entities)  # type: ignore[arg-type]
