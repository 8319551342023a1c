"""``resthooks --app module:attribute``: every command on the application's own Dispatcher.

Subprocesses of the command line, run in a temporary directory that holds a real module of
the "application" (its own events, retry policy and network policy, on a SQLite file), with
deliveries to a real receiver on loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

APP = '''
import os

from resthooks import Dispatcher, EventCatalogue, NetworkPolicy, RetryPolicy
from resthooks.stores import SQLiteStore

EVENTS = EventCatalogue({"invoice": ["paid", "voided"]})


def make_dispatcher():
    """The factory the web app uses too."""
    return Dispatcher(
        SQLiteStore(os.environ["APP_DB"]),
        events=EVENTS,
        retry=RetryPolicy(delays=[7, 70]),
        network_policy=NetworkPolicy(allow_networks=["127.0.0.0/8"]),
    )


made_at_import = None  # set by a test that wants an instance rather than a factory
not_a_dispatcher = 42


def needs_the_database():
    raise RuntimeError(
        "could not connect to postgresql://app:hunter2@db.internal/app?sslpassword=hunter2 "
        "(host=db.internal password=hunter2)"
    )


def returns_a_string():
    return "postgresql://app:hunter2@db.internal/app"
'''


class App:
    """``python -m resthooks --app hooksapp:...`` run from a directory holding ``hooksapp``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "app.db"
        (root / "hooksapp.py").write_text(textwrap.dedent(APP), encoding="utf-8")

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, app: str | None = "make_dispatcher"
    ) -> subprocess.CompletedProcess[str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("RESTHOOKS_")}
        environ.update({"APP_DB": str(self.db), **(env or {})})
        prefix = ["--app", f"hooksapp:{app}"] if app is not None else []
        return subprocess.run(
            [sys.executable, "-m", "resthooks", *prefix, *args],
            capture_output=True,
            text=True,
            env=environ,
            cwd=self.root,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        done = self(*args, **kw)  # type: ignore[arg-type]
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def json(self, *args: str, **kw: object) -> object:
        return json.loads(self.ok(*args, "--json", **kw).stdout)


@pytest.fixture(name="app")
def _app(tmp_path: Path) -> App:
    return App(tmp_path)


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1")
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def test_the_apps_own_events_are_the_ones_the_command_knows(app: App) -> None:
    """With --app, `hooks add` and `emit` take the app's catalogue (invoice/paid), and
    refuse Capsule's events the app does not declare."""
    hook = app.json("hooks", "add", "invoice/paid", "https://example.com/paid")
    assert isinstance(hook, dict)
    assert hook["event"] == "invoice/paid"
    emitted = app.json("emit", "invoice/paid", "--payload", '{"id": 1}')
    assert isinstance(emitted, dict)
    assert [hook["id"]] == [d["hook_id"] for d in emitted["deliveries"]]

    refused = app("emit", "party/created", "--payload", "{}")
    assert refused.returncode == 2
    assert "unknown event 'party/created'" in refused.stderr

    # The same database without the app: Capsule's catalogue, which has no invoice/paid.
    plain = app("--db", str(app.db), "emit", "invoice/paid", "--payload", "{}", app=None)
    assert plain.returncode == 2
    assert "unknown event 'invoice/paid'" in plain.stderr


def test_the_worker_delivers_under_the_apps_network_policy_and_retry_policy(
    app: App, receiver: HTTPServer
) -> None:
    """The worker reaches a loopback receiver because the app's NetworkPolicy allows it (no
    --allow-network), and schedules the retry after a 500 on the app's RetryPolicy (7 s)."""
    receiver.expect_request("/ok").respond_with_data("ok", status=200)
    receiver.expect_request("/down").respond_with_data("no", status=500)
    ok = app.json("hooks", "add", "invoice/paid", receiver.url_for("/ok"))
    down = app.json("hooks", "add", "invoice/paid", receiver.url_for("/down"))
    assert isinstance(ok, dict)
    assert isinstance(down, dict)
    app.ok("emit", "invoice/paid", "--payload", '{"id": 7}')

    done = app.ok("worker", "--once", "--json")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    outcomes = {line["hook_id"]: line for line in lines if "hook_id" in line}
    assert outcomes[ok["id"]]["outcome"] == "delivered"
    retry = outcomes[down["id"]]
    assert (retry["outcome"], retry["status"]) == ("retrying", 500)
    started = datetime.fromisoformat(retry["at"].replace("Z", "+00:00"))
    due = datetime.fromisoformat(retry["next_attempt_at"].replace("Z", "+00:00"))
    # Capsule's schedule would say 5 s; the app's says 7 s.
    assert timedelta(seconds=7) <= due - started < timedelta(seconds=8)
    received = [json.loads(r.get_data()) for r, _ in receiver.log if r.path == "/ok"]
    assert received == [{"event": "invoice/paid", "payload": [{"id": 7}]}]


def test_the_app_may_come_from_the_environment(app: App) -> None:
    """$RESTHOOKS_APP names the app when --app is not given."""
    app.ok("hooks", "add", "invoice/voided", "https://example.com/v")
    hooks = app.json("hooks", "list", app=None, env={"RESTHOOKS_APP": "hooksapp:make_dispatcher"})
    assert isinstance(hooks, list)
    assert [h["event"] for h in hooks] == ["invoice/voided"]


def test_a_dispatcher_instance_serves_as_well_as_a_factory(app: App) -> None:
    """An attribute that is a Dispatcher (made at import) is used as it is."""
    module = app.root / "hooksapp.py"
    module.write_text(
        module.read_text(encoding="utf-8") + "\nmade_at_import = make_dispatcher()\n",
        encoding="utf-8",
    )
    app.ok("hooks", "add", "invoice/paid", "https://example.com/p", app="made_at_import")
    stats = app.json("stats", app="made_at_import")
    assert isinstance(stats, dict)
    assert stats["hooks"]["active"] == 1


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("no_such_module:make_dispatcher", "no module named 'no_such_module'"),
        ("hooksapp:missing", "module 'hooksapp' has no attribute 'missing'"),
        ("hooksapp:not_a_dispatcher", "is an int, not a resthooks.Dispatcher"),
        ("hooksapp:needs_the_database", "calling it raised RuntimeError: could not connect"),
        ("hooksapp:returns_a_string", "calling it returned a str, not a resthooks.Dispatcher"),
        ("hooksapp", "must be 'module:attribute'"),
        ("hooksapp:", "must be 'module:attribute'"),
        ("hooks app:x", "must be 'module:attribute'"),
        ("", "must be 'module:attribute'"),
    ],
)
def test_a_bad_app_is_refused_with_exit_2_and_no_secret(app: App, spec: str, expected: str) -> None:
    """Every way --app can be wrong is one line on stderr, exit 2, naming what is wrong,
    without the password or query string a factory's error quoted; nothing is created."""
    done = app("--app", spec, "stats", app=None)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert not app.db.exists()


