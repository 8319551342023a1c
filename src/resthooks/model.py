"""The plain, immutable values resthooks works with: hooks, deliveries and attempts."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from .batching import Batching
from .urls import mask_url

__all__ = [
    "Attempt",
    "Claim",
    "Delivery",
    "DeliveryState",
    "Hook",
    "HookState",
    "Outcome",
    "OutcomeKind",
    "QuarantinedDelivery",
    "Stats",
    "StoreProblem",
    "VacuumReport",
]


def _url_repr(url: str) -> str:
    # reprs end up in logs and error messages: no credentials, no query string.
    return repr(mask_url(url))


class HookState(str, enum.Enum):
    """The state of a hook. A removed hook no longer exists, so it has no state."""

    ACTIVE = "active"
    """Receives deliveries."""
    DEAD = "dead"
    """Its retries ran out, so it receives nothing more until revived; it stays listed."""
    UNCONFIRMED = "unconfirmed"
    """Subscribed with intent verification on, its target not confirmed yet (new in 0.2.0):
    receives nothing; removed if not confirmed by its ``confirm_by``."""


class DeliveryState(str, enum.Enum):
    """The state of one delivery (one event to one hook)."""

    PENDING = "pending"
    """Waiting for its next attempt (the first one, or a retry)."""
    IN_FLIGHT = "in_flight"
    """Claimed by a worker whose lease has not expired."""
    DELIVERED = "delivered"
    """An attempt got a 2xx answer. Final."""
    FAILED = "failed"
    """Every attempt of the retry schedule failed. Final (until redelivered)."""
    CANCELLED = "cancelled"
    """Its hook was removed or died before the delivery succeeded. Final (until redelivered)."""

    @property
    def is_final(self) -> bool:
        """Whether no attempt will be made unless someone redelivers it."""
        return self in (DeliveryState.DELIVERED, DeliveryState.FAILED, DeliveryState.CANCELLED)


@attrs.frozen(kw_only=True)
class Hook:
    """A subscription: deliver ``event`` of ``owner`` to ``target_url``.

    Attributes:
        id: Opaque, unique id.
        owner: The account, tenant or API client the hook belongs to.
        event: The ``entity/action`` it is subscribed to.
        target_url: Where deliveries are POSTed. Shown in ``repr`` without its query string
            (and credentials, for a hook stored before they were refused).
        description: Free text from the subscriber.
        state: :class:`HookState`.
        created_at: When it was subscribed (aware, UTC).
        updated_at: When it last changed (aware, UTC).
        dead_reason: Why it died (the last attempt's error), when it is dead.
        dead_at: When it died.
        secret: The signing secret (``whsec_...``), or ``None`` for unsigned deliveries.
            Never shown in ``repr``.
        previous_secret: During a rotation, the secret that is still used as well.
        previous_secret_until: When the previous secret stops being used.
        signing_key: The hook's ed25519 secret key (``whsk_...``) for ``v1a`` signatures, or
            ``None``. Never shown in ``repr``; receivers get its public key
            (:func:`resthooks.ed25519.public_key_of`).

        confirm_secret: For an unconfirmed hook, the ``X-Hook-Secret`` its target must echo
            (intent verification). Never shown in ``repr``.
        confirm_by: For an unconfirmed hook, when it is removed unless confirmed.
        batching: How its emits are batched (:class:`~resthooks.Batching`), or ``None``:
            one delivery per emit, Capsule's way. Set when subscribed.

    .. versionchanged:: 0.2.0
        ``signing_key``, ``confirm_secret``, ``confirm_by``, ``batching`` and the
        ``unconfirmed`` state.
    """

    id: str
    owner: str
    event: str
    target_url: str = attrs.field(repr=_url_repr)
    description: str = ""
    state: HookState = HookState.ACTIVE
    created_at: datetime
    updated_at: datetime
    dead_reason: str | None = None
    dead_at: datetime | None = None
    secret: str | None = attrs.field(default=None, repr=False)
    previous_secret: str | None = attrs.field(default=None, repr=False)
    previous_secret_until: datetime | None = None
    signing_key: str | None = attrs.field(default=None, repr=False)
    confirm_secret: str | None = attrs.field(default=None, repr=False)
    confirm_by: datetime | None = None
    batching: Batching | None = None

    @property
    def is_active(self) -> bool:
        """Whether the hook receives deliveries."""
        return self.state is HookState.ACTIVE


@attrs.frozen(kw_only=True)
class Delivery:
    """One event on its way to one hook.

    Attributes:
        id: Stable, unique; sent as ``webhook-id`` on every attempt.
        hook_id: The hook it goes to (the hook may since have been removed).
        owner: The hook's owner.
        event: The event name.
        state: :class:`DeliveryState`.
        attempts: Attempts made in the current series (a redelivery starts a new series).
        next_attempt_at: When the next attempt is due; ``None`` once final.
        created_at: When it was emitted.
        updated_at: When its state last changed.
        last_error: A short description of the last failed attempt, if any.
        ordering_key: The emit's ordering key, or ``None``: the deliveries of one hook with
            the same key are sent one at a time, in emit order (see :doc:`delivery`).

            .. versionadded:: 0.2.0
    """

    id: str
    hook_id: str
    owner: str
    event: str
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    last_error: str | None = None
    ordering_key: str | None = None


@attrs.frozen(kw_only=True)
class Attempt:
    """The log entry of one attempt to deliver.

    Attributes:
        delivery_id: The delivery it belongs to.
        number: 1 for the first attempt of a series; a redelivery starts a new series at 1.
        started_at: When the request started (the Dispatcher's clock).
        duration: Seconds the attempt took.
        status: The HTTP status, or ``None`` when no answer came.
        error_kind: ``None`` on a 2xx; otherwise ``http`` (a non-2xx status), ``timeout``,
            ``connection``, ``tls``, ``blocked``, ``protocol``...
        error: A human-readable message for the failure, without secrets.
        response_excerpt: At most the first 4 KiB of the response body, decoded as UTF-8 with
            replacement characters.
    """

    delivery_id: str
    number: int
    started_at: datetime
    duration: float
    status: int | None = None
    error_kind: str | None = None
    error: str | None = None
    response_excerpt: str = ""

    @property
    def succeeded(self) -> bool:
        """Whether the attempt got a 2xx answer."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def summary(self) -> str | None:
        """A short description of a failed attempt (``None`` if it succeeded).

        Stores keep it as the delivery's ``last_error``.

        Example:
            >>> from datetime import datetime, timezone
            >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
            >>> Attempt(delivery_id="msg_1", number=1, started_at=t, duration=0.1, status=500,
            ...         error_kind="http").summary
            'HTTP 500'
        """
        if self.succeeded:
            return None
        if self.status is not None:
            return f"HTTP {self.status}"
        if self.error:
            return f"{self.error_kind}: {self.error}"
        return self.error_kind


@attrs.frozen(kw_only=True)
class Claim:
    """A delivery a worker has claimed, with everything needed to send it.

    Attributes:
        delivery: The delivery, in state ``in_flight``.
        hook: Its hook as it was when claimed.
        body: The JSON body to POST, exactly as serialised at emit time.
        token: The fencing token: recording an outcome with a stale token is refused.
        lease_until: When the claim expires and the delivery becomes claimable again.
        trace_context: The W3C ``traceparent`` its emit stored with it (see
            :mod:`resthooks.tracing`), or ``None``.

            .. versionadded:: 0.2.0
    """

    delivery: Delivery
    hook: Hook
    body: bytes = attrs.field(repr=False)
    token: str
    lease_until: datetime
    trace_context: str | None = None


class OutcomeKind(str, enum.Enum):
    """What the Dispatcher decided after an attempt; the store applies it atomically."""

    DELIVERED = "delivered"
    """Mark the delivery delivered."""
    RETRY = "retry"
    """Make it pending again, due at ``Outcome.next_attempt_at``."""
    FAILED = "failed"
    """Retries ran out, so mark it failed, mark the hook dead, cancel the hook's pending
    deliveries."""
    GONE = "gone"
    """The receiver answered 410, so mark it cancelled, remove the hook, cancel its pending
    deliveries."""
    RELEASE = "release"
    """No attempt was made (the worker is stopping), so make it pending again, unchanged."""


@attrs.frozen(kw_only=True)
class Outcome:
    """One decision for one claimed delivery.

    Attributes:
        delivery_id: The claimed delivery.
        token: The claim's fencing token.
        kind: :class:`OutcomeKind`.
        attempt: The attempt to log (``None`` for ``release``).
        next_attempt_at: For ``retry``: when it is due again.
        reason: For ``failed``: why the hook died (stored as ``dead_reason``).
    """

    delivery_id: str
    token: str
    kind: OutcomeKind
    attempt: Attempt | None = None
    next_attempt_at: datetime | None = None
    reason: str | None = None


@attrs.frozen(kw_only=True)
class Stats:
    """Counts for an owner, or for the whole store.

    Attributes:
        hooks: Hook state -> count (every state present, zero included).
        deliveries: Delivery state -> count (every state present, zero included).
        oldest_pending_at: ``created_at`` of the oldest delivery not yet final, or ``None``.
        quarantined: Delivery rows the store moved aside because it could not read them
            (see :class:`QuarantinedDelivery`); always 0 for the whole store when ``owner``
            was given (a damaged row's owner cannot be trusted), and for a
            :class:`~resthooks.stores.MemoryStore`.

            .. versionadded:: 0.2.0
        blocked: Deliveries not yet final whose last attempt the network policy refused
            (``last_error`` ``blocked: ...``): they are retried on the schedule, and blocked
            again unless the policy changes. Not 0 means a sender misconfigured, usually a
            worker built without the web app's :class:`~resthooks.NetworkPolicy`.

            .. versionadded:: 0.2.0
    """

    hooks: dict[str, int]
    deliveries: dict[str, int]
    oldest_pending_at: datetime | None = None
    quarantined: int = 0
    blocked: int = 0


@attrs.frozen
class QuarantinedDelivery:
    """A delivery row the store could not read, moved aside so the outbox keeps going.

    A SQL store that meets a delivery it cannot turn back into a :class:`Delivery` (a time out
    of range, an unknown state, a missing hook: a damaged or hand-edited row) moves the row
    to its quarantine table instead of failing every claim. Nothing attempts it again; the
    operator looks at it with ``resthooks check``.

    Attributes:
        delivery_id: The delivery's id, as far as the row still tells it.
        reason: What was wrong with the row.
        quarantined_at: When it was moved aside.

    .. versionadded:: 0.2.0
    """

    delivery_id: str
    reason: str
    quarantined_at: datetime


@attrs.frozen(kw_only=True)
class OutboxStats:
    """What is due in the outbox at one moment: what a store's ``outbox_stats(now=...)``
    returns, read-only.

    ``outbox_stats`` is optional for stores of your own (the metrics, the health check and the
    live view use it when it is there; see :doc:`observability`). The conformance suite checks
    it on stores that have it.

    Attributes:
        due: Deliveries that can be claimed at that moment: pending and due, or in flight
            under an expired lease.
        retrying: Pending deliveries with at least one attempt (waiting for a retry, due or
            not).
        oldest_due_at: The earliest due time among the due deliveries (how long the oldest has
            waited), or ``None`` when none is due.

    .. versionadded:: 0.2.0
    """

    due: int
    retrying: int
    oldest_due_at: datetime | None = None


@attrs.frozen
class StoreProblem:
    """One kind of damage a store's ``check()`` found.

    Attributes:
        kind: A short word: ``integrity`` (the database's own check), ``foreign_key``, or an
            invariant of the outbox such as ``pending_without_due_time``,
            ``open_delivery_without_hook``, ``message_count_mismatch``, ``quarantined``.
        description: What it means, for a human.
        count: How many rows (or messages of the database's own check).

    .. versionadded:: 0.2.0
    """

    kind: str
    description: str
    count: int = 1


@attrs.frozen
class VacuumReport:
    """What :meth:`SQLiteStore.vacuum() <resthooks.stores.SQLiteStore.vacuum>` did.

    Attributes:
        size_before: Bytes of the file and its WAL before.
        size_after: Bytes after.

    .. versionadded:: 0.2.0
    """

    size_before: int
    size_after: int
