"""SQLiteStore on real files: schema checks, refusals, locking, the transactional outbox."""

from __future__ import annotations

import ctypes
import itertools
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from resthooks import (
    Attempt,
    ConfigurationError,
    Hook,
    Outcome,
    OutcomeKind,
    SchemaError,
    StoreError,
)
from resthooks.stores import SQLiteStore
from resthooks.stores.sqlite import SCHEMA_VERSION

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _hook(n: int, *, host: str | None = None, at: datetime = T0) -> Hook:
    return Hook(
        id=f"hook_{n:05d}",
        owner="acme",
        event="party/created",
        target_url=f"https://{host or f'h{n}.example.com'}/hook/{n}",
        created_at=at,
        updated_at=at,
    )


@pytest.fixture(name="db")
def _db(tmp_path: Path) -> Path:
    return tmp_path / "hooks.db"


def test_new_file_gets_the_current_schema_in_wal_mode(db: Path) -> None:
    """A new file is created with the current schema version, resthooks' application id, WAL."""
    SQLiteStore(db).close()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x52484B53
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_synchronous_setting_is_applied(db: Path) -> None:
    """synchronous="FULL" is set on the store's connections; NORMAL is the default."""
    with SQLiteStore(db, synchronous="FULL") as store:
        assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 2
    with SQLiteStore(db) as store:
        assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 1


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"synchronous": "OFF"}, "synchronous"), ({"busy_timeout": -1}, "busy_timeout")],
)
def test_bad_options_are_refused(db: Path, kwargs: dict[str, object], word: str) -> None:
    """Options that cannot work raise ConfigurationError naming them, and create no file."""
    with pytest.raises(ConfigurationError, match=word):
        SQLiteStore(db, **kwargs)  # type: ignore[arg-type]
    assert not db.exists()


def test_timestamps_round_trip_to_the_microsecond(db: Path) -> None:
    """Aware datetimes come back equal to the microsecond, as UTC."""
    at = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=timezone(timedelta(hours=2)))
    with SQLiteStore(db) as store:
        store.add_hook(_hook(1, at=at), max_per_owner=None)
        got = store.get_hook("hook_00001")
        assert got is not None
        assert at == got.created_at
        assert got.created_at.microsecond == 891011
        assert timezone.utc == got.created_at.tzinfo


def _foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
    conn.commit()
    conn.close()


def _not_sqlite(path: Path) -> None:
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 20)


def _corrupt_sqlite(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)


def _newer_resthooks(path: Path) -> None:
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_foreign_sqlite, "not a resthooks database"),
        (_not_sqlite, "not a SQLite file"),
        (_corrupt_sqlite, "not a"),
        (_newer_resthooks, "newer resthooks"),
    ],
)
def test_other_files_are_refused_and_left_untouched(db: Path, make, words: str) -> None:  # type: ignore[no-untyped-def]
    """A foreign, non-SQLite, corrupt or newer file raises SchemaError and stays byte-identical."""
    make(db)
    before = db.read_bytes()
    siblings = sorted(p.name for p in db.parent.iterdir())
    with pytest.raises(SchemaError, match=words):
        SQLiteStore(db)
    assert before == db.read_bytes()
    assert siblings == sorted(p.name for p in db.parent.iterdir())


def _drop_dac_override() -> None:  # pragma: no cover - runs in the child process
    # Root ignores directory permissions through CAP_DAC_OVERRIDE; drop it from the bounding
    # set so the child, even as root, meets a read-only directory as any user would.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(24, 1, 0, 0, 0) != 0:  # PR_CAPBSET_DROP, CAP_DAC_OVERRIDE
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


_OPEN_AND_REPORT = """
import sys
from resthooks.stores import SQLiteStore
from resthooks.errors import StoreError
try:
    SQLiteStore(sys.argv[1]).close()
except StoreError as exc:
    print(type(exc).__name__, exc)
else:
    print("opened")
"""


