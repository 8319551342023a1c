"""The transactional outbox inside a SQLAlchemy session on SQLite: the session's business row
and its deliveries commit together, or neither exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import orm

from resthooks import Dispatcher
from resthooks.stores import SQLiteStore
from resthooks.testing import LOOPBACK_POLICY, FakeClock, RecordingTransport


class _Base(orm.DeclarativeBase):
    pass


class Party(_Base):
    __tablename__ = "parties"
    id = sqlalchemy.Column(sqlalchemy.Integer, primary_key=True)
    name = sqlalchemy.Column(sqlalchemy.String(100))


@pytest.fixture(name="app")
def _app(tmp_path: Path) -> Any:
    """A host app: its own tables made by SQLAlchemy, the store adopted into the same file."""
    db = tmp_path / "crm.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    _Base.metadata.create_all(engine)
    transport = RecordingTransport()
    dispatcher = Dispatcher(
        SQLiteStore(db, adopt=True),
        clock=FakeClock(),
        transport=transport,
        network_policy=LOOPBACK_POLICY,
    )
    dispatcher.subscribe("party/created", "http://127.0.0.1:9/hooks", owner="acme")
    yield engine, dispatcher, transport
    dispatcher.store.close()
    engine.dispose()


def _create_party(session: Any, dispatcher: Dispatcher, name: str) -> None:
    party = Party(name=name)
    session.add(party)
    session.flush()  # the INSERT runs now: the session's transaction is open
    conn = session.connection().connection.driver_connection  # the sqlite3.Connection
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
