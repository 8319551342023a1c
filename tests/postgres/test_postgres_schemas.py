"""Event schemas on PostgreSQL: a validated emit through the host's own connection (the
outbox) writes nothing when refused, and a good one is delivered to a real receiver."""

# ruff: noqa: PLC0415 - psycopg is optional: imported only after the fixtures checked for it

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from resthooks import Dispatcher, EventCatalogue, PayloadError
from resthooks.testing import LOOPBACK_POLICY, FakeClock, HookReceiver

if TYPE_CHECKING:
    from resthooks.stores.postgres import PostgresStore

CATALOGUE = EventCatalogue(
    {"party": ["created"]},
    schemas={
        "party/created": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "integer"}},
        }
    },
)


def test_a_validated_emit_through_the_outbox(pg_store: PostgresStore, pg_conninfo: str) -> None:
    """In the host's transaction: the refused emit names the path and writes nothing, the
    good one commits with the host and reaches the receiver."""
    import psycopg

    dispatcher = Dispatcher(
        pg_store,
        events=CATALOGUE,
        clock=FakeClock(),
        network_policy=LOOPBACK_POLICY,
        validate_payloads=True,
    )
    with HookReceiver() as receiver:
        receiver.subscribe(dispatcher, "party/created", owner="acme")
        with psycopg.connect(pg_conninfo) as conn:
            with pytest.raises(PayloadError) as info:
                dispatcher.emit("party/created", {"id": "7"}, owner="acme", connection=conn)
            assert info.value.path == "$.payload[0].id"
            dispatcher.emit("party/created", {"id": 7}, owner="acme", connection=conn)
            conn.commit()
        assert len(pg_store.list_deliveries()) == 1
        assert dispatcher.deliver_due().delivered == 1
        assert receiver.payloads("party/created") == [{"id": 7}]
