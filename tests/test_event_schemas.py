"""Event schemas: a catalogue carries a JSON Schema, a description and an example per event,
refuses bad ones when it is built, and emit checks payloads against them when asked to."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resthooks import (
    CAPSULE_EVENTS,
    ConfigurationError,
    Dispatcher,
    EventCatalogue,
    PayloadError,
    ValidationError,
)
from resthooks.aio import AsyncDispatcher
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import LOOPBACK_POLICY, FakeClock, HookReceiver, RecordingTransport

PARTY = {
    "type": "object",
    "required": ["id", "name"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "name": {"type": "string", "minLength": 1},
        "email": {"type": "string"},
        "createdAt": {"type": "string", "pattern": "Z$"},
        "address": {"$ref": "#/$defs/address"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "$defs": {
        "address": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string"}},
        }
    },
}
CATALOGUE = EventCatalogue(
    {"party": ["created", "deleted"], "task": ["completed"]},
    schemas={"party/created": PARTY},
    descriptions={"party/created": "A party (person or organisation) was added."},
    examples={"party/created": {"id": 11587, "name": "Scott Spacey"}},
)
URL = "https://example.com/hooks"


def _dispatcher(store: Any = None, **options: Any) -> Dispatcher:
    return Dispatcher(
        store if store is not None else MemoryStore(),
        events=CATALOGUE,
        clock=FakeClock(),
        transport=RecordingTransport(),
        validate_payloads=True,
        **options,
    )


# -- the catalogue ----------------------------------------------------------------------------


def test_the_catalogue_keeps_copies_of_its_documentation() -> None:
    """schema(), description() and example() hand out copies: changing what was given, or
    what came back, changes nothing in the catalogue."""
    given_schema = json.loads(json.dumps(PARTY))
    catalogue = EventCatalogue({"party": ["created"]}, schemas={"party/created": given_schema})
    given_schema["properties"]["id"]["type"] = "string"
    catalogue.schema("party/created")["required"].append("x")  # type: ignore[index]

    assert catalogue.schema("party/created") == PARTY
    assert CATALOGUE.description("party/created").startswith("A party")
    assert CATALOGUE.description("task/completed") == ""
    assert CATALOGUE.example("party/created") == {"id": 11587, "name": "Scott Spacey"}
    assert CATALOGUE.schema("party/deleted") is None
    assert CATALOGUE.example("task/completed") is None
    assert CATALOGUE.has_schemas
    assert not CAPSULE_EVENTS.has_schemas


def test_documentation_counts_in_equality_and_repr() -> None:
    """Two catalogues with the same events but different schemas are not equal; the repr
    says how many events are documented, not what the schemas say."""
    plain = EventCatalogue({"party": ["created", "deleted"], "task": ["completed"]})
    same = EventCatalogue(
        {"party": ["created", "deleted"], "task": ["completed"]},
        schemas={"party/created": PARTY},
        descriptions={"party/created": "A party (person or organisation) was added."},
        examples={"party/created": {"id": 11587, "name": "Scott Spacey"}},
    )

    assert same == CATALOGUE
    assert hash(same) == hash(CATALOGUE)
    assert plain != CATALOGUE
    assert repr(CATALOGUE) == (
        "EventCatalogue({'party': ('created', 'deleted'), 'task': ('completed',)}, "
        "schemas=<1 event>, descriptions=<1 event>, examples=<1 event>)"
    )


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"schemas": {"party/exploded": {}}}, "schemas", "'party/exploded' is not an event"),
        ({"schemas": {7: {}}}, "schemas", "7 is not an event"),
        ({"schemas": [("party/created", {})]}, "schemas", "must be a mapping"),
        ({"schemas": {"party/created": []}}, "schemas", "must be a JSON object"),
        ({"schemas": {"party/created": {"type": "integr"}}}, "schemas", "at $.type"),
        (
            {"schemas": {"party/created": {"properties": {"id": {"minimum": "one"}}}}},
            "schemas",
            "at $.properties.id.minimum",
        ),
        ({"schemas": {"party/created": {"pattern": "(unclosed"}}}, "schemas", "at $.pattern"),
        (
            {"schemas": {"party/created": {"$ref": "https://example.com/party.json"}}},
            "schemas",
            "must point inside the schema",
        ),
        (
            {"schemas": {"party/created": {"properties": {"a": {"$ref": "#/$defs/nope"}}}}},
            "schemas",
            "points to nothing",
        ),
        (
            {"schemas": {"party/created": {"properties": {"default": {"$ref": "#/$defs/x"}}}}},
            "schemas",
            '$.properties.default["$ref"]',
        ),
        (
            {"schemas": {"party/created": {"$schema": "http://json-schema.org/draft-07/schema#"}}},
            "schemas",
            "2020-12",
        ),
        (
            {"schemas": {"party/created": {"properties": {"a": {"$id": "urn:x"}}}}},
            "schemas",
            "only the root",
        ),
        ({"schemas": {"party/created": {"minimum": float("nan")}}}, "schemas", "is not JSON"),
        ({"schemas": {"party/created": {"minimum": 10**5000}}}, "schemas", "is not JSON"),
        ({"schemas": {"party/created": {"title": "\ud800"}}}, "schemas", "not valid Unicode"),
        ({"schemas": {"party/created": {"x": object()}}}, "schemas", "is not JSON"),
        (
            {"schemas": {"party/created": {"description": "x" * 300_000}}},
            "schemas",
            "more than 262144",
        ),
        ({"descriptions": {"party/created": 3}}, "descriptions", "must be a str"),
        ({"descriptions": {"party/created": "a\x00b"}}, "descriptions", "NUL"),
        ({"descriptions": {"party/created": "\udc80"}}, "descriptions", "lone surrogate"),
        ({"descriptions": {"party/created": "x" * 5000}}, "descriptions", "more than 4096"),
        ({"examples": {"party/created": [1]}}, "examples", "must be one entity"),
        ({"examples": {"task/done": {}}}, "examples", "'task/done' is not an event"),
        (
            {"schemas": {"party/created": PARTY}, "examples": {"party/created": {"id": 0}}},
            "examples",
            "does not match its schema",
        ),
    ],
)
def test_bad_documentation_is_refused_when_the_catalogue_is_built(
    kwargs: dict[str, Any], field: str, words: str
) -> None:
    """Each kind of bad schema, description or example: a ValidationError naming the field,
    and (for a schema) where in the schema it is wrong."""
    with pytest.raises(ValidationError) as info:
        EventCatalogue({"party": ["created"], "task": ["completed"]}, **kwargs)

    assert info.value.field == field
    assert words in info.value.message
    assert len(info.value.message) < 600  # a 300,000-character schema is not quoted back


def test_a_deeply_nested_schema_is_refused() -> None:
    """A schema nested past what json can encode: refused, not a RecursionError."""
    schema: dict[str, Any] = {}
    for _ in range(5000):
        schema = {"items": schema}
    with pytest.raises(ValidationError, match="nested too deeply"):
        EventCatalogue({"party": ["created"]}, schemas={"party/created": schema})


def test_schemas_without_jsonschema_name_the_extra() -> None:
    """Without the jsonschema package, a catalogue given schemas raises ConfigurationError
    naming the extra; one without schemas works, and import resthooks never imports it."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'jsonschema':\n"
        "            raise ImportError('blocked by the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from resthooks import EventCatalogue, ConfigurationError\n"
        "EventCatalogue({'a': ['b']}, descriptions={'a/b': 'x'}, examples={'a/b': {}})\n"
        "try:\n"
        "    EventCatalogue({'a': ['b']}, schemas={'a/b': {}})\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'resthooks[schemas]'" in done.stdout


