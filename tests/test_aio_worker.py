"""The asyncio worker: the thread worker's semantics, with a thousand deliveries in flight."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from resthooks import (
    ConfigurationError,
    DeliveryState,
    Dispatcher,
    InvalidStateError,
    RetryPolicy,
    Timeouts,
    TransportError,
)
from resthooks.aio import AsyncDispatcher, AsyncWorker
from resthooks.lifecycle import DeliveryDelivered, LifecycleEvent
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import LOOPBACK_POLICY, AsyncRecordingTransport, FakeClock
from resthooks.transports import Response

URL = "https://example.com/hooks"


def ScriptedAsyncTransport(*script: int | Response | BaseException) -> AsyncRecordingTransport:
    """Answers from a script at once (the last step repeats): no network for policy tests."""
    return AsyncRecordingTransport(script=script or [204])


# For the tests holding 1,000 requests open: the receiver shares this process (and its GIL)
# with the worker, and on a loaded machine opening all of them can take longer than the
# default 15 s deadline, which would time the first ones out. What they test is not time.
_PATIENT: dict[str, Any] = {"timeouts": Timeouts(connect=60, total=60), "lease": 120.0}


def _face(transport: Any, clock: Any = None, **options: Any) -> AsyncDispatcher:
    options.setdefault("max_hooks_per_owner", None)
    engine = Dispatcher(MemoryStore(), clock=clock or FakeClock(), **options)
    return AsyncDispatcher(engine, transport=transport)


async def _wait_for(condition: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.01)


def test_the_retry_schedule_plays_out_at_fake_times() -> None:
    """run() with a FakeClock: two 500s then a 204 land at t, t+5 s and t+1 min 5 s."""
    clock = FakeClock()
    start = clock.now()
    hooks = _face(ScriptedAsyncTransport(500, 500, 204), clock)
    worker = hooks.worker()

    @hooks.add_listener
    def stop_when_delivered(event: LifecycleEvent) -> None:
        if isinstance(event, DeliveryDelivered):
            worker.stop()  # from the worker's store thread: stop() is thread-safe

    async def main() -> list[timedelta]:
        await hooks.subscribe("party/created", URL, owner="acme")
        [delivery] = await hooks.emit("party/created", {"id": 1}, owner="acme")
        summary = await worker.run()
        assert (summary.delivered, summary.retried) == (1, 2)
        attempts = await hooks.attempts(delivery.id, owner="acme")
        return [a.started_at - start for a in attempts]

    assert [timedelta(0), timedelta(seconds=5), timedelta(seconds=65)] == asyncio.run(main())


def test_timeout_penalty_and_retry_after_are_the_retry_policys() -> None:
    """A timeout is retried no sooner than the penalty, a 429 no sooner than Retry-After."""
    clock = FakeClock()
    answers = ScriptedAsyncTransport(
        TransportError("timeout", "too slow"), Response(status=429, headers={"Retry-After": "120"})
    )
    hooks = _face(answers, clock, retry=RetryPolicy(timeout_penalty=60.0))

    async def main() -> list[timedelta]:
        await hooks.subscribe("party/created", URL, owner="acme")
        [delivery] = await hooks.emit("party/created", {"id": 1}, owner="acme")
        waits = []
        for _ in range(2):
            await hooks.run_until_idle()
            pending = await hooks.get_delivery(delivery.id, owner="acme")
            assert pending.next_attempt_at is not None
            waits.append(pending.next_attempt_at - clock.now())
            clock.set(pending.next_attempt_at)
        return waits

    assert [timedelta(seconds=60), timedelta(seconds=120)] == asyncio.run(main())


def test_run_until_idle_leaves_later_retries_and_time_stands_still() -> None:
    """run_until_idle sends what is due, leaves the retry for later and never moves the clock."""
    clock = FakeClock()
    hooks = _face(ScriptedAsyncTransport(500), clock)
    before = clock.now()

    async def main() -> Any:
        await hooks.subscribe("party/created", URL, owner="acme")
        await hooks.emit("party/created", {"id": 1}, owner="acme")
        return await hooks.run_until_idle(concurrency=8)

    summary = asyncio.run(main())

    assert (summary.delivered, summary.retried) == (0, 1)
    assert before == clock.now()


def test_lifecycle_listeners_hear_every_attempt() -> None:
    """The engine's listeners get the async worker's outcomes, as the thread worker's."""
    hooks = _face(ScriptedAsyncTransport(204))
    heard: list[str] = []
    hooks.add_listener(lambda event: heard.append(type(event).__name__))

    async def main() -> None:
        await hooks.subscribe("party/created", URL, owner="acme")
        await hooks.emit("party/created", [{"id": 1}], owner="acme")
        await hooks.run_until_idle()

    asyncio.run(main())

    assert heard == ["AttemptFinished", "DeliveryDelivered"]


