"""The long-running worker: many attempts at once, slow endpoints kept apart, a clean stop."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ._durations import seconds
from ._hosts import HostGate
from .errors import (
    ConfigurationError,
    InvalidStateError,
    ResthooksError,
    StoreError,
    TransportError,
)
from .model import Claim, Outcome, OutcomeKind
from .outcomes import DeliverySummary
from .stores import WakesWorkers

if TYPE_CHECKING:
    from .clock import Clock
    from .dispatcher import Dispatcher

__all__ = ["Worker"]

logger = logging.getLogger("resthooks")

_RUNS = itertools.count(1)

#: The most threads one worker runs (each is a thread and a connection, and the worker
#: claims twice as many deliveries at once).
MAX_WORKERS = 4096


class Worker:
    """Delivers for a :class:`~resthooks.Dispatcher` on a bounded pool of threads.

    Make one with :meth:`Dispatcher.worker() <resthooks.Dispatcher.worker>` (or let
    :meth:`Dispatcher.run() <resthooks.Dispatcher.run>` make it). One loop thread claims due
    deliveries from the store in batches, queues them (up to ``workers`` beyond the threads)
    for ``workers`` threads that make the attempts and take the next queued claim
    as soon as they finish, records their outcomes in batches, and sleeps until something
    can be done: the queue ran low, a batch of attempts finished or none is left running, an
    emit in this process, the next delivery due, ``stop``, or ``poll_interval`` (for work
    queued by other processes). A queued claim whose lease could run out during its attempt,
    or that is still queued when the worker stops, goes back to the store unsent.

    With ``workers=1`` (and a ``grace`` no shorter than the attempt deadline, the default)
    the loop thread makes the attempts itself, one after the other, and records them
    together: with one attempt at a time there is nothing to gain from a second thread,
    and handing each claim to it and its outcome back cost a third of a delivery. A stop
    then waits for the attempt in flight, which its deadline bounds, as ``grace`` would.

    How a slow endpoint is kept from delaying the others:

    - at most ``Dispatcher.limits.in_flight_per_host`` deliveries to one host are in flight at
      once (claimed or being sent), enforced by the store when claiming, so a host that never
      answers ties up at most that many threads;
    - a new host starts with one attempt in flight and earns its limit by answering (slow
      start: one more per HTTP answer, any status); a host whose attempts time out gets
      less: each timeout halves this worker's limit for it, down to 1 (4 → 2 → 1), and it
      climbs back by slow start as it answers again; its other claims wait without holding
      a thread (see :doc:`worker`), so black holes spread over many hosts hold one thread
      each;
    - an attempt that timed out is retried no sooner than ``RetryPolicy.timeout_penalty``
      (60 s by default);
    - deliveries are claimed oldest due first, so a first attempt due now is sent before any
      retry that is due later, and a failing host's retries are spread out by the schedule
      and capped by the per-host limit: retries cannot crowd out first attempts.

    Args:
        dispatcher: Whose deliveries to send.
        workers: Threads making attempts at once. Default 16.
        poll_interval: Seconds between looks at the store while nothing is due (only work
            queued by another process needs it: an emit in this process wakes the worker at
            once, and so does one in another process when the store wakes workers,
            :class:`~resthooks.stores.WakesWorkers`, such as ``PostgresStore(notify=True)``;
            an outbox emit wakes it at its host's commit on PostgreSQL, or when the host
            calls :meth:`~resthooks.Dispatcher.committed`).
            Default 5 s.
        grace: When stopping, how long attempts in flight may take to finish, in seconds.
            Default: the Dispatcher's attempt deadline (``timeouts.total``).

    Raises:
        ConfigurationError: For a bad option.

    Example:
        >>> from resthooks import Dispatcher
        >>> from resthooks.stores import MemoryStore
        >>> from resthooks.testing import FakeClock, RecordingTransport
        >>> dispatcher = Dispatcher(
        ...     MemoryStore(), clock=FakeClock(), transport=RecordingTransport()
        ... )
        >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
        >>> _ = dispatcher.emit("party/created", [{"id": 1}], owner="acme")
        >>> worker = dispatcher.worker(workers=4)
        >>> worker.run_until_idle().delivered
        1
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        workers: int = 16,
        poll_interval: float = 5.0,
        grace: float | None = None,
    ) -> None:
        if (
            isinstance(workers, bool)
            or not isinstance(workers, int)
            or not 1 <= workers <= MAX_WORKERS
        ):
            raise ConfigurationError(f"workers must be an int from 1 to {MAX_WORKERS}")
        self.poll_interval = seconds(poll_interval, "poll_interval", positive=True)
        self.grace = seconds(grace, "grace") if grace is not None else dispatcher.timeouts.total
        self.dispatcher = dispatcher
        self.workers = workers
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._running = threading.Lock()
        self._run_id = 0
        self._heartbeat: datetime | None = None

    @property
    def heartbeat(self) -> datetime | None:
        """When the running loop last went round (the Dispatcher's clock), or ``None`` when
        it is not running: what :func:`resthooks.health.check_health` watches.

        The loop goes round at least every ``poll_interval`` while idle, and whenever an
        attempt finishes while busy, so a heartbeat older than the attempt deadline plus
        ``poll_interval`` means a stuck loop.

        .. versionadded:: 0.2.0
        """
        return self._heartbeat

    def run(self, stop: threading.Event | None = None) -> DeliverySummary:
        """Deliver until ``stop`` is set (or :meth:`stop` is called).

        Then: no new work is taken, claims not yet sent are released, attempts in flight get
        ``grace`` seconds to finish and be recorded, and the claims of those still running
        after it are released too (they may reach their receiver twice: deliveries are
        at least once, with a stable ``webhook-id``). No delivery is left in flight.

        Returns:
            The counts of outcomes recorded.

        Raises:
            InvalidStateError: If this worker is already running.
        """
        return self._run(stop, once=False)

    def run_until_idle(self, stop: threading.Event | None = None) -> DeliverySummary:
        """Deliver until nothing is due now and nothing is in flight (``worker --once``).

        Never sleeps on the clock: it only waits for its own attempts, so with a
        :class:`~resthooks.testing.FakeClock` time stands still while it runs. ``stop``
        (or :meth:`stop`) ends it early, as in :meth:`run`; it is noticed when an attempt
        finishes.

        Returns:
            The counts of outcomes recorded.
        """
        return self._run(stop, once=True)

    def stop(self) -> None:
        """Ask the running loop to stop now (thread-safe). A stop asked for before
        :meth:`run` makes that run stop at once."""
        self._stopping.set()
        self._wake.set()

    def _run(self, stop: threading.Event | None, *, once: bool) -> DeliverySummary:
        if not self._running.acquire(blocking=False):
            raise InvalidStateError("this worker is already running")
        run_id = self._run_id = next(_RUNS)
        session = _Session(self, stop)
        listener: threading.Thread | None = None
        self.dispatcher.add_waker(self._wake)  # the Dispatcher's own worker
        try:
            if stop is not None and not once:
                threading.Thread(
                    target=self._watch, args=(stop, run_id), name="resthooks-stop", daemon=True
                ).start()
            store = self.dispatcher.store
            if not once and isinstance(store, WakesWorkers) and store.notifies:
                listener = threading.Thread(
                    target=self._listen, args=(store, run_id), name="resthooks-listen"
                )
                listener.start()
            logger.info(
                "worker started: %d threads%s",
                self.workers,
                " (until idle)" if once else "",
                extra={"workers": self.workers},
            )
            session.loop(once=once)
            session.finish()
        finally:
            self._heartbeat = None
            session.abandon()
            self.dispatcher.remove_waker(self._wake)
            self._stopping.clear()
            self._running.release()
            if listener is not None:
                listener.join()
        logger.info(
            "worker stopped: %d attempts recorded",
            session.summary.attempts,
            extra={"attempts": session.summary.attempts},
        )
        return session.summary

    def _listen(self, store: WakesWorkers, run_id: int) -> None:
        listen_for_work(
            store,
            wake=self._wake.set,
            running=lambda: self._run_id == run_id and self._running.locked(),
            stopping=self._stopping,
            poll_interval=self.poll_interval,
        )

    def _watch(self, stop: threading.Event, run_id: int) -> None:
        # Wakes the loop when the caller's Event is set. An Event cannot be waited on together
        # with the end of the run, so it looks at the run once a second between waits: a run
        # that ends another way (an error, Worker.stop) does not leave this thread behind.
        while self._run_id == run_id and self._running.locked():
            if stop.wait(_WATCH_INTERVAL):
                if self._run_id == run_id and self._running.locked():
                    self.stop()
                return

    def __repr__(self) -> str:
        return f"<Worker workers={self.workers} dispatcher={self.dispatcher!r}>"


