"""What a new user hit in the command line (issue 18's small things), each as it behaves now:
the demo's ids and --db, refused paths, and why a 410'd delivery cannot be redelivered."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from resthooks import Dispatcher, HookNotFound
from resthooks._report import short_id
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import FakeClock, RecordingTransport


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RESTHOOKS_")}
    return subprocess.run(
        [sys.executable, "-m", "resthooks", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_short_ids_keep_the_end_that_differs() -> None:
    """Two ids made together differ at the end (a time-ordered id shares its start)."""
    first, second = "msg_00000000aaaaaaaa11111111", "msg_00000000aaaaaaaa22222222"
    assert short_id(first) != short_id(second)
    assert short_id(first) == "msg_...11111111"


def test_demo_db_keeps_the_store_for_the_other_commands(tmp_path: Path) -> None:
    """`demo --db PATH` plays on a new file at PATH and leaves it: `deliveries list` then
    shows the demo's deliveries, whose ids the timeline cut from their informative end."""
    db = tmp_path / "demo.db"
    done = run("demo", "--db", str(db), "--speed", "1200")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"the SQLite store {db}" in done.stdout
    assert f"resthooks --db {db} deliveries list" in done.stdout
    listed = run("--db", str(db), "deliveries", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    ids = [d["id"] for d in json.loads(listed.stdout)]
    shown = set(re.findall(r"msg_\.\.\.[0-9a-f]{8}", done.stdout))
    assert shown == {short_id(i) for i in ids}


def test_demo_db_refuses_an_existing_file_or_a_missing_directory(tmp_path: Path) -> None:
    """An existing file is never overwritten and a missing directory is bad input: exit 2."""
    existing = tmp_path / "mine.db"
    existing.write_bytes(b"precious")
    refused = run("demo", "--db", str(existing))
    assert refused.returncode == 2
    assert "exists: the demo writes a new database" in refused.stderr
    assert existing.read_bytes() == b"precious"
    missing = run("demo", "--db", str(tmp_path / "no" / "such" / "demo.db"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    other = run("demo", "--dsn", "postgresql://u:hunter2@h/d")
    assert other.returncode == 2
    assert "demo runs on a SQLite store of its own" in other.stderr


def test_a_db_in_a_missing_directory_is_refused_input(tmp_path: Path) -> None:
    """`--db /missing/dir/x.db` is exit 2 naming the directory, and creates nothing."""
    path = tmp_path / "missing" / "x.db"
    done = run("--db", str(path), "hooks", "add", "party/created", "https://example.com/h")
    assert done.returncode == 2
    assert f"the directory {str(path.parent)!r} does not exist" in done.stderr
    assert not path.parent.exists()


def test_redelivering_after_410_says_the_hook_went_away_with_it() -> None:
    """The hook answered 410 Gone and was removed: redelivering its delivery says so,
    instead of a bare 'no hook with id'."""
    dispatcher = Dispatcher(
        MemoryStore(), clock=FakeClock(), transport=RecordingTransport(default=410)
    )
    hook = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    [delivery] = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    assert dispatcher.deliver_due().gone == 1
    with pytest.raises(HookNotFound, match="removed when its receiver answered 410 Gone") as info:
        dispatcher.redeliver(delivery.id, owner="acme")
    assert info.value.id == hook.id


def test_redelivering_after_410_from_the_command_line(tmp_path: Path) -> None:
    """The same through `resthooks deliveries redeliver`: exit 2, the reason on stderr."""
    db = tmp_path / "hooks.db"
    store = SQLiteStore(db)
    dispatcher = Dispatcher(store, transport=RecordingTransport(default=410))
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    [delivery] = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    dispatcher.deliver_due()
    unsubscribed = dispatcher.subscribe("party/updated", "https://example.com/u", owner="acme")
    [other] = dispatcher.emit("party/updated", {"id": 1}, owner="acme")
    dispatcher.unsubscribe(unsubscribed.id, owner="acme")
    store.close()
    done = run("--db", str(db), "deliveries", "redeliver", delivery.id)
    assert done.returncode == 2
    assert "removed when its receiver answered 410 Gone" in done.stderr
    plain = run("--db", str(db), "deliveries", "redeliver", other.id)
    assert plain.returncode == 2
    assert "was removed (unsubscribed)" in plain.stderr
