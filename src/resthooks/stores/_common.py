"""Small pieces shared by the stores (not public)."""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

from ..batching import Batching
from ..errors import DamagedRowError, StoreError
from ..model import Attempt, Delivery, DeliveryState, Hook, HookState

__all__ = [
    "FINAL_STATES",
    "NOT_FINAL_STATES",
    "WAITING_FOR_TURN",
    "LazyDeliveries",
    "attempt_from_row",
    "delivery_from_row",
    "endpoint_secrets",
    "hook_from_row",
    "new_delivery_id",
    "new_token",
    "target_host",
]

ToDatetime = Callable[[Any], datetime]

FINAL_STATES = (DeliveryState.DELIVERED, DeliveryState.FAILED, DeliveryState.CANCELLED)
NOT_FINAL_STATES = (DeliveryState.PENDING, DeliveryState.IN_FLIGHT)

#: The ``due_at`` and ``next_attempt_at`` a SQL store writes on a delivery that waits behind
#: another of its ordering key (see :mod:`resthooks.outcomes`): later than any real time, so
#: no claim query reaches it (they stay as they are, and flat: a waiting backlog sits past
#: the end of every index range they read); read back, it is ``next_attempt_at=None``. The
#: turn's hand-over makes it due then.
WAITING_FOR_TURN = datetime(9999, 1, 1, tzinfo=timezone.utc)


class LazyDeliveries(Sequence[Delivery]):
    """The deliveries of a fan-out, built when first read.

    ``len()`` is known at once; the first index, iteration or comparison calls ``load``
    (which reads the new rows' ids back) and keeps the result.
    """

    __slots__ = ("_count", "_items", "_load")

    def __init__(self, count: int, load: Callable[[], list[Delivery]]) -> None:
        self._count = count
        self._load: Callable[[], list[Delivery]] | None = load
        self._items: list[Delivery] | None = None

    def materialize(self) -> list[Delivery]:
        """Build (once) and return the deliveries."""
        items = self._items
        if items is None:
            load = self._load
            assert load is not None
            items = load()
            if len(items) != self._count:
                raise StoreError(
                    f"{self._count} deliveries were enqueued but {len(items)} could be read "
                    "back (purged already?)"
                )
            self._items, self._load = items, None
        return items

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: Any) -> Any:
        return self.materialize()[index]

    def __iter__(self) -> Iterator[Delivery]:
        return iter(self.materialize())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return self.materialize() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment] # mutable-looking, like a list

    def __repr__(self) -> str:
        return repr(self.materialize())


def new_delivery_id() -> str:
    """A fresh delivery id, in the ``msg_`` style of Standard Webhooks."""
    return "msg_" + secrets.token_hex(16)


def new_token() -> str:
    """A fresh fencing token for a claim."""
    return secrets.token_hex(12)


def endpoint_secrets(hook: Hook, sibling: Hook) -> Hook:
    """``hook`` with the signing secrets of ``sibling``, a hook of the same owner and target
    URL: the rule "one secret per endpoint" every store applies when a hook joins an endpoint
    (:meth:`~resthooks.stores.HookRegistry.add_hook`, ``update_hook``)."""
    return attrs.evolve(
        hook,
        secret=sibling.secret,
        previous_secret=sibling.previous_secret,
        previous_secret_until=sibling.previous_secret_until,
        signing_key=sibling.signing_key,
    )


def target_host(url: str) -> str:
    """The host (and port, if any) deliveries to ``url`` are limited by: lower case."""
    parts = urllib.parse.urlsplit(url)
    return parts.netloc.rpartition("@")[2].lower()


# The SQL stores select the columns in the orders below; each passes its own way of reading a
# stored time back (SQLite: integer microseconds; PostgreSQL: timestamptz).


def _damaged(table: str, row: Sequence[Any], exc: Exception) -> DamagedRowError:
    key = row[0] if row and isinstance(row[0], str) else "?"
    # Never the row's values: a hook row holds secrets.
    return DamagedRowError(table, key, f"{type(exc).__name__}: {exc}"[:200])


def hook_from_row(row: Sequence[Any], to_dt: ToDatetime) -> Hook:
    """A Hook from a row: id, owner, event, target_url, description, state, created_at,
    updated_at, dead_reason, dead_at, secret, previous_secret, previous_secret_until,
    signing_key, confirm_secret, confirm_by, batching (:meth:`Batching.to_text
    <resthooks.Batching.to_text>`, or NULL).

    Raises:
        DamagedRowError: If the row cannot be read back (any value out of range).
    """
    try:
        return _hook_from_row(row, to_dt)
    except Exception as exc:
        raise _damaged("hooks", row, exc) from exc


def delivery_from_row(row: Sequence[Any], to_dt: ToDatetime) -> Delivery:
    """A Delivery from a row: id, hook_id, owner, event, state, attempts, next_attempt_at,
    created_at, updated_at, last_error, ordering_key.

    Raises:
        DamagedRowError: If the row cannot be read back.
    """
    try:
        return _delivery_from_row(row, to_dt)
    except Exception as exc:
        raise _damaged("deliveries", row, exc) from exc


def attempt_from_row(row: Sequence[Any], to_dt: ToDatetime) -> Attempt:
    """An Attempt from a row: delivery_id, number, started_at, duration, status, error_kind,
    error, response_excerpt.

    Raises:
        DamagedRowError: If the row cannot be read back.
    """
    try:
        return _attempt_from_row(row, to_dt)
    except Exception as exc:
        raise _damaged("attempts", row, exc) from exc


def _hook_from_row(row: Sequence[Any], to_dt: ToDatetime) -> Hook:
    (id_, owner, event, url, desc, state, created, updated, reason, dead_at, s1, s2, s2_until,
     signing_key, confirm_secret, confirm_by, batching) = row  # fmt: skip
    return Hook(
        id=id_,
        owner=owner,
        event=event,
        target_url=url,
        description=desc,
        state=HookState(state),
        created_at=to_dt(created),
        updated_at=to_dt(updated),
        dead_reason=reason,
        dead_at=None if dead_at is None else to_dt(dead_at),
        secret=s1,
        previous_secret=s2,
        previous_secret_until=None if s2_until is None else to_dt(s2_until),
        signing_key=signing_key,
        confirm_secret=confirm_secret,
        confirm_by=None if confirm_by is None else to_dt(confirm_by),
        batching=None if batching is None else Batching.from_text(batching),
    )


def _delivery_from_row(row: Sequence[Any], to_dt: ToDatetime) -> Delivery:
    (id_, hook_id, owner, event, state, attempts, next_at, created, updated, last_error, key) = row
    next_attempt_at = None if next_at is None else to_dt(next_at)
    return Delivery(
        id=id_,
        hook_id=hook_id,
        owner=owner,
        event=event,
        state=DeliveryState(state),
        attempts=attempts,
        # A delivery waiting for its ordering key's turn has no time of its own yet.
        next_attempt_at=None if next_attempt_at == WAITING_FOR_TURN else next_attempt_at,
        created_at=to_dt(created),
        updated_at=to_dt(updated),
        last_error=last_error,
        ordering_key=key,
    )


def _attempt_from_row(row: Sequence[Any], to_dt: ToDatetime) -> Attempt:
    (delivery_id, number, started, duration, status, error_kind, error, excerpt) = row
    return Attempt(
        delivery_id=delivery_id,
        number=number,
        started_at=to_dt(started),
        duration=duration,
        status=status,
        error_kind=error_kind,
        error=error,
        response_excerpt=excerpt,
    )
