"""The store conformance suite on a real PostgreSQL server, one fresh schema per check."""

# ruff: noqa: PLC0415 - psycopg is optional: imported only after the fixtures checked for it

from __future__ import annotations

from collections.abc import Callable

import pytest

from resthooks.testing import STORE_CHECKS, check_store


@pytest.mark.parametrize("name", sorted(STORE_CHECKS))
def test_postgres_store_passes(name: str, pg_conninfo: str, new_schema: Callable[[], str]) -> None:
    """PostgresStore passes each conformance check."""
    from resthooks.stores.postgres import PostgresStore

    check_store(lambda: PostgresStore(pg_conninfo, schema=new_schema()), only=name)
