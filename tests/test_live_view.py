"""The live views of `resthooks worker` and `resthooks stats --watch`, driven in a real
pseudo-terminal, and their plain form when not on a terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from io import StringIO
from pathlib import Path

import attrs
import pytest

from resthooks import Attempt, Dispatcher, Hook, OutcomeKind
from resthooks._live import RATE_WINDOW, WorkerView
from resthooks.lifecycle import AttemptFinished
from resthooks.observability import OutboxMonitor
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import LOOPBACK_POLICY, FakeClock, HookReceiver

LOOPBACK = "127.0.0.0/8"
AT = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[HookReceiver]:
    with HookReceiver() as receiver:
        yield receiver


class Terminal:
    """A command running on a pseudo-terminal; what it drew so far."""

    def __init__(self, args: list[str], db: Path) -> None:
        primary, secondary = pty.openpty()
        self.primary = primary
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "resthooks", *args],
            env={**os.environ, "RESTHOOKS_DB": str(db), "COLUMNS": "160"},
            stdin=secondary,
            stdout=secondary,
            stderr=subprocess.PIPE,
        )
        os.close(secondary)
        self.screen = b""

    def read_until(self, done: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while not done(self.text) and time.monotonic() < deadline:
            if not self._read():
                break
        assert done(self.text), self.text[-3000:]
        return self.text

    def _read(self) -> bool:
        """Read what is there; False once the command closed its terminal."""
        ready, _, _ = select.select([self.primary], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(self.primary, 65536)
            except OSError:  # the other side closed
                return False
            if not chunk:
                return False
            self.screen += chunk
        return True

    @property
    def text(self) -> str:
        return self.screen.decode(errors="replace")

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline and self._read():
                pass
        finally:
            _, err = self.proc.communicate(timeout=60)
            os.close(self.primary)
        assert self.proc.returncode == 0, err
        return self.text


def seed(db: Path, receiver: HookReceiver) -> None:
    store = SQLiteStore(db)
    dispatcher = Dispatcher(store, network_policy=LOOPBACK_POLICY)
    receiver.subscribe(dispatcher, "party/created", owner="acme", path="/ok")
    receiver.subscribe(dispatcher, "party/created", owner="acme", path="/broken")
    dead = receiver.subscribe(dispatcher, "party/created", owner="globex", path="/dead")
    store.mark_dead(dead.id, reason="tests", now=dispatcher.clock.now())
    receiver.answer(500, path="/broken")
    for i in range(3):
        dispatcher.emit("party/created", {"id": i}, owner="acme")
    store.close()


@pytest.mark.parametrize("args", [(), ("--concurrency", "8")], ids=["threads", "asyncio"])
def test_the_worker_redraws_its_view_in_place(
    tmp_path: Path, receiver: HookReceiver, args: tuple[str, ...]
) -> None:
    """On a terminal, `resthooks worker` (threads or asyncio) redraws one block in place: the
    current rate, in flight, due, retrying, dead hooks and the last errors; no line per
    attempt."""
    db = tmp_path / "hooks.db"
    seed(db, receiver)
    terminal = Terminal(["worker", "--allow-network", LOOPBACK, *args], db)
    try:
        text = terminal.read_until(
            lambda t: "HTTP 500" in t and "3 retrying" in t and t.count("\x1b[J") >= 3
        )
    finally:
        text = terminal.stop()
    # The block is redrawn: the cursor goes back up to its first line, every line is cleared.
    assert re.search(r"\x1b\[\d+F", text)
    last = text[text.rindex("resthooks worker on") :]
    assert "attempts/s" in last
    assert f"(last {RATE_WINDOW:.0f} s)" in last
    assert "3 delivered  3 retried" in last
    assert re.search(r"\d+ due  \d+ in flight  3 retrying", last)
    assert "1 dead" in last
    assert "last errors" in last
    assert "HTTP 500  retry at" in last
    assert "attempt 1  HTTP 204" not in text  # the plain per-attempt lines are not shown
    assert "worker stopped (asked to)" in text


def test_off_a_terminal_the_worker_prints_a_line_per_attempt(
    tmp_path: Path, receiver: HookReceiver
) -> None:
    """Through a pipe, `resthooks worker --once` prints plain lines, no escape sequences."""
    db = tmp_path / "hooks.db"
    seed(db, receiver)
    done = subprocess.run(
        [sys.executable, "-m", "resthooks", "worker", "--once", "--allow-network", LOOPBACK],
        env={**os.environ, "RESTHOOKS_DB": str(db)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    lines = done.stdout.splitlines()
    assert sum("HTTP 204  delivered" in line for line in lines) == 3
    assert sum("HTTP 500  retrying" in line for line in lines) == 3


def test_stats_watch_redraws_on_a_terminal(tmp_path: Path, receiver: HookReceiver) -> None:
    """`resthooks stats --watch` on a terminal redraws the figures in place until SIGTERM."""
    db = tmp_path / "hooks.db"
    seed(db, receiver)
    terminal = Terminal(["stats", "--watch", "--interval", "0.2"], db)
    try:
        terminal.read_until(lambda t: t.count("resthooks stats at") >= 3)
    finally:
        text = terminal.stop()
    assert re.search(r"\x1b\[\d+F", text)
    # (the column is as wide as the longest state name, "unconfirmed" among the hooks')
    assert re.search(r"deliveries +pending +6", text)
    assert "due now: 6, retrying: 0, in flight: 0" in text


def test_stats_watch_prints_json_lines_through_a_pipe(
    tmp_path: Path, receiver: HookReceiver
) -> None:
    """With --json and no terminal, each round is one JSON object per line."""
    db = tmp_path / "hooks.db"
    seed(db, receiver)
    proc = subprocess.Popen(
        [sys.executable, "-m", "resthooks", "stats", "--watch", "--json", "--interval", "0.1"],
        env={**os.environ, "RESTHOOKS_DB": str(db)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        rounds = [json.loads(proc.stdout.readline()) for _ in range(3)]
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    for data in rounds:
        assert data["outbox"]["due"] == 6
        assert data["hooks"] == {"active": 2, "dead": 1, "unconfirmed": 0}
    assert all(line.startswith("{") for line in rest.splitlines())


def test_stats_watch_refuses_a_bad_interval(tmp_path: Path, receiver: HookReceiver) -> None:
    """An interval below 0.1 s (or absurdly long) is bad input: exit 2."""
    db = tmp_path / "hooks.db"
    seed(db, receiver)
    for bad in ("0", "-1", "1e9", "nan"):
        done = subprocess.run(
            [sys.executable, "-m", "resthooks", "stats", "--watch", f"--interval={bad}"],
            env={**os.environ, "RESTHOOKS_DB": str(db)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, bad
        assert "interval" in done.stderr


# -- the rate is the current one -------------------------------------------------------------


def finished(status: int) -> AttemptFinished:
    hook = Hook(
        id="hook_1",
        owner="acme",
        event="party/created",
        target_url="https://user:pw@example.com/h?token=s3cret",
        created_at=AT,
        updated_at=AT,
    )
    ok = status < 300
    attempt = Attempt(
        delivery_id="msg_1",
        number=1,
        started_at=AT,
        duration=0.01,
        status=status,
        error_kind=None if ok else "http",
        error=None if ok else f"HTTP {status}",
    )
    kind = OutcomeKind.DELIVERED if ok else OutcomeKind.RETRY
    return AttemptFinished(
        hook=hook,
        delivery_id="msg_1",
        attempt=attempt,
        outcome=kind,
        next_attempt_at=None if ok else AT,
    )


def test_the_rate_is_the_current_one_not_the_average_since_start() -> None:
    """100 attempts in the first second, then silence: 30 s later the rate is 0, where the
    average since start would still be over 3 per second."""
    now = [0.0]
    view = WorkerView(
        OutboxMonitor(MemoryStore(), clock=FakeClock()),
        StringIO(),
        live=True,
        monotonic=lambda: now[0],
    )
    for i in range(100):
        now[0] = i / 100
        view(finished(204))
    now[0] = 1.0
    assert view.rates() == (100.0, 100.0)
    now[0] = 5.0
    assert view.rates() == (20.0, 20.0)  # the window is the 5 s since start
    now[0] = 31.0
    assert view.rates() == (0.0, 0.0)
    assert "0.0 attempts/s" in view.lines()[1]


def test_the_last_errors_show_no_secret() -> None:
    """The last errors name the host, never the URL's credentials or query string."""
    view = WorkerView(OutboxMonitor(MemoryStore(), clock=FakeClock()), StringIO(), live=True)
    view(finished(503))
    text = "\n".join(view.lines())
    assert "example.com  attempt 1  HTTP 503" in text
    for secret in ("pw", "s3cret", "token"):
        assert secret not in text


def test_the_live_view_counts_blocked_attempts_and_says_what_to_do() -> None:
    """Attempts the network policy refused get a line of their own, with the way out."""
    view = WorkerView(
        OutboxMonitor(MemoryStore(), clock=FakeClock()),
        StringIO(),
        live=True,
        blocked_hint="allow it with --allow-network CIDR",
    )
    view(finished(503))
    assert not any(line.startswith("blocked") for line in view.lines())
    event = finished(503)
    blocked = attrs.evolve(
        event,
        attempt=attrs.evolve(
            event.attempt,
            status=None,
            error_kind="blocked",
            error="example.com resolves to 10.0.0.1, which is private",
        ),
    )
    view(blocked)
    view(blocked)
    [line] = [line for line in view.lines() if line.startswith("blocked")]
    expected = "2 attempts refused by the network policy: allow it with --allow-network CIDR"
    assert expected in line
