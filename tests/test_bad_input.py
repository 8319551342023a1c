"""Every bad input gets a typed resthooks error and changes nothing, on every store and on the
command line (the cases fuzzing found, then the fuzzing itself)."""

from __future__ import annotations

import contextlib
import io
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzzing
from resthooks import (
    DeliveryNotFound,
    Dispatcher,
    HookNotFound,
    SchemaError,
    ValidationError,
)
from resthooks.api import SubscriptionAPI
from resthooks.cli import main
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import FakeClock, RecordingTransport

OWNER = "acme"
EVENT = "party/created"
BAD_IDS = ["\udc80", "hook_\ud800", "a\x00b", "\x00", ""]


@pytest.fixture(name="any_store", params=["memory", "sqlite"])
def _any_store(request, tmp_path) -> Iterator[object]:
    store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "hooks.db")
    yield store
    store.close()


@pytest.fixture(name="seeded")
def _seeded(any_store) -> Dispatcher:
    dispatcher = Dispatcher(any_store, clock=FakeClock(), transport=RecordingTransport())
    fuzzing.seed(dispatcher)
    return dispatcher


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_an_impossible_hook_id_is_not_found_everywhere(seeded, bad_id):
    """Lone surrogates and NUL in a hook id: HookNotFound from every Dispatcher call and 404
    from the API, on every store (it was UnicodeEncodeError on SQL stores)."""
    before = fuzzing.snapshot(seeded.store)
    for call in (
        lambda: seeded.get_hook(bad_id, owner=OWNER),
        lambda: seeded.unsubscribe(bad_id, owner=OWNER),
        lambda: seeded.revive(bad_id, owner=OWNER),
        lambda: seeded.rotate_secret(bad_id, owner=OWNER),
    ):
        with pytest.raises(HookNotFound):
            call()
    api = SubscriptionAPI(seeded)
    assert api.show(bad_id, owner=OWNER).status == 404
    assert api.delete(bad_id, owner=OWNER).status == 404
    with pytest.raises(ValidationError) as info:
        seeded.deliveries(owner=OWNER, hook_id=bad_id)
    assert info.value.field == "hook_id"
    assert fuzzing.snapshot(seeded.store) == before


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_an_impossible_delivery_id_is_not_found_everywhere(seeded, bad_id):
    """The same for delivery ids: get_delivery, attempts and redeliver."""
    for call in (
        lambda: seeded.get_delivery(bad_id, owner=OWNER),
        lambda: seeded.attempts(bad_id, owner=OWNER),
        lambda: seeded.redeliver(bad_id, owner=OWNER),
    ):
        with pytest.raises(DeliveryNotFound):
            call()


@pytest.mark.parametrize("older_than", [1e300, timedelta.max, 10**30, timedelta(days=999_999_999)])
def test_a_purge_older_than_the_calendar_is_refused(seeded, older_than):
    """purge(older_than=1e300) and timedelta.max: a ValidationError naming older_than (was
    OverflowError), and nothing purged."""
    before = fuzzing.snapshot(seeded.store)
    with pytest.raises(ValidationError) as info:
        seeded.purge(older_than=older_than)
    assert info.value.field == "older_than"
    assert fuzzing.snapshot(seeded.store) == before


@pytest.mark.parametrize("limit", [2**63, 2**31, -1, 10**20])
def test_a_limit_past_what_a_store_holds_is_refused(seeded, limit):
    """deliveries(limit=2**63): a ValidationError naming limit (was OverflowError)."""
    with pytest.raises(ValidationError) as info:
        seeded.deliveries(owner=OWNER, limit=limit)
    assert info.value.field == "limit"


def test_a_negative_schema_version_is_a_schema_error(tmp_path):
    """A SQLite file whose user_version is negative: SchemaError at open (was IndexError),
    and the file is left as it was."""
    path = tmp_path / "hooks.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = -3")
    conn.close()
    content = path.read_bytes()
    with pytest.raises(SchemaError, match="version -3"):
        SQLiteStore(path)
    assert path.read_bytes() == content


# -- the command line ----------------------------------------------------------------------


