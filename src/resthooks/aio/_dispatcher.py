"""AsyncDispatcher: the Dispatcher's face for asyncio hosts."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .. import _validation
from ..batching import Batching
from ..dispatcher import DEFAULT_RETENTION, Dispatcher
from ..errors import ConfigurationError
from ..lifecycle import LifecycleListener
from ..model import Attempt, Delivery, DeliveryState, Hook, HookState, Stats
from ..outcomes import DeliverySummary
from ..tracing import EmitTrace
from ..transports import AsyncTransport, Proxy

if TYPE_CHECKING:
    from ._worker import AsyncWorker

__all__ = ["AsyncDispatcher"]

P = ParamSpec("P")
T = TypeVar("T")


async def in_executor(
    executor: Executor | None, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run a blocking call of the engine on ``executor`` (the loop's default if ``None``),
    context variables carried over: what ``asyncio.to_thread`` does, on our executor. Every
    call of the asyncio face (this module's and :mod:`resthooks.aio._api`'s) goes through it."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(executor, call)


class AsyncDispatcher:
    """The :class:`~resthooks.Dispatcher` for asyncio hosts: the same engine, awaitable.

    Every method awaits the Dispatcher method of the same name run in a thread (the loop's
    default executor, or ``executor``), so a store call that blocks (SQLite waiting for
    another connection's write lock, a PostgreSQL round trip) never blocks the event loop.
    The validation, ids, errors, limits, retry policy, signing and lifecycle listeners are
    the Dispatcher's own: there is no second copy of any of them, and the sync and async
    faces can be used side by side on one engine.

    Args:
        dispatcher: The engine (configured as usual: store, clock, retry policy...).
        transport: The async transport the :meth:`worker` sends with. Default: an
            ``AsyncioTransport`` enforcing the Dispatcher's network policy, through the
            egress proxy of the Dispatcher's own transport if it has one
            (``Urllib3Transport(proxy=...)``), made on first use (needs the ``async`` extra).
        executor: Where blocking store calls run. Default: the running loop's default
            executor (as ``asyncio.to_thread``). Context variables are carried over.

    .. versionadded:: 0.2.0

    Example:
        >>> import asyncio
        >>> from resthooks import Dispatcher
        >>> from resthooks.aio import AsyncDispatcher
        >>> from resthooks.stores import MemoryStore
        >>> from resthooks.testing import FakeClock
        >>> hooks = AsyncDispatcher(Dispatcher(MemoryStore(), clock=FakeClock()))
        >>> async def main():
        ...     hook = await hooks.subscribe("party/created", "https://example.com/h", owner="a")
        ...     deliveries = await hooks.emit("party/created", {"id": 1}, owner="a")
        ...     return hook.event, [d.state.value for d in deliveries]
        >>> asyncio.run(main())
        ('party/created', ['pending'])
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        transport: AsyncTransport | None = None,
        executor: Executor | None = None,
    ) -> None:
        if not isinstance(dispatcher, Dispatcher):
            raise ConfigurationError(
                f"dispatcher must be a resthooks.Dispatcher, not {type(dispatcher).__name__}"
            )
        if transport is not None and not isinstance(transport, AsyncTransport):
            raise ConfigurationError(
                "transport must be an AsyncTransport (async send() and aclose()), not "
                f"{type(transport).__name__}"
            )
        if executor is not None and not isinstance(executor, Executor):
            raise ConfigurationError("executor must be a concurrent.futures.Executor")
        self.dispatcher = dispatcher
        self.executor = executor
        self._transport = transport

    def __repr__(self) -> str:
        return f"<AsyncDispatcher dispatcher={self.dispatcher!r}>"

    @property
    def transport(self) -> AsyncTransport:
        """The async transport (made on first use when none was given)."""
        if self._transport is None:
            self._transport = _default_transport(self.dispatcher)
        return self._transport

    async def _call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await in_executor(self.executor, fn, *args, **kwargs)

    # -- hooks -------------------------------------------------------------------------------

    async def subscribe(
        self,
        event: str,
        target_url: str,
        *,
        owner: str,
        description: str = "",
        secret: str | None = None,
        signing_key: str | None = None,
        batching: Batching | None = None,
    ) -> Hook:
        """:meth:`Dispatcher.subscribe <resthooks.Dispatcher.subscribe>`, awaitable (its
        intent verification handshake, if on, runs in the executor too).

        .. versionchanged:: 0.2.0
           ``batching``.
        """
        return await self._call(
            self.dispatcher.subscribe,
            event,
            target_url,
            owner=owner,
            description=description,
            secret=secret,
            signing_key=signing_key,
            batching=batching,
        )

    async def confirm_hook(self, hook_id: str, hook_secret: str, *, owner: str) -> Hook:
        """:meth:`Dispatcher.confirm_hook <resthooks.Dispatcher.confirm_hook>`, awaitable.

        .. versionadded:: 0.2.0
        """
        return await self._call(self.dispatcher.confirm_hook, hook_id, hook_secret, owner=owner)

    async def expire_unconfirmed(self) -> int:
        """:meth:`Dispatcher.expire_unconfirmed <resthooks.Dispatcher.expire_unconfirmed>`,
        awaitable.

        .. versionadded:: 0.2.0
        """
        return await self._call(self.dispatcher.expire_unconfirmed)

    async def public_keys(self, *, owner: str) -> dict[str, str]:
        """:meth:`Dispatcher.public_keys <resthooks.Dispatcher.public_keys>`, awaitable.

        .. versionadded:: 0.2.0
        """
        return await self._call(self.dispatcher.public_keys, owner=owner)

    async def unsubscribe(self, hook_id: str, *, owner: str) -> None:
        """:meth:`Dispatcher.unsubscribe <resthooks.Dispatcher.unsubscribe>`, awaitable."""
        await self._call(self.dispatcher.unsubscribe, hook_id, owner=owner)

    async def get_hook(self, hook_id: str, *, owner: str) -> Hook:
        """:meth:`Dispatcher.get_hook <resthooks.Dispatcher.get_hook>`, awaitable."""
        return await self._call(self.dispatcher.get_hook, hook_id, owner=owner)

    async def hooks(
        self, *, owner: str, event: str | None = None, state: HookState | str | None = None
    ) -> list[Hook]:
        """:meth:`Dispatcher.hooks <resthooks.Dispatcher.hooks>`, awaitable."""
        return await self._call(self.dispatcher.hooks, owner=owner, event=event, state=state)

    async def rotate_secret(self, hook_id: str, *, owner: str, secret: str | None = None) -> str:
        """:meth:`Dispatcher.rotate_secret <resthooks.Dispatcher.rotate_secret>`, awaitable."""
        return await self._call(self.dispatcher.rotate_secret, hook_id, owner=owner, secret=secret)

    async def subscribe_many(
        self,
        events: str | Sequence[str],
        target_url: str,
        *,
        owner: str,
        description: str = "",
        secret: str | None = None,
        batching: Batching | None = None,
    ) -> list[tuple[Hook, bool]]:
        """:meth:`Dispatcher.subscribe_many <resthooks.Dispatcher.subscribe_many>`, awaitable.

        .. versionadded:: 0.2.0
        """
        return await self._call(
            self.dispatcher.subscribe_many,
            events,
            target_url,
            owner=owner,
            description=description,
            secret=secret,
            batching=batching,
        )

    async def update_hook(
        self,
        hook_id: str,
        *,
        owner: str,
        event: str | None = None,
        target_url: str | None = None,
        description: str | None = None,
    ) -> Hook:
        """:meth:`Dispatcher.update_hook <resthooks.Dispatcher.update_hook>`, awaitable.

        .. versionadded:: 0.2.0
        """
        return await self._call(
            self.dispatcher.update_hook,
            hook_id,
            owner=owner,
            event=event,
            target_url=target_url,
            description=description,
        )

    async def replay(
        self,
        hook_id: str,
        *,
        owner: str,
        since: datetime,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> tuple[list[Delivery], bool]:
        """:meth:`Dispatcher.replay <resthooks.Dispatcher.replay>`, awaitable.

        .. versionadded:: 0.2.0
        """
        return await self._call(
            self.dispatcher.replay, hook_id, owner=owner, since=since, until=until, limit=limit
        )

    async def ping(self, hook_id: str, *, owner: str) -> Attempt:
        """:meth:`Dispatcher.ping <resthooks.Dispatcher.ping>`, awaitable: the request is
        sent off the loop, by the executor, on the Dispatcher's own (sync) transport.

        .. versionadded:: 0.2.0
        """
        return await self._call(self.dispatcher.ping, hook_id, owner=owner)

    async def revive(self, hook_id: str, *, owner: str, redeliver_failed: bool = False) -> Hook:
        """:meth:`Dispatcher.revive <resthooks.Dispatcher.revive>`, awaitable."""
        return await self._call(
            self.dispatcher.revive, hook_id, owner=owner, redeliver_failed=redeliver_failed
        )

    # -- events ------------------------------------------------------------------------------

    async def emit(
        self,
        event: str,
        payload: object,
        *,
        owner: str,
        connection: object | None = None,
        ordering_key: str | None = None,
    ) -> Sequence[Delivery]:
        """:meth:`Dispatcher.emit <resthooks.Dispatcher.emit>`, awaitable.

        Args:
            event: An event of the catalogue.
            payload: One entity or a sequence of them.
            owner: Whose hooks receive it.
            connection: The transactional outbox. A :class:`psycopg.AsyncConnection` to the
                :class:`~resthooks.stores.PostgresStore`'s database, with the host's
                transaction open: the deliveries are written through it, on the loop, and
                exist only if that transaction commits. A sync connection (``psycopg``,
                ``sqlite3``) is used as :meth:`Dispatcher.emit
                <resthooks.Dispatcher.emit>` uses it, in a thread (a ``sqlite3`` connection
                must then allow it: ``check_same_thread=False``). Async SQLite drivers
                (``aiosqlite``) cannot be joined: their transaction lives on their own
                thread, out of the store's reach, so they are refused.
            ordering_key: As for :meth:`Dispatcher.emit <resthooks.Dispatcher.emit>`.

        Raises:
            ValidationError: For an unknown event, a bad owner or ordering key.
            PayloadError: If the payload cannot be encoded or is too large.
            ConfigurationError: For a connection the store cannot write through.
        """
        if connection is not None and _is_async_connection(connection):
            return await self._emit_through(
                event, payload, owner=owner, connection=connection, ordering_key=ordering_key
            )
        return await self._call(
            self.dispatcher.emit,
            event,
            payload,
            owner=owner,
            connection=connection,
            ordering_key=ordering_key,
        )

    async def emit_many(
        self,
        events: Iterable[tuple[str, object, str] | tuple[str, object, str, str | None]],
        *,
        connection: object | None = None,
    ) -> Sequence[Delivery]:
        """:meth:`Dispatcher.emit_many <resthooks.Dispatcher.emit_many>`, awaitable: several
        events in one store transaction, run in the executor like every call of this face.

        The validation and its errors are the Dispatcher's: every event is checked and
        encoded before anything is stored, one bad event stores none, and the error names
        the field and the event's index (``events[3]: ...``).

        Args:
            events: ``(event, payload, owner)`` or ``(event, payload, owner, ordering_key)``
                tuples.
            connection: A sync connection (``psycopg``, ``sqlite3``), used as
                :meth:`Dispatcher.emit_many <resthooks.Dispatcher.emit_many>` uses it, in the
                executor's thread. An async connection is refused: call :meth:`emit` for
                each event inside the host's transaction instead.

        Returns:
            The new pending deliveries of all the events, in their order.

        Raises:
            ValidationError: Naming the field at fault and the event's index; nothing is
                stored.
            PayloadError: Likewise, for a payload that cannot be encoded or is too large.
            ConfigurationError: For an async connection (naming ``connection``).

        .. versionadded:: 0.2.0

        Example:
            >>> import asyncio
            >>> from resthooks import Dispatcher
            >>> from resthooks.aio import AsyncDispatcher
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock
            >>> hooks = AsyncDispatcher(Dispatcher(MemoryStore(), clock=FakeClock()))
            >>> async def main():
            ...     await hooks.subscribe("party/created", "https://example.com/h", owner="a")
            ...     await hooks.subscribe("party/created", "https://example.com/h", owner="b")
            ...     made = await hooks.emit_many(
            ...         [("party/created", {"id": 1}, "a"), ("party/created", {"id": 2}, "b")]
            ...     )
            ...     return [d.owner for d in made]
            >>> asyncio.run(main())
            ['a', 'b']
        """
        if connection is not None and _is_async_connection(connection):
            raise ConfigurationError(
                f"connection: emit_many cannot write through an async connection "
                f"({type(connection).__module__}.{type(connection).__name__}); await emit() "
                "for each event inside the transaction instead"
            )
        return await self._call(self.dispatcher.emit_many, events, connection=connection)

    async def _emit_through(
        self,
        event: str,
        payload: object,
        *,
        owner: str,
        connection: Any,
        ordering_key: str | None,
    ) -> Sequence[Delivery]:
        engine = self.dispatcher
        enqueue_async = getattr(engine.store, "enqueue_async", None)
        if enqueue_async is None:
            raise ConfigurationError(
                f"connection: {type(engine.store).__name__} cannot write through an async "
                f"connection ({type(connection).__module__}.{type(connection).__name__}); "
                "the transactional outbox on an async driver needs PostgresStore and a "
                "psycopg.AsyncConnection"
            )
        owner, event, body = engine.prepare_emit(event, payload, owner=owner)
        keyed = _validation.ordering_arguments(ordering_key)
        observer = engine.emit_observer
        if observer is None:
            created: Sequence[Delivery] = await enqueue_async(
                owner=owner,
                event=event,
                body=body,
                now=engine.clock.now(),
                connection=connection,
                **keyed,
            )
        else:  # as Dispatcher.emit does around the store's enqueue
            trace = EmitTrace(event=event, owner=owner)
            with observer(trace):
                created = await enqueue_async(
                    owner=owner,
                    event=event,
                    body=body,
                    now=engine.clock.now(),
                    connection=connection,
                    **trace.store_arguments(),
                    **keyed,
                )
                trace.deliveries = len(created)
        engine.emitted(created, transactional=True)
        return created

    # -- deliveries --------------------------------------------------------------------------

    async def deliveries(
        self,
        *,
        owner: str,
        hook_id: str | None = None,
        state: DeliveryState | str | None = None,
        limit: int = 100,
    ) -> Sequence[Delivery]:
        """:meth:`Dispatcher.deliveries <resthooks.Dispatcher.deliveries>`, awaitable."""
        return await self._call(
            self.dispatcher.deliveries, owner=owner, hook_id=hook_id, state=state, limit=limit
        )

    async def get_delivery(self, delivery_id: str, *, owner: str) -> Delivery:
        """:meth:`Dispatcher.get_delivery <resthooks.Dispatcher.get_delivery>`, awaitable."""
        return await self._call(self.dispatcher.get_delivery, delivery_id, owner=owner)

    async def attempts(self, delivery_id: str, *, owner: str) -> list[Attempt]:
        """:meth:`Dispatcher.attempts <resthooks.Dispatcher.attempts>`, awaitable."""
        return await self._call(self.dispatcher.attempts, delivery_id, owner=owner)

    async def redeliver(self, delivery_id: str, *, owner: str) -> Delivery:
        """:meth:`Dispatcher.redeliver <resthooks.Dispatcher.redeliver>`, awaitable."""
        return await self._call(self.dispatcher.redeliver, delivery_id, owner=owner)

    # -- operations ----------------------------------------------------------------------------

    async def stats(self, *, owner: str | None = None) -> Stats:
        """:meth:`Dispatcher.stats <resthooks.Dispatcher.stats>`, awaitable."""
        return await self._call(self.dispatcher.stats, owner=owner)

    async def purge(self, *, older_than: float | timedelta = DEFAULT_RETENTION) -> int:
        """:meth:`Dispatcher.purge <resthooks.Dispatcher.purge>`, awaitable."""
        return await self._call(self.dispatcher.purge, older_than=older_than)

    def add_listener(self, listener: LifecycleListener) -> LifecycleListener:
        """:meth:`Dispatcher.add_listener <resthooks.Dispatcher.add_listener>` (the engine's
        listeners: both faces and both workers call them)."""
        return self.dispatcher.add_listener(listener)

    def remove_listener(self, listener: LifecycleListener) -> None:
        """:meth:`Dispatcher.remove_listener <resthooks.Dispatcher.remove_listener>`."""
        self.dispatcher.remove_listener(listener)

    # -- the worker ----------------------------------------------------------------------------

    def worker(
        self,
        *,
        concurrency: int = 256,
        poll_interval: float = 5.0,
        grace: float | None = None,
    ) -> AsyncWorker:
        """An :class:`~resthooks.aio.AsyncWorker` sending this engine's deliveries on
        :attr:`transport`, up to ``concurrency`` at once."""
        from ._worker import AsyncWorker  # noqa: PLC0415 - the worker module imports this one

        return AsyncWorker(self, concurrency=concurrency, poll_interval=poll_interval, grace=grace)

    async def run(
        self,
        *,
        concurrency: int = 256,
        stop: asyncio.Event | None = None,
        poll_interval: float = 5.0,
        grace: float | None = None,
    ) -> DeliverySummary:
        """Deliver until ``stop`` is set: :meth:`AsyncWorker.run
        <resthooks.aio.AsyncWorker.run>` of a new :meth:`worker`."""
        worker = self.worker(concurrency=concurrency, poll_interval=poll_interval, grace=grace)
        return await worker.run(stop)

    async def run_until_idle(
        self,
        *,
        concurrency: int = 256,
        stop: asyncio.Event | None = None,
        grace: float | None = None,
    ) -> DeliverySummary:
        """Deliver until nothing is due and nothing is in flight: :meth:`AsyncWorker.run_until_idle
        <resthooks.aio.AsyncWorker.run_until_idle>` of a new :meth:`worker`."""
        return await self.worker(concurrency=concurrency, grace=grace).run_until_idle(stop)

    async def aclose(self) -> None:
        """Close the async transport if this face made it (the store stays open: it is the
        Dispatcher's)."""
        if self._transport is not None:
            await self._transport.aclose()


def _is_async_connection(connection: object) -> bool:
    # Decided without importing any driver: psycopg's AsyncConnection, aiosqlite's,
    # asyncpg's... execute or commit with a coroutine function (aiosqlite wraps execute).
    kind = type(connection)
    return any(
        callable(method) and inspect.iscoroutinefunction(inspect.unwrap(method))
        for method in (getattr(kind, "execute", None), getattr(kind, "commit", None))
    )


def _default_transport(dispatcher: Dispatcher) -> AsyncTransport:
    try:
        from ..transports import AsyncioTransport  # noqa: PLC0415 - needs the async extra
    except ImportError:
        raise ConfigurationError(
            "AsyncDispatcher needs an async transport: pass transport=..., or install the "
            "'async' extra (resthooks[async]) for the default one"
        ) from None
    # The sync transport's egress proxy, if it has one: the async worker sends from the same
    # fixed addresses, or receivers that allow-list them would refuse it.
    proxy = getattr(dispatcher.transport, "proxy", None)
    transport: AsyncTransport = AsyncioTransport(
        policy=dispatcher.network_policy, proxy=proxy if isinstance(proxy, Proxy) else None
    )
    return transport
