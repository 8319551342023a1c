"""Limits: every limit of the engine in one value, checked once, read by every part."""

from __future__ import annotations

import asyncio

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resthooks import ConfigurationError, Dispatcher, Limits, PayloadError, ValidationError
from resthooks.aio import AsyncDispatcher
from resthooks.api import SubscriptionAPI
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock, RecordingTransport

FIELDS = [f.name for f in attrs.fields(Limits)]
OPTIONAL = {"hooks_per_owner", "in_flight_per_host"}  # None: no limit


def test_the_defaults_are_the_documented_ones() -> None:
    """256 KiB payloads, 4 KiB of response, 255 characters, 20 hooks, 4 in flight."""
    assert Limits() == Limits(
        payload_bytes=256 * 1024,
        response_bytes=4096,
        description_length=255,
        hooks_per_owner=20,
        in_flight_per_host=4,
    )
    assert Dispatcher(MemoryStore()).limits == Limits()


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", [True, -1, 1.5, "20", 2**63, float("nan"), b"4"])
def test_a_limit_that_cannot_work_is_refused_naming_its_field(field: str, value: object) -> None:
    """Not an int (a bool is not one here), negative, or beyond a 64-bit column: a
    ConfigurationError that starts with the field's name."""
    with pytest.raises(ConfigurationError) as info:
        Limits(**{field: value})  # type: ignore[arg-type]
    assert str(info.value).startswith(f"{field} must be ")


@pytest.mark.parametrize("field", FIELDS)
def test_none_means_no_limit_only_where_it_can(field: str) -> None:
    """None lifts the cap of hooks per owner and of in flight per host; for a size it is an
    error."""
    if field in OPTIONAL:
        assert getattr(Limits(**{field: None}), field) is None  # type: ignore[arg-type]
    else:
        with pytest.raises(ConfigurationError, match=f"^{field} "):
            Limits(**{field: None})  # type: ignore[arg-type]


@given(field=st.sampled_from(FIELDS), value=st.one_of(st.integers(), st.floats(), st.text()))
def test_any_value_is_taken_or_refused_by_the_one_check(field: str, value: object) -> None:
    """Whatever it is given, Limits either holds exactly that int or raises a
    ConfigurationError naming the field: never another exception."""
    minimum = 1 if field in OPTIONAL else 0
    if type(value) is int and minimum <= value < 2**63:
        assert getattr(Limits(**{field: value}), field) == value
    else:
        with pytest.raises(ConfigurationError, match=f"^{field} must be "):
            Limits(**{field: value})  # type: ignore[arg-type]


def test_a_dispatcher_takes_only_a_limits_value() -> None:
    """limits= must be a Limits; with the old max_* options beside it, it is refused."""
    with pytest.raises(ConfigurationError, match="limits must be a Limits"):
        Dispatcher(MemoryStore(), limits={"hooks_per_owner": 3})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not both"):
        Dispatcher(MemoryStore(), limits=Limits(), max_hooks_per_owner=3)


def test_the_old_options_build_the_same_value() -> None:
    """max_hooks_per_owner=... and friends are Limits fields under their old names, checked by
    Limits (the error names the option given)."""
    old = Dispatcher(MemoryStore(), max_hooks_per_owner=None, max_payload_bytes=100)
    assert old.limits == Limits(hooks_per_owner=None, payload_bytes=100)
    assert (old.max_hooks_per_owner, old.max_payload_bytes) == (None, 100)
    with pytest.raises(ConfigurationError, match=r"^max_in_flight_per_host must be "):
        Dispatcher(MemoryStore(), max_in_flight_per_host=0)


def test_every_part_reads_the_one_value() -> None:
    """subscribe (description, hooks per owner), emit (payload), the attempt (response cap),
    the worker's per-host gate and the subscription API all follow the Dispatcher's limits."""
    limits = Limits(
        payload_bytes=80, response_bytes=5, description_length=4, hooks_per_owner=1,
        in_flight_per_host=2,
    )  # fmt: skip
    transport = RecordingTransport()
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=transport, limits=limits)
    with pytest.raises(ValidationError, match="description"):
        dispatcher.subscribe(
            "party/created", "https://example.com/h", owner="a", description="12345"
        )
    dispatcher.subscribe("party/created", "https://example.com/h", owner="a", description="1234")
    api = SubscriptionAPI(dispatcher)
    refused = api.create(
        {"restHook": {"targetUrl": "https://example.com/2", "event": "party/created"}}, owner="a"
    )
    assert refused.status == 422, "the API's cap is the Dispatcher's"
    with pytest.raises(PayloadError):
        dispatcher.emit("party/created", {"name": "x" * 80}, owner="a")
    dispatcher.emit("party/created", {"id": 1}, owner="a")
    dispatcher.deliver_due()
    assert transport.requests[0].max_response_bytes == 5
    worker = dispatcher.worker(workers=1)
    assert worker.dispatcher.limits.in_flight_per_host == 2


def test_the_async_face_reads_the_engines_limits() -> None:
    """AsyncDispatcher has no limits of its own: an emit over the engine's payload limit is
    refused through it too."""
    engine = Dispatcher(MemoryStore(), clock=FakeClock(), limits=Limits(payload_bytes=40))
    engine.subscribe("party/created", "https://example.com/h", owner="a")
    face = AsyncDispatcher(engine)

    async def main() -> None:
        with pytest.raises(PayloadError):
            await face.emit("party/created", {"name": "x" * 40}, owner="a")

    asyncio.run(main())
    assert engine.store.list_deliveries() == [], "nothing was stored"
