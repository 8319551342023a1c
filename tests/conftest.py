"""Fixtures shared by the project's own tests."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from resthooks import Dispatcher, NetworkPolicy, SystemClock, Timeouts
from resthooks.aio import AsyncDispatcher, AsyncSubscriptionAPI
from resthooks.api import SubscriptionAPI
from resthooks.stores import MemoryStore
from resthooks.testing import LOOPBACK_POLICY, FakeClock, HookReceiver, RecordingTransport
from resthooks.transports import AsyncTransport, Request, Response, Transport, Urllib3Transport

# Helpers shared by test modules here and in tests/postgres (fuzzing.py): importable by name.
sys.path.insert(0, str(Path(__file__).parent))

# pytester runs the plugin's fixtures in sessions of their own (tests/test_pytest_plugin.py).
pytest_plugins = ["pytester"]

# The framework test projects are applications, run in processes of their own (their own
# settings, their own test runners), never imported by this session's doctest collection.
collect_ignore = ["django_project", "flask_project", "fastapi_project"]
# framework_support, the helpers of the framework tests, imports like a module beside them.
sys.path.insert(0, str(Path(__file__).parent))


# The project's short names for the fixtures of its own pytest plugin (it eats its own cooking).
@pytest.fixture(name="clock")
def _clock(resthooks_clock: FakeClock) -> FakeClock:
    return resthooks_clock


@pytest.fixture(name="transport")
def _transport(resthooks_transport: RecordingTransport) -> RecordingTransport:
    return resthooks_transport


@pytest.fixture(name="store")
def _store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture(name="dispatcher")
def _dispatcher(store: MemoryStore, clock: FakeClock, transport: RecordingTransport) -> Dispatcher:
    return Dispatcher(store, clock=clock, transport=transport)


# -- the two faces of the engine -------------------------------------------------------------

# The Dispatcher methods the asyncio face (resthooks.aio.AsyncDispatcher) offers awaitable.
ASYNC_FACE = frozenset(
    {
        "subscribe",
        "unsubscribe",
        "get_hook",
        "hooks",
        "rotate_secret",
        "subscribe_many",
        "update_hook",
        "replay",
        "ping",
        "revive",
        "emit",
        "emit_many",
        "deliveries",
        "get_delivery",
        "attempts",
        "redeliver",
        "stats",
        "purge",
    }
)


# The SubscriptionAPI handlers the asyncio face (AsyncSubscriptionAPI) offers awaitable.
API_FACE = frozenset(
    {
        "create",
        "list",
        "show",
        "delete",
        "update",
        "rotate_secret",
        "deliveries",
        "delivery",
        "attempts",
        "redeliver",
        "replay",
        "ping",
        "confirm",
        "public_keys",
        "handle",
    }
)


class Awaited:
    """An asyncio face driven from a sync test: its methods named in ``awaited`` run to
    completion on an event loop of its own; any other attribute is the sync one's. A
    contract test given this instead of the sync object checks that both faces keep the
    same contract."""

    def __init__(self, face: Any, sync: Any, awaited: frozenset[str]) -> None:
        self.face = face
        self.sync = sync
        self.awaited = awaited
        self.loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        if name in self.awaited:
            method = getattr(self.face, name)
            return lambda *args, **kwargs: self.loop.run_until_complete(method(*args, **kwargs))
        return getattr(self.sync, name)

    def __repr__(self) -> str:
        return f"<Awaited {self.face!r}>"


@pytest.fixture(name="make_face")
def _make_face() -> Iterator[Callable[[str, Any], Any]]:
    """``make_face("sync" | "async", engine_or_api)``: a Dispatcher or SubscriptionAPI as it
    is, or driven through its asyncio face (AsyncDispatcher, AsyncSubscriptionAPI)."""
    faces: list[Awaited] = []

    def make(kind: str, sync: Any) -> Any:
        if kind == "sync":
            return sync
        if isinstance(sync, SubscriptionAPI):
            face = AsyncSubscriptionAPI(AsyncDispatcher(sync.dispatcher), base_path=sync.base_path)
            awaited = Awaited(face, sync, API_FACE)
        else:
            awaited = Awaited(AsyncDispatcher(sync), sync, ASYNC_FACE)
        faces.append(awaited)
        return awaited

    yield make
    for face in faces:
        face.loop.close()


@pytest.fixture(name="any_face", params=["sync", "async"])
def _any_face(
    request: pytest.FixtureRequest,
    make_face: Callable[[str, Any], Any],
    store: MemoryStore,
    clock: FakeClock,
    transport: RecordingTransport,
) -> Any:
    """The ``dispatcher`` fixture's engine, once as itself and once through its asyncio face:
    a module whose ``dispatcher`` is this one runs its contract tests against both."""
    return make_face(request.param, Dispatcher(store, clock=clock, transport=transport))


# Loopback is refused by the default NetworkPolicy: a test that delivers to a local server
# through the real transport opts in with this policy (or the fixture below).
LOOPBACK = LOOPBACK_POLICY


@pytest.fixture(name="loopback_policy")
def _loopback_policy() -> NetworkPolicy:
    return LOOPBACK


@pytest.fixture(name="http_dispatcher")
def _http_dispatcher() -> Iterator[Callable[..., Dispatcher]]:
    """Build Dispatchers that deliver over real HTTP (Urllib3Transport, the system clock) to
    servers on loopback. Every real-HTTP test builds its Dispatcher here, so that what it
    takes to allow loopback is said once, in this fixture."""
    transports: list[Urllib3Transport] = []

    def make(**options: Any) -> Dispatcher:
        transport = Urllib3Transport(policy=LOOPBACK)
        transports.append(transport)
        options.setdefault("timeouts", Timeouts(connect=1.0, total=1.0))
        options.setdefault("lease", 30.0)
        options.setdefault("network_policy", LOOPBACK)
        return Dispatcher(MemoryStore(), clock=SystemClock(), transport=transport, **options)

    yield make
    for transport in transports:
        transport.close()


# -- both transports, sync and async, under the same tests -----------------------------------


def aiohttp_transport_class() -> type[AsyncTransport]:
    """AiohttpTransport; without the `async` extra the test is skipped, saying so (not in CI)."""
    try:
        from resthooks.transports import AiohttpTransport  # noqa: PLC0415 - optional extra
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("aiohttp is not installed: pip install -e '.[async]' to run these tests")
    return AiohttpTransport


def asyncio_transport_class() -> type[AsyncTransport]:
    """AsyncioTransport; without the `async` extra the test is skipped, saying so (not in CI)."""
    try:
        from resthooks.transports import AsyncioTransport  # noqa: PLC0415 - optional extra
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("httptools is not installed: pip install -e '.[async]' to run these tests")
    return AsyncioTransport


ASYNC_TRANSPORTS = {"aiohttp": aiohttp_transport_class, "asyncio": asyncio_transport_class}


@pytest.fixture(name="aiohttp_transport")
def _aiohttp_transport() -> type[AsyncTransport]:
    """The AiohttpTransport class (skipped, saying so, without the `async` extra; not in CI)."""
    return aiohttp_transport_class()


@pytest.fixture(name="async_transport_class", params=list(ASYNC_TRANSPORTS))
def _async_transport_class(request: pytest.FixtureRequest) -> type[AsyncTransport]:
    """Each async transport class in turn: AiohttpTransport, then AsyncioTransport."""
    return ASYNC_TRANSPORTS[request.param]()


class BlockingTransport:
    """An AsyncTransport behind the sync Transport protocol, on an event loop of its own.

    It lets the same tests, and the sync Dispatcher, drive the async transport: ``send`` runs
    the coroutine on the loop's thread and waits for it.
    """

    def __init__(self, inner: AsyncTransport) -> None:
        self.inner = inner
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    @property
    def policy(self) -> NetworkPolicy:
        return self.inner.policy  # type: ignore[attr-defined, no-any-return]

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def send(self, request: Request) -> Response:
        return self.run(self.inner.send(request))  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.run(self.inner.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> BlockingTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


TRANSPORTS = ["urllib3", *ASYNC_TRANSPORTS]


@pytest.fixture(name="make_transport", params=TRANSPORTS)
def _make_transport(request: pytest.FixtureRequest) -> Iterator[Callable[..., Transport]]:
    """Builds the transport under test, as Urllib3Transport, AiohttpTransport and
    AsyncioTransport (the async ones driven through BlockingTransport): the same test holds
    all three to the same promises. Options are the ones all take (policy, resolver,
    ssl_context, proxy)."""
    made: list[Transport] = []

    def make(**options: Any) -> Transport:
        transport: Transport
        if request.param == "urllib3":
            transport = Urllib3Transport(**options)
        else:
            transport = BlockingTransport(ASYNC_TRANSPORTS[request.param]()(**options))
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


# -- real HTTP on loopback (the worker's tests) ----------------------------------------------


@pytest.fixture(name="make_loopback_dispatcher")
def _make_loopback_dispatcher() -> Iterator[Callable[..., Dispatcher]]:
    """Builds every Dispatcher that sends real requests to loopback servers: when the network
    policy refuses loopback by default, its opt-in goes here, once."""
    made: list[Dispatcher] = []

    def make(**options: Any) -> Dispatcher:
        options.setdefault("max_hooks_per_owner", None)
        options.setdefault("network_policy", LOOPBACK)
        dispatcher = Dispatcher(options.pop("store", None) or MemoryStore(), **options)
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        dispatcher.transport.close()


class BlackHole:
    """A TCP server on loopback that accepts connections, reads nothing and never answers.

    Until :meth:`release`: from then on it closes every connection, held or new, without a
    word (the sender sees a ``connection`` error), so a test can end a hanging attempt when
    a condition holds instead of after a deadline.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.connections: list[socket.socket] = []
        self.accepted = threading.Semaphore(0)
        self.released = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                if self.released.is_set():
                    conn.close()
                else:
                    self.connections.append(conn)
            self.accepted.release()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}{path}"

    def release(self) -> None:
        """Close the connections held, and every one accepted from now on."""
        with self._lock:
            self.released.set()
            for conn in self.connections:
                conn.close()

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone does not on Linux.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        with self._lock:
            for conn in self.connections:
                conn.close()


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[HookReceiver]:
    """The kit's HookReceiver: a real HTTP server on loopback, answering 204 by default."""
    with HookReceiver() as server:
        yield server