def test_an_emit_wakes_a_sleeping_worker(async_receiver: Any, async_transport: Any) -> None:
    """A worker sleeping for an hour between polls is woken by an emit in this process."""
    engine = Dispatcher(MemoryStore(), network_policy=LOOPBACK_POLICY)
    hooks = AsyncDispatcher(engine, transport=async_transport)

    async def main() -> None:
        await hooks.subscribe("party/created", async_receiver.url(), owner="acme")
        stop = asyncio.Event()
        running = asyncio.ensure_future(hooks.run(poll_interval=3600, stop=stop))
        await asyncio.sleep(0.2)  # the worker is asleep on its poll
        await hooks.emit("party/created", {"id": 1}, owner="acme")
        await _wait_for(lambda: len(async_receiver.received) == 1, "the delivery")
        stop.set()
        summary = await running
        await async_transport.aclose()
        assert summary.delivered == 1

    asyncio.run(main())


def test_a_thousand_deliveries_are_in_flight_at_once(
    async_receiver: Any, async_transport: Any
) -> None:
    """With concurrency 1,024, 1,000 deliveries to a slow receiver are all in flight at once:
    the receiver holds every request until it has 1,000 open, then answers them all."""
    count = 1000
    engine = Dispatcher(
        MemoryStore(),
        network_policy=LOOPBACK_POLICY,
        max_in_flight_per_host=None,
        max_hooks_per_owner=None,
        **_PATIENT,
    )
    hooks = AsyncDispatcher(engine, transport=async_transport)
    async_receiver.hold = True

    async def release_at_count() -> None:
        await _wait_for(lambda: async_receiver.open >= count, "1,000 requests open at once")
        async_receiver.release()

    async def main() -> Any:
        await hooks.subscribe("party/created", async_receiver.url(), owner="acme")
        for i in range(count):
            await hooks.emit("party/created", {"id": i}, owner="acme")
        releaser = asyncio.ensure_future(release_at_count())
        summary = await hooks.run_until_idle(concurrency=1024)
        await releaser
        await async_transport.aclose()
        return summary

    summary = asyncio.run(main())

    assert count == async_receiver.max_open
    assert (count, 0) == (summary.delivered, summary.retried)


