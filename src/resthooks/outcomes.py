"""What recording an outcome does: the delivery state machine, written once, without I/O.

Every store's :meth:`~resthooks.stores.DeliveryStore.record` reads the slice of a delivery
(and of its hook) that the rules need, under its own row lock, asks :func:`transition` what
to write, and writes exactly that; it decides nothing itself. The Dispatcher, the log, the
lifecycle events, the CLI and the testing kit read the :class:`Verdict` it returns, and
:func:`summarize` counts a batch of them.

The rules, for one :class:`~resthooks.Outcome` carrying the fencing token of its claim:

======================================  =========  =============================================
the stored delivery                     verdict    what is written
======================================  =========  =============================================
in flight under this very token         applied    the delivery's new state (below), the attempt
                                                   (if any), the claim cleared, the hook's fate
cancelled while this token had it in    late       the attempt only (``attempts`` + 1,
flight, and the outcome has an attempt             ``last_error``); the kept token is cleared,
                                                   so it is logged once; it stays cancelled
anything else (another claim took it    stale      nothing at all
over, a final state, a pending one, a
token already used, an unknown id)
======================================  =========  =============================================

An applied outcome moves the delivery to:

=============  ==============  ======================  ===========================
kind           new state       next attempt            the hook (:class:`HookEffect`)
=============  ==============  ======================  ===========================
``delivered``  delivered       none                    unchanged
``retry``      pending         ``next_attempt_at``     unchanged
``failed``     failed          none                    dead
``gone``       cancelled       none                    removed
``release``    pending         as before               unchanged
=============  ==============  ======================  ===========================

A hook that dies or is removed has its other deliveries that are not final cancelled in the
same transaction; the ones in flight keep their claim's token, so their attempts come back
``late``. ``attempts`` counts up by one for every outcome that logs an attempt.

Ordering keys: of the open deliveries of one hook that share an ordering key, one only has
the key's *turn* (it is due at its ``next_attempt_at`` and can be claimed); the others wait,
not due. The turn is the oldest's (in emit order), except that a delivery in flight keeps it
until its outcome is written: a new emit waits if its key has an open delivery; a
redelivery takes the turn if no other has it, or from a newer one that is pending (which
waits again). A ``retry`` or a ``release`` keeps the turn (a delivery waiting on a retry
holds back its own key, nothing else); when the delivery that has the turn is written final
(:attr:`Transition.ends_turn`), the oldest waiting delivery of the key takes it, in the same
transaction.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

import attrs

from .model import Attempt, DeliveryState, HookState, Outcome, OutcomeKind

__all__ = [
    "DEFAULT_DEAD_REASON",
    "BatchRecord",
    "DeliverySummary",
    "HookEffect",
    "RecordResult",
    "StoredDelivery",
    "Transition",
    "Verdict",
    "dead_reason",
    "may_touch_hook",
    "summarize",
    "transition",
]

DEFAULT_DEAD_REASON = "retries exhausted"
"""A dead hook's ``dead_reason`` when the ``failed`` outcome that killed it gave none."""


class Verdict(str, enum.Enum):
    """What became of one outcome.

    .. versionadded:: 0.2.0
    """

    APPLIED = "applied"
    """The outcome was written; the delivery moved on, its attempt (if any) is in the log."""
    LATE = "late"
    """The delivery was cancelled while this claim had it in flight; the attempt is logged
    (the receiver may have got it) and nothing else changes."""
    STALE = "stale"
    """The outcome was refused and nothing was written (another claim took the delivery over,
    or it is not in flight under this token any more)."""


class HookEffect(str, enum.Enum):
    """What an outcome does to the delivery's hook.

    .. versionadded:: 0.2.0
    """

    NONE = "none"
    """Nothing."""
    DEAD = "dead"
    """The hook dies because its retries ran out (state dead, ``dead_reason``, ``dead_at``);
    its deliveries that are not final are cancelled."""
    REMOVED = "removed"
    """The hook is deleted because its receiver answered ``410 Gone``; its deliveries that
    are not final are cancelled."""


@attrs.frozen(kw_only=True)
class RecordResult:
    """What a store did with one :class:`~resthooks.Outcome`, as
    :func:`~resthooks.outcomes.transition` decided it.

    Attributes:
        delivery_id: The delivery.
        verdict: :class:`Verdict`.
        hook_id: The hook of the delivery (``""`` for an unknown delivery).
        cancelled: Ids of other deliveries that were cancelled as a consequence (the hook died
            or was removed).
        logged: ``True`` when the outcome's attempt was appended to the attempt log: every
            applied outcome with an attempt, and every ``late`` one.
        hook_effect: :class:`HookEffect`: what happened to the hook.

    .. versionchanged:: 0.2.0
       ``verdict`` and ``hook_effect`` are new; ``applied`` is read from the verdict.
    """

    delivery_id: str
    verdict: Verdict
    hook_id: str = ""
    cancelled: tuple[str, ...] = ()
    logged: bool = False
    hook_effect: HookEffect = HookEffect.NONE

    @property
    def applied(self) -> bool:
        """Whether the outcome was written (the verdict is ``applied``)."""
        return self.verdict is Verdict.APPLIED