@pytest.fixture(name="black_hole")
def _black_hole() -> Iterator[BlackHole]:
    server = BlackHole()
    yield server
    server.close()


# -- asyncio: a receiver for the async worker's tests -------------------------


class AsyncReceiver:
    """An aiohttp server on loopback, on an event loop of its own thread, for many requests
    at once: each waits ``delay`` seconds (or, while ``hold`` is on, until :meth:`release`;
    or, while ``one_at_a_time`` is on, until :meth:`answer_oldest` picks it), then gets
    ``status``. It counts the requests open at once (``open``, ``max_open``) and records each
    ``webhook-id`` it received."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        from aiohttp import web  # noqa: PLC0415 - only the async tests need it

        self.delay = 0.0
        self.status = 204
        self.hold = False
        self.one_at_a_time = False
        self._waiting: collections.deque[asyncio.Event] = collections.deque()
        self.open = 0
        self.max_open = 0
        self.received: list[str] = []
        self.open_at_arrival: list[int] = []  # requests open as each arrived (itself included)
        self.loop = asyncio.new_event_loop()
        self._released: asyncio.Event | None = None
        ready = threading.Event()

        async def handle(request: web.Request) -> web.Response:
            await request.read()
            self.received.append(request.headers.get("webhook-id", ""))
            self.open += 1
            self.max_open = max(self.max_open, self.open)
            self.open_at_arrival.append(self.open)
            try:
                if self.one_at_a_time:
                    picked = asyncio.Event()
                    self._waiting.append(picked)
                    await picked.wait()
                if self.hold:
                    assert self._released is not None
                    await self._released.wait()
                if self.delay:
                    await asyncio.sleep(self.delay)
                return web.Response(status=self.status)
            finally:
                self.open -= 1

        async def start() -> None:
            self._released = asyncio.Event()
            app = web.Application()
            app.router.add_post("/{path:.*}", handle)
            self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
            await self.runner.setup()
            site = web.TCPSite(self.runner, host, 0, backlog=2048)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(start())
            self.loop.run_forever()

        self.host = host
        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        ready.wait(10)

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def release(self) -> None:
        """Answer every held request, and those to come."""
        self.hold = False
        assert self._released is not None
        self.loop.call_soon_threadsafe(self._released.set)

    def answer_oldest(self) -> None:
        """Answer the request that has waited longest (with ``one_at_a_time`` on)."""

        def answer() -> None:
            self._waiting.popleft().set()

        self.loop.call_soon_threadsafe(answer)

    def close(self) -> None:
        self.one_at_a_time = False
        self.loop.call_soon_threadsafe(lambda: [e.set() for e in self._waiting])
        if self._released is not None:
            self.release()
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(name="async_receiver")
def _async_receiver() -> Iterator[AsyncReceiver]:
    server = AsyncReceiver()
    yield server
    server.close()


@pytest.fixture(name="async_transport")
def _async_transport() -> Any:
    """The aiohttp transport, allowed to reach loopback (close it on the loop that used it)."""
    from resthooks.transports import AiohttpTransport  # noqa: PLC0415 - the async extra

    return AiohttpTransport(policy=LOOPBACK)