# -- emit --------------------------------------------------------------------------------------


def test_validation_is_off_unless_asked_for() -> None:
    """A catalogue with schemas does not check emits by itself: validate_payloads does."""
    dispatcher = Dispatcher(MemoryStore(), events=CATALOGUE, clock=FakeClock())
    dispatcher.subscribe("party/created", URL, owner="acme")

    assert len(dispatcher.emit("party/created", {"id": "not a number"}, owner="acme")) == 1


def test_the_switch_is_checked() -> None:
    """validate_payloads must be a bool, and needs a catalogue with at least one schema."""
    with pytest.raises(ConfigurationError, match="no schemas"):
        Dispatcher(MemoryStore(), validate_payloads=True)
    with pytest.raises(ConfigurationError, match="True or False"):
        Dispatcher(MemoryStore(), events=CATALOGUE, validate_payloads=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("payload", "path", "words"),
    [
        ({"id": "11587", "name": "Scott"}, "$.payload[0].id", "is not of type 'integer'"),
        ({"id": 1}, "$.payload[0]", "'name' is a required property"),
        ([{"id": 1, "name": "a"}, {"id": 0, "name": "b"}], "$.payload[1].id", "minimum"),
        (
            {"id": 1, "name": "a", "address": {"city": 9}},
            "$.payload[0].address.city",
            "is not of type 'string'",
        ),
        ({"id": 1, "name": "a", "tags": ["x", 2]}, "$.payload[0].tags[1]", "not of type"),
        (
            {"id": 1, "name": "a", "createdAt": datetime(2026, 1, 1, tzinfo=timezone.utc)},
            None,
            None,
        ),
    ],
)
def test_emit_refuses_a_payload_that_does_not_match_naming_the_path(
    payload: object, path: str | None, words: str | None
) -> None:
    """PayloadError names the JSON path (from the body's root) and what the schema wanted;
    nothing is stored. What is checked is the JSON the receiver gets: a datetime is checked
    as its ISO string (which the pattern wants ending in Z)."""
    dispatcher = _dispatcher()
    dispatcher.subscribe("party/created", URL, owner="acme")

    if path is None:
        assert len(dispatcher.emit("party/created", payload, owner="acme")) == 1
        return
    with pytest.raises(PayloadError) as info:
        dispatcher.emit("party/created", payload, owner="acme")
    assert info.value.field == "payload"
    assert info.value.path == path
    assert info.value.message.startswith(f"{path}: does not match the schema of party/created")
    assert words is not None
    assert words in info.value.message
    assert dispatcher.stats().deliveries["pending"] == 0
    with pytest.raises(PayloadError):
        dispatcher.validate_emit("party/created", payload, owner="acme")


