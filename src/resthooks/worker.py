"""The long-running worker: many attempts at once, slow endpoints kept apart, a clean stop."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable
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
#: holds at most twice as many claims at once).
MAX_WORKERS = 4096


class Worker:
    """Delivers for a :class:`~resthooks.Dispatcher` on a bounded pool of threads.

    Make one with :meth:`Dispatcher.worker() <resthooks.Dispatcher.worker>` (or let
    :meth:`Dispatcher.run() <resthooks.Dispatcher.run>` make it). Each of its ``workers``
    threads claims, sends and records its own work: it takes the next claimed delivery whose
    host has room from the claims the worker holds, sends it, and when it finds nothing
    left to start (or the held claims run low while the store has more, or half a batch of
    outcomes is waiting) it records the outcomes in one store call and claims the next batch
    in another, one thread at a time. No delivery is handed from one thread to another. The
    calling thread only watches: it sleeps until the next delivery is due, an emit in this
    process, ``stop``, ``poll_interval`` (for work queued by other processes) or its threads
    running out of work, and then looks at the store. A claim whose lease could run out
    during its attempt, or that is not yet sent when the worker stops, goes back to the
    store unsent.

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

        It moves at least every ``poll_interval`` while idle, and at every store turn (each
        batch of outcomes recorded) while busy, so a heartbeat older than the attempt
        deadline plus ``poll_interval`` means a stuck worker.

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
        session = _Session(self, stop, once=once)
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
            session.watch()
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
    """The state of one run, shared by its threads under one lock.

    Each of the ``workers`` attempt threads claims, sends and records its own work: it
    takes the next claim whose host has room from the gate (the claimed batch, shared),
    sends it, and leaves the outcome beside the others; when it finds nothing to start, or
    the gate runs low while the store has more, or half a batch of outcomes is waiting, it
    takes the store turn (one thread at a time): it records the waiting outcomes in one
    call and claims the next batch in another. No delivery passes from one thread to
    another on its way. The calling thread only watches: it sleeps until the next due time,
    an emit, ``stop`` or its threads running out of work, takes a store turn then (to claim
    what came due, or find that nothing did), and runs the stop with its grace period.
    """

    def __init__(self, worker: Worker, stop: threading.Event | None, *, once: bool) -> None:
        self.worker = worker
        self.dispatcher = worker.dispatcher
        self.clock = worker.dispatcher.clock
        self.stop_event = stop
        self.once = once
        self.wake = worker._wake
        self.workers = worker.workers
        self.lock = threading.Lock()
        # Attempt threads with nothing to start wait on it; a claim that became startable,
        # or outcomes that need a store turn, notify as many as can use them.
        self.ready = threading.Condition(self.lock)
        # Held for every store call (the store turn): one thread at a time uses the store.
        self.turn = threading.Lock()
        # Claimed, not yet started: taken as threads free up and their hosts have room.
        self.gate = HostGate(self.dispatcher.limits.in_flight_per_host)
        self.running: dict[str, Claim] = {}  # being attempted, by delivery id
        self.outcomes: list[tuple[Claim, Outcome]] = []  # finished, not yet recorded
        self.summary = DeliverySummary()
        self.attempt_deadline = timedelta(seconds=self.dispatcher.timeouts.total)
        self.trouble = StoreTrouble(self.clock, cap=worker.poll_interval)
        # Outcomes are recorded once half a batch waits, or sooner when a thread has nothing
        # else to do. Claims are taken up to one batch ahead of the threads (claim_limit): a
        # worker holds at most 2 x workers claims (waiting, running or not yet recorded), so
        # what a killed worker had in flight stays one batch.
        self.batch = max(2, self.workers // 2)
        self.idle = 0  # attempt threads waiting on ``ready``
        self.more_to_claim = True  # whether the last claim filled its limit
        self.troubled = False  # the store failed: only the watcher tries it, backing off
        self.pause_until: datetime | None = None  # the watcher's back-off after a failure
        self.halting = False  # stopping: no new attempts, no new claims
        self.closed = False  # abandoned: outcomes of attempts still running are dropped
        self.error: BaseException | None = None  # what ends run_until_idle early
        # When the watcher sleeps: _AWAKE, None (until woken) or the time it wakes up.
        self.sleeping_until: datetime | object | None = _AWAKE
        self.threads: list[threading.Thread] = []

    def stopping(self) -> bool:
        return self.worker._stopping.is_set() or (
            self.stop_event is not None and self.stop_event.is_set()
        )

    # -- the attempt threads -------------------------------------------------------------------

    def work(self) -> None:
        """One attempt thread: take a claim and send it, or take the store turn; repeat."""
        ready = self.ready
        claim: Claim | None = None
        outcome: Outcome | None = None
        while True:
            turn = False
            with ready:
                if claim is not None:
                    if self.running.pop(claim.delivery.id, None) is None:
                        return  # abandoned after the grace period: its claim was released
                    self.gate.finished(claim, outcome)
                    self.outcomes.append(
                        (claim, outcome if outcome is not None else release_outcome(claim))
                    )
                    claim = None
                    if self.halting:
                        self.wake.set()  # the stop records it
                        return
                while True:
                    if self.halting:
                        return
                    if self.stopping():
                        # Stopping takes no new work: the watcher releases what is left.
                        self.wake.set()
                    elif not self.troubled and self._turn_due() and self.turn.acquire(False):
                        turn = True
                        break
                    else:
                        started = self.gate.take(1)
                        if started:
                            claim = started[0]
                            self.running[claim.delivery.id] = claim
                            if self.idle and self.gate.startable:
                                ready.notify(min(self.idle, self.gate.startable))
                            break
                        if not self.running:
                            self.wake.set()  # nothing runs: the watcher decides what next
                    self.idle += 1
                    ready.wait()
                    self.idle -= 1
            if turn:
                try:
                    self.take_turn()
                except Exception as exc:  # noqa: BLE001 - handed to the watcher
                    self._turn_failed(exc)
                finally:
                    self.turn.release()
                continue
            assert claim is not None
            outcome = self.attempt(claim)

    def _turn_due(self) -> bool:
        """Whether a thread with nothing running should take the store turn (lock held)."""
        waiting = len(self.outcomes)
        if waiting >= self.batch or (waiting and not self.gate.startable):
            return True
        # Low on claims: claim more if the store had more, or if recording the outcomes
        # waiting frees room (they hold their hosts' places in the per-host limit).
        return (self.more_to_claim or waiting > 0) and claim_limit(
            self.gate, self.workers, len(self.running) + waiting
        ) > 0

    def attempt(self, claim: Claim) -> Outcome | None:
        try:
            if claim.lease_until - self.clock.now() < self.attempt_deadline:
                # It waited until its lease could expire mid-attempt: let it go, to be
                # claimed afresh.
                return release_outcome(claim)
            return self.dispatcher.attempt(claim)
        except Exception as exc:  # noqa: BLE001 - e.g. a secret that no longer parses
            return unmade_attempt(self.dispatcher, claim, exc)

    def _turn_failed(self, exc: Exception) -> None:
        if self.once:
            with self.lock:
                self.error = _as_store_error(exc)
                self.halting = True  # run_until_idle ends with the error
            self.wake.set()
            return
        # A long-running worker outlives any store failure: the watcher alone tries the
        # store again, backing off, while the threads finish what they hold.
        delay = self.trouble.failed(exc)
        with self.lock:
            self.troubled = True
            self.pause_until = self.clock.now() + timedelta(seconds=delay)
        self.wake.set()

    # -- the store turn ------------------------------------------------------------------------

    def take_turn(self, *, claim: bool = False, record: bool = True) -> None:
        """Record the outcomes waiting (unless not ``record``) and release claims gone
        stale, then claim the next batch if there is room (always look with ``claim``).
        ``self.turn`` is held."""
        now = self.clock.now()
        self.worker._heartbeat = now
        with self.lock:
            pending: list[tuple[Claim, Outcome]] = []
            if record:
                pending, self.outcomes = self.outcomes, []
            # A claim whose lease could expire mid-attempt is let go, to be claimed afresh.
            stale = self.gate.expiring(now + self.attempt_deadline)
        if stale:
            pending.extend((c, release_outcome(c)) for c in stale)
        if pending:
            pending = still_recordable(pending, now)
        if pending:
            try:
                summary = self.dispatcher.record(
                    [o for _, o in pending], claims=[c for c, _ in pending]
                )
            except BaseException:
                with self.lock:  # kept, and recorded on a later turn while the claims last
                    self.outcomes[:0] = pending
                raise
            self._wake_for_retries(pending)
        with self.lock:
            if pending:
                self.summary += summary
            limit = 0
            if not self.halting and (claim or pending or self.more_to_claim):
                limit = claim_limit(self.gate, self.workers, len(self.running) + len(self.outcomes))
        claims: list[Claim] = []
        if limit > 0:
            claims = self.dispatcher.claim_due(now=self.clock.now(), limit=limit, per_host=True)
        late: list[Claim] = []
        with self.lock:
            if limit > 0:
                self.more_to_claim = len(claims) >= limit
            if self.halting:
                late = claims  # the stop began while claiming: they go back
            elif claims:
                self.gate.add(claims)
            if self.idle and (self.outcomes or self.gate.startable):
                self.ready.notify(min(self.idle, max(1, self.gate.startable)))
        if late:
            self.release(late)

    def _wake_for_retries(self, recorded: list[tuple[Claim, Outcome]]) -> None:
        """Wake the watcher if a retry just recorded is due before it would look again."""
        due = [
            o.next_attempt_at
            for _, o in recorded
            if o.kind is OutcomeKind.RETRY and o.next_attempt_at is not None
        ]
        if not due or self.once:
            return
        until = self.sleeping_until
        if not isinstance(until, datetime) or min(due) < until:
            self.wake.set()

    # -- the watcher (the calling thread) ------------------------------------------------------

    def watch(self) -> None:
        """Start the attempt threads, then look at the store whenever woken, until done."""
        for n in range(self.workers):
            thread = threading.Thread(target=self.work, name=f"resthooks-attempt-{n}", daemon=True)
            self.threads.append(thread)
            thread.start()
        while True:
            self.wake.clear()
            if self.stopping() or self.error is not None:
                break
            with self.lock:
                pause, self.pause_until = self.pause_until, None
            if pause is not None:  # the store failed: back off before trying it again
                self.clock.sleep_until(pause, self.wake)
                self.wake.clear()
                if self.stopping():
                    break
            looked = self.look()
            if looked is None or self.stopping() or self.error is not None:
                continue
            idle, due, held = looked
            if self.once:
                if idle:
                    return
                self.wake.wait()  # until the threads run out of work, an emit, or stop
                continue
            deadline = idle_deadline(
                self.clock.now(), self.worker.poll_interval, due, ((c, None) for c in held)
            )
            self.sleeping_until = deadline
            if deadline is None:
                self.wake.wait()
            else:
                self.clock.sleep_until(deadline, self.wake)
            self.sleeping_until = _AWAKE
        if self.error is not None:
            raise self.error

    def look(self) -> tuple[bool, datetime | None, list[Claim]] | None:
        """The watcher's store turn: claim what is due, then whether the run is idle, when
        the store has something due next, and the claims held (``None``: the store failed)."""
        self.worker._heartbeat = self.clock.now()
        due: datetime | None = None
        try:
            with self.turn:
                # The threads record their own outcomes, unless the store failed them.
                self.take_turn(claim=True, record=self.troubled)
                with self.lock:
                    idle = not (self.running or self.outcomes or len(self.gate))
                    # Claims waiting for a thread hold leases too: never sleep past them.
                    held = [*self.running.values(), *self.gate.firsts()]
                if not self.once and not self.stopping():
                    due = self.dispatcher.store.next_due_at()
        except Exception as exc:
            if self.once:
                if isinstance(exc, ResthooksError):
                    raise
                raise _as_store_error(exc) from exc
            delay = self.trouble.failed(exc)
            with self.lock:
                self.troubled = True
                self.pause_until = self.clock.now() + timedelta(seconds=delay)
            return None
        self.trouble.recovered()
        if self.troubled:
            with self.lock:
                self.troubled = False
                if self.idle:
                    self.ready.notify(self.idle)
        return idle, due, held

    # -- stopping ------------------------------------------------------------------------------

    def finish(self) -> None:
        """Stop cleanly: release what was not sent, give attempts in flight ``grace``."""
        with self.lock:
            self.halting = True
            self.ready.notify_all()
        with self.turn:
            with self.lock:
                unsent = self.gate.drain()
            if unsent:
                self.release(unsent)
            deadline = self.clock.now() + timedelta(seconds=self.worker.grace)
            while True:
                self.wake.clear()
                self._record_at_stop()
                with self.lock:
                    running = bool(self.running)
                if not running or self.clock.now() >= deadline:
                    break
                self.clock.sleep_until(deadline, self.wake)
            self._record_at_stop()

    def _record_at_stop(self) -> None:
        with self.lock:
            pending, self.outcomes = self.outcomes, []
        pending = still_recordable(pending, self.clock.now())
        if not pending:
            return
        try:
            self.summary += self.dispatcher.record(
                [o for _, o in pending], claims=[c for c, _ in pending]
            )
        except Exception:  # the claims run out; stopping must not be stopped by the store
            logger.exception(
                "could not record %d outcomes while stopping; their deliveries will be "
                "attempted again when their claims expire",
                len(pending),
            )

    def abandon(self) -> None:
        """Release every claim still held (after the grace period, or after an error)."""
        with self.lock:
            self.halting = self.closed = True
            self.ready.notify_all()
        with self.turn:  # a store turn under way ends first (it claims nothing more)
            with self.lock:
                leftover = self.gate.drain()
                stuck = list(self.running.values())
                self.running.clear()
                # Outcomes a failing store could not take: their claims go back too.
                unrecorded, self.outcomes = self.outcomes, []
            leftover += stuck
            leftover += [c for c, _ in unrecorded]
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
        if not stuck:
            # Every thread is between attempts and leaves at once; one still in an attempt
            # after the grace period is left to end on its own (it records nothing).
            for thread in self.threads:
                thread.join()

    def release(self, claims: list[Claim]) -> None:
        summary = self.dispatcher.record([release_outcome(c) for c in claims], claims=claims)
        with self.lock:
            self.summary += summary


_AWAKE = object()


def _as_store_error(exc: Exception) -> ResthooksError:
    if isinstance(exc, ResthooksError):
        return exc
    error = StoreError(f"the store failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


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
