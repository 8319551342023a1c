"""The outbox example of docs/scaling.md, run against the test cluster."""

# ruff: noqa: PLC0415 - psycopg is optional: imported only after the fixtures checked for it

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import support

from resthooks import DeliveryState
from resthooks.testing import HookReceiver

if TYPE_CHECKING:
    from resthooks.stores.postgres import PostgresStore

DOC = Path(__file__).parents[2] / "docs" / "scaling.md"


def _example(name: str) -> str:
    found = re.search(rf"<!-- example: {name} -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert found, f"docs/scaling.md has no example {name!r}"
    return found.group(1)


def test_outbox_example_commits_and_rolls_back_with_the_host(
    pg_store: PostgresStore, pg_conninfo: str, receiver: HookReceiver
) -> None:
    """The documented outbox function delivers the announcement of a committed party, and
    nothing for a party whose transaction failed."""
    import psycopg

    dispatcher = support.make_dispatcher(pg_store)
    dispatcher.subscribe("party/created", receiver.url(), owner="acme")
    namespace: dict[str, Any] = {"dispatcher": dispatcher}
    exec(compile(_example("outbox"), str(DOC), "exec"), namespace)
    create_party = namespace["create_party"]
    options = f"-c search_path={pg_store.schema}"
    with psycopg.connect(pg_conninfo, options=options) as conn:
        conn.execute("CREATE TABLE parties (id serial PRIMARY KEY, name text, owner text)")
        conn.commit()
        party_id = create_party(conn, "Scott", owner="acme")

        def request_that_fails_later() -> None:
            # create_party's own block becomes a savepoint of this outer transaction.
            with conn.transaction():
                create_party(conn, "Ghost", owner="acme")
                raise RuntimeError("a later step of the same request failed")

        with pytest.raises(RuntimeError):
            request_that_fails_later()
        assert conn.execute("SELECT count(*) FROM parties").fetchone() == (1,)
    (delivery,) = pg_store.list_deliveries()
    assert dispatcher.deliver_due().delivered == 1
    assert receiver.webhook_ids() == {delivery.id: 1}
    assert json.loads(receiver.deliveries[0].body) == {
        "event": "party/created",
        "payload": [{"id": party_id, "name": "Scott"}],
    }
    got = pg_store.get_delivery(delivery.id)
    assert got is not None
    assert got.state is DeliveryState.DELIVERED
