"""The transactional outbox inside a SQLAlchemy session on SQLite: the session's business row
and its deliveries commit together, or neither exists (the checks of
``sqlalchemy_outbox_checks``, which PostgreSQL runs too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from resthooks.stores import SQLiteStore
from sqlalchemy_outbox_checks import (  # noqa: F401 - pytest collects the imported tests
    outbox_app,
    test_a_committed_session_carries_its_row_and_its_delivery,
    test_a_rolled_back_session_leaves_neither_row_nor_delivery,
)


@pytest.fixture(name="app")
def _app(tmp_path: Path) -> Iterator[Any]:
    """A host app: its own tables made by SQLAlchemy, the store adopted into the same file."""
    db = tmp_path / "crm.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    yield from outbox_app(engine, lambda: SQLiteStore(db, adopt=True))
