"""The command line on a PostgreSQL store: ``--app`` with the app's own ``PostgresStore``,
and ``--dsn`` for a quick look without an app. Subprocesses against the test cluster."""

# ruff: noqa: PLC0415 - psycopg is optional: imported only after the fixtures checked for it

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

APP = """
import os

from resthooks import Dispatcher, EventCatalogue, NetworkPolicy, RetryPolicy
from resthooks.stores import PostgresStore


def make_dispatcher():
    return Dispatcher(
        PostgresStore(os.environ["APP_PG"], schema=os.environ["APP_SCHEMA"]),
        events=EventCatalogue({"invoice": ["paid"]}),
        retry=RetryPolicy(delays=[11]),
        network_policy=NetworkPolicy(allow_networks=["127.0.0.0/8"]),
    )
"""


@pytest.fixture(name="database")
def _database(pg_conninfo: str) -> Iterator[str]:
    """A database of its own (``--dsn`` uses the default schema, ``resthooks``)."""
    import psycopg

    name = f"cli_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield pg_conninfo.replace("dbname=postgres", f"dbname={name}")
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(name="http_receiver")
def _http_receiver() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1")
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RESTHOOKS_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "resthooks", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def ok(cwd: Path, *args: str, env: dict[str, str] | None = None) -> object:
    done = run(cwd, *args, "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout) if done.stdout.lstrip().startswith(("{", "[")) else done


def test_every_command_runs_on_the_apps_postgres_store(
    tmp_path: Path, database: str, http_receiver: HTTPServer
) -> None:
    """--app with a factory returning a Dispatcher on PostgresStore: hooks add and emit use
    its events, the worker its network and retry policies, and --dsn then sees the same
    store (in the schema the app chose, through $RESTHOOKS_DSN... the default schema only:
    here the app uses `resthooks`)."""
    (tmp_path / "pgapp.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    env = {"APP_PG": database, "APP_SCHEMA": "resthooks"}
    app = ("--app", "pgapp:make_dispatcher")
    http_receiver.expect_request("/paid").respond_with_data("no", status=503)
    hook = ok(
        tmp_path, *app, "hooks", "add", "invoice/paid", http_receiver.url_for("/paid"), env=env
    )
    assert isinstance(hook, dict)
    ok(tmp_path, *app, "emit", "invoice/paid", "--payload", '{"id": 3}', env=env)
    done = run(tmp_path, *app, "worker", "--once", "--json", env=env)
    assert done.returncode == 0, done.stderr
    [line] = [json.loads(x) for x in done.stdout.splitlines() if '"hook_id"' in x]
    assert (line["outcome"], line["status"]) == ("retrying", 503)
    assert len(http_receiver.log) == 1

    # A quick look without the app, by connection string: the same hook and delivery.
    hooks = ok(tmp_path, "--dsn", database, "hooks", "list")
    assert isinstance(hooks, list)
    assert [hook["id"]] == [h["id"] for h in hooks]
    stats = ok(tmp_path, "stats", env={"RESTHOOKS_DSN": database})
    assert isinstance(stats, dict)
    assert (stats["hooks"]["active"], stats["deliveries"]["pending"]) == (1, 1)
    [delivery] = ok(tmp_path, "--dsn", database, "deliveries", "list")  # type: ignore[misc]
    shown = ok(tmp_path, "--dsn", database, "deliveries", "show", delivery["id"])
    assert isinstance(shown, dict)
    assert [a["status"] for a in shown["attempt_log"]] == [503]


def test_dsn_reads_refuse_a_database_without_a_store_and_create_nothing(
    tmp_path: Path, database: str
) -> None:
    """`--dsn ... stats` on a database with no resthooks schema: exit 2, and no schema made."""
    import psycopg

    done = run(tmp_path, "--dsn", database, "stats")
    assert done.returncode == 2
    assert "no resthooks store in schema 'resthooks'" in done.stderr
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT to_regnamespace('resthooks')").fetchone()
    assert row is not None
    assert row[0] is None


def test_dsn_errors_never_show_the_password(tmp_path: Path, database: str) -> None:
    """An unreachable server and a malformed connection string: one line, no password."""
    unreachable = run(
        tmp_path, "--dsn", "host=/nonexistent/dir port=1 user=app password=hunter2", "stats"
    )
    assert unreachable.returncode == 1
    assert "cannot reach PostgreSQL" in unreachable.stderr
    malformed = run(tmp_path, "--dsn", "host=db password=hunter2 nonsense", "stats")
    assert malformed.returncode == 2
    uri = run(tmp_path, "--dsn", "postgresql://app:hunter2@/app?host=/nonexistent", "stats")
    assert uri.returncode == 1
    for done in (unreachable, malformed, uri):
        assert "hunter2" not in done.stderr + done.stdout
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    # health answers "unhealthy" (exit 1) rather than failing: the store is what it checks.
    health = run(tmp_path, "--dsn", "postgresql://app:hunter2@/app?host=/nonexistent", "health")
    assert health.returncode == 1
    assert "unhealthy" in health.stdout
    assert "hunter2" not in health.stdout + health.stderr
