"""Dispatcher.emit and the JSON encoding of event bodies."""

from __future__ import annotations

import json
import types
import uuid
from collections import OrderedDict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import attrs
import pytest

import resthooks.dispatcher
from resthooks import Dispatcher, PayloadError, ValidationError, encode_body
from resthooks.testing import RecordingTransport


@pytest.fixture(name="dispatcher")
def _both_faces(any_face: Dispatcher) -> Dispatcher:
    """This module's contract tests run against both faces: sync and asyncio."""
    return any_face


URL = "https://receiver.example/hooks"


@pytest.fixture(name="subscribed")
def _subscribed(dispatcher: Dispatcher) -> Dispatcher:
    dispatcher.subscribe("party/created", URL + "/1", owner="acme")
    dispatcher.subscribe("party/created", URL + "/2", owner="acme")
    dispatcher.subscribe("party/created", URL + "/3", owner="acme")
    return dispatcher


def test_emit_fans_out_to_every_matching_hook_of_the_owner(subscribed: Dispatcher) -> None:
    """emit makes one pending delivery per active hook of that owner and event, and no more."""
    subscribed.subscribe("party/updated", URL + "/other-event", owner="acme")
    subscribed.subscribe("party/created", URL + "/other-owner", owner="globex")

    deliveries = subscribed.emit("party/created", {"id": 1}, owner="acme")

    hooks = subscribed.hooks(owner="acme", event="party/created")
    assert sorted(d.hook_id for d in deliveries) == sorted(h.id for h in hooks)
    assert {("acme", "party/created", "pending")} == {
        (d.owner, d.event, d.state.value) for d in deliveries
    }
    assert len(subscribed.deliveries(owner="acme")) == 3
    assert subscribed.deliveries(owner="globex") == []


