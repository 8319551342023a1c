"""The storage protocols every store implements: hooks (the registry) and deliveries (the outbox).

Stores only store: every decision (retries, 410, dead hooks, validation) is the Dispatcher's.
A store receives already-validated values and applies each call atomically: a call that
changes several rows does so in one transaction, so a crash leaves either all of it or none.

All datetimes passed in and returned are aware UTC datetimes. Stores must round-trip them to
at least millisecond precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from ..model import (
    Attempt,
    Claim,
    Delivery,
    DeliveryState,
    Hook,
    HookState,
    Outcome,
    Stats,
)
from ..outcomes import RecordResult

__all__ = ["DeliveryStore", "HookRegistry", "Store", "WakesWorkers"]


@runtime_checkable
class HookRegistry(Protocol):
    """Where hooks live."""

    def add_hook(self, hook: Hook, *, max_per_owner: int | None) -> tuple[Hook, bool]:
        """Store ``hook`` unless its owner already has the same subscription.

        In one transaction: if a hook with the same ``(owner, event, target_url)`` exists,
        return ``(existing, False)`` (a dead one is made active again first, as a re-subscribe
        means "deliver to me again"); otherwise, if ``max_per_owner`` is not ``None`` and the
        owner already has that many hooks (any state), raise
        :class:`~resthooks.errors.HookLimitReached`; otherwise store it and return
        ``(hook, True)``.

        One secret per endpoint: if the owner already has another hook to the same
        ``target_url``, the new hook is stored with that hook's ``secret``,
        ``previous_secret``, ``previous_secret_until`` and ``signing_key`` instead of its own
        (the oldest such hook's, by ``created_at`` then ``id``), and returned so; see
        :doc:`api`.

        .. versionchanged:: 0.2.0
           The endpoint's secrets.
        """
        ...

    def get_hook(self, hook_id: str) -> Hook | None:
        """Return the hook with this id, or ``None``."""
        ...

    def list_hooks(
        self,
        *,
        owner: str | None = None,
        event: str | None = None,
        state: HookState | None = None,
    ) -> list[Hook]:
        """Hooks matching every filter given, oldest first (by ``created_at``, then ``id``)."""
        ...

    def active_hooks(self, *, owner: str, event: str) -> list[Hook]:
        """The active hooks of ``owner`` subscribed to ``event``, oldest first."""
        ...

    def remove_hook(self, hook_id: str, *, now: datetime) -> list[str]:
        """Delete the hook and cancel its deliveries that are not final, in one transaction.

        Returns:
            The ids of the cancelled deliveries (empty if the hook did not exist).
            In-flight deliveries are cancelled too, keeping their claim's token: their
            worker's outcome is then refused but its attempt is still logged (see
            :meth:`DeliveryStore.record`).
        """
        ...

    def mark_dead(self, hook_id: str, *, reason: str, now: datetime) -> list[str]:
        """Mark the hook dead and cancel its deliveries that are not final; return their ids.

        In-flight deliveries are cancelled too, keeping their claim's token, as in
        :meth:`remove_hook`.
        """
        ...

    def revive_hook(self, hook_id: str, *, now: datetime) -> Hook | None:
        """Make a dead hook active again (its cancelled deliveries stay cancelled).

        Returns the updated hook, or ``None`` if it does not exist. Reviving a hook that is
        not dead (active or unconfirmed) returns it unchanged.
        """
        ...

    def confirm_hook(self, hook_id: str, *, now: datetime) -> Hook | None:
        """Make an ``unconfirmed`` hook active, clearing ``confirm_secret`` and ``confirm_by``
        (intent verification: its target confirmed the subscription).

        Returns the updated hook, or ``None`` if it does not exist or is not unconfirmed (then
        nothing changes). A store that never holds unconfirmed hooks may return ``None``.

        .. versionadded:: 0.2.0
        """
        ...

    def set_secret(
        self,
        hook_id: str,
        *,
        secret: str | None,
        previous_secret: str | None,
        previous_secret_until: datetime | None,
        now: datetime,
    ) -> Hook | None:
        """Replace the hook's secrets (rotation); return the updated hook or ``None``."""
        ...

    # Optional (the owners' PATCH of a hook, Dispatcher.update_hook, needs it; the
    # conformance suite checks it on stores that have it):
    #
    # def update_hook(
    #     self, hook_id: str, *, event: str, target_url: str, description: str, now: datetime
    # ) -> Hook | None:
    #     """In one transaction: give the hook this event, target URL and description
    #     (``updated_at`` = ``now``; its state and deliveries unchanged) and return it, or
    #     ``None`` if it does not exist. Raise SubscriptionExists (changing nothing) if
    #     another hook of its owner has this (event, target_url). A hook moved to a URL of
    #     the owner's other hooks takes their secrets, as add_hook does; moved to a new URL,
    #     it keeps its own."""