def test_stopping_with_a_thousand_in_flight_loses_nothing(
    async_receiver: Any, async_transport: Any, tmp_path: Any
) -> None:
    """Stopped with 1,000 attempts in flight, the worker cancels them, releases every claim
    (none stays in flight) and a second run delivers all 1,000."""
    count = 1000
    store = SQLiteStore(tmp_path / "hooks.db")
    engine = Dispatcher(
        store,
        network_policy=LOOPBACK_POLICY,
        max_in_flight_per_host=None,
        max_hooks_per_owner=None,
        **_PATIENT,
    )
    hooks = AsyncDispatcher(engine, transport=async_transport)
    async_receiver.hold = True
    emitted: list[Any] = []

    async def main() -> tuple[Any, Any, Any]:
        await hooks.subscribe("party/created", async_receiver.url(), owner="acme")
        for i in range(count):
            emitted.extend(await hooks.emit("party/created", {"id": i}, owner="acme"))
        worker = hooks.worker(concurrency=1024, grace=0.1)
        running = asyncio.ensure_future(worker.run())
        await _wait_for(lambda: async_receiver.open >= count, "1,000 requests open")
        worker.stop()
        stopped = await running
        after_stop = await hooks.stats()
        async_receiver.release()
        second = await hooks.run_until_idle(concurrency=1024)
        await async_transport.aclose()
        return stopped, after_stop, second

    stopped, after_stop, second = asyncio.run(main())
    final = store.stats()
    store.close()

    assert stopped.attempts == 0
    assert {"pending": count} == {k: v for k, v in after_stop.deliveries.items() if v}
    assert count == second.delivered
    assert {"delivered": count} == {k: v for k, v in final.deliveries.items() if v}
    assert {d.id for d in emitted} <= set(async_receiver.received)


def test_the_stores_per_host_limit_holds(async_receiver: Any, async_transport: Any) -> None:
    """At most max_in_flight_per_host attempts to one host are in flight, however many slots:
    30 deliveries to a receiver answering after 0.2 s, with 256 slots, never have more than
    3 requests open at once (the host reaches its 3 by slow start)."""
    engine = Dispatcher(
        MemoryStore(),
        network_policy=LOOPBACK_POLICY,
        max_in_flight_per_host=3,
        max_hooks_per_owner=None,
    )
    hooks = AsyncDispatcher(engine, transport=async_transport)
    async_receiver.delay = 0.2

    async def main() -> Any:
        await hooks.subscribe("party/created", async_receiver.url(), owner="acme")
        for i in range(30):
            await hooks.emit("party/created", {"id": i}, owner="acme")
        summary = await hooks.run_until_idle(concurrency=256)
        await async_transport.aclose()
        return summary

    assert asyncio.run(main()).delivered == 30
    assert async_receiver.max_open == 3


def test_stop_before_run_and_a_second_run_at_once() -> None:
    """A stop asked before run() makes it return at once; a worker runs once at a time."""
    hooks = _face(ScriptedAsyncTransport(204))
    worker = hooks.worker()

    async def main() -> None:
        worker.stop()
        assert (await worker.run()).attempts == 0
        gate = asyncio.Event()
        running = asyncio.ensure_future(worker.run(gate))
        await asyncio.sleep(0)
        with pytest.raises(InvalidStateError):
            await worker.run()
        gate.set()
        await running

    asyncio.run(main())


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("concurrency", 0),
        ("concurrency", True),
        ("concurrency", 2.5),
        ("poll_interval", 0),
        ("poll_interval", float("nan")),
        ("grace", -1),
        ("grace", float("inf")),
    ],
)
def test_bad_options_are_configuration_errors(option: str, value: object) -> None:
    """A worker that cannot work is refused when it is made."""
    hooks = _face(ScriptedAsyncTransport())
    with pytest.raises(ConfigurationError, match=option):
        AsyncWorker(hooks, **{option: value})  # type: ignore[arg-type]


def test_an_attempt_that_cannot_be_made_fails_the_attempt_not_the_worker() -> None:
    """A transport raising something that is not a TransportError is a failed attempt."""
    hooks = _face(ScriptedAsyncTransport(RuntimeError("broken transport")))

    async def main() -> Any:
        await hooks.subscribe("party/created", URL, owner="acme")
        [delivery] = await hooks.emit("party/created", {"id": 1}, owner="acme")
        summary = await hooks.run_until_idle()
        return summary, await hooks.attempts(delivery.id, owner="acme")

    summary, attempts = asyncio.run(main())

    assert summary.retried == 1
    assert [a.error_kind for a in attempts] == ["protocol"]