def _open_in_child(path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", _OPEN_AND_REPORT, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=_drop_dac_override if os.geteuid() == 0 else None,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("existing", [False, True])
def test_read_only_directory_is_a_clear_error(tmp_path: Path, existing: bool) -> None:
    """In a read-only directory, opening (a new file, or an existing one that needs its WAL
    files) raises StoreError that says the directory is not writable, and writes nothing."""
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "hooks.db"
    if existing:
        SQLiteStore(db).close()
    before = sorted(p.name for p in folder.iterdir())
    folder.chmod(0o555)
    try:
        report = _open_in_child(db)
    finally:
        folder.chmod(0o755)
    assert report.startswith("StoreError"), report
    assert "not writable" in report
    assert before == sorted(p.name for p in folder.iterdir())


def test_locked_past_busy_timeout_is_a_store_error_and_writes_nothing(db: Path) -> None:
    """A write blocked past busy_timeout by another connection's lock raises StoreError
    (no sqlite3 exception) and leaves no part of the fan-out behind."""
    store = SQLiteStore(db, busy_timeout=0.2)
    store.add_hook(_hook(1), max_per_owner=None)
    store.add_hook(_hook(2), max_per_owner=None)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="locked") as info:
            store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.stats().deliveries["pending"] == 0
    assert store._conn().execute("SELECT count(*) FROM resthooks_messages").fetchone()[0] == 0
    assert len(store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)) == 2
    store.close()


