"""Maintenance never blocks the outbox: purge in batches, the WAL bounded, space given back,
a full disk survived, and ``check`` finding what is wrong."""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from resthooks import Dispatcher, StoreError, SystemClock
from resthooks.cli import main
from resthooks.lifecycle import DeliveryDelivered
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import FakeClock, RecordingTransport

OWNER = "acme"
EVENT = "party/created"


def final_deliveries(dispatcher: Dispatcher, clock: FakeClock, hooks: int, emits: int) -> int:
    """``hooks * emits`` delivered deliveries, 31 days old."""
    for i in range(hooks):
        dispatcher.subscribe(EVENT, f"https://example.com/{i}", owner=OWNER)
    for i in range(emits):
        dispatcher.emit(EVENT, {"id": i}, owner=OWNER)
    dispatcher.deliver_due(batch_size=1000)
    clock.advance(timedelta(days=31))
    return hooks * emits


@pytest.fixture(name="sqlite_dispatcher")
def _sqlite_dispatcher(tmp_path):
    clock = FakeClock()
    store = SQLiteStore(tmp_path / "hooks.db")
    dispatcher = Dispatcher(
        store, clock=clock, transport=RecordingTransport(), max_hooks_per_owner=None
    )
    yield dispatcher, clock, store
    store.close()


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_purge_works_in_batches_and_reports_progress(tmp_path, store_kind):
    """purge(batch_size=100) deletes 1,050 deliveries in 11 store calls, and says how far it
    got after each; the count is the same as one big purge."""
    clock = FakeClock()
    store = MemoryStore() if store_kind == "memory" else SQLiteStore(tmp_path / "hooks.db")
    dispatcher = Dispatcher(
        store, clock=clock, transport=RecordingTransport(), max_hooks_per_owner=None
    )
    total = final_deliveries(dispatcher, clock, hooks=50, emits=21)
    progress: list[int] = []

    purged = dispatcher.purge(batch_size=100, progress=progress.append)

    assert purged == total == 1050
    assert progress == [*range(100, 1001, 100), 1050]
    assert dispatcher.stats().deliveries["delivered"] == 0
    store.close()


def test_another_writer_gets_in_between_purge_batches(sqlite_dispatcher):
    """Between two batches the write lock is free: another connection's BEGIN IMMEDIATE with
    no busy timeout at all succeeds (one big purge held the lock for 66 s)."""
    dispatcher, clock, store = sqlite_dispatcher
    final_deliveries(dispatcher, clock, hooks=20, emits=10)
    other = sqlite3.connect(store.path, timeout=0, isolation_level=None)
    got_in: list[int] = []

    def write_between(done: int) -> None:
        other.execute("BEGIN IMMEDIATE")
        other.execute("PRAGMA user_version")
        other.execute("COMMIT")
        got_in.append(done)

    dispatcher.purge(batch_size=50, progress=write_between)
    other.close()

    assert got_in == [50, 100, 150, 200]


def test_purge_gives_the_space_back(sqlite_dispatcher):
    """After a large purge the WAL is checkpointed and truncated, and the file's free pages
    go back to the file system (incremental vacuum): the file shrinks."""
    dispatcher, clock, store = sqlite_dispatcher
    final_deliveries(dispatcher, clock, hooks=100, emits=100)
    size_before = os.path.getsize(store.path)

    dispatcher.purge(batch_size=2000)

    wal = Path(store.path + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert os.path.getsize(store.path) < size_before / 2
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] < 100
    conn.close()


def test_the_wal_is_bounded(sqlite_dispatcher):
    """Every connection sets journal_size_limit, so a WAL that grew is cut back at the next
    checkpoint; the store checkpoints after every purge batch."""
    _, _, store = sqlite_dispatcher
    conn = store._conn()  # the store's own connection: the setting is per connection
    assert conn.execute("PRAGMA journal_size_limit").fetchone()[0] == SQLiteStore.WAL_SIZE_LIMIT


def test_vacuum_compacts_an_existing_file(sqlite_dispatcher):
    """SQLiteStore.vacuum() (``resthooks vacuum``) rewrites the file and truncates the WAL:
    space freed behind purge's back (here a hand-made DELETE) goes back too."""
    dispatcher, clock, store = sqlite_dispatcher
    final_deliveries(dispatcher, clock, hooks=50, emits=50)
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("DELETE FROM resthooks_attempts")
    conn.close()
    before = os.path.getsize(store.path) + os.path.getsize(store.path + "-wal")

    report = store.vacuum()

    assert report.size_before == before
    assert report.size_after < before / 4
    assert not os.path.exists(store.path + "-wal") or os.path.getsize(store.path + "-wal") == 0
    assert dispatcher.stats().deliveries["delivered"] == 2500


# -- the command line ------------------------------------------------------------------------


