"""Corruption trials: a SQLite file with random bytes overwritten. Whatever the damage, the
store answers with resthooks errors only, and check() notices what SQLite's own checks see."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from resthooks import Dispatcher, ResthooksError
from resthooks.stores import SQLiteStore
from resthooks.testing import FakeClock, RecordingTransport

TRIALS = 40


@pytest.fixture(name="pristine", scope="module")
def _pristine(tmp_path_factory) -> Path:
    """A file with hooks, pending and delivered deliveries and attempts."""
    path = tmp_path_factory.mktemp("pristine") / "hooks.db"
    clock = FakeClock()
    with SQLiteStore(path) as store:
        dispatcher = Dispatcher(
            store, clock=clock, transport=RecordingTransport(), max_hooks_per_owner=None
        )
        for i in range(10):
            dispatcher.subscribe("party/created", f"https://example.com/{i}", owner="acme")
        for i in range(30):
            dispatcher.emit("party/created", {"id": i}, owner="acme")
        dispatcher.deliver_due(batch_size=150)
        for i in range(30):
            dispatcher.emit("party/created", {"id": i}, owner="acme")
    return path


def corrupt(source: Path, target: Path, rng: random.Random) -> str:
    """Copy ``source`` with a few runs of random bytes written somewhere past the header."""
    shutil.copyfile(source, target)
    data = bytearray(target.read_bytes())
    runs = []
    for _ in range(rng.randint(1, 4)):
        start = rng.randrange(100, len(data) - 64)
        length = rng.randint(1, 64)
        data[start : start + length] = rng.randbytes(length)
        runs.append(f"{start}+{length}")
    target.write_bytes(bytes(data))
    return ", ".join(runs)


def test_random_corruption_gives_only_typed_errors(pristine, tmp_path):
    """40 seeded trials: open, stats, a claim round, the listings and check() raise only
    ResthooksError (never KeyError, IndexError, OverflowError...); whenever SQLite's
    integrity_check finds damage, check() reports it too."""
    seed = int(
        os.environ.get("RESTHOOKS_CORRUPTION_SEED") or random.SystemRandom().randrange(2**32)
    )
    print(f"corruption seed {seed} (RESTHOOKS_CORRUPTION_SEED={seed} replays it)")
    rng = random.Random(seed)
    unnoticed = []
    for trial in range(TRIALS):
        path = tmp_path / f"trial{trial}.db"
        where = corrupt(pristine, path, rng)
        try:
            store = SQLiteStore(path)
        except ResthooksError:
            continue
        try:
            dispatcher = Dispatcher(
                store, clock=FakeClock(), transport=RecordingTransport(), max_hooks_per_owner=None
            )
            for call in (
                store.stats,
                lambda: dispatcher.deliver_due(batch_size=500),  # noqa: B023 - called at once
                lambda: store.list_deliveries(limit=1000),  # noqa: B023
                store.list_hooks,
                store.next_due_at,
            ):
                try:
                    call()
                except ResthooksError:
                    pass
                except Exception as exc:
                    pytest.fail(f"trial {trial} ({where}): {type(exc).__name__}: {exc}")
            problems = store.check()
        finally:
            store.close()
        conn = sqlite3.connect(path)
        try:
            damaged = conn.execute("PRAGMA integrity_check").fetchall() != [("ok",)]
        except sqlite3.DatabaseError:
            damaged = True
        finally:
            conn.close()
        if damaged and not problems:
            unnoticed.append(f"trial {trial} ({where})")
    assert unnoticed == []