def test_a_writer_waits_for_another_connections_lock_in_short_steps(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another process holds the write lock, a write tries again after short waits
    (at most 1 ms, where SQLite's busy handler sleeps up to 100 ms between tries) and goes
    through once the lock is free; the connection keeps its busy timeout for the rest."""
    from resthooks.stores import sqlite as module  # noqa: PLC0415

    store = SQLiteStore(db, busy_timeout=10)
    store.add_hook(_hook(1), max_per_owner=None)
    waits: list[float] = []
    real_sleep = module.time.sleep

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(module.time, "sleep", sleep)
    timeouts: list[int] = []
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    done = threading.Event()

    def write() -> None:
        store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
        timeouts.append(store._conn().execute("PRAGMA busy_timeout").fetchone()[0])
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert not done.wait(0.3)  # held: the write waits
    finally:
        other.execute("COMMIT")
        other.close()
    writer.join(timeout=10)
    assert done.is_set()
    assert len(waits) >= 5, waits
    assert max(waits) <= 0.001
    assert store.stats().deliveries["pending"] == 1
    assert timeouts == [10_000]
    store.close()


def test_driver_errors_arrive_as_store_errors(db: Path) -> None:
    """A sqlite3 failure inside an operation reaches the caller as StoreError with the cause."""
    store = SQLiteStore(db)
    store.add_hook(_hook(1), max_per_owner=None)
    (delivery,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
    conn = sqlite3.connect(db)
    conn.execute("DROP TABLE resthooks_attempts")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as info:
        store.attempts(delivery.id)
    assert isinstance(info.value.__cause__, sqlite3.Error)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_hook("hook_1")


def _statements(store: SQLiteStore, call) -> list[str]:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    conn = store._conn()
    conn.set_trace_callback(seen.append)
    try:
        call()
    finally:
        conn.set_trace_callback(None)
    return [s for s in seen if "deliveries" in s and not s.startswith(("BEGIN", "COMMIT"))]


def test_claiming_uses_indexes_not_scans(db: Path) -> None:
    """Every statement claim_due runs reaches deliveries through an index (O(log n)), with
    and without the per-host limit, on a backlog that makes the fallback path run too."""
    store = SQLiteStore(db)
    store.add_hook(_hook(1, host="busy.example.com"), max_per_owner=None)
    store.add_hook(
        _hook(2, host="idle.example.com", at=T0 + timedelta(seconds=1)), max_per_owner=None
    )
    conn = store._conn()
    for i in range(400):
        store.enqueue(
            owner="acme", event="party/created", body=b"{}", now=T0 + timedelta(seconds=i)
        )
    conn.execute("DELETE FROM resthooks_deliveries WHERE hook_id = 'hook_00002' AND seq < 700")
    lease = T0 + timedelta(hours=2)
    now = T0 + timedelta(hours=1)
    statements = _statements(
        store,
        lambda: store.claim_due(now=now, limit=10, lease_until=lease, max_in_flight_per_host=2),
    )
    statements += _statements(store, lambda: store.claim_due(now=now, limit=10, lease_until=lease))
    statements += _statements(store, store.next_due_at)
    assert len(statements) >= 6
    plans = []
    for sql in statements:
        steps = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql)]
        plans.append(" / ".join(steps))
        # Only the hooks (a small table) may be scanned; deliveries are always searched.
        scans = [s for s in steps if s.startswith("SCAN") and s not in ("SCAN h", "SCAN hooks")]
        assert scans == [], (sql, steps)
    # The per-host fallback ran, and read each hook's pending deliveries in due order.
    assert any("deliveries_open_by_hook_due (hook_id=? AND next_attempt_at" in p for p in plans)
    store.close()


def test_a_large_claim_of_hosts_with_room_is_one_scan(db: Path) -> None:
    """A claim of more deliveries than the scan may pass over, all on hosts with room, is
    the one oldest-first scan: the rows it claims do not count against that budget, so it
    does not fall back to probing every hook (the async worker claims a thousand at once)."""
    store = SQLiteStore(db)
    for n in range(100):
        store.add_hook(_hook(n), max_per_owner=None)
    for i in range(6):
        store.enqueue(
            owner="acme", event="party/created", body=b"{}", now=T0 + timedelta(seconds=i)
        )
    now, lease = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    claimed: list[int] = []
    statements = _statements(
        store,
        lambda: claimed.append(
            len(store.claim_due(now=now, limit=600, lease_until=lease, max_in_flight_per_host=10))
        ),
    )
    assert claimed == [600]
    assert [s for s in statements if "p.hook_id = h.id" in s] == []
    store.close()


def test_saturated_host_backlog_does_not_starve_other_hosts(db: Path) -> None:
    """With hundreds of due deliveries to a saturated host ahead of another host's, a claim
    with a per-host limit still takes the other host's oldest deliveries, in order."""
    with SQLiteStore(db) as store:
        store.add_hook(_hook(1, host="busy.example.com"), max_per_owner=None)
        for i in range(600):
            store.enqueue(
                owner="acme", event="party/created", body=b"{}", now=T0 + timedelta(seconds=i)
            )
        store.add_hook(_hook(2, host="idle.example.com"), max_per_owner=None)
        late = [
            store.enqueue(
                owner="acme", event="party/created", body=b"{}", now=T0 + timedelta(seconds=700 + i)
            )
            for i in range(3)
        ]
        idle_ids = [d.id for batch in late for d in batch if d.hook_id == "hook_00002"]
        now, lease = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
        first = store.claim_due(now=now, limit=5, lease_until=lease, max_in_flight_per_host=2)
        assert [c.hook.target_url.split("/")[2] for c in first] == ["busy.example.com"] * 2 + [
            "idle.example.com"
        ] * 2
        second = store.claim_due(now=now, limit=5, lease_until=lease, max_in_flight_per_host=3)
        assert [c.hook.target_url.split("/")[2] for c in second] == [
            "busy.example.com",
            "idle.example.com",
        ]
        assert idle_ids == [c.delivery.id for c in first[2:] + second[1:]]


def test_fan_out_stores_the_body_once(db: Path) -> None:
    """One emit to many hooks stores its body in one messages row, and purge removes it."""
    with SQLiteStore(db) as store:
        for n in range(50):
            store.add_hook(_hook(n), max_per_owner=None)
        made = store.enqueue(owner="acme", event="party/created", body=b"x" * 1000, now=T0)
        assert len(made) == 50
        conn = store._conn()
        assert conn.execute("SELECT count(*) FROM resthooks_messages").fetchone()[0] == 1
        store.remove_hook("hook_00000", now=T0)
        conn.execute("UPDATE resthooks_deliveries SET state = 'delivered', due_at = NULL")
        assert store.purge(before=T0 + timedelta(seconds=1)) == 50
        assert conn.execute("SELECT count(*) FROM resthooks_messages").fetchone()[0] == 0


def test_threads_share_one_store(db: Path) -> None:
    """Eight threads enqueueing and claiming at once on one store lose nothing and never
    claim one delivery twice (each thread uses its own connection)."""
    with SQLiteStore(db) as store:
        store.add_hook(_hook(1), max_per_owner=None)
        claimed: list[str] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def work(n: int) -> None:
            try:
                for _ in range(50):
                    store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
                    got = store.claim_due(now=T0, limit=3, lease_until=T0 + timedelta(hours=1))
                    with lock:
                        claimed.extend(c.delivery.id for c in got)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        claimed.extend(
            c.delivery.id
            for c in store.claim_due(now=T0, limit=1000, lease_until=T0 + timedelta(hours=1))
        )
        assert 400 == len(claimed) == len(set(claimed))


# -- the transactional outbox ------------------------------------------------------------------


def _host_db(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS parties (id INTEGER PRIMARY KEY, name TEXT)")
    return conn


def test_outbox_deliveries_commit_with_the_hosts_transaction(db: Path) -> None:
    """Deliveries enqueued through the host's connection exist once the host commits."""
    with SQLiteStore(db) as store:
        store.add_hook(_hook(1), max_per_owner=None)
        host = _host_db(db)
        host.execute("BEGIN IMMEDIATE")
        host.execute("INSERT INTO parties (name) VALUES ('Zoë')")
        (made,) = store.enqueue(
            owner="acme", event="party/created", body=b"{}", now=T0, connection=host
        )
        assert store.get_delivery(made.id) is None, "not visible before the host commits"
        host.execute("COMMIT")
        host.close()
        assert store.get_delivery(made.id) == made


def test_outbox_deliveries_roll_back_with_the_hosts_transaction(db: Path) -> None:
    """When the host rolls back, neither its row nor the deliveries exist."""
    with SQLiteStore(db) as store:
        store.add_hook(_hook(1), max_per_owner=None)
        host = _host_db(db)
        host.execute("BEGIN IMMEDIATE")
        host.execute("INSERT INTO parties (name) VALUES ('Zoë')")
        store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0, connection=host)
        host.execute("ROLLBACK")
        assert host.execute("SELECT count(*) FROM parties").fetchone()[0] == 0
        host.close()
        assert store.stats().deliveries["pending"] == 0


def test_outbox_refuses_unusable_connections(db: Path, tmp_path: Path) -> None:
    """A non-sqlite3 object, a connection without a transaction, or one to another file is
    refused with ConfigurationError, and nothing is written."""
    with SQLiteStore(db) as store:
        store.add_hook(_hook(1), max_per_owner=None)
        elsewhere = sqlite3.connect(tmp_path / "other.db", isolation_level=None)
        elsewhere.execute("BEGIN IMMEDIATE")
        idle = _host_db(db)
        for connection, words in (
            (object(), "sqlite3.Connection"),
            (idle, "no open transaction"),
            (elsewhere, "not to the store's file"),
        ):
            with pytest.raises(ConfigurationError, match=words):
                store.enqueue(
                    owner="acme", event="party/created", body=b"{}", now=T0, connection=connection
                )
        elsewhere.execute("ROLLBACK")
        elsewhere.close()
        idle.close()
        assert store.stats().deliveries["pending"] == 0


def test_backup_is_a_usable_copy(db: Path, tmp_path: Path) -> None:
    """backup() writes a consistent copy that opens as a store with the same contents."""
    with SQLiteStore(db) as store:
        store.add_hook(_hook(1), max_per_owner=None)
        (made,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
        store.backup(tmp_path / "copy.db")
    with SQLiteStore(tmp_path / "copy.db") as copy:
        assert copy.get_delivery(made.id) == made
        assert copy.get_hook("hook_00001") == _hook(1)


def test_listing_by_owner_survives_reused_seqs(db: Path) -> None:
    """After purge frees the newest rows and a later emit reuses their seqs, listing an
    owner's deliveries still returns exactly that owner's."""
    with SQLiteStore(db) as store:
        for n in range(3):
            store.add_hook(_hook(n), max_per_owner=None)
        store.add_hook(
            Hook(
                id="hook_other",
                owner="other",
                event="party/created",
                target_url="https://other.example.com/",
                created_at=T0,
                updated_at=T0,
            ),
            max_per_owner=None,
        )
        first, *rest = store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
        conn = store._conn()
        conn.execute(
            "UPDATE resthooks_deliveries SET state = 'delivered', due_at = NULL "
            "WHERE resthooks_delivery_id(seq, salt) IN (?, ?)",
            [d.id for d in rest],
        )
        assert store.purge(before=T0 + timedelta(seconds=1)) == 2
        (theirs,) = store.enqueue(
            owner="other", event="party/created", body=b"{}", now=T0 + timedelta(seconds=2)
        )
        assert [first.id] == [d.id for d in store.list_deliveries(owner="acme")]
        assert [theirs.id] == [d.id for d in store.list_deliveries(owner="other")]
        assert store.stats(owner="acme").deliveries["pending"] == 1


def test_delivery_ids_are_found_only_when_exact(db: Path) -> None:
    """A delivery is found, requeued and recorded by its exact id only: a neighbour's seq with
    a guessed salt, a malformed id or a foreign one matches nothing and changes nothing."""
    from resthooks import Outcome, OutcomeKind  # noqa: PLC0415 - only this test needs them

    with SQLiteStore(db) as store:
        for n in range(3):
            store.add_hook(_hook(n), max_per_owner=None)
        made = store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
        assert len({d.id for d in made}) == 3
        assert all(len(d.id) == 36 and d.id.startswith("msg_") for d in made)
        assert [store.get_delivery(d.id) for d in made] == made
        first = made[0]
        # The last digits hold the salt: change one and the row's salt no longer matches.
        wrong_salt = first.id[:-1] + ("0" if first.id[-1] != "0" else "1")
        legacy_form = first.id[:20] + "0" + first.id[21:]  # the same digits, read as 0.1's form
        for bad in (wrong_salt, legacy_form, first.id.upper(), first.id[:-1], first.id + "0",
                    "msg_missing", "msg_" + "f" * 32, "msg_" + "_1" * 16, 12):  # fmt: skip
            assert store.get_delivery(bad) is None  # type: ignore[arg-type]
            assert store.requeue(bad, now=T0) is None  # type: ignore[arg-type]
        (claim,) = store.claim_due(now=T0, limit=1, lease_until=T0 + timedelta(minutes=5))
        assert claim.delivery.id == first.id
        (result,) = store.record(
            [Outcome(delivery_id=wrong_salt, token=claim.token, kind=OutcomeKind.DELIVERED)],
            now=T0,
        )
        assert not result.applied
        assert store.get_delivery(first.id).state.value == "in_flight"  # type: ignore[union-attr]
        (result,) = store.record(
            [Outcome(delivery_id=first.id, token=claim.token, kind=OutcomeKind.DELIVERED)],
            now=T0,
        )
        assert result.applied
        assert result.hook_id == first.hook_id


def test_fan_out_returns_the_rows_it_stored_in_hook_order(db: Path) -> None:
    """The deliveries enqueue returns are the stored rows (ids as get_delivery and listing see
    them), one per active hook in hook order, with nothing from a concurrent earlier emit."""
    with SQLiteStore(db) as store:
        for n in range(5):
            store.add_hook(_hook(n, at=T0 + timedelta(seconds=5 - n)), max_per_owner=None)
        earlier = store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
        made = store.enqueue(
            owner="acme", event="party/created", body=b"{}", now=T0 + timedelta(seconds=1)
        )
        assert [d.hook_id for d in made] == [f"hook_{n:05d}" for n in (4, 3, 2, 1, 0)]
        assert not {d.id for d in made} & {d.id for d in earlier}
        listed = store.list_deliveries(owner="acme", limit=100)
        # Newest first: within one emit, the last row stored first (ids carry no order).
        assert listed[:5] == made[::-1]
        assert listed[5:] == earlier[::-1]


# -- delivery ids reveal nothing ------------------------------------------------------------------


def _id_bits(delivery_id: str) -> tuple[int, int]:
    """The two 64-bit halves of an id."""
    return int(delivery_id[4:20], 16), int(delivery_id[20:], 16)


def test_delivery_ids_show_no_counter(tmp_path: Path) -> None:
    """Ids of consecutive rows are unrelated: no half of them counts, and two files given the
    same rows give different ids (the mask's key is per file)."""
    ids: list[list[str]] = []
    for name in ("a.db", "b.db"):
        with SQLiteStore(tmp_path / name) as store:
            for n in range(50):
                store.add_hook(_hook(n), max_per_owner=None)
            made = list(store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0))
            made += store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
            ids.append([d.id for d in made])
    first, second = ids
    assert len(set(first)) == 100
    assert not set(first) & set(second)
    for column in (0, 1):
        halves = [_id_bits(i)[column] for i in first]
        gaps = [abs(b - a) for a, b in itertools.pairwise(halves)]
        # A counter, even a salted or offset one, moves by small steps; these jump by ~2^63.
        assert min(gaps) > 2**32, column
    for delivery_id in first:
        assert "0000000000" not in delivery_id


def _version_1_file(path: Path) -> str:
    """A database as resthooks 0.1 wrote it, with one pending delivery; returns its id."""
    from resthooks.stores.sqlite import _MIGRATIONS  # noqa: PLC0415

    conn = sqlite3.connect(path, isolation_level=None)
    for statement in _MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA application_id = 0x52484B53")
    conn.execute("PRAGMA user_version = 1")
    at = (T0 - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    conn.execute(
        "INSERT INTO hooks VALUES ('hook_00000', 'acme', 'party/created', "
        "'https://h0.example.com/', 'h0.example.com', '', 'active', ?, ?, NULL, NULL, NULL, "
        "NULL, NULL)",
        (at, at),
    )
    conn.execute(
        "INSERT INTO messages VALUES (1, 'acme', 'party/created', ?, x'7b7d', 1, 7, 7)", (at,)
    )
    conn.execute(
        "INSERT INTO deliveries (seq, salt, hook_id, message_id, state, attempts, "
        "next_attempt_at, updated_at, due_at) VALUES (7, 12345, 'hook_00000', 1, 'pending', 0, "
        "?, ?, ?)",
        (at, at, at),
    )
    conn.close()
    return f"msg_{7:016x}{12345:016x}"


def test_a_version_1_file_is_migrated_and_keeps_its_ids(tmp_path: Path) -> None:
    """Opening a 0.1 file migrates it: its deliveries keep their ids (receivers deduplicate on
    them), work as before, and new deliveries get ids of the new form."""
    db = tmp_path / "old.db"
    old_id = _version_1_file(db)
    with SQLiteStore(db) as store:
        delivery = store.get_delivery(old_id)
        assert delivery is not None
        assert delivery.id == old_id
        (claim,) = store.claim_due(now=T0, limit=10, lease_until=T0 + timedelta(minutes=1))
        assert claim.delivery.id == old_id
        (new,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
        assert len(new.id) == 36
        assert new.id[20] in "89abcdef"  # the current form
        assert old_id[20] in "01234567"
        assert {d.id for d in store.list_deliveries(owner="acme")} == {old_id, new.id}
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    with SQLiteStore(db) as store:  # reopening changes nothing
        assert store.get_delivery(old_id) is not None
        assert store.get_delivery(new.id) is not None


def _attempt(delivery_id: str, number: int, status: int) -> Attempt:
    return Attempt(
        delivery_id=delivery_id,
        number=number,
        started_at=T0 + timedelta(seconds=number),
        duration=0.01,
        status=status,
        error_kind=None if status < 300 else "http",
    )


def test_the_attempt_log_is_found_by_row_after_migrating_a_version_1_file(tmp_path: Path) -> None:
    """A 0.1 file's attempt log is still read by delivery id after the migration to the log
    keyed by the delivery's row, and later attempts join it in order."""
    db = tmp_path / "old.db"
    old_id = _version_1_file(db)
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO attempts VALUES (?, 1, ?, 0.5, 503, 'http', NULL, '')",
        (old_id, (T0 - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)),
    )
    conn.commit()
    conn.close()
    with SQLiteStore(db) as store:
        assert [(old_id, 1, 503)] == [
            (a.delivery_id, a.number, a.status) for a in store.attempts(old_id)
        ]
        (claim,) = store.claim_due(now=T0, limit=10, lease_until=T0 + timedelta(minutes=1))
        store.record(
            [
                Outcome(
                    delivery_id=old_id,
                    token=claim.token,
                    kind=OutcomeKind.DELIVERED,
                    attempt=_attempt(old_id, 2, 204),
                )
            ],
            now=T0,
        )
        assert [a.number for a in store.attempts(old_id)] == [1, 2]


def test_the_attempt_log_is_keyed_by_the_deliverys_row(db: Path) -> None:
    """Attempts are written to and read from an index on the delivery's row (which grows at
    its end), not on the random-looking public id; a file of version 6 gets it on open,
    its attempts keeping their deliveries."""
    with SQLiteStore(db) as store:
        store.add_hook(_hook(1), max_per_owner=None)
        (made,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
        (claim,) = store.claim_due(now=T0, limit=1, lease_until=T0 + timedelta(minutes=1))
        store.record(
            [
                Outcome(
                    delivery_id=made.id,
                    token=claim.token,
                    kind=OutcomeKind.RETRY,
                    attempt=_attempt(made.id, 1, 503),
                    next_attempt_at=T0,
                )
            ],
            now=T0,
        )
    # Back to version 6 by hand: the log indexed by the public id, without the row.
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP INDEX resthooks_attempts_by_seq")
    conn.execute("ALTER TABLE resthooks_attempts DROP COLUMN delivery_seq")
    conn.execute("CREATE INDEX resthooks_attempts_by_delivery ON resthooks_attempts (delivery_id)")
    # (and without version 9's batching and version 8's ordering keys)
    conn.execute("DROP INDEX resthooks_deliveries_open_batches")
    conn.execute("DROP INDEX resthooks_hooks_batched")
    conn.execute("ALTER TABLE resthooks_deliveries DROP COLUMN batch_open")
    conn.execute("ALTER TABLE resthooks_deliveries DROP COLUMN batch_entities")
    conn.execute("ALTER TABLE resthooks_hooks DROP COLUMN batching")
    conn.execute("DROP INDEX resthooks_deliveries_turns")
    conn.execute("ALTER TABLE resthooks_deliveries DROP COLUMN ordering_key")
    conn.execute("PRAGMA user_version = 6")
    conn.close()
    with SQLiteStore(db) as store:
        assert [(made.id, 503)] == [(a.delivery_id, a.status) for a in store.attempts(made.id)]
        conn = store._conn()
        seen: list[str] = []
        conn.set_trace_callback(seen.append)
        store.attempts(made.id)
        conn.set_trace_callback(None)
        (sql,) = [s for s in seen if "resthooks_attempts" in s]
        plan = " / ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "resthooks_attempts_by_seq (delivery_seq=?)" in plan
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "resthooks_attempts_by_delivery" not in indexes


def test_per_host_claims_with_many_hooks_per_host_take_each_hosts_oldest(db: Path) -> None:
    """Behind a saturated host's long backlog, hosts with several hooks each still give their
    oldest due deliveries, oldest due first, at most the host's room; an expired claim is
    due again at its lease's end."""
    with SQLiteStore(db) as store:
        store.add_hook(_hook(1, host="busy.example.com"), max_per_owner=None)
        for i in range(300):
            store.enqueue(
                owner="acme", event="party/created", body=b"{}", now=T0 + timedelta(seconds=i)
            )
        for n in range(2, 8):  # three hooks each on two more hosts
            host = "a.example.com" if n % 2 else "b.example.com"
            store.add_hook(_hook(n, host=host, at=T0 + timedelta(seconds=n)), max_per_owner=None)
        for i in range(4):
            store.enqueue(
                owner="acme",
                event="party/created",
                body=b"{}",
                now=T0 + timedelta(seconds=400 + i),
            )
        now, lease = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
        expired = store.claim_due(now=now, limit=1, lease_until=now + timedelta(seconds=1))
        assert [c.hook.id for c in expired] == ["hook_00001"]
        later = now + timedelta(seconds=2)  # that claim's lease has ended: it is due again
        claims = store.claim_due(now=later, limit=20, lease_until=lease, max_in_flight_per_host=3)
        hosts = [c.hook.target_url.split("/")[2] for c in claims]
        assert [h for h in hosts if h.startswith("busy")] == ["busy.example.com"] * 3
        assert hosts.count("a.example.com") == hosts.count("b.example.com") == 3
        assert expired[0].delivery.id not in [c.delivery.id for c in claims]  # due later
        dues = [c.delivery.next_attempt_at for c in claims if c.hook.id != "hook_00001"]
        assert sorted(dues) == dues  # type: ignore[type-var]
        # Each of a and b got its three oldest: the first emit that reached them, in order.
        for host in ("a.example.com", "b.example.com"):
            got = [c.delivery.next_attempt_at for c in claims if host in c.hook.target_url]
            assert [T0 + timedelta(seconds=400)] * 3 == got


def test_a_version_1_file_is_migrated_and_keeps_its_backlog(db: Path) -> None:
    """A file written with schema version 1 opens at the current version, with the index of
    open deliveries by hook and due time in place of the old one, and nothing lost."""
    from resthooks.stores.sqlite import _MIGRATIONS, APPLICATION_ID  # noqa: PLC0415

    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for statement in _MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with SQLiteStore(db) as store:
        store.add_hook(_hook(1), max_per_owner=None)
        made = store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
    conn = sqlite3.connect(db)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    conn.close()
    assert (version, SCHEMA_VERSION) == (SCHEMA_VERSION, 9)
    assert "resthooks_deliveries_open_by_hook_due" in indexes
    assert "resthooks_deliveries_turns" in indexes  # version 8: ordering keys
    assert "resthooks_deliveries_open_batches" in indexes  # version 9: batching
    assert "resthooks_deliveries_open_by_hook" not in indexes
    with SQLiteStore(db) as store:
        claims = store.claim_due(
            now=T0, limit=5, lease_until=T0 + timedelta(hours=1), max_in_flight_per_host=4
        )
        assert [d.id for d in made] == [c.delivery.id for c in claims]


def test_a_file_of_the_previous_version_gains_the_trace_context_column(db: Path) -> None:
    """A file of a version before trace contexts is migrated on open: its deliveries claim
    with no trace context, new ones keep theirs."""
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    # A file as 0.1 wrote it (later migrations, such as the delivery ids', must run after the
    # trace context's: dropping the column from a current file cannot stand for an old one).
    old_id = _version_1_file(db)
    with SQLiteStore(db) as store:
        (new,) = store.enqueue(
            owner="acme",
            event="party/created",
            body=b"{}",
            now=T0 + timedelta(seconds=1),
            trace_context=traceparent,
        )
        claims = store.claim_due(
            now=T0 + timedelta(seconds=2), limit=10, lease_until=T0 + timedelta(seconds=100)
        )
    assert [(c.delivery.id, c.trace_context) for c in claims] == [
        (old_id, None),
        (new.id, traceparent),
    ]
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()
