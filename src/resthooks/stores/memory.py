"""The in-memory store: the reference implementation of the store protocols."""

from __future__ import annotations

import heapq
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import attrs

from ..errors import ConfigurationError, HookLimitReached
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
from ..outcomes import HookEffect, RecordResult, StoredDelivery, transition
from ._common import NOT_FINAL_STATES, new_delivery_id, new_token, target_host

__all__ = ["MemoryStore"]


_Entry = tuple[datetime, datetime, str]  # (due at, created at, delivery id)


@attrs.define
class _Row:
    delivery: Delivery
    body: bytes
    host: str
    token: str | None = None
    lease_until: datetime | None = None


class MemoryStore:
    """A thread-safe store that keeps everything in the process's memory.

    It is the reference implementation of :class:`resthooks.stores.Store`: fast, exact, and
    gone when the process ends. Use it in tests and for hosts that accept losing pending
    deliveries on a restart; use :class:`resthooks.stores.SQLiteStore` otherwise.

    Example:
        >>> from resthooks import Dispatcher
        >>> from resthooks.stores import MemoryStore
        >>> dispatcher = Dispatcher(MemoryStore())
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._hooks: dict[str, Hook] = {}
        self._rows: dict[str, _Row] = {}
        # Indexes, kept by _set, so that claiming costs no more with a long history or a
        # large backlog: the rows not final; those in flight; and per target host, a heap of
        # (next_attempt_at, created_at, id) of pending rows. Heap entries are checked when
        # taken: one whose row has since changed is dropped.
        self._open: dict[str, _Row] = {}
        self._in_flight: dict[str, _Row] = {}
        self._queues: dict[str, list[_Entry]] = {}
        self._attempts: dict[str, list[Attempt]] = {}

    # -- hooks -------------------------------------------------------------------------------

    def add_hook(self, hook: Hook, *, max_per_owner: int | None) -> tuple[Hook, bool]:
        with self._lock:
            for existing in self._hooks.values():
                if (existing.owner, existing.event, existing.target_url) == (
                    hook.owner,
                    hook.event,
                    hook.target_url,
                ):
                    if existing.state is HookState.DEAD:
                        return self._revive(existing, hook.updated_at), False
                    return existing, False
            if max_per_owner is not None:
                count = sum(1 for h in self._hooks.values() if h.owner == hook.owner)
                if count >= max_per_owner:
                    raise HookLimitReached(max_per_owner)
            self._hooks[hook.id] = hook
            return hook, True

    def get_hook(self, hook_id: str) -> Hook | None:
        with self._lock:
            return self._hooks.get(hook_id)

    def list_hooks(
        self,
        *,
        owner: str | None = None,
        event: str | None = None,
        state: HookState | None = None,
    ) -> list[Hook]:
        with self._lock:
            found = [
                h
                for h in self._hooks.values()
                if (owner is None or h.owner == owner)
                and (event is None or h.event == event)
                and (state is None or h.state is state)
            ]
        return sorted(found, key=lambda h: (h.created_at, h.id))

    def active_hooks(self, *, owner: str, event: str) -> list[Hook]:
        return self.list_hooks(owner=owner, event=event, state=HookState.ACTIVE)

    def remove_hook(self, hook_id: str, *, now: datetime) -> list[str]:
        with self._lock:
            if self._hooks.pop(hook_id, None) is None:
                return []
            return self._cancel_open(hook_id, now)

    def mark_dead(self, hook_id: str, *, reason: str, now: datetime) -> list[str]:
        with self._lock:
            return self._kill(hook_id, reason, now)

    def _kill(self, hook_id: str, reason: str, now: datetime) -> list[str]:
        with self._lock:
            hook = self._hooks.get(hook_id)
            if hook is None:
                return []
            if hook.state is not HookState.DEAD:
                self._hooks[hook_id] = attrs.evolve(
                    hook, state=HookState.DEAD, dead_reason=reason, dead_at=now, updated_at=now
                )
            return self._cancel_open(hook_id, now)

    def revive_hook(self, hook_id: str, *, now: datetime) -> Hook | None:
        with self._lock:
            hook = self._hooks.get(hook_id)
            if hook is None or hook.state is HookState.ACTIVE:
                return hook
            return self._revive(hook, now)

    def _revive(self, hook: Hook, now: datetime) -> Hook:
        revived = attrs.evolve(
            hook, state=HookState.ACTIVE, dead_reason=None, dead_at=None, updated_at=now
        )
        self._hooks[hook.id] = revived
        return revived

    def set_secret(
        self,
        hook_id: str,
        *,
        secret: str | None,
        previous_secret: str | None,
        previous_secret_until: datetime | None,
        now: datetime,
    ) -> Hook | None:
        with self._lock:
            hook = self._hooks.get(hook_id)
            if hook is None:
                return None
            hook = attrs.evolve(
                hook,
                secret=secret,
                previous_secret=previous_secret,
                previous_secret_until=previous_secret_until,
                updated_at=now,
            )
            self._hooks[hook_id] = hook
            return hook

    def _set(self, row: _Row, delivery: Delivery) -> None:
        row.delivery = delivery
        state = delivery.state
        if state.is_final:
            self._open.pop(delivery.id, None)
        else:
            self._open[delivery.id] = row
        if state is DeliveryState.IN_FLIGHT:
            self._in_flight[delivery.id] = row
        else:
            self._in_flight.pop(delivery.id, None)
        if state is DeliveryState.PENDING and delivery.next_attempt_at is not None:
            entry = (delivery.next_attempt_at, delivery.created_at, delivery.id)
            heapq.heappush(self._queues.setdefault(row.host, []), entry)

    def _take_due(self, host: str, now: datetime, room: int) -> list[_Entry]:
        """Pop up to ``room`` valid entries due at ``now`` from the host's queue."""
        queue = self._queues[host]
        taken: list[_Entry] = []
        while queue and len(taken) < room and queue[0][0] <= now:
            entry = heapq.heappop(queue)
            row = self._rows.get(entry[2])
            if (
                row is not None
                and row.delivery.state is DeliveryState.PENDING
                and row.delivery.next_attempt_at == entry[0]
                and entry not in taken
            ):
                taken.append(entry)
        if not queue:
            del self._queues[host]
        return taken

    def _cancel_open(self, hook_id: str, now: datetime) -> list[str]:
        cancelled = []
        for row in list(self._open.values()):
            d = row.delivery
            if d.hook_id == hook_id and d.state in NOT_FINAL_STATES:
                self._set(
                    row,
                    attrs.evolve(
                        d, state=DeliveryState.CANCELLED, next_attempt_at=None, updated_at=now
                    ),
                )
                # The token is kept (a cancelled delivery is never claimed again): the outcome
                # of the attempt in flight is still logged when it comes (see record).
                row.lease_until = None
                cancelled.append(d.id)
        return cancelled

    # -- deliveries --------------------------------------------------------------------------

    def enqueue(
        self,
        *,
        owner: str,
        event: str,
        body: bytes,
        now: datetime,
        connection: object | None = None,
    ) -> list[Delivery]:
        if connection is not None:
            raise ConfigurationError(
                "MemoryStore has no database connection to share; use SQLiteStore or "
                "PostgresStore for a transactional outbox"
            )
        with self._lock:
            created = []
            for hook in self.active_hooks(owner=owner, event=event):
                delivery = Delivery(
                    id=new_delivery_id(),
                    hook_id=hook.id,
                    owner=owner,
                    event=event,
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
                row = _Row(delivery, body, target_host(hook.target_url))
                self._rows[delivery.id] = row
                self._set(row, delivery)
                created.append(delivery)
            return created

    def _due_at(self, row: _Row) -> datetime | None:
        d = row.delivery
        if d.state is DeliveryState.PENDING:
            return d.next_attempt_at
        if d.state is DeliveryState.IN_FLIGHT:
            return row.lease_until
        return None

    def claim_due(
        self,
        *,
        now: datetime,
        limit: int,
        lease_until: datetime,
        max_in_flight_per_host: int | None = None,
    ) -> list[Claim]:
        with self._lock:
            # Expired claims are due again; the others count against their host's cap.
            expired: dict[str, list[_Entry]] = {}
            in_flight: Counter[str] = Counter()
            for r in self._in_flight.values():
                d = r.delivery
                if r.lease_until is not None and r.lease_until <= now:
                    expired.setdefault(r.host, []).append((r.lease_until, d.created_at, d.id))
                else:
                    in_flight[r.host] += 1
            # Per host, the oldest due deliveries that fit under its cap; then the oldest of
            # those, up to the limit. Pending entries taken but not claimed go back.
            due: list[_Entry] = []
            popped: list[tuple[str, _Entry]] = []
            for host in set(self._queues) | set(expired):
                room = limit
                if max_in_flight_per_host is not None:
                    room = min(room, max_in_flight_per_host - in_flight[host])
                if room <= 0:
                    continue
                pending = self._take_due(host, now, room) if host in self._queues else []
                popped.extend((host, entry) for entry in pending)
                due.extend(heapq.nsmallest(room, pending + expired.get(host, [])))
            chosen = heapq.nsmallest(limit, due)
            chosen_ids = {entry[2] for entry in chosen}
            for host, entry in popped:
                if entry[2] not in chosen_ids:
                    heapq.heappush(self._queues.setdefault(host, []), entry)
            claims: list[Claim] = []
            for entry in chosen:
                row = self._rows[entry[2]]
                hook = self._hooks.get(row.delivery.hook_id)
                if hook is None:  # pragma: no cover - removal cancels deliveries first
                    continue
                row.token = new_token()
                row.lease_until = lease_until
                self._set(
                    row, attrs.evolve(row.delivery, state=DeliveryState.IN_FLIGHT, updated_at=now)
                )
                claims.append(
                    Claim(
                        delivery=row.delivery,
                        hook=hook,
                        body=row.body,
                        token=row.token,
                        lease_until=lease_until,
                    )
                )
            return claims

    def record(self, outcomes: Sequence[Outcome], *, now: datetime) -> list[RecordResult]:
        with self._lock:
            return [self._record_one(o, now) for o in outcomes]

    def _record_one(self, outcome: Outcome, now: datetime) -> RecordResult:
        row = self._rows.get(outcome.delivery_id)
        if row is None:
            return transition(None, outcome, now=now).result(outcome.delivery_id)
        d = row.delivery
        hook = self._hooks.get(d.hook_id)
        stored = StoredDelivery(
            state=d.state,
            token=row.token,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            last_error=d.last_error,
            hook_state=hook.state if hook is not None else None,
        )
        t = transition(stored, outcome, now=now)
        written = t.delivery
        if written is None:
            return t.result(d.id, hook_id=d.hook_id)
        if t.attempt is not None:
            self._attempts.setdefault(d.id, []).append(t.attempt)
        row.token = row.lease_until = None
        self._set(
            row,
            attrs.evolve(
                d,
                state=written.state,
                next_attempt_at=written.next_attempt_at,
                attempts=written.attempts,
                last_error=written.last_error,
                updated_at=now,
            ),
        )
        cancelled: list[str] = []
        if t.hook_effect is HookEffect.DEAD:
            cancelled = self._kill(d.hook_id, t.dead_reason or "", now)
        elif t.hook_effect is HookEffect.REMOVED:
            cancelled = self.remove_hook(d.hook_id, now=now)
        return t.result(d.id, hook_id=d.hook_id, cancelled=cancelled)

    def get_delivery(self, delivery_id: str) -> Delivery | None:
        with self._lock:
            row = self._rows.get(delivery_id)
            return row.delivery if row else None

    def list_deliveries(
        self,
        *,
        owner: str | None = None,
        hook_id: str | None = None,
        state: DeliveryState | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        with self._lock:
            found = [
                r.delivery
                for r in self._rows.values()
                if (owner is None or r.delivery.owner == owner)
                and (hook_id is None or r.delivery.hook_id == hook_id)
                and (state is None or r.delivery.state is state)
            ]
        found.sort(key=lambda d: (d.created_at, d.id), reverse=True)
        return found[: max(limit, 0)]

    def attempts(self, delivery_id: str) -> list[Attempt]:
        with self._lock:
            return list(self._attempts.get(delivery_id, ()))

    def requeue(self, delivery_id: str, *, now: datetime) -> Delivery | None:
        with self._lock:
            row = self._rows.get(delivery_id)
            if row is None:
                return None
            row.token = row.lease_until = None
            self._set(
                row,
                attrs.evolve(
                    row.delivery,
                    state=DeliveryState.PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    updated_at=now,
                ),
            )
            return row.delivery

    def next_due_at(self) -> datetime | None:
        with self._lock:
            times = [t for r in self._open.values() if (t := self._due_at(r)) is not None]
        return min(times, default=None)

    def stats(self, *, owner: str | None = None) -> Stats:
        with self._lock:
            hooks = Counter(
                h.state.value for h in self._hooks.values() if owner is None or h.owner == owner
            )
            deliveries = [
                r.delivery
                for r in self._rows.values()
                if owner is None or r.delivery.owner == owner
            ]
        counts = Counter(d.state.value for d in deliveries)
        oldest = min(
            (d.created_at for d in deliveries if d.state in NOT_FINAL_STATES), default=None
        )
        return Stats(
            hooks={s.value: hooks[s.value] for s in HookState},
            deliveries={s.value: counts[s.value] for s in DeliveryState},
            oldest_pending_at=oldest,
        )

    def purge(self, *, before: datetime) -> int:
        with self._lock:
            doomed = [
                i
                for i, r in self._rows.items()
                if r.delivery.state.is_final and r.delivery.updated_at < before
            ]
            for i in doomed:
                del self._rows[i]
                self._attempts.pop(i, None)
            return len(doomed)

    def close(self) -> None:
        """Nothing to release; present so MemoryStore is a complete :class:`Store`."""

    def __repr__(self) -> str:
        return f"<MemoryStore hooks={len(self._hooks)} deliveries={len(self._rows)}>"