class StoredDelivery(NamedTuple):
    """The slice of a stored delivery and its hook that :func:`transition` reads and writes.

    A named tuple.

    Attributes:
        state: The delivery's state.
        token: The fencing token it keeps: the claim's while in flight, the last claim's
            after a cancellation in flight, otherwise ``None``.
        attempts: Attempts made in the current series.
        next_attempt_at: When the next attempt is due (``None`` once final).
        last_error: The last failed attempt's summary.
        hook_state: The state of its hook, or ``None`` if the hook no longer exists.

    .. versionadded:: 0.2.0
    """

    state: DeliveryState
    token: str | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    hook_state: HookState | None = HookState.ACTIVE


class Transition(NamedTuple):
    """What a store writes for one outcome, and the verdict.

    A named tuple.

    Attributes:
        verdict: :class:`Verdict`.
        delivery: The delivery's new slice, to write with ``updated_at = now`` and no lease
            (its ``token`` is always ``None``), or ``None``: write nothing (``stale``).
            ``hook_state`` is the hook's state afterwards (``None``: removed).
        attempt: The attempt to append to the log, or ``None``.
        hook_effect: :class:`HookEffect`: what to do to the hook, in the same transaction.
        dead_reason: For :attr:`~resthooks.HookEffect.DEAD`: the hook's ``dead_reason``.
        now: When it happens: ``updated_at`` of what is written, the hook's ``dead_at``.

    .. versionadded:: 0.2.0
    """

    verdict: Verdict
    now: datetime
    delivery: StoredDelivery | None = None
    attempt: Attempt | None = None
    hook_effect: HookEffect = HookEffect.NONE
    dead_reason: str | None = None

    @property
    def ends_turn(self) -> bool:
        """Whether the delivery leaves its ordering key's turn (it is written final).

        Then a store hands the turn to the oldest waiting delivery of the same hook and key,
        in the same transaction. A delivery without a key has no turn to hand on.

        .. versionadded:: 0.2.0
        """
        return self.delivery is not None and self.delivery.state.is_final

    def result(
        self, delivery_id: str, *, hook_id: str = "", cancelled: Sequence[str] = ()
    ) -> RecordResult:
        """The :class:`~resthooks.RecordResult` a store returns for this transition.

        Args:
            delivery_id: The outcome's delivery.
            hook_id: The delivery's hook (``""`` for an unknown delivery).
            cancelled: The other deliveries the hook effect cancelled.
        """
        return RecordResult(
            delivery_id=delivery_id,
            verdict=self.verdict,
            hook_id=hook_id,
            cancelled=tuple(cancelled),
            logged=self.attempt is not None,
            hook_effect=self.hook_effect,
        )


def dead_reason(outcome: Outcome) -> str:
    """Why a hook killed by this ``failed`` outcome died: its ``reason``, or the default.

    Example:
        >>> from resthooks import Outcome, OutcomeKind
        >>> dead_reason(Outcome(delivery_id="msg_1", token="t", kind=OutcomeKind.FAILED))
        'retries exhausted'
    """
    return outcome.reason or DEFAULT_DEAD_REASON


def may_touch_hook(kind: OutcomeKind) -> bool:
    """Whether an outcome of this kind, if applied, kills or removes the delivery's hook.

    A store that locks rows in an order (hooks before deliveries) asks it before reading.

    Example:
        >>> from resthooks import OutcomeKind
        >>> may_touch_hook(OutcomeKind.GONE), may_touch_hook(OutcomeKind.RETRY)
        (True, False)
    """
    return _APPLIED[kind][1] is not HookEffect.NONE


_APPLIED = {
    OutcomeKind.DELIVERED: (DeliveryState.DELIVERED, HookEffect.NONE),
    OutcomeKind.RETRY: (DeliveryState.PENDING, HookEffect.NONE),
    OutcomeKind.FAILED: (DeliveryState.FAILED, HookEffect.DEAD),
    OutcomeKind.GONE: (DeliveryState.CANCELLED, HookEffect.REMOVED),
    OutcomeKind.RELEASE: (DeliveryState.PENDING, HookEffect.NONE),
}


