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
        owners_verbs_over_http(client)

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


def owners_verbs_over_http(client: Client) -> None:
    """The owners' endpoints through the framework's router, on a real server: subscribe
    one URL to a pattern, change the hook, ping it (signed with the endpoint's one secret),
    rotate the secret (the ping verifies with the new one), list deliveries and attempts,
    replay; another owner's hook id is 404 and changes nothing; bad input gets a JSON 4xx."""
    from resthooks.testing import HookReceiver  # noqa: PLC0415 - the tests' own import path

    with HookReceiver() as receiver:
        made = client.request(
            "POST",
            "/api/v2/resthooks",
            {"restHook": {"events": ["task/*"], "targetUrl": receiver.url("/owner")}},
        )
        assert made.status == 201, made.data
        hooks = made.json()["restHooks"]
        assert [h["event"] for h in hooks] == ["task/created", "task/updated", "task/completed"]
        assert len({h["secret"] for h in hooks}) == 1, "one secret per endpoint"
        receiver.set_secret(hooks[0]["secret"], path="/owner")
        base = f"/api/v2/resthooks/{hooks[0]['id']}"

        for method, path, body in [
            ("GET", base, None),
            ("PATCH", base, {"restHook": {"description": "taken over"}}),
            ("POST", base + "/rotate-secret", None),
            ("POST", base + "/ping", None),
            ("GET", base + "/deliveries", None),
            ("GET", base + "/attempts", None),
            ("POST", base + "/replay", {"since": "2026-01-01T00:00:00Z"}),
        ]:
            other = client.request(method, path, body, account="globex")
            assert (other.status, other.headers["Content-Type"]) == (404, "application/json"), (
                method,
                path,
                other.data,
            )
        assert receiver.deliveries == [], "another owner's ping sent nothing"

        changed = client.request("PATCH", base, {"restHook": {"description": "tasks"}})
        assert (changed.status, changed.json()["restHook"]["description"]) == (200, "tasks")
        for bad, status in [
            (b"{nope", 400),
            (b'{"restHook": {"description": "\\ud800"}}', 422),
            (b'{"restHook": {"description": "a\\u0000b"}}', 422),
            (b'{"restHook": {"colour": "red"}}', 422),
            (b'{"restHook": {"event": 12}}', 422),
            (b'{"restHook": {"description": "' + b"x" * 100_000 + b'"}}', 422),
        ]:
            refused = client.request("PATCH", base, bad)
            assert (refused.status, refused.headers["Content-Type"]) == (
                status,
                "application/json",
            ), (bad[:60], refused.data)
        shown = client.request("GET", base).json()["restHook"]
        assert shown["description"] == "tasks", "refused PATCHes changed nothing"

        ping = client.request("POST", base + "/ping")
        assert ping.status == 200, ping.data
        assert ping.json()["ping"]["succeeded"] is True
        (pinged,) = receiver.wait_for(1, timeout=10)
        assert (pinged.event, pinged.verified) == ("ping", True)

        rotated = client.request("POST", base + "/rotate-secret")
        assert rotated.status == 200, rotated.data
        document = rotated.json()["restHook"]
        assert sorted(document["endpointHookIds"]) == sorted(h["id"] for h in hooks)
        receiver.set_secret(document["secret"], path="/owner")
        assert client.request("POST", base + "/ping").status == 200
        pinged = receiver.wait_for(2, timeout=10)[1]
        assert pinged.verified, "the ping after a rotation verifies with the new secret"

        listed = client.request("GET", base + "/deliveries?state=failed&limit=5")
        assert (listed.status, listed.json()) == (200, {"deliveries": []})
        assert client.request("GET", base + "/deliveries?limit=lots").status == 400
        assert client.request("GET", base + "/attempts").json() == {"attempts": []}
        replayed = client.request("POST", base + "/replay", {"since": "2026-01-01T00:00:00Z"})
        assert (replayed.status, replayed.json()["replayed"]) == (202, 0), replayed.data
        assert client.request("POST", base + "/replay", {"since": "yesterday"}).status == 422
        missing = client.request("POST", base + "/deliveries/msg_nope/redeliver")
        assert missing.status == 404
        assert client.request("GET", "/api/v2/resthooks/keys").json() == {"keys": []}
        assert client.request("POST", base + "/confirm", {"hookSecret": "x"}).status == 409
        assert client.request("POST", base + "/nothing-here").status == 404