@runtime_checkable
class DeliveryStore(Protocol):
    """The outbox: deliveries waiting to be sent, their claims and their attempt log."""

    def enqueue(
        self,
        *,
        owner: str,
        event: str,
        body: bytes,
        now: datetime,
        connection: object | None = None,
        trace_context: str | None = None,
        ordering_key: str | None = None,
    ) -> Sequence[Delivery]:
        """Fan out one event: one pending delivery, due ``now``, per active hook of ``owner``
        subscribed to ``event``, in one transaction. ``body`` is stored once per call or per
        delivery, as the store likes. Returns the new deliveries (empty if no hook matched:
        then nothing is stored).

        ``connection`` (the transactional outbox): a database connection of the caller's,
        with a transaction open. The store writes through it and neither commits nor rolls
        back, so the deliveries exist only if the caller's transaction commits. A store that
        cannot do this raises :class:`~resthooks.errors.ConfigurationError` when given one.

        The sequence returned may be built lazily, when first read.

        ``trace_context`` (a W3C ``traceparent``, already validated, or ``None``) is kept with
        the deliveries of this call and handed back in each :class:`~resthooks.Claim`. The
        Dispatcher passes it only when a tracer gave one, so a store of your own without the
        argument works until tracing is turned on.

        ``ordering_key`` (already validated; passed only when the emit has one) is kept on
        each delivery (:attr:`Delivery.ordering_key <resthooks.Delivery.ordering_key>`): of
        the open deliveries of one hook and key only one, the key's turn, may be claimed
        (the rule is :mod:`resthooks.outcomes`'s; see :doc:`storage`). ``enqueue_many``
        takes ``ordering_keys``, one key or ``None`` per event, when any event has one.

        A store may also offer ``enqueue_many(events, *, now, connection=None)``, ``events``
        being ``(owner, event, body)`` tuples: the same for each, all in one transaction,
        the deliveries of all returned in order. :meth:`resthooks.Dispatcher.emit_many` uses
        it when present, and calls ``enqueue`` once per event otherwise.

        .. versionchanged:: 0.2.0
           Returns a sequence (it was a list); ``trace_context`` and ``ordering_key`` are
           new.
        """
        ...

    def claim_due(
        self,
        *,
        now: datetime,
        limit: int,
        lease_until: datetime,
        max_in_flight_per_host: int | None = None,
    ) -> list[Claim]:
        """Claim up to ``limit`` deliveries due at ``now``, oldest due first, in one transaction.

        Due means pending with ``next_attempt_at <= now``, or in flight with an expired lease
        (``lease_until <= now``: its worker is presumed dead). Each claimed delivery becomes
        ``in_flight`` with a new fencing token and ``lease_until``. With
        ``max_in_flight_per_host``, a delivery is skipped (left due) while that many
        deliveries to the same target host are in flight under unexpired leases, counting
        those claimed by this call. A delivery waiting for its ordering key's turn is not
        due.
        """
        ...

    def record(self, outcomes: Sequence[Outcome], *, now: datetime) -> list[RecordResult]:
        """Apply a batch of outcomes in one transaction; return one result per outcome, in order.

        What each outcome does is :func:`resthooks.outcomes.transition`'s to say, not the
        store's: for each outcome in order, the store locks and reads the delivery's slice
        (:class:`~resthooks.outcomes.StoredDelivery`, as the batch's earlier outcomes left
        it), asks the transition, writes exactly what it returns (the delivery, the attempt,
        the hook dead or removed with its open deliveries cancelled) and returns
        :meth:`Transition.result() <resthooks.outcomes.Transition.result>`. See
        :doc:`storage` for the steps; the conformance check ``transition_table`` holds a
        store to them. :meth:`requeue` clears a token kept by a cancellation.
        """
        ...

    def get_delivery(self, delivery_id: str) -> Delivery | None:
        """Return the delivery with this id, or ``None``."""
        ...

    def list_deliveries(
        self,
        *,
        owner: str | None = None,
        hook_id: str | None = None,
        state: DeliveryState | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Deliveries matching every filter given, newest first (``created_at``, then ``id``)."""
        ...

    def attempts(self, delivery_id: str) -> list[Attempt]:
        """The attempt log of a delivery, oldest first."""
        ...

    def requeue(self, delivery_id: str, *, now: datetime) -> Delivery | None:
        """Start a new attempt series for a final delivery: pending, due ``now``,
        ``attempts`` reset to 0, same id, no claim token (a token kept by a cancellation is
        cleared). Returns ``None`` if it does not exist. The caller has checked the state; the
        store does not decide."""
        ...

    def next_due_at(self) -> datetime | None:
        """When the next delivery becomes due (pending ``next_attempt_at``, or the lease expiry
        of an in-flight one), or ``None`` when nothing is waiting."""
        ...

    def stats(self, *, owner: str | None = None) -> Stats:
        """Hooks by state, deliveries by state, and the oldest delivery not yet final."""
        ...

    # Optional (the metrics, the health check and the live view use it when a store has it):
    #
    # def outbox_stats(self, *, now: datetime) -> OutboxStats:
    #     """Deliveries due at ``now`` (pending and due, or in flight under an expired lease),
    #     pending ones with at least one attempt, and the earliest due time among the due
    #     ones. Read-only. The conformance suite checks it on stores that have it."""

    def purge(self, *, before: datetime, limit: int | None = None) -> int:
        """Delete final deliveries last updated before ``before``, with their attempts and
        bodies; return how many deliveries were deleted.

        With ``limit``, delete at most that many (the oldest first) in one transaction: the
        Dispatcher purges in batches so writers get in between. A store may tidy up (give
        space back) when a call deletes fewer than ``limit``: that was the last batch.

        .. versionchanged:: 0.2.0
           ``limit``.
        """
        ...


@runtime_checkable
class Store(HookRegistry, DeliveryStore, Protocol):
    """A complete store: the hook registry and the outbox, sharing one transaction scope."""

    def close(self) -> None:
        """Release connections and files. The store is unusable afterwards."""
        ...


@runtime_checkable
class WakesWorkers(Protocol):
    """A store that can tell a waiting worker that work was enqueued by another process.

    Optional: polling :meth:`DeliveryStore.claim_due` finds every due delivery without it.
    Both workers use it when the store has it and ``notifies`` is true (PostgreSQL's
    ``LISTEN``/``NOTIFY``): a thread of the worker waits on :meth:`wait_for_work` and wakes the
    loop, so an outbox emit is sent when its host's transaction commits, and (with
    ``PostgresStore(notify=True)``) an emit in another process at once, instead of at the
    next poll.

    .. versionadded:: 0.2.0
    """

    @property
    def notifies(self) -> bool:
        """Whether this store sends the notifications :meth:`wait_for_work` waits for."""
        ...

    def wait_for_work(self, timeout: float) -> bool:
        """Block until work is enqueued elsewhere (``True``) or ``timeout`` seconds pass
        (``False``). Raises :class:`~resthooks.errors.StoreError` if it cannot listen."""
        ...
