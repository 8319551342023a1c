"""Running the framework test projects as their users do: real servers, real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import urllib3

HERE = Path(__file__).parent
DJANGO_PROJECT = HERE / "django_project"
SRC = HERE.parent / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run(
    args: list[str], *, cwd: Path, env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end; its output is kept for the assertion message."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def process(
    args: list[str], *, cwd: Path, env: Mapping[str, str]
) -> Iterator[subprocess.Popen[str]]:
    """A long-running process (a server, a worker), stopped at the end if still running."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def wait_until_serving(port: int, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"the server exited with {proc.returncode}:\n{output}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} after {timeout} s")


class Client:
    """An API client of the test CRM, over real HTTP."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.http = urllib3.PoolManager(retries=False, timeout=10)

    def request(
        self, method: str, path: str, body: Any = None, *, account: str | None = "acme"
    ) -> urllib3.BaseHTTPResponse:
        headers = {"Content-Type": "application/json"}
        if account is not None:
            headers["X-Account"] = account
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        return self.http.request(method, self.base + path, body=data, headers=headers)


def django_end_to_end(env: Mapping[str, str], receiver: Any) -> None:
    """The test CRM under a real server and a real worker process, on the database ``env``
    names: a client subscribes over HTTP, a party saved in atomic() is delivered, signed, by
    ``manage.py resthooks worker``; a refused (rolled-back) party is not; SIGTERM stops the
    worker cleanly."""
    migrated = run(["manage.py", "migrate", "--noinput"], cwd=DJANGO_PROJECT, env=env)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    server_args = ["manage.py", "runserver", "--noreload", "--nothreading", f"127.0.0.1:{port}"]
    with process(server_args, cwd=DJANGO_PROJECT, env=env) as server:
        wait_until_serving(port, server)
        client = Client(port)
        subscribed = client.request(
            "POST",
            "/api/v2/resthooks",
            {"restHook": {"event": "party/created", "targetUrl": receiver.url("/crm")}},
        )
        assert subscribed.status == 201, subscribed.data
        receiver.set_secret(subscribed.json()["restHook"]["secret"], path="/crm")
        refused = client.request("POST", "/api/v2/parties", {"name": "Ada", "refuse": True})
        assert refused.status == 409, refused.data
        created = client.request("POST", "/api/v2/parties", {"name": "Zoë"})
        assert created.status == 201, created.data
        too_long = client.request("GET", "/api/v2/resthooks", account="a" * 300)
        assert (too_long.status, too_long.headers["Content-Type"]) == (400, "application/json")
        assert client.request("POST", "/api/v2/resthooks", b"{nope").status == 400

        worker_args = ["manage.py", "resthooks", "worker"]
        with process(worker_args, cwd=DJANGO_PROJECT, env=env) as worker:
            (delivery,) = receiver.wait_for(1, timeout=30)
            assert delivery.verified
            assert delivery.json["event"] == "party/created"
            assert [p["name"] for p in delivery.json["payload"]] == ["Zoë"]
            worker.send_signal(signal.SIGTERM)
            output, _ = worker.communicate(timeout=30)
            assert worker.returncode == 0, output
            assert "worker stopped (asked to)" in output, output
        assert len(receiver.deliveries) == 1, "the refused party was never sent"
