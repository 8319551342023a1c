"""A throwaway PostgreSQL cluster for the session, and a fresh schema per test.

Without PostgreSQL binaries (or psycopg) the PostgreSQL tests skip, saying why; with the
environment variable ``CI`` set they fail instead, so CI never passes without running them.
"""

# ruff: noqa: PLC0415 - psycopg is optional: imported only after the fixtures checked for it

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import support

from resthooks.testing import HookReceiver

# A script the scale-out tests start as a process, not a test module: never import it here.
collect_ignore = ["worker.py"]

if TYPE_CHECKING:
    from resthooks.stores.postgres import PostgresStore


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI is set: the PostgreSQL tests must run in CI", False)
    pytest.skip(f"{reason}; set CI=1 to make this an error")


@pytest.fixture(autouse=True)
def _requires_psycopg() -> None:
    """Every test here needs the `postgres` extra, even those that need no server."""
    if importlib.util.find_spec("psycopg") is None:
        _missing("psycopg is not installed (pip install -e '.[postgres]')")


@pytest.fixture(name="pg_cluster", scope="session")
def _pg_cluster() -> Iterator[support.Cluster]:
    if importlib.util.find_spec("psycopg") is None:
        _missing("psycopg is not installed (pip install -e '.[postgres]')")
    if support.find_bindir() is None:
        _missing(
            "no PostgreSQL binaries (initdb, pg_ctl) on PATH, in /usr/lib/postgresql or in "
            "$PG_BINDIR: install PostgreSQL to run these tests"
        )
    with support.start_cluster() as cluster:
        yield cluster


@pytest.fixture(name="pg_conninfo", scope="session")
def _pg_conninfo(pg_cluster: support.Cluster) -> str:
    return pg_cluster.conninfo()


@pytest.fixture(name="new_schema")
def _new_schema(pg_conninfo: str) -> Iterator[Callable[[], str]]:
    """Returns a maker of fresh schema names; every schema it named is dropped afterwards."""
    import psycopg
    from psycopg import sql

    made: list[str] = []

    def make() -> str:
        made.append(f"t_{uuid.uuid4().hex[:12]}")
        return made[-1]

    yield make
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(name="pg_store")
def _pg_store(pg_conninfo: str, new_schema: Callable[[], str]) -> Iterator[PostgresStore]:
    from resthooks.stores.postgres import PostgresStore

    store = PostgresStore(pg_conninfo, schema=new_schema())
    yield store
    store.close()


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[HookReceiver]:
    with HookReceiver(keep_alive=True) as receiver:
        yield receiver