def transition(stored: StoredDelivery | None, outcome: Outcome, *, now: datetime) -> Transition:
    """What recording ``outcome`` (with its claim's token) at ``now`` does to ``stored``.

    Pure: it reads its arguments only. A store calls it under the lock of the delivery's row
    (and, for a ``failed`` or ``gone`` outcome, the hook's), for each outcome of a batch in
    order, on the rows as the batch's earlier outcomes left them.

    Args:
        stored: The delivery's slice as stored now, or ``None`` if there is no such delivery.
        outcome: What the Dispatcher decided; ``outcome.token`` is the claim's token.
        now: The time of the record.

    Returns:
        The :class:`Transition` to write.

    Example:
        >>> from datetime import datetime, timezone
        >>> from resthooks import DeliveryState, Outcome, OutcomeKind
        >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> in_flight = StoredDelivery(state=DeliveryState.IN_FLIGHT, token="t1")
        >>> done = Outcome(delivery_id="msg_1", token="t1", kind=OutcomeKind.FAILED)
        >>> t = transition(in_flight, done, now=now)
        >>> t.verdict.value, t.delivery.state.value, t.hook_effect.value, t.dead_reason
        ('applied', 'failed', 'dead', 'retries exhausted')
        >>> stale = Outcome(delivery_id="msg_1", token="t0", kind=OutcomeKind.FAILED)
        >>> transition(in_flight, stale, now=now).verdict.value
        'stale'
    """
    attempt = outcome.attempt
    if stored is None or stored.token is None or stored.token != outcome.token:
        return Transition(verdict=Verdict.STALE, now=now)
    if stored.state is DeliveryState.CANCELLED:
        if attempt is None:
            return Transition(verdict=Verdict.STALE, now=now)
        logged = stored._replace(
            token=None, attempts=stored.attempts + 1, last_error=attempt.summary
        )
        return Transition(verdict=Verdict.LATE, delivery=logged, attempt=attempt, now=now)
    if stored.state is not DeliveryState.IN_FLIGHT:
        return Transition(verdict=Verdict.STALE, now=now)
    state, effect = _APPLIED[outcome.kind]
    if outcome.kind is OutcomeKind.RETRY:
        # A retry without a time is due at once rather than never.
        next_attempt_at: datetime | None = outcome.next_attempt_at or now
    elif outcome.kind is OutcomeKind.RELEASE:
        next_attempt_at = stored.next_attempt_at
    else:
        next_attempt_at = None
    hook_state = stored.hook_state
    if hook_state is None or (effect is HookEffect.DEAD and hook_state is HookState.DEAD):
        effect = HookEffect.NONE  # removed already, or dead already (its reason stands)
    elif effect is HookEffect.DEAD:
        hook_state = HookState.DEAD
    elif effect is HookEffect.REMOVED:
        hook_state = None
    written = StoredDelivery(
        state=state,
        token=None,
        attempts=stored.attempts + (attempt is not None),
        next_attempt_at=next_attempt_at,
        last_error=attempt.summary if attempt is not None else stored.last_error,
        hook_state=hook_state,
    )
    return Transition(
        verdict=Verdict.APPLIED,
        delivery=written,
        attempt=attempt,
        hook_effect=effect,
        dead_reason=dead_reason(outcome) if effect is HookEffect.DEAD else None,
        now=now,
    )


class BatchRecord:
    """The slices of a batch's deliveries as its outcomes are recorded one after the other.

    A store that reads the slices of a whole batch at once (one query) keeps them here: each
    :meth:`transition` runs on the slice as the batch's earlier outcomes left it, and
    :meth:`hook_changed` tells it what a hook effect did to the other rows it holds. Pure:
    the store still does every read and write.

    Args:
        rows: Delivery id -> (its hook's id, its slice as read, under lock).

    Example:
        >>> from datetime import datetime, timezone
        >>> from resthooks import DeliveryState, Outcome, OutcomeKind
        >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> flying = StoredDelivery(state=DeliveryState.IN_FLIGHT, token="t")
        >>> batch = BatchRecord({"msg_1": ("hook_1", flying), "msg_2": ("hook_1", flying)})
        >>> gone = Outcome(delivery_id="msg_1", token="t", kind=OutcomeKind.GONE)
        >>> batch.transition(gone, now=now).hook_effect.value
        'removed'
        >>> batch.hook_changed("hook_1", cancelled=["msg_2"], hook_state=None)
        >>> ok = Outcome(delivery_id="msg_2", token="t", kind=OutcomeKind.DELIVERED)
        >>> batch.transition(ok, now=now).verdict.value
        'stale'

    .. versionadded:: 0.2.0
    """

    def __init__(self, rows: Mapping[str, tuple[str, StoredDelivery]]) -> None:
        self._rows = dict(rows)

    def hook_id(self, delivery_id: str) -> str:
        """The hook of a delivery of the batch (``""`` if it is not one)."""
        row = self._rows.get(delivery_id)
        return row[0] if row is not None else ""

    def transition(self, outcome: Outcome, *, now: datetime) -> Transition:
        """:func:`transition` on the delivery's current slice, which becomes what it writes."""
        row = self._rows.get(outcome.delivery_id)
        t = transition(row[1] if row is not None else None, outcome, now=now)
        if row is not None and t.delivery is not None:
            self._rows[outcome.delivery_id] = (row[0], t.delivery)
        return t

    def hook_changed(
        self, hook_id: str, *, cancelled: Sequence[str], hook_state: HookState | None
    ) -> None:
        """After a hook effect: the hook's state, and which of its deliveries were cancelled
        (those keep their token: their claims' attempts come back late)."""
        gone = set(cancelled)
        for delivery_id, (hook, stored) in self._rows.items():
            if hook != hook_id:
                continue
            if delivery_id in gone:
                now_stored = stored._replace(
                    state=DeliveryState.CANCELLED,
                    next_attempt_at=None,
                    hook_state=hook_state,
                )
            else:
                now_stored = stored._replace(hook_state=hook_state)
            self._rows[delivery_id] = (hook, now_stored)