def test_the_body_is_serialised_once_per_emit(
    subscribed: Dispatcher, transport: RecordingTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One emit to three hooks encodes the body once, and every attempt sends those same
    bytes."""
    calls: list[str] = []
    real = resthooks.dispatcher.encode_body

    def counting(event: str, payload: object, *, max_bytes: int) -> bytes:
        calls.append(event)
        return real(event, payload, max_bytes=max_bytes)

    monkeypatch.setattr(resthooks.dispatcher, "encode_body", counting)

    subscribed.emit("party/created", {"id": 1}, owner="acme")
    subscribed.deliver_due()

    assert calls == ["party/created"]
    assert len(transport.requests) == 3
    first = transport.requests[0].body
    assert all(r.body is first for r in transport.requests)


def test_a_single_entity_and_a_list_both_become_a_list(
    subscribed: Dispatcher, transport: RecordingTransport
) -> None:
    """``payload`` is always a list in the body, whether one entity or several were given."""
    subscribed.emit("party/created", {"id": 1}, owner="acme")
    subscribed.emit("party/created", [{"id": 2}, {"id": 3}], owner="acme")
    subscribed.emit("party/created", ({"id": 4},), owner="acme")
    subscribed.deliver_due()

    bodies = {
        json.loads(r.body)["payload"][0]["id"]: json.loads(r.body) for r in transport.requests
    }
    assert bodies[1] == {"event": "party/created", "payload": [{"id": 1}]}
    assert bodies[2] == {"event": "party/created", "payload": [{"id": 2}, {"id": 3}]}
    assert bodies[4] == {"event": "party/created", "payload": [{"id": 4}]}


def test_emit_without_a_matching_hook_stores_nothing(dispatcher: Dispatcher) -> None:
    """An emit no hook matches returns [] and stores nothing."""
    dispatcher.subscribe("party/created", URL, owner="globex")

    assert dispatcher.emit("party/created", {"id": 1}, owner="acme") == []
    assert dispatcher.emit("party/updated", {"id": 1}, owner="globex") == []
    assert dispatcher.store.stats().deliveries == dict.fromkeys(
        ("pending", "in_flight", "delivered", "failed", "cancelled"), 0
    )


@pytest.mark.parametrize(
    ("event", "owner", "field"),
    [
        ("party/exploded", "acme", "event"),
        ("", "acme", "event"),
        (42, "acme", "event"),
        ("party/created", "", "owner"),
        ("party/created", 7, "owner"),
        ("party/created", "a\nb", "owner"),
        ("party/created", "x" * 256, "owner"),
    ],
)
def test_emit_refuses_a_bad_event_or_owner(
    subscribed: Dispatcher, event: object, owner: object, field: str
) -> None:
    """An unknown event or a bad owner is a ValidationError naming it; nothing is stored."""
    with pytest.raises(ValidationError) as info:
        subscribed.emit(event, {"id": 1}, owner=owner)  # type: ignore[arg-type]
    assert info.value.field == field
    assert subscribed.store.stats().deliveries["pending"] == 0


class Opaque:
    """Something JSON knows nothing about."""


@pytest.mark.parametrize(
    "payload",
    [
        {"id": Opaque()},
        {"id": {1, 2}},
        {"id": b"bytes"},
        {"id": float("nan")},
        {"id": Decimal("NaN")},
        {"id": Decimal("Infinity")},
        {("a", "b"): 1},
        [{"id": 1}, Opaque()],
        [1, 2],
        ["party"],
        "a string",
        b"bytes",
        42,
        None,
        {"id": "\ud800"},
    ],
)
def test_a_payload_that_cannot_be_encoded_is_refused_before_anything_is_stored(
    subscribed: Dispatcher, payload: object
) -> None:
    """A payload that is not entities of JSON-encodable values is a PayloadError naming
    ``payload``, and no delivery is stored."""
    with pytest.raises(PayloadError) as info:
        subscribed.emit("party/created", payload, owner="acme")
    assert info.value.field == "payload"
    assert isinstance(info.value, ValidationError)
    assert subscribed.deliveries(owner="acme") == []


def test_a_payload_over_the_size_limit_is_refused(dispatcher: Dispatcher) -> None:
    """A body over ``max_payload_bytes`` (default 256 KiB) is refused; one at the limit is not."""
    dispatcher.subscribe("party/created", URL, owner="acme")
    overhead = len(encode_body("party/created", {"x": ""}, max_bytes=1 << 20))
    at_limit = {"x": "a" * (256 * 1024 - overhead)}

    assert len(dispatcher.emit("party/created", at_limit, owner="acme")) == 1
    with pytest.raises(PayloadError, match="more than the limit of 262144"):
        dispatcher.emit("party/created", {"x": "a" * (256 * 1024)}, owner="acme")
    assert len(dispatcher.deliveries(owner="acme")) == 1


def test_the_size_limit_is_configurable(dispatcher: Dispatcher) -> None:
    """``max_payload_bytes`` sets the limit, counted in bytes of UTF-8."""
    small = Dispatcher(dispatcher.store, clock=dispatcher.clock, max_payload_bytes=60)
    small.subscribe("party/created", URL, owner="acme")
    body = encode_body("party/created", {"n": "é" * 5}, max_bytes=1000)
    assert len(body) <= 60 < len(body) + 10
    small.emit("party/created", {"n": "é" * 5}, owner="acme")
    with pytest.raises(PayloadError):
        small.emit("party/created", {"n": "é" * 10}, owner="acme")


@attrs.frozen
class Address:
    city: str
    since: date


@attrs.define
class Party:
    id: uuid.UUID
    name: str
    created_at: datetime
    balance: Decimal
    address: Address
    tags: list[str] = attrs.Factory(list)


def test_rich_values_are_encoded() -> None:
    """datetimes become ISO 8601 UTC with a Z, dates ISO dates, UUIDs strings, Decimals
    numbers, attrs instances objects (nested too), and non-dict mappings objects."""
    party = Party(
        id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        name="Scott",
        created_at=datetime(2015, 9, 15, 12, 43, 23, tzinfo=timezone(timedelta(hours=2))),
        balance=Decimal("12.50"),
        address=Address("Chicago", date(2015, 9, 15)),
        tags=["vip"],
    )
    body = encode_body(
        "party/created",
        [
            party,
            {
                "naive": datetime(2015, 9, 15, 10, 43, 23, 250000),
                "utc": datetime(2015, 9, 15, 10, 43, 23, tzinfo=timezone.utc),
                "int": Decimal("100"),
                "exp": Decimal("1E+3"),
                "fraction": Decimal("0.1"),
                "proxy": types.MappingProxyType({"a": 1}),
                "ordered": OrderedDict(b=2),
                "tuple": (1, 2),
                "unicode": "Zoë ☃",
            },
        ],
        max_bytes=4096,
    )
    assert json.loads(body) == {
        "event": "party/created",
        "payload": [
            {
                "id": "12345678-1234-5678-1234-567812345678",
                "name": "Scott",
                "created_at": "2015-09-15T10:43:23Z",
                "balance": 12.5,
                "address": {"city": "Chicago", "since": "2015-09-15"},
                "tags": ["vip"],
            },
            {
                "naive": "2015-09-15T10:43:23.250000Z",
                "utc": "2015-09-15T10:43:23Z",
                "int": 100,
                "exp": 1000,
                "fraction": 0.1,
                "proxy": {"a": 1},
                "ordered": {"b": 2},
                "tuple": [1, 2],
                "unicode": "Zoë ☃",
            },
        ],
    }
    # Compact, and UTF-8 rather than \u escapes.
    assert b", " not in body
    assert "Zoë ☃".encode() in body


def test_an_attrs_instance_is_one_entity(
    subscribed: Dispatcher, transport: RecordingTransport
) -> None:
    """A single attrs instance given as the payload is sent as a one-element list."""
    subscribed.emit("party/created", Address("Chicago", date(2015, 9, 15)), owner="acme")
    subscribed.deliver_due()
    assert json.loads(transport.requests[0].body)["payload"] == [
        {"city": "Chicago", "since": "2015-09-15"}
    ]


# -- emit_many ---------------------------------------------------------------------------------


def _sqlite_dispatcher(tmp_path: object) -> tuple[Dispatcher, object]:
    from pathlib import Path  # noqa: PLC0415

    from resthooks.stores import SQLiteStore  # noqa: PLC0415
    from resthooks.testing import FakeClock  # noqa: PLC0415

    store = SQLiteStore(Path(str(tmp_path)) / "hooks.db")
    dispatcher = Dispatcher(store, clock=FakeClock(), transport=RecordingTransport())
    for owner in ("a", "b", "c"):
        for n in range(3):
            dispatcher.subscribe("party/created", f"https://example.com/{owner}/{n}", owner=owner)
    return dispatcher, store


def test_emit_many_writes_every_event_in_one_transaction(tmp_path: object) -> None:
    """emit_many on SQLite fans out every event, in order, with one COMMIT for all."""
    dispatcher, store = _sqlite_dispatcher(tmp_path)
    conn = store._conn()  # type: ignore[attr-defined]
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    made = dispatcher.emit_many(
        [("party/created", {"id": i}, owner) for i, owner in enumerate("abcab")]
    )
    conn.set_trace_callback(None)
    assert [s for s in seen if s.startswith(("BEGIN", "COMMIT"))] == ["BEGIN IMMEDIATE", "COMMIT"]
    assert len(made) == 15
    assert [d.owner for d in made] == [o for o in "abcab" for _ in range(3)]
    assert len({d.id for d in made}) == 15
    stored = {d.id for o in "abc" for d in dispatcher.deliveries(owner=o, limit=100)}
    assert stored == {d.id for d in made}
    store.close()  # type: ignore[attr-defined]


def test_emit_many_stores_nothing_when_one_event_is_bad(tmp_path: object) -> None:
    """One bad event (unknown event, bad owner, unencodable payload) stores none of them,
    and the error names the field and the event's index."""
    dispatcher, store = _sqlite_dispatcher(tmp_path)
    for bad, field in (
        (("party/nope", {}, "a"), "event"),
        (("party/created", {}, ""), "owner"),
        (("party/created", {"x": object()}, "a"), "payload"),
    ):
        with pytest.raises(ValidationError) as info:
            dispatcher.emit_many([("party/created", {"id": 1}, "a"), bad])
        assert info.value.field == field
        assert "events[1]" in str(info.value)
    with pytest.raises(ValidationError, match="events"):
        dispatcher.emit_many([("party/created", {"id": 1})])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="events"):
        dispatcher.emit_many("party/created")  # type: ignore[arg-type]
    assert store.stats().deliveries["pending"] == 0  # type: ignore[attr-defined]
    assert dispatcher.emit_many([]) == []
    store.close()  # type: ignore[attr-defined]


