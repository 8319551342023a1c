"""The asyncio delivery worker: its capacity is deliveries in flight, not threads."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from .._hosts import HostGate
from ..clock import Clock, SystemClock
from ..errors import ConfigurationError, InvalidStateError, ResthooksError, StoreError
from ..model import Claim, Outcome
from ..outcomes import DeliverySummary
from ..stores import WakesWorkers
from ..worker import (
    StoreTrouble,
    claim_limit,
    idle_deadline,
    listen_for_work,
    release_outcome,
    still_recordable,
    unmade_attempt,
)

if TYPE_CHECKING:
    from ._dispatcher import AsyncDispatcher

__all__ = ["AsyncWorker"]

logger = logging.getLogger("resthooks")

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_CONCURRENCY = 256


class AsyncWorker:
    """Delivers for an :class:`~resthooks.aio.AsyncDispatcher` on one asyncio event loop.

    Make one with :meth:`AsyncDispatcher.worker() <resthooks.aio.AsyncDispatcher.worker>`.
    Its capacity is ``concurrency`` attempts in flight at once, each an ``await`` on the
    async transport rather than a thread. The loop claims due deliveries from the store in
    batches (up to one batch ahead of the attempts), starts attempts as slots free up,
    records their outcomes in batches, and waits until something can be done: an attempt
    finished, an emit in this process, the next delivery due, ``stop``, or
    ``poll_interval``. Store calls run one at a time on a thread of the worker's own, never
    on the loop, so a store that blocks (a locked SQLite file) does not stall the attempts
    in flight, nor the host's application sharing the loop.

    Everything else is the thread worker's (:class:`resthooks.worker.Worker`), from the same
    code: the Dispatcher's policy decides every outcome (:meth:`Dispatcher.attempt_steps
    <resthooks.Dispatcher.attempt_steps>`: retries, ``Retry-After``, the timeout penalty,
    410, dead hooks, signing), the store's per-host limit, slow start per host and slow
    hosts cut down to one attempt in flight (see :doc:`worker`), lifecycle listeners (called
    on the worker's store thread), and the ``run`` / ``run_until_idle`` semantics, with a
    :class:`~resthooks.testing.FakeClock` as well.

    Args:
        dispatcher: Whose deliveries to send, on its ``transport``.
        concurrency: Attempts in flight at once. Default 256.
        poll_interval: Seconds between looks at the store while nothing is due (for work
            queued by other processes). Default 5 s.
        grace: When stopping, how long attempts in flight may take to finish, in seconds.
            Default: the Dispatcher's attempt deadline (``timeouts.total``).

    Raises:
        ConfigurationError: For a bad option.

    .. versionadded:: 0.2.0

    Example:
        >>> import asyncio
        >>> from resthooks import Dispatcher
        >>> from resthooks.aio import AsyncDispatcher
        >>> from resthooks.stores import MemoryStore
        >>> from resthooks.testing import AsyncRecordingTransport, FakeClock
        >>> hooks = AsyncDispatcher(
        ...     Dispatcher(MemoryStore(), clock=FakeClock()), transport=AsyncRecordingTransport()
        ... )
        >>> async def main():
        ...     _ = await hooks.subscribe("party/created", "https://example.com/h", owner="a")
        ...     _ = await hooks.emit("party/created", {"id": 1}, owner="a")
        ...     return await hooks.worker(concurrency=1024).run_until_idle()
        >>> asyncio.run(main()).delivered
        1
    """

    def __init__(
        self,
        dispatcher: AsyncDispatcher,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        poll_interval: float = 5.0,
        grace: float | None = None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError("concurrency must be an int >= 1")
        if not _seconds(poll_interval) or poll_interval <= 0:
            raise ConfigurationError("poll_interval must be a finite number of seconds > 0")
        if grace is not None and not _seconds(grace):
            raise ConfigurationError("grace must be None or a finite number of seconds >= 0")
        self.async_dispatcher = dispatcher
        self.dispatcher = dispatcher.dispatcher
        self.transport = dispatcher.transport  # made now: a missing extra is said at once
        self.concurrency = concurrency
        self.poll_interval = float(poll_interval)
        self.grace = float(grace) if grace is not None else self.dispatcher.timeouts.total
        self._stopping = False
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._heartbeat: datetime | None = None

    def __repr__(self) -> str:
        return f"<AsyncWorker concurrency={self.concurrency} dispatcher={self.dispatcher!r}>"

    @property
    def heartbeat(self) -> datetime | None:
        """When the running loop last went round (the Dispatcher's clock), or ``None`` when
        it is not running, as :attr:`Worker.heartbeat <resthooks.worker.Worker.heartbeat>`
        (what :func:`resthooks.health.check_health` watches). Readable from any thread."""
        return self._heartbeat

    async def run(self, stop: asyncio.Event | None = None) -> DeliverySummary:
        """Deliver until ``stop`` is set (or :meth:`stop` is called).

        Then: no new work is taken, claims not yet sent are released, attempts in flight get
        ``grace`` seconds to finish and be recorded, and those still running after it are
        cancelled and their claims released (they may reach their receiver twice:
        deliveries are at least once, with a stable ``webhook-id``). When it returns,
        nothing of this worker is in flight. Cancelling the task instead skips the grace:
        its attempts are cancelled at once and every claim is released before the
        cancellation goes on.

        Returns:
            The counts of outcomes recorded.

        Raises:
            InvalidStateError: If this worker is already running.
        """
        return await self._run(stop, once=False)

    async def run_until_idle(self, stop: asyncio.Event | None = None) -> DeliverySummary:
        """Deliver until nothing is due now and nothing is in flight.

        Never sleeps on the clock (with a :class:`~resthooks.testing.FakeClock` time stands
        still while it runs); ``stop`` ends it early, as in :meth:`run`.
        """
        return await self._run(stop, once=True)

    def stop(self) -> None:
        """Ask the running worker to stop (safe from any thread). A stop asked for before
        :meth:`run` makes that run stop at once."""
        self._stopping = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            _set_threadsafe(loop, wake)

    async def _run(self, stop: asyncio.Event | None, *, once: bool) -> DeliverySummary:
        if self._running:
            raise InvalidStateError("this worker is already running")
        self._running = True
        loop = asyncio.get_running_loop()
        self._loop, wake = loop, asyncio.Event()
        self._wake = wake
        session = _Session(self, stop, loop, wake)
        waker = _Waker(loop, wake)
        self.dispatcher.add_waker(waker)  # the engine's own worker: emits wake it
        watcher = loop.create_task(_watch(stop, wake)) if stop is not None else None
        listener = None if once else self._listener(waker)
        try:
            logger.info(
                "async worker started: %d in flight at most%s",
                self.concurrency,
                " (until idle)" if once else "",
                extra={"concurrency": self.concurrency},
            )
            await session.loop(once=once)
            await session.finish()
        finally:
            self._heartbeat = None
            if watcher is not None:
                watcher.cancel()
            await session.abandon()
            self.dispatcher.remove_waker(waker)
            if listener is not None:
                thread, ended = listener
                ended.set()
                await asyncio.to_thread(thread.join)  # within a second: it waits no longer
            self._loop = self._wake = None
            self._stopping = False
            self._running = False
        logger.info(
            "async worker stopped: %d attempts recorded",
            session.summary.attempts,
            extra={"attempts": session.summary.attempts},
        )
        return session.summary

    def _listener(self, waker: _Waker) -> tuple[threading.Thread, threading.Event] | None:
        # A store that hears of work (PostgreSQL's LISTEN/NOTIFY: another process's emit, an
        # outbox emit's commit) wakes the loop through a thread of its own, as for the
        # thread worker: its wait blocks.
        store = self.dispatcher.store
        if not (isinstance(store, WakesWorkers) and store.notifies):
            return None
        ended = threading.Event()
        thread = threading.Thread(
            target=listen_for_work,
            args=(store,),
            kwargs={
                "wake": waker.set,
                "running": lambda: not ended.is_set(),
                "stopping": ended,
                "poll_interval": self.poll_interval,
            },
            name="resthooks-listen",
            daemon=True,
        )
        thread.start()
        return thread, ended


class _Waker:
    """What the engine sets on emit, from any thread: wakes the worker's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wake: asyncio.Event) -> None:
        self.loop = loop
        self.wake = wake

    def set(self) -> None:
        _set_threadsafe(self.loop, self.wake)


def _set_threadsafe(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has closed: nothing left to wake
        loop.call_soon_threadsafe(event.set)


async def _watch(stop: asyncio.Event, wake: asyncio.Event) -> None:
    await stop.wait()
    wake.set()


def _seconds(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 <= value < float("inf")
    )


async def sleep_until(clock: Clock, deadline: datetime, wake: asyncio.Event) -> None:
    """Return at ``deadline`` on ``clock``, or once ``wake`` is set, without blocking the loop.

    The system clock waits on the loop; any other clock (a FakeClock jumps at once) waits in
    its own ``sleep_until``, on a thread, woken through a threading.Event mirroring ``wake``.
    """
    if wake.is_set():
        return
    if isinstance(clock, SystemClock):
        seconds = (deadline - clock.now()).total_seconds()
        if seconds > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), seconds)
        return
    mirror = threading.Event()
    waiter = asyncio.get_running_loop().create_task(wake.wait())
    waiter.add_done_callback(lambda _: mirror.set())
    try:
        await asyncio.to_thread(clock.sleep_until, deadline, mirror)
    finally:
        waiter.cancel()


class _Session:
    """The state of one run: claims waiting to start, attempts in flight, results."""

    def __init__(
        self,
        worker: AsyncWorker,
        stop: asyncio.Event | None,
        loop: asyncio.AbstractEventLoop,
        wake: asyncio.Event,
    ) -> None:
        self.worker = worker
        self.dispatcher = worker.dispatcher
        self.transport = worker.transport
        self.clock = worker.dispatcher.clock
        self.stop_event = stop
        self.loop_ = loop
        self.wake = wake
        # One thread for the store: its calls are sequential anyway, and never run on the loop.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resthooks-store")
        self.claimer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resthooks-store-claim")
        self.gate = HostGate(self.dispatcher.limits.in_flight_per_host)
        # Claims taken out of the gate until their outcome is recorded; `sending` counts
        # those whose attempt is still running (the slots in use).
        self.in_flight: dict[str, tuple[Claim, asyncio.Task[None]]] = {}
        self.sending = 0
        self.stale: list[Claim] = []
        self.done: list[tuple[Claim, Outcome | None]] = []
        self.summary = DeliverySummary()
        self.attempt_deadline = timedelta(seconds=self.dispatcher.timeouts.total)
        self.unrecorded: list[tuple[Claim, Outcome]] = []
        self.trouble = StoreTrouble(self.clock, cap=worker.poll_interval)

    def stopping(self) -> bool:
        return self.worker._stopping or (self.stop_event is not None and self.stop_event.is_set())

    async def store(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await self.loop_.run_in_executor(self.executor, call)

    # -- the loop ------------------------------------------------------------------------------

    async def loop(self, *, once: bool) -> None:
        concurrency = self.worker.concurrency
        while not self.stopping():
            self.worker._heartbeat = self.clock.now()
            # Cleared before collecting results: an attempt that ends after this point sets
            # it again, so the waits below cannot miss it.
            self.wake.clear()
            due: datetime | None = None
            try:
                if self.sending:
                    # Recording and claiming at once, on two store threads: slots must not
                    # wait for new claims while a batch of outcomes is being written.
                    recorded, _ = await asyncio.gather(self.record_done(), self.claim())
                    if recorded:
                        # That claim looked while these outcomes were being recorded: the
                        # per-host places they free may still have been taken to it. Look
                        # again now, or a freed place waits for the next attempt to end.
                        await self.claim()
                else:
                    await self.record_done()
                    await self.claim()
                await self.start_ready()
                busy = self.sending >= concurrency
                if not busy and not once and not self.stopping():
                    due = await self.store(self.dispatcher.store.next_due_at)
            except Exception as exc:
                if once:
                    if isinstance(exc, ResthooksError):
                        raise
                    raise StoreError(f"the store failed: {type(exc).__name__}: {exc}") from exc
                # As the thread worker: outlive any store failure, keep the outcomes it could
                # not record for the next round, back off, say so (once, then now and then).
                delay = self.trouble.failed(exc)
                deadline = self.clock.now() + timedelta(seconds=delay)
                await sleep_until(self.clock, deadline, self.wake)
                continue
            self.trouble.recovered()
            if self.stopping():
                return
            if busy:
                await self.wake.wait()  # every slot taken: only an ending attempt changes that
            elif once:
                if not self.in_flight and not self.done:
                    return
                await self.wake.wait()
            else:
                await self.sleep(due)

    async def claim(self) -> None:
        # Outcomes waiting to be recorded hold their claims but no slot: not counted.
        limit = claim_limit(self.gate, self.worker.concurrency, self.sending)
        if limit <= 0:
            return
        now = self.clock.now()
        call = functools.partial(
            contextvars.copy_context().run,
            self.dispatcher.claim_due,
            now=now,
            limit=limit,
            per_host=True,
        )
        self.gate.add(await self.loop_.run_in_executor(self.claimer, call))
        self.start_some()

    async def start_ready(self) -> None:
        # A claim whose lease could expire mid-attempt is let go, to be claimed afresh.
        self.stale.extend(self.gate.expiring(self.clock.now() + self.attempt_deadline))
        self.start_some()
        if self.stale:
            stale, self.stale = self.stale, []
            await self.release(stale)

    def start_some(self) -> None:
        """Start attempts for waiting claims while slots are free. Called by the loop, and by
        each attempt as it ends, so a freed slot is refilled at once, even while the loop
        waits for the store."""
        room = self.worker.concurrency - self.sending
        if room <= 0 or not len(self.gate) or self.stopping():
            return
        latest = self.clock.now() + self.attempt_deadline
        create_task = self.loop_.create_task
        for claim in self.gate.take(room):
            if claim.lease_until < latest:
                self.gate.finished(claim, None)
                self.stale.append(claim)  # released by the loop
                continue
            self.sending += 1
            self.in_flight[claim.delivery.id] = (claim, create_task(self.attempt(claim)))

    async def attempt(self, claim: Claim) -> None:
        """One attempt on the async transport, decided by the Dispatcher's policy."""
        outcome: Outcome | None
        try:
            outcome = await self.send(claim)
        except Exception as exc:  # noqa: BLE001 - e.g. a secret that no longer parses
            outcome = unmade_attempt(self.dispatcher, claim, exc)
        self.sending -= 1
        self.gate.finished(claim, outcome)
        self.done.append((claim, outcome))
        self.wake.set()
        self.start_some()

    async def send(self, claim: Claim) -> Outcome:
        steps = self.dispatcher.attempt_steps(claim)
        try:
            request = next(steps)
            try:
                response = await self.transport.send(request)
            except Exception as exc:  # noqa: BLE001 - attempt_steps turns it into an outcome
                steps.throw(exc)
            else:
                steps.send(response)
        except StopIteration as done:
            outcome: Outcome = done.value
            return outcome
        raise AssertionError("attempt_steps yields one request")  # pragma: no cover

    async def record_done(self) -> int:
        """Record the outcomes of the attempts that ended; return how many were recorded."""
        batch, self.done = self.done, []
        for claim, outcome in batch:
            if self.in_flight.pop(claim.delivery.id, None) is None:
                continue  # abandoned: its claim was released
            self.unrecorded.append(
                (claim, outcome if outcome is not None else release_outcome(claim))
            )
        if not self.unrecorded:
            return 0
        pending = self.unrecorded = still_recordable(self.unrecorded, self.clock.now())
        if not pending:
            return 0
        claims = [c for c, _ in pending]
        outcomes = [o for _, o in pending]
        summary = await self.store(self.dispatcher.record, outcomes, claims=claims)
        self.unrecorded = []
        self.summary += summary
        return len(pending)

    async def sleep(self, due: datetime | None) -> None:
        deadline = idle_deadline(
            self.clock.now(), self.worker.poll_interval, due, self.in_flight.values()
        )
        if deadline is None:
            await self.wake.wait()
        else:
            await sleep_until(self.clock, deadline, self.wake)

    # -- stopping ------------------------------------------------------------------------------

    async def finish(self) -> None:
        """Stop cleanly: release what was not sent, give attempts in flight ``grace``."""
        unsent = self.gate.drain() + self.stale
        self.stale = []
        if unsent:
            await self.release(unsent)
        deadline = self.clock.now() + timedelta(seconds=self.worker.grace)
        while self.in_flight:
            self.wake.clear()
            await self._record_done_at_stop()
            if not self.in_flight or self.clock.now() >= deadline:
                break
            await sleep_until(self.clock, deadline, self.wake)
        await self._record_done_at_stop()

    async def _record_done_at_stop(self) -> None:
        try:
            await self.record_done()
        except Exception:  # the claims run out; stopping must not be stopped by the store
            logger.exception(
                "could not record %d outcomes while stopping; their deliveries will be "
                "attempted again when their claims expire",
                len(self.unrecorded),
            )
            self.unrecorded = []

    async def abandon(self) -> None:
        """Cancel the attempts still running and release every claim still held."""
        leftover = self.gate.drain() + self.stale
        self.stale = []
        tasks = []
        for claim, task in self.in_flight.values():
            task.cancel()
            tasks.append(task)
            leftover.append(claim)
        self.in_flight.clear()
        if tasks:  # nothing of this worker stays in flight once it returns
            await asyncio.gather(*tasks, return_exceptions=True)
        if leftover:
            logger.warning(
                "released %d claimed deliveries that were not finished when the worker "
                "stopped; they will be attempted again",
                len(leftover),
                extra={"released": len(leftover)},
            )
            try:
                await self.release(leftover)
            except Exception:  # their leases expire anyway; say so
                logger.exception("could not release %d claims", len(leftover))
        self.executor.shutdown(wait=False)
        self.claimer.shutdown(wait=False)

    async def release(self, claims: list[Claim]) -> None:
        outcomes = [release_outcome(c) for c in claims]
        self.summary += await self.store(self.dispatcher.record, outcomes, claims=claims)