def test_events_without_a_schema_are_not_checked() -> None:
    """party/deleted has no schema: any entity goes."""
    dispatcher = _dispatcher()
    dispatcher.subscribe("party/deleted", URL, owner="acme")

    assert len(dispatcher.emit("party/deleted", {"anything": [1, 2]}, owner="acme")) == 1


def test_a_huge_bad_value_is_not_quoted_whole() -> None:
    """A 100,000-character string where an integer belongs: the message stays short."""
    dispatcher = _dispatcher()
    with pytest.raises(PayloadError) as info:
        dispatcher.emit("party/created", {"id": "9" * 100_000, "name": "a"}, owner="acme")
    assert len(str(info.value)) < 400


def test_emit_many_names_the_event_and_the_path() -> None:
    """One bad payload among several: its index and path are named, and none is stored."""
    dispatcher = _dispatcher()
    dispatcher.subscribe("party/created", URL, owner="acme")
    with pytest.raises(PayloadError) as info:
        dispatcher.emit_many(
            [
                ("party/created", {"id": 1, "name": "a"}, "acme"),
                ("party/created", {"id": 2, "name": ""}, "acme"),
            ]
        )
    assert info.value.path == "$.payload[0].name"
    assert info.value.message.startswith("events[1]: $.payload[0].name: ")
    assert dispatcher.stats().deliveries["pending"] == 0


