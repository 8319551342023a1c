"""The asyncio face: the Dispatcher's contract, awaited, never blocking the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resthooks import (
    ConfigurationError,
    Dispatcher,
    HookNotFound,
    ResthooksError,
    ValidationError,
)
from resthooks.aio import AsyncDispatcher, AsyncSubscriptionAPI
from resthooks.api import SubscriptionAPI
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import FakeClock

URL = "https://example.com/hooks"


def _face(**options: Any) -> AsyncDispatcher:
    return AsyncDispatcher(Dispatcher(MemoryStore(), clock=FakeClock(), **options))


def test_the_loop_keeps_ticking_while_a_store_call_waits_for_sqlites_write_lock(
    tmp_path: Any,
) -> None:
    """Another connection holds SQLite's write lock; an awaited emit waits for it off the
    loop. The heartbeat task is what lets the lock go, after 20 ticks: were the emit blocking
    the loop, it could never tick, and the emit would fail when busy_timeout ran out."""
    path = tmp_path / "hooks.db"
    store = SQLiteStore(path, busy_timeout=30.0)
    hooks = AsyncDispatcher(Dispatcher(store, clock=FakeClock()))
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    ticks_while_waiting = 0

    async def main() -> list[Any]:
        nonlocal ticks_while_waiting
        await hooks.subscribe("party/created", URL, owner="acme")
        blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
        emitting = asyncio.ensure_future(hooks.emit("party/created", {"id": 1}, owner="acme"))
        while not emitting.done():
            await asyncio.sleep(0.01)
            ticks_while_waiting += 1
            if ticks_while_waiting == 20:
                blocker.execute("COMMIT")  # only a ticking loop gets here
        return await emitting

    try:
        made = asyncio.run(main())
    finally:
        blocker.close()
        store.close()

    assert len(made) == 1
    assert ticks_while_waiting >= 20


def test_the_faces_share_one_engine() -> None:
    """A hook made through one face is the other's; ids, errors and listeners are the engine's."""
    engine = Dispatcher(MemoryStore(), clock=FakeClock())
    hooks = AsyncDispatcher(engine)
    heard: list[object] = []
    hooks.add_listener(heard.append)

    async def main() -> Any:
        hook = await hooks.subscribe("party/created", URL, owner="acme")
        with pytest.raises(HookNotFound):
            await hooks.get_hook(hook.id, owner="someone-else")
        return hook

    hook = asyncio.run(main())

    assert engine.get_hook(hook.id, owner="acme") == hook
    assert hook.id.startswith("hook_")
    engine.emit("party/created", {"id": 1}, owner="acme")
    engine.deliver_due()
    assert heard  # the listener registered on the async face is the engine's


def test_calls_run_on_the_given_executor_with_the_callers_context() -> None:
    """executor= is where store calls run; context variables travel with them."""
    seen: list[tuple[str, str]] = []
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")

    class Watched(MemoryStore):
        def list_hooks(self, **kwargs: Any) -> Any:
            import threading  # noqa: PLC0415

            seen.append((threading.current_thread().name, request_id.get("unset")))
            return super().list_hooks(**kwargs)

    with ThreadPoolExecutor(1, thread_name_prefix="host-pool") as pool:
        hooks = AsyncDispatcher(Dispatcher(Watched(), clock=FakeClock()), executor=pool)

        async def main() -> None:
            request_id.set("r-42")
            await hooks.hooks(owner="acme")

        asyncio.run(main())

    [(thread, value)] = seen
    assert thread.startswith("host-pool")
    assert value == "r-42"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"dispatcher": object()}, "dispatcher"),
        ({"transport": object()}, "transport"),
        ({"executor": object()}, "executor"),
    ],
)
def test_bad_construction_is_a_configuration_error(options: dict[str, Any], match: str) -> None:
    """An AsyncDispatcher that cannot work is refused when made, naming what is wrong."""
    arguments: dict[str, Any] = {"dispatcher": Dispatcher(MemoryStore())}
    arguments.update(options)
    with pytest.raises(ConfigurationError, match=match):
        AsyncDispatcher(arguments.pop("dispatcher"), **arguments)


def test_async_subscription_api_wants_the_async_face() -> None:
    """AsyncSubscriptionAPI is built on an AsyncDispatcher, not the sync engine."""
    with pytest.raises(ConfigurationError, match="AsyncDispatcher"):
        AsyncSubscriptionAPI(Dispatcher(MemoryStore()))  # type: ignore[arg-type]


def test_an_aiosqlite_connection_is_refused_with_the_reason(tmp_path: Any) -> None:
    """aiosqlite's transaction lives on its own thread: the SQLite store cannot join it."""
    aiosqlite = pytest.importorskip("aiosqlite", reason="aiosqlite is in the tests group")
    store = SQLiteStore(tmp_path / "hooks.db")
    hooks = AsyncDispatcher(Dispatcher(store, clock=FakeClock()))

    async def main() -> None:
        await hooks.subscribe("party/created", URL, owner="acme")
        async with aiosqlite.connect(tmp_path / "hooks.db") as conn:
            with pytest.raises(ConfigurationError, match="cannot write through an async"):
                await hooks.emit("party/created", {"id": 1}, owner="acme", connection=conn)

    try:
        asyncio.run(main())
        assert store.list_deliveries() == []
    finally:
        store.close()


