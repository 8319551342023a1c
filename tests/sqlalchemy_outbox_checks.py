"""The transactional outbox inside a SQLAlchemy 2 session: the checks every database runs.

A test module imports the two tests below and defines an ``app`` fixture that yields what
:func:`outbox_app` yields, the store on the same database as the session's engine
(``tests/test_sqlalchemy_outbox.py`` on SQLite, ``tests/postgres/test_sqlalchemy_postgres.py``
on PostgreSQL). The session hands its own driver connection to ``emit`` after a ``flush()``,
as docs/storage.md and docs/scaling.md show it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import orm

from resthooks import Dispatcher
from resthooks.stores import Store
from resthooks.testing import LOOPBACK_POLICY, FakeClock, RecordingTransport

__all__ = [
    "outbox_app",
    "test_a_committed_session_carries_its_row_and_its_delivery",
    "test_a_rolled_back_session_leaves_neither_row_nor_delivery",
]


class _Base(orm.DeclarativeBase):
    pass


class Party(_Base):
    __tablename__ = "sa_parties"
    id = sqlalchemy.Column(sqlalchemy.Integer, primary_key=True)
    name = sqlalchemy.Column(sqlalchemy.String(100))


def outbox_app(
    engine: sqlalchemy.Engine, make_store: Callable[[], Store]
) -> Iterator[tuple[sqlalchemy.Engine, Dispatcher, RecordingTransport]]:
    """The host app's tables made by SQLAlchemy on ``engine``, then the store from
    ``make_store`` on the same database, one hook on ``party/created``; dropped afterwards."""
    _Base.metadata.drop_all(engine)
    _Base.metadata.create_all(engine)
    transport = RecordingTransport()
    dispatcher = Dispatcher(
        make_store(), clock=FakeClock(), transport=transport, network_policy=LOOPBACK_POLICY
    )
    dispatcher.subscribe("party/created", "http://127.0.0.1:9/hooks", owner="acme")
    try:
        yield engine, dispatcher, transport
    finally:
        dispatcher.store.close()
        _Base.metadata.drop_all(engine)
        engine.dispose()


def _create_party(session: Any, dispatcher: Dispatcher, name: str) -> None:
    party = Party(name=name)
    session.add(party)
    session.flush()  # the INSERT runs now: the session's transaction is open
    conn = session.connection().connection.driver_connection  # the driver's own connection
    dispatcher.emit("party/created", {"id": party.id, "name": name}, owner="acme", connection=conn)


def test_a_committed_session_carries_its_row_and_its_delivery(app: Any) -> None:
    """After session.begin() commits, the party row exists and its delivery goes out."""
    engine, dispatcher, transport = app
    with orm.Session(engine) as session, session.begin():
        _create_party(session, dispatcher, "Zoë")
        assert dispatcher.stats().deliveries["pending"] == 0, "invisible before the commit"

    with orm.Session(engine) as session:
        assert [p.name for p in session.scalars(sqlalchemy.select(Party))] == ["Zoë"]
    assert dispatcher.deliver_due().delivered == 1
    assert '"payload":[{"id":1,"name":"Zoë"}]'.encode() in transport.requests[0].body


def test_a_rolled_back_session_leaves_neither_row_nor_delivery(app: Any) -> None:
    """An exception inside session.begin() rolls back the party and its delivery together."""
    engine, dispatcher, transport = app
    with (  # noqa: PT012 - the block is the test
        pytest.raises(RuntimeError, match="after the emit"),
        orm.Session(engine) as session,
        session.begin(),
    ):
        _create_party(session, dispatcher, "Zoë")
        raise RuntimeError("after the emit")

    with orm.Session(engine) as session:
        assert list(session.scalars(sqlalchemy.select(Party))) == []
    assert dispatcher.stats().deliveries["pending"] == 0
    assert dispatcher.deliver_due().attempts == 0
    assert transport.requests == []
