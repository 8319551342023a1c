"""The transactional outbox inside a SQLAlchemy 2 session on PostgreSQL (``postgresql+psycopg``),
as docs/scaling.md shows it: the session's row and its deliveries commit or roll back together
(the checks of ``sqlalchemy_outbox_checks``, which SQLite runs too)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy

from sqlalchemy_outbox_checks import (  # noqa: F401 - pytest collects the imported tests
    outbox_app,
    test_a_committed_session_carries_its_row_and_its_delivery,
    test_a_rolled_back_session_leaves_neither_row_nor_delivery,
)


@pytest.fixture(name="app")
def _app(pg_conninfo: str, new_schema: Callable[[], str]) -> Iterator[Any]:
    import psycopg  # noqa: PLC0415 - optional, checked by the conftest's fixture

    from resthooks.stores.postgres import PostgresStore  # noqa: PLC0415

    engine = sqlalchemy.create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(pg_conninfo)
    )
    yield from outbox_app(engine, lambda: PostgresStore(pg_conninfo, schema=new_schema()))