def run_cli(*argv: str, db: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([*argv, "--db", str(db)])
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(name="cli_db")
def _cli_db(tmp_path) -> Path:
    db = tmp_path / "cli.db"
    status, _, err = run_cli("hooks", "add", EVENT, "https://example.com/h", db=db)
    assert status == 0, err
    status, _, err = run_cli("emit", EVENT, "--payload", '{"id": 1}', db=db)
    assert status == 0, err
    return db


def db_content(db: Path) -> object:
    with SQLiteStore(db) as store:
        return fuzzing.snapshot(store)


@pytest.mark.parametrize(
    "argv",
    [
        ["hooks", "show", "\udcff"],  # what $'\xff' becomes in sys.argv
        ["hooks", "remove", "a\x00b"],
        ["deliveries", "show", "\udcff"],
        ["deliveries", "redeliver", "\ud800"],
        ["hooks", "list", "--owner", "\udcff"],
        ["deliveries", "list", "--hook", "\udcff"],
        ["purge", "--older-than", "99999999d"],
        ["purge", "--older-than", "99999999999999999w"],
        ["deliveries", "list", "--limit", "99999999999999999999"],
        ["emit", EVENT, "--payload", '{"a": ' + "9" * 5000 + "}"],
        ["emit", EVENT, "--payload", "[" * 100_000],
    ],
    ids=lambda argv: " ".join(argv)[:40].encode("ascii", "backslashreplace").decode(),
)
def test_refused_input_on_the_command_line_is_exit_2_and_one_line(cli_db, argv):
    """Each of these printed a traceback and exited 1: now exit 2, one line on stderr, and
    the database is as it was."""
    before = db_content(cli_db)
    status, out, err = run_cli(*argv, db=cli_db)
    assert (status, out) == (2, "")
    assert err.startswith("resthooks: error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert db_content(cli_db) == before


# -- fuzzing -------------------------------------------------------------------------------

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(data=st.data())
def test_fuzz_the_dispatcher_and_the_api(seeded, data):
    """Any call of any entry point with any mix of values: only resthooks errors, and a
    refused call changes nothing (MemoryStore and SQLiteStore; PostgreSQL in its folder)."""
    name, args = data.draw(fuzzing.calls(), label="call")
    fuzzing.call(seeded, name, args)


cli_words = st.one_of(
    st.sampled_from(
        [EVENT, "party/nope", "https://example.com/x", "http://127.0.0.1/", "30d", "0s", "-1d"]
    ),
    st.sampled_from(
        [
            "--owner",
            "--state",
            "--limit",
            "--hook",
            "--payload",
            "--json",
            "--event",
            "--url",
            "--description",
            "--secret",
            "--since",
            "--until",
        ]
    ),
    fuzzing.nasty_text.filter(lambda s: not s.startswith("-")),
    st.integers().map(str),
)
cli_commands = st.sampled_from(
    [
        ["hooks", "add"],
        ["hooks", "list"],
        ["hooks", "show"],
        ["hooks", "remove"],
        ["hooks", "revive"],
        ["emit"],
        ["deliveries", "list"],
        ["deliveries", "show"],
        ["deliveries", "redeliver"],
        ["hooks", "update"],
        ["hooks", "rotate-secret"],
        ["deliveries", "replay", "--since"],
        ["deliveries", "replay", "--hook"],
        ["stats"],
        ["purge", "--older-than"],
    ]
)


@FUZZ
@given(command=cli_commands, words=st.lists(cli_words, max_size=4))
def test_fuzz_the_command_line(cli_db, command, words):
    """Any argv: exit 0, 1 or 2, never a traceback or an internal error, and exit 2 (refused
    input) leaves the database as it was."""
    before = db_content(cli_db)
    status, _, err = run_cli(*command, *words, db=cli_db)
    assert status in (0, 1, 2), err
    assert "Traceback" not in err
    assert "internal error" not in err
    if status == 2:
        assert db_content(cli_db) == before


@FUZZ
@given(data=st.data())
def test_fuzz_the_async_face(seeded, data):
    """The same calls through AsyncDispatcher and AsyncSubscriptionAPI: only resthooks errors,
    and a refused call changes nothing."""
    name, args = data.draw(fuzzing.calls(), label="call")
    fuzzing.call_async(seeded, name, args)


# An --app spec whose module part could name a real module is kept off modules that do
# something when imported or called (``this``, ``antigravity``, ``os:abort``): every
# well-formed spec the fuzzer makes names a module under a prefix that does not exist.
app_specs = st.one_of(
    st.text(max_size=60).filter(lambda s: ":" not in s),
    st.builds(
        lambda module, attribute: f"no_such_app_{module}:{attribute}",
        st.text(max_size=20),
        st.text(max_size=20),
    ),
    st.sampled_from(["resthooks:Dispatcher", "resthooks:__version__", "resthooks:CAPSULE_EVENTS"]),
)


@FUZZ
@given(spec=app_specs)
def test_fuzz_the_app_option(spec):
    """Any --app spec that names no Dispatcher: AppError, one line, never another error."""
    from resthooks import AppError  # noqa: PLC0415 - beside the fuzz it serves
    from resthooks._app import load_app  # noqa: PLC0415

    with pytest.raises(AppError) as info:
        load_app(spec)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("--app ")
