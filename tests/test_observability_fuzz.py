"""Fuzzed input to the observability entry points: typed errors naming the field, never a
crash, and nothing changed in the store."""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resthooks import Dispatcher, ValidationError
from resthooks.health import check_health, read_heartbeat_file
from resthooks.lifecycle import EVENT_TYPES
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock, RecordingTransport
from resthooks.tracing import EmitTrace, valid_traceparent

TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(),
    st.timedeltas(),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(anything, st.text(alphabet="0123456789abcdef-", min_size=50, max_size=60)))
def test_valid_traceparent_keeps_only_a_version_00_traceparent(value: object) -> None:
    """Anything at all: either None or the same, well-formed, non-zero traceparent back."""
    kept = valid_traceparent(value)
    if kept is not None:
        assert kept is value
        assert TRACEPARENT.fullmatch(kept)
        assert kept[3:35] != "0" * 32
        assert kept[36:52] != "0" * 16
        assert EmitTrace(event="e", owner="o", trace_context=kept).store_arguments() == {
            "trace_context": kept
        }
    else:
        assert EmitTrace(event="e", owner="o", trace_context=value).store_arguments() == {}  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(due=anything, beat=anything)
def test_check_health_refuses_bad_limits_by_name(due: object, beat: object) -> None:
    """A limit is a positive finite number of seconds (or timedelta); anything else is a
    ValidationError naming it. Nothing in the store changes either way."""
    store = MemoryStore()
    dispatcher = Dispatcher(store, clock=FakeClock())

    def ok(value: object) -> bool:
        if isinstance(value, timedelta):
            value = value.total_seconds()
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        )

    if ok(due) and ok(beat):
        assert check_health(dispatcher, max_due_age=due, max_heartbeat_age=beat).ok  # type: ignore[arg-type]
    else:
        field = "max_due_age" if not ok(due) else "max_heartbeat_age"
        with pytest.raises(ValidationError, match=field):
            check_health(dispatcher, max_due_age=due, max_heartbeat_age=beat)  # type: ignore[arg-type]
    assert store.stats().deliveries["pending"] == 0


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.binary(max_size=200))
def test_a_heartbeat_file_of_any_bytes_is_refused_or_read(tmp_path: Path, content: bytes) -> None:
    """Any bytes in the heartbeat file: a datetime, None, or a ValidationError naming it."""
    path = tmp_path / "beat.json"
    path.write_bytes(content)
    try:
        beat = read_heartbeat_file(path)
    except ValidationError as exc:
        error: ValidationError | None = exc
    else:
        error = None
        assert beat is None or beat.tzinfo is not None
    assert error is None or error.field == "heartbeat_file"


@settings(max_examples=300, deadline=None)
@given(
    events=st.one_of(
        anything,
        st.lists(st.sampled_from([*EVENT_TYPES, int, str, object]), max_size=4).map(tuple),
        st.frozensets(st.sampled_from(EVENT_TYPES)),
    ),
    wants=st.one_of(st.none(), st.just(lambda outcome, verdict: True), st.integers()),
)
def test_add_listener_takes_what_a_listener_may_say_or_refuses_it(
    events: object, wants: object
) -> None:
    """A listener's lifecycle_events and wants_attempt of any value: it is added (then called
    with the event types it named, or every one without the attribute) or refused with a
    ValidationError naming the listener, and the Dispatcher delivers as before either way."""

    class Listener:
        def __init__(self) -> None:
            self.seen: list[object] = []

        def __call__(self, event: object) -> None:
            self.seen.append(type(event))

    listener = Listener()
    if events is not None:
        listener.lifecycle_events = events  # type: ignore[attr-defined]
    if wants is not None:
        listener.wants_attempt = wants  # type: ignore[attr-defined]
    valid_events = events is None or (
        isinstance(events, Collection)
        and not isinstance(events, str | bytes)
        and all(k in EVENT_TYPES for k in events)
    )
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=RecordingTransport())
    added = valid_events and (wants is None or callable(wants))
    if added:
        dispatcher.add_listener(listener)
    else:
        with pytest.raises(ValidationError) as raised:
            dispatcher.add_listener(listener)
        assert raised.value.field == "listener"
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    assert dispatcher.deliver_due().delivered == 1
    if not added:
        assert listener.seen == []
    elif events is None:
        assert listener.seen, "a listener of everything hears the delivery"
    else:
        assert set(listener.seen) <= set(events)  # type: ignore[call-overload]
