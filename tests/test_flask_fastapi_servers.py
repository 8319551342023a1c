"""The Flask and FastAPI integrations under real servers (``flask run``, uvicorn), end to end:
a client subscribes over HTTP, a party stored and emitted in one transaction reaches a
receiver on loopback, signed; a refused (rolled-back) party sends nothing; the worker
(``flask resthooks worker``; the app's own lifespan under uvicorn) stops on SIGTERM."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

from framework_support import (
    HERE,
    Client,
    free_port,
    owners_verbs_over_http,
    process,
    wait_until_serving,
)
from resthooks.testing import HookReceiver


def _subscribe_and_create(client: Client, receiver: HookReceiver) -> None:
    subscribed = client.request(
        "POST",
        "/api/v2/resthooks",
        {"restHook": {"event": "party/created", "targetUrl": receiver.url("/crm")}},
    )
    assert subscribed.status == 201, subscribed.data
    receiver.set_secret(subscribed.json()["restHook"]["secret"], path="/crm")
    too_long = client.request("GET", "/api/v2/resthooks", account="a" * 300)
    assert (too_long.status, too_long.headers["Content-Type"]) == (400, "application/json")
    malformed = client.request("POST", "/api/v2/resthooks", b"{nope")
    assert (malformed.status, malformed.headers["Content-Type"]) == (400, "application/json")
    created = client.request("POST", "/api/v2/parties", {"name": "Zoë"})
    assert created.status == 201, created.data


def _assert_one_signed_delivery(receiver: HookReceiver) -> None:
    (delivery,) = receiver.wait_for(1, timeout=30)
    assert delivery.verified
    assert delivery.json["event"] == "party/created"
    assert [p["name"] for p in delivery.json["payload"]] == ["Zoë"]


def test_flask_under_flask_run_with_the_flask_worker_command(
    tmp_path: Path, hook_receiver: HookReceiver
) -> None:
    """flask run serves the documented recipe; flask resthooks worker delivers, then stops on
    SIGTERM; the party the recipe refused (its emit failed) is neither stored nor sent."""
    db = tmp_path / "crm.db"
    env = {"CRM_DB": str(db), "FLASK_APP": "crm_app"}
    cwd = HERE / "flask_project"
    port = free_port()
    with process(["-m", "flask", "run", "--port", str(port)], cwd=cwd, env=env) as server:
        wait_until_serving(port, server)
        client = Client(port)
        _subscribe_and_create(client, hook_receiver)
        owners_verbs_over_http(client)
        refused = client.request("POST", "/api/v2/parties", {"name": "x" * 300_000})
        assert refused.status == 422, refused.data
        with process(["-m", "flask", "resthooks", "worker"], cwd=cwd, env=env) as worker:
            _assert_one_signed_delivery(hook_receiver)
            worker.send_signal(signal.SIGTERM)
            output, _ = worker.communicate(timeout=30)
            assert worker.returncode == 0, output
            assert "worker stopped (asked to)" in output, output
    assert len(hook_receiver.deliveries) == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name FROM parties").fetchall() == [("Zoë",)]


def test_fastapi_under_uvicorn_with_the_worker_in_its_lifespan(
    tmp_path: Path, hook_receiver: HookReceiver
) -> None:
    """uvicorn serves the router and runs the worker in the app's lifespan; a party whose
    transaction rolls back after its emit is not sent; SIGTERM shuts it all down cleanly."""
    db = tmp_path / "crm.db"
    port = free_port()
    args = ["-m", "uvicorn", "crm_app:app", "--port", str(port), "--no-access-log"]
    cwd = HERE / "fastapi_project"
    with process(args, cwd=cwd, env={"CRM_DB": str(db)}) as server:
        wait_until_serving(port, server)
        client = Client(port)
        refused = client.request("POST", "/api/v2/parties", {"name": "Ada", "refuse": True})
        assert refused.status == 409, refused.data
        _subscribe_and_create(client, hook_receiver)
        owners_verbs_over_http(client)
        _assert_one_signed_delivery(hook_receiver)
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
        # uvicorn shuts down gracefully, then re-raises the signal it got (0 before 0.29).
        assert server.returncode in (0, -signal.SIGTERM), output
        assert "Application shutdown complete" in output, output
        assert "Finished server process" in output, output
    assert len(hook_receiver.deliveries) == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name FROM parties").fetchall() == [("Zoë",)]
        assert conn.execute(
            "SELECT count(*) FROM resthooks_deliveries WHERE state = 'in_flight'"
        ).fetchone() == (0,)