def test_emit_many_refuses_an_async_connection_and_stores_nothing(tmp_path: Any) -> None:
    """emit_many through an async connection is refused (ConfigurationError naming
    ``connection``) before anything is validated or stored."""
    aiosqlite = pytest.importorskip("aiosqlite", reason="aiosqlite is in the tests group")
    store = SQLiteStore(tmp_path / "hooks.db")
    hooks = AsyncDispatcher(Dispatcher(store, clock=FakeClock()))

    async def main() -> None:
        await hooks.subscribe("party/created", URL, owner="acme")
        async with aiosqlite.connect(tmp_path / "hooks.db") as conn:
            with pytest.raises(ConfigurationError, match=r"^connection: emit_many cannot"):
                await hooks.emit_many([("party/created", {"id": 1}, "acme")], connection=conn)

    try:
        asyncio.run(main())
        assert store.list_deliveries() == []
    finally:
        store.close()


def test_emit_many_runs_in_the_executor_with_the_callers_context() -> None:
    """emit_many's store work runs on the face's executor (never on the loop's thread), with
    the caller's context variables."""
    seen: list[tuple[str, str]] = []
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="none")
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emit-many-test")
    engine = Dispatcher(MemoryStore(), clock=FakeClock())
    engine.subscribe("party/created", URL, owner="acme")
    enqueue_many = engine.store.enqueue_many

    def watched(*args: Any, **kwargs: Any) -> Any:
        import threading  # noqa: PLC0415

        seen.append((threading.current_thread().name, marker.get()))
        return enqueue_many(*args, **kwargs)

    engine.store.enqueue_many = watched  # type: ignore[method-assign]
    hooks = AsyncDispatcher(engine, executor=executor)

    async def main() -> int:
        marker.set("caller")
        return len(await hooks.emit_many([("party/created", {"id": 1}, "acme")] * 2))

    try:
        assert asyncio.run(main()) == 2
    finally:
        executor.shutdown()
    [(thread, value)] = seen
    assert thread.startswith("emit-many-test")
    assert value == "caller"


def test_a_sync_sqlite_connection_still_works_through_the_async_face(tmp_path: Any) -> None:
    """A sqlite3 connection (check_same_thread=False) is used in a thread, as emit uses it."""
    path = tmp_path / "hooks.db"
    store = SQLiteStore(path)
    hooks = AsyncDispatcher(Dispatcher(store, clock=FakeClock()))
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    async def main() -> list[Any]:
        await hooks.subscribe("party/created", URL, owner="acme")
        conn.execute("BEGIN IMMEDIATE")
        made = await hooks.emit("party/created", {"id": 1}, owner="acme", connection=conn)
        conn.execute("ROLLBACK")
        return made

    try:
        made = asyncio.run(main())
        assert len(made) == 1
        assert store.list_deliveries() == []  # rolled back with the host's transaction
    finally:
        conn.close()
        store.close()


# Fuzzed input: whatever a caller passes, the async face raises the sync face's typed error
# (or succeeds as it does), and stores nothing on error.
_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from(["\x00", "\ud800", "a", "/", "é"]), max_size=20),
    st.binary(max_size=20),
    st.lists(st.integers(), max_size=3),
)


def _outcome(call: Any) -> tuple[str, str | None]:
    try:
        call()
    except ResthooksError as exc:
        return type(exc).__name__, getattr(exc, "field", None)
    return "ok", None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(
        [
            *("subscribe", "emit", "emit_many", "emit_many_item"),
            *("get_hook", "hooks", "deliveries", "stats"),
        ]
    ),
    first=_junk,
    owner=_junk,
)
def test_fuzzed_calls_fail_alike_on_both_faces(method: str, first: Any, owner: Any) -> None:
    """Print-free and seeded by hypothesis: each bad call gets the same typed error (and
    field) from the async face as from the sync one, and leaves both stores empty."""
    sync_engine = Dispatcher(MemoryStore(), clock=FakeClock())
    face = AsyncDispatcher(Dispatcher(MemoryStore(), clock=FakeClock()))
    calls = {
        "subscribe": lambda d: d.subscribe(first, URL, owner=owner),
        "emit": lambda d: d.emit("party/created", first, owner=owner),
        "emit_many": lambda d: d.emit_many(first),
        "emit_many_item": lambda d: d.emit_many(
            [("party/created", {"id": 1}, "acme"), ("party/created", first, owner)]
        ),
        "get_hook": lambda d: d.get_hook(first, owner=owner),
        "hooks": lambda d: d.hooks(owner=owner, event=first),
        "deliveries": lambda d: d.deliveries(owner=owner, limit=first),
        "stats": lambda d: d.stats(owner=owner),
    }
    expected = _outcome(lambda: calls[method](sync_engine))
    got = _outcome(lambda: asyncio.run(calls[method](face)))

    assert expected == got
    assert face.dispatcher.store.list_deliveries() == []
    if expected[0] != "ok":
        assert face.dispatcher.store.list_hooks() == []


def test_bad_owner_raises_from_the_async_api_as_from_the_sync_one() -> None:
    """The host's mistakes (a bad owner) raise ValidationError from both APIs' handlers."""
    engine = Dispatcher(MemoryStore(), clock=FakeClock())
    api = AsyncSubscriptionAPI(AsyncDispatcher(engine))
    with pytest.raises(ValidationError, match="owner"):
        SubscriptionAPI(engine).list(owner="")
    with pytest.raises(ValidationError, match="owner"):
        asyncio.run(api.list(owner=""))


def test_importing_resthooks_aio_imports_no_optional_dependency() -> None:
    """resthooks.aio imports neither aiohttp nor any driver until asked (fresh interpreter)."""
    code = (
        "import sys, resthooks, resthooks.aio; "
        "bad = [m for m in ('aiohttp', 'psycopg', 'aiosqlite', 'uvicorn', 'starlette') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