def test_emit_many_through_the_outbox_rolls_back_with_the_host(tmp_path: object) -> None:
    """Through the caller's connection, emit_many's deliveries vanish with its rollback."""
    import sqlite3  # noqa: PLC0415

    dispatcher, store = _sqlite_dispatcher(tmp_path)
    conn = sqlite3.connect(store.path, isolation_level=None)  # type: ignore[attr-defined]
    conn.execute("BEGIN IMMEDIATE")
    made = dispatcher.emit_many(
        [("party/created", {"id": 1}, "a"), ("party/created", {"id": 2}, "b")], connection=conn
    )
    assert len(made) == 6
    conn.execute("ROLLBACK")
    conn.close()
    assert store.stats().deliveries["pending"] == 0  # type: ignore[attr-defined]
    store.close()  # type: ignore[attr-defined]


def test_emit_many_on_a_store_without_enqueue_many(dispatcher: Dispatcher) -> None:
    """A store of one's own without enqueue_many gets one enqueue per event."""
    from resthooks.stores import MemoryStore  # noqa: PLC0415

    calls: list[str] = []

    class Plain(MemoryStore):
        enqueue_many = None  # type: ignore[assignment]

        def enqueue(self, **kwargs: object) -> list[object]:  # type: ignore[override]
            calls.append(str(kwargs["owner"]))
            return super().enqueue(**kwargs)  # type: ignore[arg-type,return-value]

    own = Dispatcher(Plain(), clock=dispatcher.clock, transport=RecordingTransport())
    own.subscribe("party/created", "https://example.com/h", owner="a")
    made = own.emit_many([("party/created", {"id": 1}, "a"), ("party/created", {"id": 2}, "b")])
    assert (calls, [d.owner for d in made]) == (["a", "b"], ["a"])


