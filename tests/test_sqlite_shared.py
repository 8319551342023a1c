"""SQLiteStore inside a host application's own database: namespaced tables, adoption of a
file with foreign tables, the host's connection and transactions, and the renaming of files
written before the prefix."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

import resthooks.stores.sqlite as sqlite_module
from resthooks import ConfigurationError, Dispatcher, SchemaError
from resthooks.model import Hook
from resthooks.stores import SQLiteStore
from resthooks.stores.sqlite import _MIGRATIONS, _RENAMED_AT, APPLICATION_ID, SCHEMA_VERSION
from resthooks.testing import STORE_CHECKS, FakeClock, RecordingTransport, check_store

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _hook(n: int) -> Hook:
    return Hook(
        id=f"hook_{n:05d}",
        owner="acme",
        event="party/created",
        target_url=f"https://example.com/{n}",
        created_at=T0,
        updated_at=T0,
    )


def _host_file(path: Path) -> None:
    """A host application's database, with tables named like the store's old ones."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        PRAGMA application_id = 1234;
        PRAGMA user_version = 7;
        CREATE TABLE hooks (name TEXT);
        CREATE TABLE deliveries (parcel TEXT);
        CREATE INDEX hooks_by_created ON hooks (name);
        INSERT INTO hooks VALUES ('the host''s own');
        """
    )
    conn.commit()
    conn.close()


def _schema(path: Path, *, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        return {
            name: " ".join(sql.replace('"', "").split())  # RENAME quotes the new name
            for name, sql in conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE name LIKE 'resthooks%' AND sql IS NOT "
                "NULL"
            )
            if name not in exclude
        }
    finally:
        conn.close()


def test_adopting_a_host_file_touches_nothing_of_the_hosts(tmp_path: Path) -> None:
    """adopt=True adds resthooks_* tables beside the host's (even its own `hooks`), and leaves
    the host's tables, rows, application_id, user_version and journal mode as they were."""
    db = tmp_path / "app.db"
    _host_file(db)
    host = sqlite3.connect(db)
    before = sorted(host.execute("SELECT tbl_name, type, name, sql FROM sqlite_master"))
    journal = host.execute("PRAGMA journal_mode").fetchone()
    host.close()

    with SQLiteStore(db, adopt=True) as store:
        store.add_hook(_hook(1), max_per_owner=None)
    with SQLiteStore(db, adopt=True) as store:  # reopened: found, not created again
        assert store.get_hook("hook_00001") is not None

    host = sqlite3.connect(db)
    after = sorted(host.execute("SELECT tbl_name, type, name, sql FROM sqlite_master"))
    assert before == [row for row in after if not row[0].startswith("resthooks_")]
    assert {row[0] for row in after if row[0].startswith("resthooks_")} >= {
        "resthooks_hooks",
        "resthooks_deliveries",
        "resthooks_schema",
    }
    assert host.execute("SELECT name FROM hooks").fetchall() == [("the host's own",)]
    assert (
        host.execute("PRAGMA application_id").fetchone()[0],
        host.execute("PRAGMA user_version").fetchone()[0],
    ) == (1234, 7)
    assert journal == host.execute("PRAGMA journal_mode").fetchone()
    assert host.execute("SELECT version FROM resthooks_schema").fetchall() == [(SCHEMA_VERSION,)]
    host.close()


def test_without_adopt_a_host_file_is_refused_untouched(tmp_path: Path) -> None:
    """A file with foreign tables and no adopt=True: SchemaError saying how, bytes unchanged."""
    db = tmp_path / "app.db"
    _host_file(db)
    before = db.read_bytes()
    with pytest.raises(SchemaError, match="adopt=True"):
        SQLiteStore(db)
    assert before == db.read_bytes()


def test_resthooks_named_tables_without_a_schema_table_are_refused(tmp_path: Path) -> None:
    """Tables named resthooks_* that no store made (no resthooks_schema): SchemaError."""
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE resthooks_hooks (x)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="resthooks_hooks"):
        SQLiteStore(db, adopt=True)


def test_an_adopted_schema_is_the_schema_of_a_file_of_its_own(tmp_path: Path) -> None:
    """Created prefixed at once (adopted) or renamed by the migration (own file), the store's
    tables and indexes are the same."""
    own, shared = tmp_path / "own.db", tmp_path / "shared.db"
    SQLiteStore(own).close()
    _host_file(shared)
    SQLiteStore(shared, adopt=True).close()
    assert _schema(own) == _schema(shared, exclude=("resthooks_schema",))