_WATCH_INTERVAL = 1.0


def listen_for_work(
    store: WakesWorkers,
    *,
    wake: Callable[[], object],
    running: Callable[[], bool],
    stopping: threading.Event,
    poll_interval: float,
) -> None:
    """Call ``wake`` each time the store hears of new work, while ``running()`` holds.

    The listening thread of both workers (the thread worker's and the asyncio one's): work
    another process enqueued, or an outbox emit whose host transaction committed (the
    store's LISTEN/NOTIFY), wakes the loop, so the poll interval only bounds retries that
    come due. It waits at most a second at a time, to notice the end of its run; if the
    store cannot listen, it says so once and tries again every second (``stopping`` cuts
    that wait short) while the loop polls.
    """
    failing = False
    while running():
        try:
            if store.wait_for_work(_WATCH_INTERVAL):
                wake()
            if failing:
                logger.info("listening for work again")
            failing = False
        except StoreError:
            if not failing:
                logger.warning(
                    "cannot listen for work (polling every %s s meanwhile)",
                    poll_interval,
                    exc_info=True,
                )
            failing = True
            stopping.wait(min(poll_interval, _WATCH_INTERVAL))


class _Session:
    """The state of one run: claims waiting for a thread, attempts in flight, results."""

    def __init__(self, worker: Worker, stop: threading.Event | None) -> None:

        self.worker = worker
        self.dispatcher = worker.dispatcher
        self.clock = worker.dispatcher.clock
        self.stop_event = stop
        self.wake = worker._wake
        self.executor = ThreadPoolExecutor(
            max_workers=worker.workers, thread_name_prefix="resthooks-attempt"
        )
        # Claimed, not yet sent: started as threads free up and their hosts have room.
        self.gate = HostGate(self.dispatcher.limits.in_flight_per_host)
        self.in_flight: dict[str, tuple[Claim, Future[None]]] = {}
        self.done: queue.SimpleQueue[tuple[Claim, Outcome | None]] = queue.SimpleQueue()
        self.summary = DeliverySummary()
        self.attempt_deadline = timedelta(seconds=self.dispatcher.timeouts.total)
        self.unrecorded: list[tuple[Claim, Outcome]] = []
        self.trouble = StoreTrouble(self.clock, cap=worker.poll_interval)
        # Claims are handed to the pool up to ``ahead`` beyond its threads, so a thread that
        # finishes takes the next claim from the pool's queue at once instead of waiting for
        # this loop; the threads wake the loop only when it has something to do: the queue
        # ran low, a batch of outcomes is waiting, or nothing is left running. Two thread
        # hand-offs per delivery (submit, then wake) become about two per batch.
        # At most 2 x workers claims are held (queued, running or waiting in the gate), as
        # before: what a killed worker can have in flight stays one batch.
        workers = worker.workers
        self.ahead = workers
        self.capacity = workers + self.ahead
        self.low_water = self.ahead // 2
        self.batch = max(1, self.ahead // 2)
        self.counts = threading.Lock()
        self.queued = 0  # handed to the pool, not started
        self.unfinished = 0  # handed to the pool, outcome not yet handed back
        self.finished_since_wake = 0
        self.more_to_claim = True  # whether the last claim filled its limit
        self.eager = False  # stopping: every finished attempt wakes the loop
        # One thread: the loop makes the attempts itself, one after the other, as
        # ``deliver_due`` does; nothing passes between threads. Only when the grace
        # allows the attempt in flight its whole deadline: a shorter grace needs a thread
        # the loop can leave behind.
        self.here = workers == 1 and worker.grace >= self.dispatcher.timeouts.total
        self.attempted = False  # this round made attempts here (then it goes round again)

    def stopping(self) -> bool:
        return self.worker._stopping.is_set() or (
            self.stop_event is not None and self.stop_event.is_set()
        )

    # -- the loop ------------------------------------------------------------------------------

    def loop(self, *, once: bool) -> None:
        while not self.stopping():
            self.worker._heartbeat = self.clock.now()
            # Cleared before collecting results: a result that lands after this point sets
            # it again, so the wait below cannot miss it.
            self.wake.clear()
            due: datetime | None = None
            self.attempted = False
            try:
                self.record_done()
                self.start_ready()
                self.claim()
                self.start_ready()
                busy = len(self.in_flight) >= self.capacity
                if not busy and not once and not self.stopping() and not self.attempted:
                    due = self.dispatcher.store.next_due_at()
            except Exception as exc:
                if once:
                    if isinstance(exc, ResthooksError):
                        raise
                    raise StoreError(f"the store failed: {type(exc).__name__}: {exc}") from exc
                # A long-running worker outlives any store failure (a locked, full, damaged
                # or restarting database; a store's own bug): outcomes it could not record
                # are kept and recorded later, or come back when their leases expire.
                delay = self.trouble.failed(exc)
                self.clock.sleep_until(self.clock.now() + timedelta(seconds=delay), self.wake)
                continue
            self.trouble.recovered()
            if self.stopping():
                return
            if self.attempted:
                continue  # it made attempts itself: more may be due, and none is in flight
            if busy:
                # Every thread is busy: only a finished attempt (or stop) changes anything.
                self.wake.wait()
            elif once:
                if not self.in_flight:
                    return
                self.wake.wait()
            else:
                self.sleep(due)

    def claim(self) -> None:
        limit = claim_limit(self.gate, self.worker.workers, len(self.in_flight))
        if limit <= 0:
            return
        claims = self.dispatcher.claim_due(now=self.clock.now(), limit=limit, per_host=True)
        self.more_to_claim = len(claims) >= limit
        self.gate.add(claims)

    def start_ready(self) -> None:
        if self.here:
            self.attempt_here()
            return
        # A claim whose lease could expire mid-attempt is let go, to be claimed afresh.
        stale = self.gate.expiring(self.clock.now() + self.attempt_deadline)
        for claim in self.gate.take(self.capacity - len(self.in_flight)):
            with self.counts:
                self.queued += 1
                self.unfinished += 1
            future = self.executor.submit(self.attempt, claim)
            self.in_flight[claim.delivery.id] = (claim, future)
        if stale:
            self.release(stale)

    def attempt_here(self) -> None:
        """With one thread: the claims' attempts one after the other on the loop's own thread,
        then one ``record`` for their outcomes.

        Recording at the end is in time: the claims come from one ``claim_due`` (the loop
        records before it claims again) and share its lease, and each is attempted only if
        its attempt can end before that lease does (the others are released first), so the
        last attempt ends, and every outcome waiting for it is recorded, while the claims
        are still held.
        """
        while not self.stopping():
            stale = self.gate.expiring(self.clock.now() + self.attempt_deadline)
            if stale:
                self.release(stale)
            taken = self.gate.take(1)
            if not taken:
                break
            claim = taken[0]
            self.attempted = True
            outcome = self.outcome_of(claim)
            self.gate.finished(claim, outcome)
            self.unrecorded.append(
                (claim, outcome if outcome is not None else release_outcome(claim))
            )
            self.worker._heartbeat = self.clock.now()  # the loop is busy, not stuck
        self.record_done()

    def outcome_of(self, claim: Claim) -> Outcome | None:
        """One claim's attempt (``None``: release it), or its release without an attempt."""
        try:
            if self.stopping():
                # Stopping takes no new work: a claim still queued when stop came goes back.
                return release_outcome(claim)
            if claim.lease_until - self.clock.now() < self.attempt_deadline:
                # It waited in the queue until its lease could expire mid-attempt: let it go,
                # to be claimed afresh.
                return release_outcome(claim)
            return self.dispatcher.attempt(claim)
        except Exception as exc:  # noqa: BLE001 - e.g. a secret that no longer parses
            return unmade_attempt(self.dispatcher, claim, exc)

    def attempt(self, claim: Claim) -> None:
        """Runs on a pool thread: one attempt, then hand the outcome to the loop."""
        with self.counts:
            self.queued -= 1
            low = self.queued <= self.low_water and self.more_to_claim
        if low:
            self.wake.set()  # top the queue up while this attempt runs
        outcome: Outcome | None = None
        try:
            outcome = self.outcome_of(claim)
        finally:
            self.done.put((claim, outcome))
            with self.counts:
                self.unfinished -= 1
                self.finished_since_wake += 1
                wake = (
                    self.eager
                    or self.unfinished == 0
                    or self.queued == 0
                    or self.finished_since_wake >= self.batch
                )
                if wake:
                    self.finished_since_wake = 0
            if wake:
                self.wake.set()

    def record_done(self) -> None:
        while True:
            try:
                claim, outcome = self.done.get_nowait()
            except queue.Empty:
                break
            if self.in_flight.pop(claim.delivery.id, None) is None:
                continue  # abandoned after the grace period: its claim was released
            self.gate.finished(claim, outcome)
            self.unrecorded.append(
                (claim, outcome if outcome is not None else release_outcome(claim))
            )
        if not self.unrecorded:
            return
        pending = self.unrecorded = still_recordable(self.unrecorded, self.clock.now())
        if pending:
            claims = [c for c, _ in pending]
            summary = self.dispatcher.record([o for _, o in pending], claims=claims)
            self.unrecorded = []
            self.summary += summary

    def sleep(self, due: datetime | None) -> None:
        deadline = idle_deadline(
            self.clock.now(), self.worker.poll_interval, due, self.in_flight.values()
        )
        if deadline is None:
            self.wake.wait()
        else:
            self.clock.sleep_until(deadline, self.wake)

    # -- stopping ------------------------------------------------------------------------------

    def finish(self) -> None:
        """Stop cleanly: release what was not sent, give attempts in flight ``grace``."""
        self.eager = True
        unsent = self.gate.drain()
        for delivery_id, (claim, future) in list(self.in_flight.items()):
            if future.cancel():  # still waiting in the pool's queue: never started
                del self.in_flight[delivery_id]
                unsent.append(claim)
                with self.counts:
                    self.queued -= 1
                    self.unfinished -= 1
        if unsent:
            self.release(unsent)
        deadline = self.clock.now() + timedelta(seconds=self.worker.grace)
        while self.in_flight:
            self.wake.clear()
            self._record_done_at_stop()
            if not self.in_flight or self.clock.now() >= deadline:
                break
            self.clock.sleep_until(deadline, self.wake)
        self._record_done_at_stop()

    def _record_done_at_stop(self) -> None:
        try:
            self.record_done()
        except Exception:  # the claims run out; stopping must not be stopped by the store
            logger.exception(
                "could not record %d outcomes while stopping; their deliveries will be "
                "attempted again when their claims expire",
                len(self.unrecorded),
            )
            self.unrecorded = []

    def abandon(self) -> None:
        """Release every claim still held (after the grace period, or after an error)."""
        leftover = self.gate.drain()
        running = False
        for claim, future in self.in_flight.values():
            running = running or not future.cancel()
            leftover.append(claim)
        self.in_flight.clear()
        if leftover:
            logger.warning(
                "released %d claimed deliveries that were not finished when the worker "
                "stopped; they will be attempted again",
                len(leftover),
                extra={"released": len(leftover)},
            )
            try:
                self.release(leftover)
            except Exception:  # their leases expire anyway; say so
                logger.exception("could not release %d claims", len(leftover))
        self.executor.shutdown(wait=not running, cancel_futures=True)

    def release(self, claims: list[Claim]) -> None:
        self.summary += self.dispatcher.record([release_outcome(c) for c in claims], claims=claims)


# -- what the thread worker and the asyncio worker (resthooks.aio) share -------------------------


def claim_limit(gate: HostGate, slots: int, in_flight: int) -> int:
    """How many deliveries a worker with ``slots`` attempts at once claims now (0: none).

    Up to one batch ahead of the slots, so the store is asked once per batch rather than once
    per attempt; a claim waits at most for one round of attempts, each shorter than the
    attempt deadline, which the lease outlasts. Nothing while half a batch is ready to start.
    Claims held back by a slow host (at most the store's per-host limit each) do not take the
    place of others, up to one batch of them.
    """
    if gate.startable >= max(1, slots // 2):
        return 0
    blocked = len(gate) - gate.startable
    return 2 * slots - in_flight - len(gate) + min(blocked, slots)


def idle_deadline(
    now: datetime,
    poll_interval: float,
    due: datetime | None,
    in_flight: Iterable[tuple[Claim, object]],
) -> datetime | None:
    """Until when an idle worker sleeps: the store's next due time or the poll interval,
    whichever comes first; ``None`` means "wait for an attempt in flight to end" instead.

    The store's next due time may be the expiry of the worker's own leases. It never sleeps up
    to them: it waits for the attempts instead (each ends before its lease). This also keeps a
    FakeClock from jumping past an attempt that is still running.
    """
    deadline = now + timedelta(seconds=poll_interval)
    if due is not None and due > now:
        deadline = min(deadline, due)
    own_lease = min((claim.lease_until for claim, _ in in_flight), default=None)
    if own_lease is not None and (due is None or due >= own_lease or deadline >= own_lease):
        return None
    return deadline


def still_recordable(
    unrecorded: list[tuple[Claim, Outcome]], now: datetime
) -> list[tuple[Claim, Outcome]]:
    """The outcomes the store could not take yet that are still worth recording.

    They are tried again on the next round as long as their claims last: recording them late
    beats sending them twice. After that the store refuses them anyway (another worker may
    hold the delivery now): they are dropped, and said so.
    """
    pending = [(c, o) for c, o in unrecorded if c.lease_until > now]
    if len(pending) < len(unrecorded):
        logger.warning(
            "dropped %d outcomes the store could not record before their claims expired; "
            "those deliveries will be attempted again",
            len(unrecorded) - len(pending),
        )
    return pending


def unmade_attempt(dispatcher: Dispatcher, claim: Claim, exc: Exception) -> Outcome | None:
    """The outcome of an attempt that raised before it could be sent: a failed attempt of
    kind ``protocol``, or ``None`` (then the claim is released)."""
    logger.exception(
        "attempt of delivery %s could not be made",
        claim.delivery.id,
        extra={"delivery_id": claim.delivery.id, "hook_id": claim.hook.id},
    )
    now = dispatcher.clock.now()
    try:
        return dispatcher.decide(
            claim,
            started=now,
            finished=now,
            response=None,
            error=TransportError(
                "protocol", f"the request could not be made: {type(exc).__name__}"
            ),
        )
    except Exception:  # noqa: BLE001 - then the claim is released
        return None


class StoreTrouble:
    """Store failures of one run: how long to back off, and what to log.

    The first failure is logged with its cause (the traceback). While the store keeps
    failing, the loop backs off (0.25 s, doubling up to ``cap``, 1 s or ``poll_interval``
    if shorter: a store that comes back is used again within about that long) and says so
    once per ``report_every`` with a count, not a traceback per try. The first success after
    failures is logged too.
    """

    first_delay = 0.25
    # Never longer than a second: a store that comes back (a database restarted, space freed)
    # is used again within about that, and a failed try costs one store call.
    max_delay = 1.0
    report_every = timedelta(seconds=60)

    def __init__(self, clock: Clock, *, cap: float) -> None:
        self.clock = clock
        self.cap = min(cap, self.max_delay)
        self.failures = 0
        self.since: datetime | None = None
        self.reported_at: datetime | None = None

    def failed(self, exc: BaseException) -> float:
        now = self.clock.now()
        self.failures += 1
        delay: float = min(self.cap, self.first_delay * 2.0 ** min(self.failures - 1, 30))
        if self.since is None:
            self.since = self.reported_at = now
            logger.error(
                "the store failed (%s); the worker keeps going and tries again in %s s",
                _describe(exc),
                round(delay, 3),
                exc_info=exc,
                extra={"error_type": type(exc).__name__},
            )
        elif self.reported_at is not None and now - self.reported_at >= self.report_every:
            self.reported_at = now
            logger.error(
                "the store is still failing after %d tries over %d s (%s); trying again every %s s",
                self.failures,
                (now - self.since).total_seconds(),
                _describe(exc),
                round(delay, 3),
                extra={"error_type": type(exc).__name__, "failures": self.failures},
            )
        return delay

    def recovered(self) -> None:
        if self.since is None:
            return
        logger.warning(
            "the store works again after %d failed tries over %.1f s",
            self.failures,
            (self.clock.now() - self.since).total_seconds(),
            extra={"failures": self.failures},
        )
        self.failures = 0
        self.since = self.reported_at = None


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def release_outcome(claim: Claim) -> Outcome:
    return Outcome(delivery_id=claim.delivery.id, token=claim.token, kind=OutcomeKind.RELEASE)
