"""The ``resthooks`` command, used as a user would: subprocesses on a temporary database,
deliveries to a real receiver on loopback."""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

import resthooks
from resthooks import Dispatcher, HookState
from resthooks.stores import SQLiteStore
from resthooks.testing import LOOPBACK_POLICY, FakeClock

LOOPBACK = "127.0.0.0/8"
ARGS_NET = ("--allow-network", LOOPBACK)


class Run:
    """``python -m resthooks ...`` against one database."""

    def __init__(self, db: Path) -> None:
        self.db = db

    def __call__(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        environ = {**os.environ, "RESTHOOKS_DB": str(self.db), **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "resthooks", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=environ,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = self(*args, stdin=stdin)
        assert done.returncode == 0, done.stderr
        return done

    def json(self, *args: str, stdin: str | None = None) -> object:
        return json.loads(self.ok(*args, "--json", stdin=stdin).stdout)


@pytest.fixture(name="run")
def _run(tmp_path: Path) -> Run:
    return Run(tmp_path / "hooks.db")


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1")
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def dump(db: Path) -> list[str]:
    """Every row of the database, to compare before and after a refused command."""
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


def add_hook(run: Run, url: str, *, event: str = "party/created", owner: str = "acme") -> dict:
    hook = run.json(
        "hooks",
        "add",
        event,
        url,
        "--owner",
        owner,
        "--description",
        "test hook",
        "--allow-network",
        LOOPBACK,
    )
    assert isinstance(hook, dict)
    return hook


def seed(db: Path, hooks: list[tuple[str, str, str]], emits: list[tuple[str, str]]) -> None:
    """Set a database up through the library (faster than a subprocess per step)."""
    store = SQLiteStore(db)
    dispatcher = Dispatcher(store, network_policy=LOOPBACK_POLICY)
    for event, url, owner in hooks:
        dispatcher.subscribe(event, url, owner=owner)
    for event, owner in emits:
        dispatcher.emit(event, {}, owner=owner)
    store.close()


# -- the demo ------------------------------------------------------------------------------------


def test_demo_exits_zero_with_every_check_passed() -> None:
    """`resthooks demo` plays the contract and exits 0: every outcome is the predicted one."""
    done = subprocess.run(
        [sys.executable, "-m", "resthooks", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checks passed: every outcome is the one the contract predicts" in done.stdout
    assert "FAIL" not in done.stdout
    for expected in ("HTTP 410: gone, hook removed", "failed for good, hook dead", "removed (410)"):
        assert expected in done.stdout


def test_demo_json_reports_the_same_outcomes_and_leaves_no_file(tmp_path: Path) -> None:
    """`resthooks demo --json` reports every check passed and writes nothing where it runs."""
    done = subprocess.run(
        [sys.executable, "-m", "resthooks", "demo", "--json", "--speed", "1200"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert all(check["ok"] for check in report["checks"])
    states = {hook["name"]: hook["state"] for hook in report["hooks"]}
    assert states == {
        "healthy": "active",
        "flaky": "active",
        "gone": "removed (410)",
        "broken": "dead",
        "ordered": "active",
        "batched": "active",
    }
    assert any(c["check"].startswith("ordered: ") and c["ok"] for c in report["checks"])
    assert any(c["check"].startswith("batched: ") and c["ok"] for c in report["checks"])
    assert report["requests"] == report["signatures_verified"] > 0
    assert list(tmp_path.iterdir()) == []


# -- a session -----------------------------------------------------------------------------------


def test_session_subscribe_emit_deliver_inspect(run: Run, receiver: HTTPServer) -> None:
    """hooks add, emit and worker --once deliver a signed request; deliveries show logs it."""
    receiver.expect_request("/hook", method="POST").respond_with_data("thanks", status=200)
    hook = add_hook(run, receiver.url_for("/hook"))
    assert hook["secret"].startswith("whsec_")

    emitted = run.json(
        "emit",
        "party/created",
        "--owner",
        "acme",
        "--payload",
        '{"id": 11587, "firstName": "Scott"}',
    )
    assert isinstance(emitted, dict)
    [queued] = emitted["deliveries"]
    assert (queued["hook_id"], queued["state"]) == (hook["id"], "pending")

    worker = run("worker", "--once", "--allow-network", LOOPBACK)
    assert worker.returncode == 0, worker.stderr
    assert queued["id"] in worker.stdout  # one plain log line per attempt, not a live line

    [(request, _)] = receiver.log
    assert (
        request.get_data()
    ) == b'{"event":"party/created","payload":[{"id":11587,"firstName":"Scott"}]}'
    resthooks.verify(request.get_data(), dict(request.headers), hook["secret"])

    shown = run.json("deliveries", "show", queued["id"])
    assert isinstance(shown, dict)
    assert (shown["state"], shown["attempts"]) == ("delivered", 1)
    [attempt] = shown["attempt_log"]
    assert (attempt["number"], attempt["status"], attempt["response_excerpt"]) == (1, 200, "thanks")
    human = run.ok("deliveries", "show", queued["id"]).stdout
    assert "HTTP 200" in human
    assert "thanks" in human


def test_emit_payload_from_a_file_and_from_stdin(
    run: Run, receiver: HTTPServer, tmp_path: Path
) -> None:
    """--payload @file.json and --payload - read the same JSON as --payload TEXT."""
    add_hook(run, receiver.url_for("/hook"))
    payload = tmp_path / "party.json"
    payload.write_text('[{"id": 1}, {"id": 2}]', encoding="utf-8")
    from_file = run.json("emit", "party/created", "--owner", "acme", "--payload", f"@{payload}")
    from_stdin = run.json(
        "emit", "party/created", "--owner", "acme", "--payload", "-", stdin='{"id": 3}'
    )
    assert isinstance(from_file, dict)
    assert isinstance(from_stdin, dict)
    assert len(from_file["deliveries"]) == len(from_stdin["deliveries"]) == 1


def test_owner_defaults_to_default(run: Run, receiver: HTTPServer) -> None:
    """Without --owner, hooks add and emit act for the owner 'default'."""
    hook = run.json(
        "hooks", "add", "party/created", receiver.url_for("/hook"), "--allow-network", LOOPBACK
    )
    assert isinstance(hook, dict)
    assert hook["owner"] == "default"
    emitted = run.json("emit", "party/created", "--payload", "{}")
    assert isinstance(emitted, dict)
    assert [hook["id"]] == [d["hook_id"] for d in emitted["deliveries"]]
    other = run.json("emit", "party/created", "--owner", "acme", "--payload", "{}")
    assert isinstance(other, dict)
    assert other["deliveries"] == []


def test_adding_the_same_hook_again_returns_it_without_its_secret(run: Run) -> None:
    """hooks add of an existing (owner, event, URL) gives that hook back, without its secret."""
    first = run.json("hooks", "add", "party/created", "https://example.com/h")
    again = run.json("hooks", "add", "party/created", "https://example.com/h")
    assert isinstance(first, dict)
    assert isinstance(again, dict)
    assert (first["id"], first["created"], again["created"]) == (again["id"], True, False)
    assert first["secret"].startswith("whsec_")
    assert "secret" not in again


def test_db_option_before_or_after_the_command(tmp_path: Path) -> None:
    """--db works before or after the subcommand and wins over RESTHOOKS_DB."""
    run = Run(tmp_path / "env.db")
    chosen = tmp_path / "chosen.db"
    run.ok("hooks", "add", "party/created", "https://example.com/a", "--db", str(chosen))
    run.ok("--db", str(chosen), "hooks", "add", "party/updated", "https://example.com/b")
    assert not run.db.exists()
    listed = run.json("hooks", "list", "--db", str(chosen))
    assert isinstance(listed, list)
    assert [h["event"] for h in listed] == ["party/created", "party/updated"]


def test_hooks_list_show_remove(run: Run, receiver: HTTPServer) -> None:
    """hooks list sees every owner; show finds one hook; remove deletes it and its pending work."""
    a = add_hook(run, receiver.url_for("/a"), owner="acme")
    b = add_hook(run, receiver.url_for("/b"), owner="globex")
    everyone = run.json("hooks", "list")
    assert isinstance(everyone, list)
    assert [a["id"], b["id"]] == [h["id"] for h in everyone]
    only = run.json("hooks", "list", "--owner", "globex")
    assert isinstance(only, list)
    assert [b["id"]] == [h["id"] for h in only]
    shown = run.json("hooks", "show", a["id"])
    assert isinstance(shown, dict)
    assert "secret" not in shown
    assert shown["target_url"] == receiver.url_for("/a")

    seed(run.db, [], [("party/created", "globex")])
    removed = run.json("hooks", "remove", b["id"])
    assert removed == {"removed": b["id"], "owner": "globex"}
    [delivery] = run.json("deliveries", "list", "--hook", b["id"])  # type: ignore[misc]
    assert delivery["state"] == "cancelled"
    left = run.json("hooks", "list")
    assert isinstance(left, list)
    assert [a["id"]] == [h["id"] for h in left]


def test_a_dead_hook_revived_and_its_delivery_redelivered(run: Run, receiver: HTTPServer) -> None:
    """A hook killed by failures is listed as dead, revived, and its failed delivery resent."""
    hook = add_hook(run, receiver.url_for("/flaky"))
    run.ok("emit", "party/created", "--owner", "acme", "--payload", '{"id": 7}')
    # Play the 36-minute schedule on a fake clock against the real receiver and file.
    receiver.expect_request("/flaky").respond_with_data("down", status=500)
    store = SQLiteStore(run.db)
    clock = FakeClock(datetime.now(timezone.utc))
    dispatcher = Dispatcher(store, clock=clock, network_policy=LOOPBACK_POLICY)
    for _ in range(6):
        dispatcher.deliver_due()
        clock.advance(timedelta(minutes=16))
    store.close()
    dead = run.json("hooks", "list", "--state", "dead")
    assert isinstance(dead, list)
    assert [(hook["id"], "dead")] == [(h["id"], h["state"]) for h in dead]
    [failed] = run.json("deliveries", "list", "--state", "failed")  # type: ignore[misc]
    assert failed["attempts"] == 6

    revived = run.json("hooks", "revive", hook["id"])
    assert isinstance(revived, dict)
    assert revived["state"] == HookState.ACTIVE.value
    queued = run.json("deliveries", "redeliver", failed["id"])
    assert isinstance(queued, dict)
    assert (queued["id"], queued["state"], queued["attempts"]) == (failed["id"], "pending", 0)

    receiver.clear()
    receiver.expect_request("/flaky").respond_with_data("ok", status=200)
    run.ok("worker", "--once", "--allow-network", LOOPBACK)
    shown = run.json("deliveries", "show", failed["id"])
    assert isinstance(shown, dict)
    assert (shown["state"], shown["attempts"]) == ("delivered", 1)


def test_stats_and_purge(run: Run, receiver: HTTPServer) -> None:
    """stats counts hooks and deliveries by state; purge deletes final deliveries past an age."""
    receiver.expect_request("/hook").respond_with_data("", status=204)
    seed(
        run.db,
        [("party/created", receiver.url_for("/hook"), "acme")],
        [("party/created", "acme")] * 3,
    )
    before = run.json("stats")
    assert isinstance(before, dict)
    assert (before["hooks"]["active"], before["deliveries"]["pending"]) == (1, 3)
    run.ok("worker", "--once", "--allow-network", LOOPBACK)
    after = run.json("stats")
    assert isinstance(after, dict)
    assert (after["deliveries"]["pending"], after["deliveries"]["delivered"]) == (0, 3)

    kept = run.json("purge", "--older-than", "30d")
    assert isinstance(kept, dict)
    assert kept["purged"] == 0
    time.sleep(0.05)
    purged = run.json("purge", "--older-than", "0s")
    assert isinstance(purged, dict)
    assert purged["purged"] == 3
    assert run.json("deliveries", "list") == []


def test_worker_on_a_terminal_keeps_one_status_block(run: Run, receiver: HTTPServer) -> None:
    """On a terminal, the worker redraws one block instead of printing a line per attempt
    (tests/test_live_view.py drives the live view further)."""
    receiver.expect_request("/hook").respond_with_data("", status=204)
    seed(
        run.db, [("party/created", receiver.url_for("/hook"), "acme")], [("party/created", "acme")]
    )
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "resthooks", "worker", "--once", "--allow-network", LOOPBACK],
        env={**os.environ, "RESTHOOKS_DB": str(run.db)},
        stdout=secondary,
        stderr=subprocess.PIPE,
    )
    os.close(secondary)
    screen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closed: the worker exited
            break
        if not chunk:
            break
        screen += chunk
    os.close(primary)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    text = screen.decode()
    assert "since start 1 delivered  0 retried  0 failed  0 gone  (1 attempts)" in text
    assert "attempt 1" not in text  # no per-attempt log lines on a terminal
    assert "worker stopped (nothing left due): 1 delivered" in text


def test_worker_stops_cleanly_on_sigterm(run: Run, receiver: HTTPServer) -> None:
    """`resthooks worker` runs until SIGTERM, then exits 0 with nothing left in flight."""
    receiver.expect_request("/hook").respond_with_data("", status=204)
    add_hook(run, receiver.url_for("/hook"))
    run.ok("emit", "party/created", "--owner", "acme", "--payload", "{}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "resthooks", "worker", "--allow-network", LOOPBACK],
        env={**os.environ, "RESTHOOKS_DB": str(run.db)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not receiver.log and time.monotonic() < deadline:
            time.sleep(0.02)
        assert receiver.log, "the worker delivered nothing"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    stats = run.json("stats")
    assert isinstance(stats, dict)
    assert (stats["deliveries"]["in_flight"], stats["deliveries"]["delivered"]) == (0, 1)


def test_worker_with_concurrency_runs_the_async_worker(run: Run, receiver: HTTPServer) -> None:
    """`worker --concurrency N --once` delivers on the asyncio worker (its default transport)."""
    receiver.expect_request("/hook").respond_with_data("", status=204)
    add_hook(run, receiver.url_for("/hook"))
    for n in range(5):
        run.ok("emit", "party/created", "--owner", "acme", "--payload", f'{{"id": {n}}}')

    # The worker's own log says which worker ran: shown by a logging setup of the caller's.
    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO); "
        "from resthooks.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *("worker", "--once", "--concurrency", "64"), *ARGS_NET],
        env={**os.environ, "RESTHOOKS_DB": str(run.db)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "async worker started: 64 in flight at most" in done.stderr
    assert "worker stopped (nothing left due): 5 delivered" in done.stdout
    assert len(receiver.log) == 5


def test_worker_with_concurrency_without_the_extra_says_what_to_install(
    run: Run, receiver: HTTPServer
) -> None:
    """Without httptools (the async transport's parser), `worker --concurrency N` exits 1
    naming the extra to install, rather than falling back to threads: nothing is sent."""
    add_hook(run, receiver.url_for("/hook"))
    run.ok("emit", "party/created", "--owner", "acme", "--payload", "{}")
    code = (
        "import sys; sys.modules['httptools'] = None\n"  # what an interpreter without it sees
        "from resthooks.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *("worker", "--once", "--concurrency", "8"), *ARGS_NET],
        env={**os.environ, "RESTHOOKS_DB": str(run.db)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 1, done.stderr
    assert "pip install 'resthooks[async]'" in done.stderr + done.stdout
    assert receiver.log == []


def test_async_worker_stops_cleanly_on_sigterm(run: Run, receiver: HTTPServer) -> None:
    """`resthooks worker --concurrency N` runs until SIGTERM, then exits 0, nothing in flight."""
    receiver.expect_request("/hook").respond_with_data("", status=204)
    add_hook(run, receiver.url_for("/hook"))
    run.ok("emit", "party/created", "--owner", "acme", "--payload", "{}")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "resthooks",
            "worker",
            "--concurrency",
            "256",
            "--allow-network",
            LOOPBACK,
        ],
        env={**os.environ, "RESTHOOKS_DB": str(run.db)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not receiver.log and time.monotonic() < deadline:
            time.sleep(0.02)
        assert receiver.log, "the async worker delivered nothing"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "worker stopped (asked to): 1 delivered" in out
    stats = run.json("stats")
    assert isinstance(stats, dict)
    assert (stats["deliveries"]["in_flight"], stats["deliveries"]["delivered"]) == (0, 1)


# -- the same data for humans and machines ---------------------------------------------------------


def test_json_and_text_show_the_same_rows(run: Run, receiver: HTTPServer) -> None:
    """Every row of the JSON output of the list commands appears in the text output."""
    seed(
        run.db,
        [
            ("party/created", receiver.url_for("/hook"), "acme"),
            ("task/completed", receiver.url_for("/other"), "globex"),
        ],
        [("party/created", "acme")] * 2,
    )

    hooks = run.json("hooks", "list")
    text = run.ok("hooks", "list").stdout.splitlines()
    assert isinstance(hooks, list)
    assert len(text) == len(hooks) + 1  # a header line, then one line per hook
    for line, hook in zip(text[1:], hooks, strict=True):
        assert line.split()[:4] == [hook["id"], hook["owner"], hook["event"], hook["state"]]

    deliveries = run.json("deliveries", "list")
    text = run.ok("deliveries", "list").stdout.splitlines()
    assert isinstance(deliveries, list)
    assert len(text) == len(deliveries) + 1
    for line, delivery in zip(text[1:], deliveries, strict=True):
        assert line.split()[:6] == [
            delivery["id"],
            delivery["hook_id"],
            delivery["owner"],
            delivery["event"],
            delivery["state"],
            str(delivery["attempts"]),
        ]

    stats = run.json("stats")
    text = run.ok("stats").stdout
    assert isinstance(stats, dict)
    for what in ("hooks", "deliveries"):
        for state, count in stats[what].items():
            assert f"{what} {state} {count}" in " ".join(text.split())


# -- bad input -------------------------------------------------------------------------------------


BAD_INPUT = [
    pytest.param(
        ["hooks", "add", "party/exploded", "http://127.0.0.1:9/h"], "event", id="unknown-event"
    ),
    pytest.param(
        ["hooks", "add", "party/created", "ftp://example.com/h"], "target_url", id="bad-url"
    ),
    pytest.param(["hooks", "add", "party/created", "not a url"], "target_url", id="not-a-url"),
    pytest.param(["emit", "party/created", "--payload", "{nope"], "payload", id="bad-json"),
    pytest.param(["emit", "party/exploded", "--payload", "{}"], "event", id="emit-unknown-event"),
    pytest.param(["emit", "party/created", "--payload", "@missing.json"], "payload", id="no-file"),
    pytest.param(["emit", "party/created"], "--payload", id="no-payload"),
    pytest.param(["hooks", "show", "hook_nope"], "hook_nope", id="unknown-hook"),
    pytest.param(["hooks", "remove", "hook_nope"], "hook_nope", id="remove-unknown-hook"),
    pytest.param(["hooks", "revive", "hook_nope"], "hook_nope", id="revive-unknown-hook"),
    pytest.param(["deliveries", "show", "msg_nope"], "msg_nope", id="unknown-delivery"),
    pytest.param(["deliveries", "redeliver", "msg_nope"], "msg_nope", id="redeliver-unknown"),
    pytest.param(["hooks", "list", "--state", "zombie"], "state", id="bad-state"),
    pytest.param(["purge", "--older-than", "soon"], "older_than", id="bad-age"),
    pytest.param(["deliveries", "list", "--limit", "0"], "limit", id="bad-limit"),
    pytest.param(["worker", "--workers", "0"], "workers", id="no-workers"),
    pytest.param(["worker", "--concurrency", "0"], "concurrency", id="no-concurrency"),
    pytest.param(["worker", "--allow-network", "0.0.0.0/0"], "allow", id="allow-everything"),
    pytest.param(["hooks", "frobnicate"], "frobnicate", id="unknown-command"),
    pytest.param(["hooks", "add", "party/**", "https://example.com/h"], "event", id="bad-pattern"),
    pytest.param(
        ["hooks", "add", "party/*,task/nope", "https://example.com/h"], "task/nope", id="bad-list"
    ),
    pytest.param(["hooks", "update", "hook_nope", "--description", "x"], "hook_nope", id="update"),
    pytest.param(["hooks", "update", "hook_nope"], "--description", id="update-nothing"),
    pytest.param(["hooks", "update", "hook_nope", "--event", "x/y"], "event", id="update-event"),
    pytest.param(
        ["hooks", "update", "hook_nope", "--url", "http://127.0.0.1/h"],
        "--allow-network",
        id="update-loopback",
    ),
    pytest.param(["hooks", "rotate-secret", "hook_nope"], "hook_nope", id="rotate-unknown"),
    pytest.param(["hooks", "ping", "hook_nope"], "hook_nope", id="ping-unknown"),
    pytest.param(["deliveries", "replay", "--since", "2h"], "--hook", id="replay-no-hook"),
    pytest.param(
        ["deliveries", "replay", "--hook", "hook_nope", "--since", "2h"], "hook_nope", id="replay"
    ),
    pytest.param(
        ["deliveries", "replay", "--hook", "hook_nope", "--since", "last week"],
        "since",
        id="replay-bad-since",
    ),
    pytest.param(
        ["deliveries", "replay", "--hook", "h", "--since", "2026-01-01T00:00:00"],
        "zone",
        id="replay-naive-since",
    ),
    pytest.param(
        ["deliveries", "replay", "--hook", "h", "--since", "1h", "--until", "99999999999d"],
        "until",
        id="replay-until-before-the-calendar",
    ),
]


@pytest.fixture(name="template_db", scope="module")
def _template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with one hook and one pending delivery, made once for the bad-input cases."""
    path = tmp_path_factory.mktemp("template") / "hooks.db"
    store = SQLiteStore(path)
    dispatcher = Dispatcher(store)
    dispatcher.subscribe("party/created", "https://example.com/hook", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    store.close()
    return path


@pytest.mark.parametrize(("args", "named"), BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    run: Run, template_db: Path, args: list[str], named: str
) -> None:
    """Refused input: one line on stderr naming what is wrong, exit status 2, database unchanged."""
    shutil.copyfile(template_db, run.db)
    before = dump(run.db)
    done = run(*args)
    assert (done.returncode, done.stdout) == (2, "")
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("resthooks: error: ")
    assert named in done.stderr
    assert "Traceback" not in done.stderr
    assert dump(run.db) == before


def test_redeliver_of_a_pending_delivery_is_refused(run: Run, receiver: HTTPServer) -> None:
    """Redelivering a delivery that is still pending is refused with exit 2; nothing changes."""
    add_hook(run, receiver.url_for("/hook"))
    emitted = run.json("emit", "party/created", "--owner", "acme", "--payload", "{}")
    assert isinstance(emitted, dict)
    before = dump(run.db)
    done = run("deliveries", "redeliver", emitted["deliveries"][0]["id"])
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    assert before == dump(run.db)


def test_a_file_that_is_not_a_resthooks_database_is_left_alone(tmp_path: Path) -> None:
    """Pointing --db at a file that is not a resthooks database: exit 2, the file untouched."""
    content = b"just some text, not a database\n" * 200
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    run = Run(path)
    for args in (["stats"], ["hooks", "add", "party/created", "https://example.com/h"]):
        done = run(*args)
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.splitlines()) == 1
        assert content == path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_a_foreign_sqlite_database_is_left_alone(tmp_path: Path) -> None:
    """An SQLite file of another application: exit 2, its tables untouched."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table invoices (id integer primary key, total real)")
        conn.execute("insert into invoices values (1, 9.5)")
    conn.close()
    before = dump(path)
    done = Run(path)("hooks", "list")
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    assert before == dump(path)


def test_a_missing_database_is_not_created_by_a_read(tmp_path: Path) -> None:
    """A read-only command on a path with no database says so and creates no file."""
    run = Run(tmp_path / "absent.db")
    done = run("hooks", "list")
    assert done.returncode == 2
    assert "no resthooks database" in done.stderr
    assert not run.db.exists()


def test_refused_input_on_a_new_path_creates_no_file(tmp_path: Path) -> None:
    """hooks add with an unknown event on a path with no database creates no file."""
    run = Run(tmp_path / "new.db")
    done = run("hooks", "add", "party/exploded", "https://example.com/h")
    assert done.returncode == 2
    assert list(tmp_path.iterdir()) == []


def test_hooks_add_batches_with_its_options(tmp_path: Path) -> None:
    """hooks add --batch-wait/--batch-entities/--batch-bytes subscribes a batched hook,
    which hooks show and the JSON output carry; a bad value is exit 2 naming the field,
    with no file created."""
    run = Run(tmp_path / "b.db")
    refused = run("hooks", "add", "task/created", "https://example.com/h", "--batch-entities", "0")
    assert refused.returncode == 2
    assert "batching.max_entities" in refused.stderr
    assert list(tmp_path.iterdir()) == []
    made = run.json("hooks", "add", "task/created", "https://example.com/h", "--batch-wait", "2.5")
    assert isinstance(made, dict)
    assert made["batching"] == {"max_wait": 2.5, "max_entities": 100, "max_bytes": 262144}
    shown = run.ok("hooks", "show", made["id"]).stdout
    assert "batching     max_wait=2.5 max_entities=100 max_bytes=262144" in shown
    plain = run.json("hooks", "add", "task/created", "https://example.com/plain")
    assert isinstance(plain, dict)
    assert plain["batching"] is None


def test_help_and_module_entry_point() -> None:
    """`python -m resthooks --help` lists every command and exits 0."""
    done = subprocess.run(
        [sys.executable, "-m", "resthooks", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0
    for command in ("demo", "hooks", "emit", "worker", "deliveries", "stats", "purge"):
        assert command in done.stdout


# -- the owners' verbs ---------------------------------------------------------------------------


def test_hooks_update_rotate_ping_and_replay(run: Run, receiver: HTTPServer) -> None:
    """hooks add with a pattern shares one secret; hooks update changes a hook; hooks ping
    sends a signed ping (exit 0, or 1 when the target fails); hooks rotate-secret gives the
    endpoint a new secret (from stdin too) and refuses a bad one with exit 2 changing
    nothing; deliveries replay --since queues a failed delivery again."""
    url = receiver.url_for("/crm")
    made = run.json("hooks", "add", "party/*", url, "--owner", "acme", *ARGS_NET)
    assert isinstance(made, list)
    assert [h["event"] for h in made] == ["party/created", "party/updated", "party/deleted"]
    assert len({h["secret"] for h in made}) == 1
    hook = made[0]

    changed = run.json("hooks", "update", hook["id"], "--description", "the CRM")
    assert isinstance(changed, dict)
    assert (changed["id"], changed["description"]) == (hook["id"], "the CRM")
    taken = run("hooks", "update", hook["id"], "--event", "party/updated")
    assert taken.returncode == 2, taken.stderr
    assert made[1]["id"] in taken.stderr

    receiver.expect_request("/crm").respond_with_data("pong", status=200)
    pinged = run.json("hooks", "ping", hook["id"], *ARGS_NET)
    assert isinstance(pinged, dict)
    assert (pinged["succeeded"], pinged["status"], pinged["response_excerpt"]) == (
        True,
        200,
        "pong",
    )
    (request, _) = receiver.log[-1]
    assert json.loads(request.data)["event"] == "ping"
    resthooks.verify(request.data, dict(request.headers), hook["secret"])
    receiver.clear()
    receiver.expect_request("/crm").respond_with_data("no", status=503)
    failed_ping = run("hooks", "ping", hook["id"], *ARGS_NET)
    assert failed_ping.returncode == 1, failed_ping.stdout
    assert "FAILED" in failed_ping.stdout

    rotated = run.json("hooks", "rotate-secret", hook["id"])
    assert isinstance(rotated, dict)
    assert rotated["secret"] != hook["secret"]
    assert sorted(rotated["endpoint_hook_ids"]) == sorted(h["id"] for h in made)
    mine = resthooks.generate_secret()
    from_stdin = run("hooks", "rotate-secret", hook["id"], "--secret", "-", "--json", stdin=mine)
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert json.loads(from_stdin.stdout)["secret"] == mine
    before = dump(run.db)
    bad = run("hooks", "rotate-secret", hook["id"], "--secret", "whsec_short")
    assert (bad.returncode, len(bad.stderr.splitlines())) == (2, 1), bad.stderr
    assert "secret" in bad.stderr
    assert mine not in bad.stderr + bad.stdout
    assert dump(run.db) == before

    run.ok("emit", "party/created", "--owner", "acme", "--payload", '{"id": 7}')
    store = SQLiteStore(run.db)
    clock = FakeClock(datetime.now(timezone.utc))
    dispatcher = Dispatcher(store, clock=clock, network_policy=LOOPBACK_POLICY)
    for _ in range(6):
        dispatcher.deliver_due()
        clock.advance(timedelta(minutes=16))
    dispatcher.revive(hook["id"], owner="acme")
    store.close()
    replayed = run.json("deliveries", "replay", "--hook", hook["id"], "--since", "1h")
    assert isinstance(replayed, dict)
    assert [(d["state"], d["attempts"]) for d in replayed["replayed"]] == [("pending", 0)]
    assert replayed["more"] is False
    again = run.json("deliveries", "replay", "--hook", hook["id"], "--since", "1h")
    assert again["replayed"] == []  # type: ignore[index]