def test_a_file_written_before_the_prefix_is_renamed_and_keeps_its_data(tmp_path: Path) -> None:
    """A resthooks file at the last version before the prefix opens: its tables are renamed,
    its hooks and deliveries are still there, and it is at the current version."""
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    for migration in _MIGRATIONS[:_RENAMED_AT]:
        for statement in migration:
            conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {_RENAMED_AT}")
    conn.execute(
        "INSERT INTO hooks (id, owner, event, target_url, host, description, state, "
        "created_at, updated_at) VALUES ('hook_old', 'acme', 'party/created', "
        "'https://example.com/h', 'example.com', '', 'active', 0, 0)"
    )
    conn.close()

    with SQLiteStore(db) as store:
        dispatcher = Dispatcher(store, clock=FakeClock(), transport=RecordingTransport())
        assert [h.id for h in dispatcher.hooks(owner="acme")] == ["hook_old"]
        (made,) = dispatcher.emit("party/created", {"id": 1}, owner="acme")
        assert dispatcher.deliver_due().delivered == 1
        assert store.get_delivery(made.id) is not None
    conn = sqlite3.connect(db)
    names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    assert not names & {"hooks", "messages", "deliveries", "attempts", "quarantine"}
    assert _schema(db) == _schema(_fresh(tmp_path))


def _fresh(tmp_path: Path) -> Path:
    path = tmp_path / "fresh.db"
    SQLiteStore(path).close()
    return path


def test_the_hosts_connection_carries_the_stores_writes(tmp_path: Path) -> None:
    """With a callable, every operation runs on the host's connection: inside the host's
    transaction it is rolled back with it; outside one it commits on its own."""
    db = tmp_path / "app.db"
    _host_file(db)
    host = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    store = SQLiteStore(lambda: host)
    dispatcher = Dispatcher(store, clock=FakeClock(), transport=RecordingTransport())

    host.execute("BEGIN")
    host.execute("INSERT INTO hooks VALUES ('rolled back')")
    dispatcher.subscribe("party/created", "https://example.com/a", owner="acme")
    assert len(dispatcher.hooks(owner="acme")) == 1  # visible inside the transaction
    host.execute("ROLLBACK")
    assert dispatcher.hooks(owner="acme") == []

    dispatcher.subscribe("party/created", "https://example.com/b", owner="acme")
    other = sqlite3.connect(db)
    assert other.execute("SELECT count(*) FROM resthooks_hooks").fetchone() == (1,)

    host.execute("BEGIN")
    made = dispatcher.emit("party/created", {"id": 1}, owner="acme", connection=host)
    assert len(made) == 1
    host.execute("ROLLBACK")
    assert dispatcher.stats().deliveries["pending"] == 0
    host.execute("BEGIN")
    dispatcher.emit("party/created", {"id": 2}, owner="acme", connection=host)
    host.execute("COMMIT")
    assert other.execute("SELECT count(*) FROM resthooks_deliveries").fetchone() == (1,)
    assert dispatcher.deliver_due().delivered == 1

    store.close()
    assert host.execute("SELECT 1").fetchone() == (1,), "the host's connection stays open"
    other.close()
    host.close()


def test_the_hosts_connection_must_be_a_sqlite_connection(tmp_path: Path) -> None:
    """A callable returning something else: ConfigurationError naming path."""
    with pytest.raises(ConfigurationError, match="path"):
        SQLiteStore(object)  # type: ignore[arg-type]


def test_outbox_through_the_hosts_connection_needs_its_transaction(tmp_path: Path) -> None:
    """emit(connection=host) with no transaction open is refused: it could not roll back."""
    host = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
    store = SQLiteStore(lambda: host)
    dispatcher = Dispatcher(store, clock=FakeClock(), transport=RecordingTransport())
    dispatcher.subscribe("party/created", "https://example.com/a", owner="acme")
    with pytest.raises(ConfigurationError, match="no open transaction"):
        dispatcher.emit("party/created", {"id": 1}, owner="acme", connection=host)
    host.close()


# The two slowest checks (a third of the suite's time) run the claim and record SQL that an
# adopted store shares statement for statement with a store of its own (the test above
# shows their schemas are the same); test_store_conformance.py runs them on SQLite.
_HEAVY = {"transition_table", "concurrent_claims_never_share"}


@pytest.mark.parametrize("name", sorted(set(STORE_CHECKS) - _HEAVY))
def test_an_adopted_store_passes_the_conformance_suite(name: str, tmp_path: Path) -> None:
    """SQLiteStore in a host's file (adopt=True) passes the conformance checks."""
    counter = iter(range(1_000_000))

    def make() -> SQLiteStore:
        path = tmp_path / f"host{next(counter)}.db"
        _host_file(path)
        return SQLiteStore(path, adopt=True)

    check_store(make, only=name)


def test_no_sql_names_a_table_without_the_prefix() -> None:
    """Outside the migration history, the store's SQL names only resthooks_* tables (a
    statement naming `deliveries` would hit the host's table of that name, or none)."""
    source = Path(sqlite_module.__file__).read_text(encoding="utf-8")
    start = source.index("_MIGRATIONS: tuple")
    end = source.index("#: What every table and index of the store is named with")
    rest = source[:start] + source[end:]
    pattern = r"\b(FROM|INTO|UPDATE|JOIN)\s+(hooks|messages|deliveries|attempts|quarantine)\b"
    offending = [
        line.strip()
        for line in rest.splitlines()
        if re.search(pattern, line) and ('"' in line or "'" in line) and ">>>" not in line
    ]
    assert offending == []
