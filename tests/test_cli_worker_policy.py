"""`resthooks worker` and the network policy: a worker that could only be blocked refuses to
start (exit 2) instead of using up an attempt of every delivery; a blocked attempt is said
on stderr with the way out, and `stats` counts the deliveries it left blocked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from resthooks import Dispatcher
from resthooks.stores import SQLiteStore
from resthooks.testing import LOOPBACK_POLICY, HookReceiver


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[HookReceiver]:
    with HookReceiver() as receiver:
        yield receiver


def run(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RESTHOOKS_")}
    return subprocess.run(
        [sys.executable, "-m", "resthooks", "--db", str(db), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )


def seed(db: Path, *urls: str) -> list[str]:
    """Hooks subscribed by a web app that allows loopback; one delivery each."""
    store = SQLiteStore(db)
    web = Dispatcher(store, network_policy=LOOPBACK_POLICY)
    for url in urls:
        web.subscribe("party/created", url, owner="acme")
    ids = [d.id for d in web.emit("party/created", {"id": 1}, owner="acme")]
    store.close()
    return ids


@pytest.mark.parametrize("once", [True, False])
def test_a_worker_whose_policy_refuses_every_target_does_not_start(
    tmp_path: Path, receiver: HookReceiver, once: bool
) -> None:
    """Every active hook on 127.0.0.1 and no --allow-network: exit 2 saying why and how to
    allow a network, and no delivery loses an attempt."""
    db = tmp_path / "hooks.db"
    ids = seed(db, receiver.url("/a?token=s3cret"), receiver.url("/b"))
    done = run(db, "worker", *(["--once"] if once else []))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the network policy refuses the target of every active hook (2;" in done.stderr
    assert "loopback" in done.stderr
    assert "--allow-network CIDR" in done.stderr
    assert "--app" in done.stderr
    assert "s3cret" not in done.stderr
    store = SQLiteStore(db)
    assert [store.get_delivery(i).attempts for i in ids] == [0, 0]  # type: ignore[union-attr]
    store.close()
    assert receiver.received() == []


def test_a_partly_refused_worker_warns_and_stats_counts_the_blocked(
    tmp_path: Path, receiver: HookReceiver
) -> None:
    """One hook on 127.0.0.1 (refused as written) and one on localhost (refused when
    dialled): the worker warns at start, says each blocked hook once on stderr, and
    `stats` counts both deliveries as blocked, in text and JSON."""
    db = tmp_path / "hooks.db"
    port = receiver.url("/").split(":")[2].split("/")[0]
    seed(db, receiver.url("/a?token=s3cret"), f"http://localhost:{port}/b?token=s3cret")
    done = run(db, "worker", "--once")
    assert done.returncode == 0, done.stderr
    assert "refuses the targets of 1 of 2 active hooks" in done.stderr
    warnings = [line for line in done.stderr.splitlines() if "refused an attempt to hook" in line]
    assert len(warnings) == 2
    assert any("localhost resolves to 127.0.0.1, which is loopback" in w for w in warnings)
    assert all("--allow-network CIDR" in w for w in warnings)
    assert "s3cret" not in done.stderr + done.stdout
    assert done.stdout.count("blocked: ") == 2
    assert receiver.received() == []

    stats = json.loads(run(db, "stats", "--json").stdout)
    assert stats["blocked"] == 2
    text = run(db, "stats").stdout
    assert "blocked by the network policy: 2 deliveries whose last attempt was refused" in text
