"""Emitting for later and after a host's commit: Dispatcher.validate_emit and committed."""

from __future__ import annotations

import pytest

from resthooks import Dispatcher, ValidationError
from resthooks.testing import RecordingTransport, synchronous


@pytest.mark.parametrize("bad", [None, 5, "msg_1", [object()], {"a": 1}])
def test_committed_refuses_what_is_not_deliveries(dispatcher: Dispatcher, bad: object) -> None:
    """Dispatcher.committed with anything but the deliveries of an emit: ValidationError
    naming deliveries, and no worker is woken."""
    with pytest.raises(ValidationError, match="deliveries"):
        dispatcher.committed(bad)  # type: ignore[arg-type]


def test_committed_runs_the_synchronous_mode(
    dispatcher: Dispatcher, transport: RecordingTransport
) -> None:
    """committed() after a host's commit delivers in synchronous mode; an empty list does
    nothing."""
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    made = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    with synchronous(dispatcher):
        dispatcher.committed([])
        assert transport.requests == []
        dispatcher.committed(made)
    assert len(transport.requests) == 1


def test_validate_emit_stores_nothing_and_returns_the_body(dispatcher: Dispatcher) -> None:
    """validate_emit returns the body emit would send and stores nothing."""
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    body = dispatcher.validate_emit("party/created", {"id": 1}, owner="acme")
    assert body == b'{"event":"party/created","payload":[{"id":1}]}'
    assert dispatcher.stats().deliveries["pending"] == 0
    with pytest.raises(ValidationError, match="owner"):
        dispatcher.validate_emit("party/created", {}, owner="")