def test_the_outbox_refuses_before_writing_through_the_hosts_connection(tmp_path: Path) -> None:
    """emit(connection=...) on SQLite checks first: the host's transaction holds nothing of a
    refused emit, and a good one commits with it."""
    store = SQLiteStore(tmp_path / "hooks.db")
    dispatcher = _dispatcher(store)
    dispatcher.subscribe("party/created", URL, owner="acme")
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(PayloadError, match=r"\$\.payload\[0\]\.id"):
        dispatcher.emit("party/created", {"id": None, "name": "a"}, owner="acme", connection=conn)
    dispatcher.emit("party/created", {"id": 3, "name": "a"}, owner="acme", connection=conn)
    conn.execute("COMMIT")
    conn.close()
    assert dispatcher.stats().deliveries["pending"] == 1
    store.close()


def test_the_async_face_checks_too() -> None:
    """AsyncDispatcher.emit refuses the same payloads with the same error."""
    hooks = AsyncDispatcher(_dispatcher())

    async def main() -> None:
        await hooks.subscribe("party/created", URL, owner="acme")
        with pytest.raises(PayloadError) as one:
            await hooks.emit("party/created", {"id": 1, "name": 5}, owner="acme")
        assert one.value.path == "$.payload[0].name"
        assert len(await hooks.emit("party/created", {"id": 1, "name": "a"}, owner="acme")) == 1

    asyncio.run(main())


def test_a_checked_payload_reaches_a_real_receiver_unchanged(tmp_path: Path) -> None:
    """On SQLite with the real transport: a payload that passes is delivered byte for byte
    as it would be without the check."""
    store = SQLiteStore(tmp_path / "hooks.db")
    dispatcher = Dispatcher(
        store,
        events=CATALOGUE,
        clock=FakeClock(),
        network_policy=LOOPBACK_POLICY,
        validate_payloads=True,
    )
    with HookReceiver() as receiver:
        receiver.subscribe(dispatcher, "party/created", owner="acme")
        entity = {"id": 11587, "name": "Scott Spacey", "address": {"city": "Manchester"}}
        dispatcher.emit("party/created", entity, owner="acme")
        assert dispatcher.deliver_due().delivered == 1
        assert receiver.payloads("party/created") == [entity]
    store.close()


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


KEYWORDS = [
    "type", "minimum", "pattern", "items", "properties", "required", "$ref", "enum", "const",
    "minLength", "$defs", "allOf", "anyOf", "not", "format", "$schema", "$id",
    "additionalProperties",
]  # fmt: skip


def _raised(call: Any, *args: Any, **kwargs: Any) -> BaseException | None:
    try:
        call(*args, **kwargs)
    except Exception as exc:
        return exc
    return None


@settings(max_examples=150, deadline=None)
@given(entity=st.dictionaries(st.text(), _JSON, max_size=6))
def test_fuzzed_payloads_pass_or_get_a_payload_error(entity: dict[str, Any]) -> None:
    """Whatever JSON object is emitted: stored, or a PayloadError with a path into the body;
    never another exception."""
    dispatcher = _dispatcher()
    error = _raised(dispatcher.validate_emit, "party/created", entity, owner="acme")
    if error is not None:
        assert isinstance(error, PayloadError), repr(error)
        assert error.path is not None
        assert error.path.startswith("$.payload[0]")


@settings(max_examples=150, deadline=None)
@given(schema=st.dictionaries(st.sampled_from(KEYWORDS), _JSON, max_size=4))
def test_fuzzed_schemas_are_taken_or_refused_with_a_validation_error(
    schema: dict[str, Any],
) -> None:
    """Whatever JSON object is given as a schema: a catalogue, or a ValidationError naming
    schemas; never another exception."""
    error = _raised(EventCatalogue, {"party": ["created"]}, schemas={"party/created": schema})
    if error is not None:
        assert isinstance(error, ValidationError), repr(error)
        assert error.field == "schemas"
