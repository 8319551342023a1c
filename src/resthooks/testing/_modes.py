"""Test settings for a host's Dispatcher, and driving its retry schedule with a FakeClock."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from ..errors import ConfigurationError
from ..outcomes import DeliverySummary
from ._clock import FakeClock
from ._transport import RecordingTransport

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher
    from ..model import Delivery

__all__ = ["DeliveryMode", "no_delivery", "run_schedule", "synchronous"]


class DeliveryMode:
    """A change :func:`synchronous` or :func:`no_delivery` made to a Dispatcher.

    Keep it to undo the change with :meth:`restore`, or use it as a context manager to undo it
    on exit; a host's test settings that apply it for the whole session can ignore it.

    Attributes:
        dispatcher: The Dispatcher changed.
        transport: The :class:`RecordingTransport` installed by :func:`no_delivery`, else
            ``None``.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        undo: Callable[[], None],
        *,
        transport: RecordingTransport | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.transport = transport
        self._undo = undo

    def restore(self) -> None:
        """Put back what the Dispatcher had before this change (and only this one)."""
        self._undo()

    def __enter__(self) -> DeliveryMode:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()


def synchronous(dispatcher: Dispatcher) -> DeliveryMode:
    """Make ``emit`` deliver at once: it calls ``deliver_due()`` before it returns.

    For a host's test settings, so a test that triggers an event can assert what was sent right
    after. Only the first attempts happen then; retries wait for their time as usual (see
    :func:`run_schedule`). An ``emit(..., connection=...)`` inside the host's transaction is
    delivered by the next ``deliver_due`` instead, since its deliveries exist only once the
    host commits. Uses the :attr:`Dispatcher.after_emit <resthooks.Dispatcher.after_emit>`
    hook point.

    Returns:
        The change, to undo with :meth:`DeliveryMode.restore` or as a context manager.

    Example:
        >>> from resthooks import Dispatcher
        >>> from resthooks.stores import MemoryStore
        >>> transport = RecordingTransport()
        >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=transport)
        >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
        >>> with synchronous(dispatcher):
        ...     [d.state.value for d in dispatcher.emit("party/created", {"id": 1}, owner="acme")]
        ...     len(transport.requests)
        ['pending']
        1
        >>> _ = dispatcher.emit("party/created", {"id": 2}, owner="acme")
        >>> len(transport.requests)
        1
    """
    previous = dispatcher.after_emit

    def deliver_now(deliveries: Sequence[Delivery]) -> None:
        dispatcher.deliver_due()

    def undo() -> None:
        dispatcher.after_emit = previous

    dispatcher.after_emit = deliver_now
    return DeliveryMode(dispatcher, undo)


def no_delivery(dispatcher: Dispatcher) -> DeliveryMode:
    """Send nothing anywhere: attempts go to a :class:`RecordingTransport` that answers 204.

    Emits are stored and delivered as usual (so the outbox and its states can be checked), but
    no request leaves the process; the requests are kept in the returned mode's
    ``transport.requests``. For a host's test settings, where most tests emit events but do
    not care about them.

    Returns:
        The change, with the recording transport as its ``transport``.

    Example:
        >>> from resthooks import Dispatcher
        >>> from resthooks.stores import MemoryStore
        >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
        >>> off = no_delivery(dispatcher)
        >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
        >>> _ = dispatcher.emit("party/created", {"id": 1}, owner="acme")
        >>> dispatcher.deliver_due().delivered, [r.url for r in off.transport.requests]
        (1, ['https://example.com/h'])
    """
    previous = dispatcher.transport
    recording = RecordingTransport()

    def undo() -> None:
        dispatcher.transport = previous

    dispatcher.transport = recording
    return DeliveryMode(dispatcher, undo, transport=recording)


def run_schedule(dispatcher: Dispatcher, *, max_rounds: int = 10_000) -> DeliverySummary:
    """Deliver everything, retries included, until nothing is pending.

    Delivers what is due, then moves the Dispatcher's :class:`FakeClock` to the store's next
    due time and delivers again, until the store has nothing left to send. Capsule's whole
    36-minute schedule plays out at once.

    Args:
        dispatcher: A Dispatcher whose clock is a :class:`FakeClock`.
        max_rounds: Give up after this many rounds (a retry policy that never ends).

    Returns:
        The counts of outcomes of every round together.

    Raises:
        ConfigurationError: If the Dispatcher's clock is not a FakeClock.
        AssertionError: If deliveries are still pending after ``max_rounds`` rounds.

    Example:
        >>> from resthooks import Dispatcher
        >>> from resthooks.stores import MemoryStore
        >>> clock = FakeClock()
        >>> transport = RecordingTransport(default=503)
        >>> dispatcher = Dispatcher(MemoryStore(), clock=clock, transport=transport)
        >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
        >>> _ = dispatcher.emit("party/created", {"id": 1}, owner="acme")
        >>> run_schedule(dispatcher)
        DeliverySummary(delivered=0, retried=5, failed=1, gone=0, cancelled=0, stale=0, late=0)
        >>> clock
        FakeClock(2026-01-01T00:36:05+00:00)
    """
    clock = dispatcher.clock
    if not isinstance(clock, FakeClock):
        raise ConfigurationError(
            f"run_schedule moves the Dispatcher's clock, which must be a FakeClock, "
            f"not {type(clock).__name__}"
        )
    summary = dispatcher.deliver_due()
    for _ in range(max_rounds):
        due = dispatcher.store.next_due_at()
        if due is None:
            return summary
        if due > clock.now():
            clock.set(due)
        summary += dispatcher.deliver_due()
    raise AssertionError(
        f"deliveries still pending after {max_rounds} rounds (next due at "
        f"{dispatcher.store.next_due_at()}); so far: {summary}"
    )
