"""Health checks, from Python and from `resthooks health`, against a real worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from resthooks import Dispatcher, ValidationError
from resthooks.health import check_health, read_heartbeat_file, write_heartbeat_file
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import FakeClock, RecordingTransport


def checks(health: object) -> dict[str, bool]:
    return {c.name: c.ok for c in health.checks}  # type: ignore[attr-defined]


def test_a_backlog_older_than_the_limit_is_unhealthy() -> None:
    """The backlog check fails once the oldest due delivery has waited past max_due_age."""
    clock = FakeClock()
    dispatcher = Dispatcher(MemoryStore(), clock=clock)
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    clock.advance(59)
    assert checks(check_health(dispatcher, max_due_age=60)) == {"store": True, "backlog": True}
    clock.advance(2)
    health = check_health(dispatcher, max_due_age=timedelta(minutes=1))
    assert not health.ok
    assert checks(health) == {"store": True, "backlog": False}
    assert health.checks[1].value == 61


def test_a_retry_not_yet_due_is_not_a_backlog() -> None:
    """A delivery waiting for its retry is not due: the backlog stays healthy meanwhile."""
    clock = FakeClock()
    dispatcher = Dispatcher(MemoryStore(), clock=clock, transport=RecordingTransport(default=500))
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    dispatcher.deliver_due()  # fails: the next attempt is due in 5 s, then 1 min...
    clock.advance(4)
    assert check_health(dispatcher, max_due_age=1).ok


def test_an_unreadable_store_is_unhealthy(tmp_path: Path) -> None:
    """A closed (unreachable) store fails the store and backlog checks; nothing raises."""
    store = SQLiteStore(tmp_path / "hooks.db")
    dispatcher = Dispatcher(store)
    store.close()
    health = check_health(dispatcher)
    assert checks(health) == {"store": False, "backlog": False}
    assert "closed" in health.checks[0].detail


def test_the_heartbeat_of_a_running_worker() -> None:
    """A running worker's heartbeat passes; after it stopped, the worker check fails."""
    dispatcher = Dispatcher(MemoryStore(), transport=RecordingTransport())
    worker = dispatcher.worker(workers=1, poll_interval=0.05)
    assert not checks(check_health(dispatcher, worker=worker))["worker"]
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while worker.heartbeat is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert check_health(dispatcher, worker=worker, max_heartbeat_age=5).ok
    finally:
        stop.set()
        thread.join(timeout=30)
    assert worker.heartbeat is None
    health = check_health(dispatcher, worker=worker)
    assert checks(health) == {"store": True, "backlog": True, "worker": False}
    assert health.checks[2].detail == "not running"


def test_a_stale_heartbeat_file_is_unhealthy(tmp_path: Path) -> None:
    """A heartbeat older than max_heartbeat_age fails; a missing file fails and says so."""
    clock = FakeClock()
    dispatcher = Dispatcher(MemoryStore(), clock=clock)
    path = tmp_path / "beat.json"
    write_heartbeat_file(path, clock.now())
    clock.advance(30)
    assert check_health(dispatcher, heartbeat_file=path, max_heartbeat_age=31).ok
    assert not check_health(dispatcher, heartbeat_file=path, max_heartbeat_age=29).ok
    missing = check_health(dispatcher, heartbeat_file=tmp_path / "none.json")
    assert "does not exist" in missing.checks[2].detail


@pytest.mark.parametrize(
    "bad", [0, -1, float("nan"), float("inf"), "60", True, None, timedelta(seconds=-1)]
)
def test_bad_limits_are_refused(bad: object) -> None:
    """A limit that is not a positive number of seconds is a ValidationError naming it."""
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
    with pytest.raises(ValidationError, match="max_due_age"):
        check_health(dispatcher, max_due_age=bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="max_heartbeat_age"):
        check_health(dispatcher, max_heartbeat_age=bad)  # type: ignore[arg-type]


def test_a_file_that_is_not_a_heartbeat_is_refused(tmp_path: Path) -> None:
    """read_heartbeat_file names the field for garbage, NUL bytes or a missing key."""
    path = tmp_path / "beat.json"
    for text in ("not json", '{"other": 1}', '{"heartbeat": "\\u0000"}', "[]"):
        path.write_text(text)
        with pytest.raises(ValidationError, match="heartbeat_file"):
            read_heartbeat_file(path)


# -- the command line ------------------------------------------------------------------------


def resthooks(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resthooks", *args],
        env={**os.environ, "RESTHOOKS_DB": str(db)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_resthooks_health_follows_a_real_worker(tmp_path: Path) -> None:
    """`resthooks health --heartbeat-file` exits 0 while `resthooks worker --heartbeat-file`
    runs, 1 once it stopped; --json says which check failed."""
    db = tmp_path / "hooks.db"
    beat = tmp_path / "beat.json"
    SQLiteStore(db).close()
    worker = subprocess.Popen(
        [sys.executable, "-m", "resthooks", "worker", "--heartbeat-file", str(beat)],
        env={**os.environ, "RESTHOOKS_DB": str(db)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        done = resthooks("health", "--heartbeat-file", str(beat), db=db)
        while done.returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            done = resthooks("health", "--heartbeat-file", str(beat), db=db)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines()[-1] == "healthy"
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    done = resthooks("health", "--heartbeat-file", str(beat), "--json", db=db)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert report["checks"]["worker"] == {"ok": False, "detail": "not running", "value": None}
    assert report["checks"]["store"]["ok"] is True


def test_resthooks_health_without_a_database_is_unhealthy(tmp_path: Path) -> None:
    """No database file: exit 1 (unhealthy), not 2, and nothing is created."""
    db = tmp_path / "missing.db"
    done = resthooks("health", "--json", db=db)
    assert done.returncode == 1
    assert json.loads(done.stdout)["checks"]["store"]["ok"] is False
    assert not db.exists()


def test_resthooks_health_refuses_a_bad_age(tmp_path: Path) -> None:
    """A malformed or zero --max-due-age is bad input: exit 2, one line naming the field."""
    db = tmp_path / "hooks.db"
    SQLiteStore(db).close()
    for bad in ("soon", "0s", "5 years", "-5m", "\u00e9"):
        done = resthooks("health", f"--max-due-age={bad}", db=db)
        assert done.returncode == 2, bad
        assert "max_due_age" in done.stderr
        assert len(done.stderr.splitlines()) == 1


def test_the_heartbeat_of_the_async_worker() -> None:
    """The asyncio worker keeps the same heartbeat: healthy while it runs, not after."""
    import asyncio  # noqa: PLC0415

    from resthooks.aio import AsyncDispatcher  # noqa: PLC0415
    from resthooks.testing import AsyncRecordingTransport  # noqa: PLC0415

    dispatcher = Dispatcher(MemoryStore())
    worker = AsyncDispatcher(dispatcher, transport=AsyncRecordingTransport()).worker(
        concurrency=2, poll_interval=0.05
    )

    async def main() -> tuple[bool, bool]:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        for _ in range(500):
            if worker.heartbeat is not None:
                break
            await asyncio.sleep(0.01)
        running = check_health(dispatcher, worker=worker, max_heartbeat_age=5).ok
        stop.set()
        await task
        return running, check_health(dispatcher, worker=worker).ok

    assert asyncio.run(main()) == (True, False)