def run_cli(*argv: str, db: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([*argv, "--db", str(db)])
    return status, out.getvalue(), err.getvalue()


def test_purge_on_the_command_line_reports_progress(tmp_path):
    """``resthooks purge`` prints a line per batch on stderr and the total on stdout."""
    db = tmp_path / "cli.db"
    clock = FakeClock()
    with SQLiteStore(db) as store:
        dispatcher = Dispatcher(
            store, clock=clock, transport=RecordingTransport(), max_hooks_per_owner=None
        )
        final_deliveries(dispatcher, clock, hooks=30, emits=10)
        # The command line's clock is the system's: age the rows by hand.
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("UPDATE resthooks_deliveries SET updated_at = 0")
        conn.close()

    status, out, err = run_cli("purge", "--older-than", "1d", "--batch-size", "100", db=db)

    assert status == 0, err
    assert "purged 300 final deliveries" in out
    assert err.splitlines() == [f"purged {n} so far" for n in (100, 200, 300)]


def test_vacuum_on_the_command_line(tmp_path):
    """``resthooks vacuum`` compacts the file and says by how much."""
    db = tmp_path / "cli.db"
    assert run_cli("hooks", "add", EVENT, "https://example.com/h", db=db)[0] == 0

    status, out, err = run_cli("vacuum", db=db)

    assert status == 0, err
    assert out.startswith("vacuumed")


# -- check -------------------------------------------------------------------------------------


def test_check_of_a_healthy_store_finds_nothing(sqlite_dispatcher):
    """check() on a store in use: no problems, and ``resthooks check`` exits 0."""
    dispatcher, clock, store = sqlite_dispatcher
    final_deliveries(dispatcher, clock, hooks=3, emits=3)
    dispatcher.emit(EVENT, {"id": "pending"}, owner=OWNER)

    assert store.check() == []
    status, out, _ = run_cli("check", db=Path(store.path))
    assert (status, out) == (0, "no problems found\n")


@pytest.mark.parametrize(
    ("damage", "kind"),
    [
        ("UPDATE resthooks_deliveries SET due_at = NULL WHERE seq = 1", "pending_without_due_time"),
        ("DELETE FROM resthooks_hooks WHERE rowid = 1", "open_delivery_without_hook"),
        ("UPDATE resthooks_messages SET remaining = remaining + 5", "message_count_mismatch"),
        ("UPDATE resthooks_hooks SET state = 'dead'", "open_delivery_of_dead_hook"),
        ("UPDATE resthooks_deliveries SET state = 'lost' WHERE seq = 1", "unknown_state"),
        (
            "UPDATE resthooks_deliveries SET next_attempt_at = 9223372036854775807",
            "time_out_of_range",
        ),
        (
            "UPDATE resthooks_deliveries SET state = 'in_flight', token = NULL",
            "in_flight_without_claim",
        ),
    ],
)
def test_check_finds_broken_invariants(sqlite_dispatcher, damage, kind):
    """Damage SQLite's own checks cannot see (the rows are well formed, the outbox is not):
    check() names it, and ``resthooks check`` exits 1 listing it."""
    dispatcher, _, store = sqlite_dispatcher
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute(damage)
    conn.close()

    problems = store.check()

    assert kind in {p.kind for p in problems}
    status, out, _ = run_cli("check", db=Path(store.path))
    assert status == 1
    assert kind in out


def test_check_runs_sqlites_integrity_check(tmp_path):
    """A page of the file overwritten with garbage: check() reports what integrity_check
    says (or that the file cannot be read at all), never a crash."""
    path = tmp_path / "hooks.db"
    clock = FakeClock()
    with SQLiteStore(path) as store:
        dispatcher = Dispatcher(
            store, clock=clock, transport=RecordingTransport(), max_hooks_per_owner=None
        )
        final_deliveries(dispatcher, clock, hooks=20, emits=20)
    data = bytearray(path.read_bytes())
    page = 4096
    for start in range(3 * page, len(data), 7 * page):  # some pages, past the schema
        data[start + 100 : start + 900] = b"\xa5" * 800
    path.write_bytes(bytes(data))

    with SQLiteStore(path) as store:
        problems = store.check()

    assert {"integrity"} <= {p.kind for p in problems}


# -- a full disk -------------------------------------------------------------------------------


@pytest.fixture(name="small_disk")
def _small_disk(tmp_path):
    """A 3 MiB tmpfs: needs root and mount(8); skipped (saying so) where that is refused."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a small file system needs root to mount a tmpfs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    """Take all the free space of the file system ``directory`` is on."""
    filler = directory / "filler"
    with filler.open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    return filler


def test_a_full_disk_is_one_store_error_per_call_and_recovers_by_itself(
    small_disk, make_loopback_dispatcher, receiver, caplog
):
    """On a 3 MiB file system filled up: each emit fails with one StoreError saying the disk
    is full, the worker logs one line (not a traceback per try); once space is freed every
    emit succeeds and the worker delivers them all, without a restart."""
    store = SQLiteStore(small_disk / "hooks.db")
    dispatcher = make_loopback_dispatcher(store=store, clock=SystemClock())
    dispatcher.subscribe(EVENT, receiver.url(), owner=OWNER)
    big = {"blob": "x" * 100_000}
    filler = fill(small_disk)
    errors = []
    for _ in range(10):
        try:
            dispatcher.emit(EVENT, big, owner=OWNER)
        except StoreError as exc:
            errors.append(exc)
    assert errors, "the disk never filled"
    assert all("the disk is full; nothing was written" in str(e) for e in errors)

    delivered = threading.Event()
    count: list[int] = []

    def listener(event: object) -> None:
        if isinstance(event, DeliveryDelivered):
            count.append(1)
            if len(count) >= 20:
                delivered.set()

    dispatcher.add_listener(listener)
    stop = threading.Event()
    thread = threading.Thread(
        target=dispatcher.run, kwargs={"stop": stop, "poll_interval": 0.2}, daemon=True
    )
    with caplog.at_level("WARNING", logger="resthooks"):
        thread.start()
        threading.Event().wait(1.0)
        filler.unlink()
        for i in range(20):
            dispatcher.emit(EVENT, {"id": i}, owner=OWNER)
        delivered.wait(30)
        stop.set()
        thread.join(30)

    assert len(count) >= 20
    failures = [r for r in caplog.records if "store failed" in r.getMessage()]
    assert len(failures) <= 1
    assert store.check() == []
    store.close()
