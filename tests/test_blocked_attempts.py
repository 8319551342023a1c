"""An attempt the network policy refuses is loud: a WARNING log line with the reason and
the way to allow a network on purpose, and a count in ``stats``. The scene of the bug
report: a web app that allows a loopback receiver, and a worker built with the defaults."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from resthooks import Dispatcher
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import LOOPBACK_POLICY, FakeClock, HookReceiver


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[HookReceiver]:
    with HookReceiver() as receiver:
        yield receiver


def test_a_blocked_attempt_is_a_warning_with_the_reason_and_the_way_out(
    receiver: HookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker's Dispatcher (default policy) refuses the loopback hook the web app's
    allowed: one WARNING naming the reason and allow_networks, without the query string."""
    store = MemoryStore()
    web = Dispatcher(store, network_policy=LOOPBACK_POLICY, clock=FakeClock())
    worker = Dispatcher(store, clock=web.clock)
    web.subscribe("party/created", receiver.url("/hook?token=s3cret"), owner="acme")
    web.emit("party/created", {"id": 1}, owner="acme")
    with caplog.at_level(logging.WARNING, logger="resthooks"):
        summary = worker.deliver_due()
    assert summary.retried == 1
    assert receiver.received() == []
    [record] = [r for r in caplog.records if r.name == "resthooks"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "refused by the network policy" in message
    assert "loopback" in message
    assert "NetworkPolicy(allow_networks=[...])" in message
    assert record.error_kind == "blocked"  # type: ignore[attr-defined]
    assert "s3cret" not in message
    assert "token" not in message
    assert worker.stats(owner="acme").blocked == 1


def test_without_logging_configured_a_blocked_attempt_still_reaches_stderr(
    tmp_path: Path, receiver: HookReceiver
) -> None:
    """A worker script that never configured logging (the docs' old recipe) prints the
    refusal anyway: a WARNING goes to Python's last-resort handler, an INFO would not."""
    db = tmp_path / "hooks.db"
    store = SQLiteStore(db)
    web = Dispatcher(store, network_policy=LOOPBACK_POLICY)
    web.subscribe("party/created", receiver.url("/hook"), owner="acme")
    web.emit("party/created", {"id": 1}, owner="acme")
    store.close()
    script = textwrap.dedent(
        f"""
        from resthooks import Dispatcher
        from resthooks.stores import SQLiteStore

        print(Dispatcher(SQLiteStore({str(db)!r})).deliver_due().retried)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    assert "refused by the network policy" in done.stderr
    assert "allow_networks" in done.stderr