def test_emit_many_on_both_faces(subscribed: Dispatcher) -> None:
    """emit_many (sync, and awaited on the asyncio face) fans out every event, in order, and
    refuses a bad event by its field and index, storing none of the batch."""
    made = subscribed.emit_many(
        [("party/created", {"id": 1}, "acme"), ("party/created", {"id": 2}, "acme", "p:1")]
    )
    assert [d.ordering_key for d in made] == [None] * 3 + ["p:1"] * 3
    assert len({d.id for d in made}) == 6
    before = len(subscribed.deliveries(owner="acme", limit=100))
    for bad, field in (
        (("party/nope", {}, "acme"), "event"),
        (("party/created", {}, ""), "owner"),
        (("party/created", {"x": object()}, "acme"), "payload"),
        (("party/created", {}, "acme", ""), "ordering_key"),
    ):
        with pytest.raises(ValidationError) as info:
            subscribed.emit_many([("party/created", {"id": 3}, "acme"), bad])
        assert (field, True) == (info.value.field, "events[1]" in str(info.value))
    with pytest.raises(ValidationError) as info:
        subscribed.emit_many("party/created")  # type: ignore[arg-type]
    assert info.value.field == "events"
    assert before == len(subscribed.deliveries(owner="acme", limit=100))
    assert subscribed.emit_many([]) == []


def test_a_lazy_fan_out_behaves_like_a_list(tmp_path: object) -> None:
    """SQLite's fan-out result (built when first read) compares, indexes, slices and
    prints like the list of its deliveries, also after the store is closed."""
    dispatcher, store = _sqlite_dispatcher(tmp_path)
    made = dispatcher.emit("party/created", {"id": 1}, owner="a")
    store.close()  # type: ignore[attr-defined]
    assert len(made) == 3
    as_list = list(made)
    assert made == as_list
    assert made[1:] == as_list[1:]
    assert made[-1] is as_list[-1]
    assert repr(made) == repr(as_list)
    assert [d.state.value for d in made] == ["pending"] * 3