def test_a_module_that_raises_on_import_is_refused(app: App) -> None:
    """An app module that fails to import (its own missing dependency, an error) is exit 2,
    with the error quoted and its secrets masked."""
    (app.root / "crashing.py").write_text(
        "import os\nraise KeyError('DATABASE_URL=postgresql://u:hunter2@db/app')\n",
        encoding="utf-8",
    )
    (app.root / "missing_dep.py").write_text("import no_such_dependency\n", encoding="utf-8")
    crashed = app("--app", "crashing:app", "stats", app=None)
    assert crashed.returncode == 2
    assert "importing 'crashing' raised KeyError" in crashed.stderr
    assert "hunter2" not in crashed.stderr
    missing = app("--app", "missing_dep:app", "stats", app=None)
    assert missing.returncode == 2
    assert "importing 'missing_dep' raised ModuleNotFoundError" in missing.stderr
    assert "no_such_dependency" in missing.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--db", "other.db", "stats"], {}, "--app and --db cannot be used together"),
        (["--dsn", "postgresql://u:hunter2@h/d", "stats"], {}, "--app and --dsn cannot"),
        (
            ["worker", "--once", "--allow-network", "127.0.0.0/8"],
            {},
            "--allow-network cannot be used with --app",
        ),
        (["demo"], {}, "demo runs on a SQLite store of its own"),
    ],
)
def test_options_the_app_makes_meaningless_are_refused(
    app: App, args: list[str], env: dict[str, str], expected: str
) -> None:
    """--app with --db, --dsn or --allow-network, and demo --app, exit 2 saying why."""
    done = app(*args, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert "hunter2" not in done.stderr


def test_two_sources_in_the_environment_are_refused(app: App) -> None:
    """$RESTHOOKS_APP and $RESTHOOKS_DB both set: which store was meant is not guessed."""
    done = app(
        "stats",
        app=None,
        env={"RESTHOOKS_APP": "hooksapp:make_dispatcher", "RESTHOOKS_DB": str(app.db)},
    )
    assert done.returncode == 2
    assert "$RESTHOOKS_APP and $RESTHOOKS_DB are both set" in done.stderr
    # An option given on the command line chooses, whatever the environment says.
    app.ok("hooks", "add", "invoice/paid", "https://example.com/p")
    chosen = app.json("stats", env={"RESTHOOKS_DB": str(app.root / "other.db")})
    assert isinstance(chosen, dict)
    assert chosen["hooks"]["active"] == 1


def test_the_async_worker_runs_on_the_apps_async_dispatcher(app: App, receiver: HTTPServer) -> None:
    """worker --concurrency with an app that gives an AsyncDispatcher: its engine, its
    network policy; the thread worker and the other commands use its Dispatcher."""
    pytest.importorskip("httptools", reason="the async worker needs the async extra")
    module = app.root / "hooksapp.py"
    module.write_text(
        module.read_text(encoding="utf-8")
        + "\n\ndef make_async():\n"
        + "    from resthooks.aio import AsyncDispatcher\n"
        + "    return AsyncDispatcher(make_dispatcher())\n",
        encoding="utf-8",
    )
    receiver.expect_request("/ok").respond_with_data("ok", status=200)
    app.ok("hooks", "add", "invoice/paid", receiver.url_for("/ok"), app="make_async")
    app.ok("emit", "invoice/paid", "--payload", "{}", app="make_async")
    done = app.ok("worker", "--once", "--concurrency", "4", "--json", app="make_async")
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["delivered"] == 1
    assert len(receiver.log) == 1


def test_the_fastapi_recipe_worker_runs_on_the_app_modules_hooks(
    tmp_path: Path, receiver: HTTPServer
) -> None:
    """docs/fastapi.md: `resthooks --app crm_app:hooks worker --concurrency N` delivers on
    the FastAPI app's own AsyncDispatcher (its loopback policy: no --allow-network)."""
    pytest.importorskip("fastapi", reason="the FastAPI recipe needs the fastapi extra")
    project = Path(__file__).parent / "fastapi_project"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RESTHOOKS_")}
    environ.update({"CRM_DB": str(tmp_path / "crm.db"), "PYTHONPATH": str(project)})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "resthooks", "--app", "crm_app:hooks", *args],
            capture_output=True,
            text=True,
            env=environ,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    receiver.expect_request("/crm").respond_with_data("ok", status=200)
    run("hooks", "add", "party/created", receiver.url_for("/crm"), "--owner", "acme")
    run("emit", "party/created", "--owner", "acme", "--payload", '{"id": 1}')
    done = run("worker", "--once", "--concurrency", "4", "--json")
    assert json.loads(done.stdout.splitlines()[-1])["delivered"] == 1
    assert [r.path for r, _ in receiver.log] == ["/crm"]