def test_the_worker_never_runs_store_calls_on_the_loop() -> None:
    """Claims and records run on the worker's own store thread, not the loop's."""
    threads: set[str] = set()

    class Watched(MemoryStore):
        def claim_due(self, **kwargs: Any) -> Any:
            threads.add(threading.current_thread().name)
            return super().claim_due(**kwargs)

        def record(self, outcomes: Any, **kwargs: Any) -> Any:
            threads.add(threading.current_thread().name)
            return super().record(outcomes, **kwargs)

    engine = Dispatcher(Watched(), clock=FakeClock())
    hooks = AsyncDispatcher(engine, transport=ScriptedAsyncTransport(204))

    async def main() -> int:
        await hooks.subscribe("party/created", URL, owner="acme")
        await hooks.emit("party/created", {"id": 1}, owner="acme")
        return (await hooks.run_until_idle()).delivered

    assert asyncio.run(main()) == 1
    assert threads
    assert all(name.startswith("resthooks-store") for name in threads)


def test_deliveries_are_signed_and_timed_like_the_thread_workers() -> None:
    """The async worker's requests are the Dispatcher's: same headers, signature, deadline."""
    transport = ScriptedAsyncTransport(204)
    hooks = _face(transport, timeouts=Timeouts(connect=1, total=2), retry=RetryPolicy())

    async def main() -> None:
        await hooks.subscribe("party/created", URL, owner="acme")
        await hooks.emit("party/created", {"id": 1}, owner="acme")
        await hooks.run_until_idle()

    asyncio.run(main())
    [request] = transport.requests

    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= set(request.headers)
    assert Timeouts(connect=1, total=2) == request.timeouts
    assert hooks.dispatcher.store.list_deliveries()[0].state == DeliveryState.DELIVERED


def test_cancelling_the_worker_releases_every_claim() -> None:
    """A cancelled run() task cancels its attempts and releases their claims: none stays in
    flight in the store, and the cancellation goes on to the caller."""

    async def never(request: Any) -> Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    transport = AsyncRecordingTransport(never)
    hooks = _face(transport, max_in_flight_per_host=None)

    async def main() -> Any:
        await hooks.subscribe("party/created", URL, owner="acme")
        for i in range(50):
            await hooks.emit("party/created", {"id": i}, owner="acme")
        running = asyncio.ensure_future(hooks.run())
        await _wait_for(lambda: len(transport.requests) == 50, "50 attempts in flight")
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        return await hooks.stats()

    stats = asyncio.run(main())

    assert {k: v for k, v in stats.deliveries.items() if v} == {"pending": 50}


def _open_files(path: Any) -> int:
    """How many file descriptors of this process are open on ``path``."""
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # closed since it was listed
            if os.readlink(fd) == str(path):
                count += 1
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc")
def test_running_the_worker_again_and_again_does_not_keep_each_runs_connections(
    tmp_path: Any,
) -> None:
    """Each run has store threads of its own, each with its own SQLite connection: once a run
    has ended, its connections are closed when the next run opens its own, so twenty runs in
    one process keep the file open about as many times as one run does (a run whose threads
    had not quite ended when the next one began may leave two more, for one run)."""
    db = tmp_path / "hooks.db"
    store = SQLiteStore(db)
    hooks = AsyncDispatcher(
        Dispatcher(store, clock=FakeClock(), max_hooks_per_owner=None),
        transport=AsyncRecordingTransport(),
    )
    opened: list[int] = []

    async def main() -> None:
        # One thread for the face's own store calls, so that only the runs' threads vary.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
        await hooks.subscribe("party/created", URL, owner="acme")
        for i in range(20):
            await hooks.emit("party/created", {"id": i}, owner="acme")
            assert (await hooks.run_until_idle()).delivered == 1
            opened.append(_open_files(db))

    asyncio.run(main())
    store.close()

    assert max(opened) <= min(opened) + 4, opened
    assert _open_files(db) == 0
