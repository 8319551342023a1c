"""worker_lifespan: the async worker in a real uvicorn app's own loop, in several processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from resthooks import ConfigurationError, Dispatcher
from resthooks.aio import AsyncDispatcher, worker_lifespan
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import AsyncRecordingTransport, FakeClock

TESTS = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _call(url: str, *, method: str = "GET", body: object = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"X-Account": "acme", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_two_uvicorn_workers_each_running_the_worker_deliver_every_event_once(
    receiver: Any, tmp_path: Path
) -> None:
    """The example app under `uvicorn --workers 2`, on one SQLite file: hooks are created
    and events emitted through its endpoints; the two server processes' async workers
    deliver each event exactly once; SIGTERM stops both with nothing left in flight."""
    db = tmp_path / "hooks.db"
    SQLiteStore(db).close()  # the schema exists before two processes open the file at once
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "aio_uvicorn_app:make",
            "--workers",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=TESTS,
        env={**os.environ, "RESTHOOKS_TEST_DB": str(db), "PYTHONPATH": str(TESTS)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _call(base + "/api/v2/resthooks")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, server.communicate()[1]
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.1)
        status, created = _call(
            base + "/api/v2/resthooks",
            method="POST",
            body={"restHook": {"targetUrl": receiver.url(), "event": "party/created"}},
        )
        assert status == 201, created
        for n in range(20):
            assert _call(base + "/parties", method="POST", body={"id": n})[0] == 201
        deadline = time.monotonic() + 60
        while len({i for _, i in receiver.requests}) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.send_signal(signal.SIGTERM)
        _out, err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()

    assert server.returncode == 0, err
    counts = Counter(i for _, i in receiver.requests)
    assert len(counts) == 20
    assert set(counts.values()) == {1}
    store = SQLiteStore(db)
    try:
        states = {k: v for k, v in store.stats().deliveries.items() if v}
    finally:
        store.close()
    assert states == {"delivered": 20}


def test_the_lifespan_runs_the_apps_own_lifespan_inside_and_stops_the_worker() -> None:
    """The app's lifespan runs inside (its state passed on); at shutdown the worker stops and
    everything it claimed is released or recorded."""
    clock = FakeClock()
    transport = AsyncRecordingTransport()
    hooks = AsyncDispatcher(Dispatcher(MemoryStore(), clock=clock), transport=transport)
    events: list[str] = []

    class AppLifespan:
        def __init__(self, app: object) -> None:
            self.app = app

        async def __aenter__(self) -> dict[str, str]:
            events.append("app up")
            return {"db": "ready"}

        async def __aexit__(self, *exc: object) -> None:
            events.append("app down")

    lifespan = worker_lifespan(hooks, lifespan=AppLifespan)

    async def serve() -> object:
        await hooks.subscribe("party/created", "https://example.com/h", owner="acme")
        async with lifespan("the app") as state:
            await hooks.emit("party/created", {"id": 1}, owner="acme")
            for _ in range(100):
                if transport.requests:
                    break
                await asyncio.sleep(0.01)
        return state

    state = asyncio.run(serve())

    assert state == {"db": "ready"}
    assert events == ["app up", "app down"]
    assert len(transport.requests) == 1
    assert hooks.dispatcher.store.stats().deliveries["in_flight"] == 0


def test_a_lifespan_that_cannot_work_is_refused_when_made() -> None:
    """Bad options are ConfigurationErrors at import time of the app, not at startup."""
    hooks = AsyncDispatcher(Dispatcher(MemoryStore()), transport=AsyncRecordingTransport())
    with pytest.raises(ConfigurationError, match="concurrency"):
        worker_lifespan(hooks, concurrency=0)
    with pytest.raises(ConfigurationError, match="lifespan"):
        worker_lifespan(hooks, lifespan="not callable")  # type: ignore[arg-type]