@attrs.frozen
class DeliverySummary:
    """Counts of what one :meth:`Dispatcher.deliver_due <resthooks.Dispatcher.deliver_due>`
    call (or a worker) did.

    Attributes:
        delivered: Deliveries that got a 2xx.
        retried: Failed attempts that will be retried.
        failed: Deliveries whose last retry failed (their hooks died).
        gone: Deliveries answered ``410 Gone`` (their hooks were removed).
        cancelled: Other deliveries cancelled because their hook died or was removed.
        stale: Outcomes refused because another worker had claimed the delivery since:
            nothing of them was written.
        late: Attempts whose delivery was cancelled while they were in flight (its hook died
            or was removed meanwhile, by another outcome of the same batch or another
            worker): logged in the attempt log, but the delivery stays cancelled, so they
            count neither as delivered (or retried...) nor as stale. The delivery itself is
            counted once, in ``cancelled``, by whoever cancelled it.

    Example:
        >>> DeliverySummary(delivered=2) + DeliverySummary(delivered=1, retried=1)
        DeliverySummary(delivered=3, retried=1, failed=0, gone=0, cancelled=0, stale=0, late=0)
    """

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    gone: int = 0
    cancelled: int = 0
    stale: int = 0
    late: int = 0

    def __add__(self, other: DeliverySummary) -> DeliverySummary:
        # Field by field: attrs.astuple deep-copies and costs more than the rest of a
        # deliver_due round.
        return DeliverySummary(
            delivered=self.delivered + other.delivered,
            retried=self.retried + other.retried,
            failed=self.failed + other.failed,
            gone=self.gone + other.gone,
            cancelled=self.cancelled + other.cancelled,
            stale=self.stale + other.stale,
            late=self.late + other.late,
        )

    @property
    def attempts(self) -> int:
        """Attempts written to the attempt log (``late`` ones included)."""
        return self.delivered + self.retried + self.failed + self.gone + self.late


_SUMMARY_KEYS = {
    OutcomeKind.DELIVERED: "delivered",
    OutcomeKind.RETRY: "retried",
    OutcomeKind.FAILED: "failed",
    OutcomeKind.GONE: "gone",
}


def summarize(outcomes: Sequence[Outcome], results: Sequence[RecordResult]) -> DeliverySummary:
    """Count a recorded batch: each outcome by its kind if applied, else as late or stale.

    Args:
        outcomes: The outcomes given to the store's ``record``.
        results: What it returned, in the same order.

    Example:
        >>> from resthooks import Outcome, OutcomeKind, RecordResult
        >>> ok = Outcome(delivery_id="msg_1", token="t", kind=OutcomeKind.DELIVERED)
        >>> summarize([ok, ok], [RecordResult(delivery_id="msg_1", verdict=Verdict.APPLIED),
        ...                      RecordResult(delivery_id="msg_1", verdict=Verdict.STALE)])
        DeliverySummary(delivered=1, retried=0, failed=0, gone=0, cancelled=0, stale=1, late=0)
    """
    counts = dict.fromkeys(
        ("delivered", "retried", "failed", "gone", "cancelled", "stale", "late"), 0
    )
    for outcome, result in zip(outcomes, results, strict=True):
        verdict = result.verdict
        if verdict is not Verdict.APPLIED:
            counts[verdict.value] += 1
            continue
        counts["cancelled"] += len(result.cancelled)
        key = _SUMMARY_KEYS.get(outcome.kind)
        if key:
            counts[key] += 1
    return DeliverySummary(**counts)
