"""The in-memory store: the reference implementation of the store protocols."""

from __future__ import annotations

import bisect
import heapq
import itertools
import secrets
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from ..batching import batch_lane, plan
from ..errors import ConfigurationError, HookLimitReached, SubscriptionExists
from ..model import (
    Attempt,
    Claim,
    Delivery,
    DeliveryState,
    Hook,
    HookState,
    OutboxStats,
    Outcome,
    Stats,
)
from ..outcomes import HookEffect, RecordResult, StoredDelivery, transition
from ._common import NOT_FINAL_STATES, endpoint_secrets, new_token, target_host

__all__ = ["MemoryStore"]


_Entry = tuple[datetime, datetime, str]  # (due at, created at, delivery id)


@attrs.define
class _Row:
    delivery: Delivery
    body: bytes
    host: str
    token: str | None = None
    lease_until: datetime | None = None
    trace_context: str | None = None
    # Whether the row counts in its host's in-flight count (in flight under a lease not yet
    # found expired).
    counted: bool = False
    # Ordering: (hook id, ordering key) or None; the emit order; whether the row is one of
    # its key's open rows, and whether it waits behind the row that has the key's turn.
    key: tuple[str, str] | None = None
    seq: int = 0
    member: bool = False
    waiting: bool = False
    # Batching: the entities of a batch, and whether it is its hook's open batch (pending,
    # never claimed, with room).
    entities: int = 0
    batch_open: bool = False


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
        # Indexes of the hooks, kept by _index_hook/_unindex_hook: a fan-out reads its hooks
        # (oldest first) and their hosts without scanning or sorting every hook, and a
        # subscribe finds its duplicate and counts the owner's hooks at once.
        self._hook_hosts: dict[str, str] = {}
        self._subscriptions: dict[tuple[str, str], list[tuple[datetime, str]]] = {}
        self._by_target: dict[tuple[str, str, str], str] = {}
        self._owner_hooks: Counter[str] = Counter()
        self._rows: dict[str, _Row] = {}
        # Indexes of the deliveries, kept by _set, so that claiming costs no more with a long
        # history or a large backlog, and its cost is that of what it claims:
        # - the rows not final, and the same by hook (what a hook's removal cancels);
        # - per target host, a heap of (due at, created at, id) of its due-able rows (pending
        #   ones, and in-flight ones whose lease was found expired); entries are checked when
        #   taken, and one whose row has changed since is dropped;
        # - a heap of every host's first entry (_heads), so a claim takes the oldest due
        #   across hosts without looking at every host;
        # - hosts at the per-host limit of the last claim, set aside (_parked) until one of
        #   their deliveries leaves flight;
        # - per host, the deliveries in flight under a live lease, and a heap of leases.
        self._open: dict[str, _Row] = {}
        self._open_by_hook: dict[str, dict[str, _Row]] = {}
        self._queues: dict[str, list[_Entry]] = {}
        self._heads: list[tuple[_Entry, str]] = []
        self._parked: set[str] = set()
        self._parked_cap: int | None = None
        self._busy: Counter[str] = Counter()
        self._leases: list[tuple[datetime, str]] = []
        self._attempts: dict[str, list[Attempt]] = {}
        # Ordering keys (see resthooks.outcomes): per (hook id, key), its open rows in emit
        # order, and the one that has the turn; the others stay out of the host queues.
        self._emitted = itertools.count()
        self._members: dict[tuple[str, str], list[tuple[int, str]]] = {}
        self._turns: dict[tuple[str, str], str] = {}
        # Batching (see resthooks.batching): the open batch of each (hook id, lane).
        self._open_batches: dict[tuple[str, str | None], str] = {}

    #: It batches the emits of hooks subscribed with a :class:`~resthooks.Batching`.
    #:
    #: .. versionadded:: 0.2.0
    batches = True

    # -- hooks -------------------------------------------------------------------------------

    def _index_hook(self, hook: Hook) -> None:
        self._hooks[hook.id] = hook
        self._hook_hosts[hook.id] = target_host(hook.target_url)
        bisect.insort(
            self._subscriptions.setdefault((hook.owner, hook.event), []),
            (hook.created_at, hook.id),
        )
        self._by_target[(hook.owner, hook.event, hook.target_url)] = hook.id
        self._owner_hooks[hook.owner] += 1

    def _unindex_hook(self, hook: Hook) -> None:
        del self._hooks[hook.id]
        del self._hook_hosts[hook.id]
        key = (hook.owner, hook.event)
        subscribed = self._subscriptions[key]
        subscribed.remove((hook.created_at, hook.id))
        if not subscribed:
            del self._subscriptions[key]
        del self._by_target[(hook.owner, hook.event, hook.target_url)]
        self._owner_hooks[hook.owner] -= 1
        if not self._owner_hooks[hook.owner]:
            del self._owner_hooks[hook.owner]

    def add_hook(self, hook: Hook, *, max_per_owner: int | None) -> tuple[Hook, bool]:
        with self._lock:
            existing_id = self._by_target.get((hook.owner, hook.event, hook.target_url))
            if existing_id is not None:
                existing = self._hooks[existing_id]
                if existing.state is HookState.DEAD:
                    return self._revive(existing, hook.updated_at), False
                return existing, False
            if max_per_owner is not None and self._owner_hooks[hook.owner] >= max_per_owner:
                raise HookLimitReached(max_per_owner)
            if hook.id in self._hooks:  # pragma: no cover - ids are random
                self._unindex_hook(self._hooks[hook.id])
            hook = self._with_endpoint_secrets(hook)
            self._index_hook(hook)
            return hook, True

    def _with_endpoint_secrets(self, hook: Hook, *, other_than: str | None = None) -> Hook:
        """``hook`` with the secrets of its endpoint's oldest other hook, if it has one."""
        siblings = [
            h
            for h in self._hooks.values()
            if h.owner == hook.owner and h.target_url == hook.target_url and h.id != other_than
        ]
        if not siblings:
            return hook
        return endpoint_secrets(hook, min(siblings, key=lambda h: (h.created_at, h.id)))

    def update_hook(
        self, hook_id: str, *, event: str, target_url: str, description: str, now: datetime
    ) -> Hook | None:
        """The optional ``update_hook`` of :class:`resthooks.stores.HookRegistry`."""
        with self._lock:
            hook = self._hooks.get(hook_id)
            if hook is None:
                return None
            taken = self._by_target.get((hook.owner, event, target_url))
            if taken is not None and taken != hook_id:
                raise SubscriptionExists(taken)
            updated = attrs.evolve(
                hook, event=event, target_url=target_url, description=description, updated_at=now
            )
            if target_url != hook.target_url:
                updated = self._with_endpoint_secrets(updated, other_than=hook_id)
            self._unindex_hook(hook)
            self._index_hook(updated)
            return updated

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

    def _active_hooks(self, *, owner: str, event: str) -> list[Hook]:
        with self._lock:
            hooks = [self._hooks[i] for _, i in self._subscriptions.get((owner, event), ())]
        return [h for h in hooks if h.state is HookState.ACTIVE]

    def remove_hook(self, hook_id: str, *, now: datetime) -> list[str]:
        with self._lock:
            hook = self._hooks.get(hook_id)
            if hook is None:
                return []
            self._unindex_hook(hook)
            return self._cancel_open(hook_id, now)

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
            if hook is None or hook.state is not HookState.DEAD:
                return hook
            return self._revive(hook, now)

    def confirm_hook(self, hook_id: str, *, now: datetime) -> Hook | None:
        with self._lock:
            hook = self._hooks.get(hook_id)
            if hook is None or hook.state is not HookState.UNCONFIRMED:
                return None
            confirmed = attrs.evolve(
                hook,
                state=HookState.ACTIVE,
                confirm_secret=None,
                confirm_by=None,
                updated_at=now,
            )
            self._hooks[hook.id] = confirmed
            return confirmed

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

    def _join_turn(self, row: _Row, key: tuple[str, str]) -> None:
        bisect.insort(self._members.setdefault(key, []), (row.seq, row.delivery.id))
        row.member = True
        holder_id = self._turns.get(key)
        if holder_id is not None:
            holder = self._rows[holder_id]
            if holder.delivery.state is DeliveryState.IN_FLIGHT or holder.seq < row.seq:
                row.waiting = True
                return
            # A redelivery older than the pending holder: the turn is the oldest's.
            holder.waiting = True
            holder.delivery = attrs.evolve(holder.delivery, next_attempt_at=None)
        row.waiting = False
        self._turns[key] = row.delivery.id

    def _leave_turn(self, row: _Row, key: tuple[str, str]) -> None:
        members = self._members[key]
        members.remove((row.seq, row.delivery.id))
        row.member = row.waiting = False
        if self._turns.get(key) != row.delivery.id:
            return
        if not members:
            del self._members[key], self._turns[key]
            return
        # The turn goes to the oldest waiting row of the key, due now (when this one left).
        following = self._rows[members[0][1]]
        self._turns[key] = following.delivery.id
        following.waiting = False
        d = following.delivery = attrs.evolve(
            following.delivery, next_attempt_at=row.delivery.updated_at
        )
        if d.state is DeliveryState.PENDING:
            self._push(following.host, (row.delivery.updated_at, d.created_at, d.id))

    def _set(self, row: _Row, delivery: Delivery) -> None:
        row.delivery = delivery
        state = delivery.state
        delivery_id = delivery.id
        if row.batch_open and state is not DeliveryState.PENDING:
            self._close_batch(row)  # claimed (or cancelled): it takes no more entities
        key = row.key
        if key is not None:
            if state.is_final:
                if row.member:
                    self._leave_turn(row, key)
            elif not row.member:
                self._join_turn(row, key)
                if row.waiting:  # no time of its own until its turn comes
                    delivery = row.delivery = attrs.evolve(delivery, next_attempt_at=None)
        if state.is_final:
            if self._open.pop(delivery_id, None) is not None:
                by_hook = self._open_by_hook[delivery.hook_id]
                del by_hook[delivery_id]
                if not by_hook:
                    del self._open_by_hook[delivery.hook_id]
        elif delivery_id not in self._open:
            self._open[delivery_id] = row
            self._open_by_hook.setdefault(delivery.hook_id, {})[delivery_id] = row
        if state is DeliveryState.IN_FLIGHT:
            if not row.counted:
                row.counted = True
                self._busy[row.host] += 1
            if row.lease_until is not None:
                heapq.heappush(self._leases, (row.lease_until, delivery_id))
        elif row.counted:
            self._uncount(row)
        if (
            state is DeliveryState.PENDING
            and delivery.next_attempt_at is not None
            and not row.waiting
        ):
            self._push(row.host, (delivery.next_attempt_at, delivery.created_at, delivery_id))

    def _uncount(self, row: _Row) -> None:
        row.counted = False
        host = row.host
        self._busy[host] -= 1
        if not self._busy[host]:
            del self._busy[host]
        if host in self._parked:  # it has room again
            self._parked.discard(host)
            queue = self._queues.get(host)
            if queue:
                heapq.heappush(self._heads, (queue[0], host))

    def _push(self, host: str, entry: _Entry) -> None:
        queue = self._queues.get(host)
        if queue is None:
            queue = self._queues[host] = []
        heapq.heappush(queue, entry)
        if queue[0] is entry and host not in self._parked:
            heapq.heappush(self._heads, (entry, host))

    def _valid(self, entry: _Entry) -> _Row | None:
        """The row of a queue entry, if the entry still says when that row is due."""
        row = self._rows.get(entry[2])
        return row if row is not None and self._due_at(row) == entry[0] else None

    def _expire(self, now: datetime) -> None:
        """Make the in-flight rows whose lease ended by ``now`` due again (at their lease's
        end): they leave their host's in-flight count and join its queue."""
        leases = self._leases
        while leases and leases[0][0] <= now:
            lease_until, delivery_id = heapq.heappop(leases)
            row = self._rows.get(delivery_id)
            if (
                row is None
                or row.delivery.state is not DeliveryState.IN_FLIGHT
                or row.lease_until != lease_until
            ):
                continue
            if row.counted:
                self._uncount(row)
            self._push(row.host, (lease_until, row.delivery.created_at, delivery_id))

    def _cancel_open(self, hook_id: str, now: datetime) -> list[str]:
        cancelled = []
        for row in list(self._open_by_hook.get(hook_id, {}).values()):
            d = row.delivery
            if d.state in NOT_FINAL_STATES:
                # The token is kept (a cancelled delivery is never claimed again): the outcome
                # of the attempt in flight is still logged when it comes (see record).
                row.lease_until = None
                self._set(
                    row,
                    attrs.evolve(
                        d, state=DeliveryState.CANCELLED, next_attempt_at=None, updated_at=now
                    ),
                )
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
        trace_context: str | None = None,
        ordering_key: str | None = None,
    ) -> list[Delivery]:
        if connection is not None:
            raise ConfigurationError(
                "MemoryStore has no database connection to share; use SQLiteStore or "
                "PostgresStore for a transactional outbox"
            )
        with self._lock:
            return self._fan_out(
                owner, event, body, now, trace_context=trace_context, ordering_key=ordering_key
            )

    def enqueue_many(
        self,
        events: Sequence[tuple[str, str, bytes]],
        *,
        now: datetime,
        connection: object | None = None,
        ordering_keys: Sequence[str | None] | None = None,
    ) -> list[Delivery]:
        """Fan out several events, each ``(owner, event, body)``, at once (see
        :meth:`resthooks.stores.DeliveryStore.enqueue`), ``ordering_keys[i]`` being the
        ordering key of ``events[i]``.

        .. versionadded:: 0.2.0
        """
        if connection is not None:
            raise ConfigurationError(
                "MemoryStore has no database connection to share; use SQLiteStore or "
                "PostgresStore for a transactional outbox"
            )
        keys = ordering_keys if ordering_keys is not None else [None] * len(events)
        with self._lock:
            return [
                d
                for (o, e, b), k in zip(events, keys, strict=True)
                for d in self._fan_out(o, e, b, now, ordering_key=k)
            ]

    def _fan_out(
        self,
        owner: str,
        event: str,
        body: bytes,
        now: datetime,
        *,
        trace_context: str | None = None,
        ordering_key: str | None = None,
    ) -> list[Delivery]:
        hooks = self._active_hooks(owner=owner, event=event)
        # One call to the system's random source for the whole fan-out, not one per id.
        raw = secrets.token_hex(16 * len(hooks))
        hosts = self._hook_hosts
        created = []
        for n, hook in enumerate(hooks):
            if hook.batching is not None:
                created.append(
                    self._batch(
                        hook,
                        event,
                        body,
                        now,
                        new_id="msg_" + raw[32 * n : 32 * n + 32],
                        trace_context=trace_context,
                        ordering_key=ordering_key,
                    )
                )
                continue
            delivery = Delivery(
                id="msg_" + raw[32 * n : 32 * n + 32],
                hook_id=hook.id,
                owner=owner,
                event=event,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
                ordering_key=ordering_key,
            )
            row = _Row(
                delivery,
                body,
                hosts[hook.id],
                trace_context=trace_context,
                key=None if ordering_key is None else (hook.id, ordering_key),
                seq=next(self._emitted),
            )
            self._rows[delivery.id] = row
            self._set(row, delivery)
            created.append(row.delivery)
        return created

    def _batch(
        self,
        hook: Hook,
        event: str,
        body: bytes,
        now: datetime,
        *,
        new_id: str,
        trace_context: str | None,
        ordering_key: str | None,
    ) -> Delivery:
        """An emit to a batched hook: it joins the hook's open batch of its lane, or opens
        a new one (resthooks.batching.plan decides)."""
        batching = hook.batching
        assert batching is not None
        lane = batch_lane(ordering_key)
        open_id = self._open_batches.get((hook.id, lane))
        current = None if open_id is None else self._rows[open_id]
        step = plan(
            batching,
            event,
            body,
            open_body=None if current is None else current.body,
            open_entities=0 if current is None else current.entities,
        )
        if current is not None and step.joins:
            current.body, current.entities = step.body, step.entities
            if step.sealed:
                self._seal(current, now)
            return current.delivery
        if current is not None:
            self._seal(current, now)
        delivery = Delivery(
            id=new_id,
            hook_id=hook.id,
            owner=hook.owner,
            event=event,
            next_attempt_at=now if step.sealed else now + timedelta(seconds=batching.max_wait),
            created_at=now,
            updated_at=now,
            ordering_key=lane,
        )
        row = _Row(
            delivery,
            step.body,
            self._hook_hosts[hook.id],
            trace_context=trace_context,
            key=None if lane is None else (hook.id, lane),
            seq=next(self._emitted),
            entities=step.entities,
            batch_open=not step.sealed,
        )
        self._rows[delivery.id] = row
        self._set(row, delivery)
        if row.batch_open:
            self._open_batches[(hook.id, lane)] = delivery.id
        return row.delivery

    def _close_batch(self, row: _Row) -> None:
        row.batch_open = False
        slot = (row.delivery.hook_id, row.delivery.ordering_key)
        if self._open_batches.get(slot) == row.delivery.id:
            del self._open_batches[slot]

    def _seal(self, row: _Row, now: datetime) -> None:
        """Seal an open batch that is full: it takes no more entities and is due now
        (unless it waits for its turn)."""
        self._close_batch(row)
        d = row.delivery
        if not row.waiting and d.next_attempt_at is not None and d.next_attempt_at > now:
            self._set(row, attrs.evolve(d, next_attempt_at=now))

    def _due_at(self, row: _Row) -> datetime | None:
        d = row.delivery
        if d.state is DeliveryState.PENDING:
            return None if row.waiting else d.next_attempt_at
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
            self._expire(now)
            cap = max_in_flight_per_host
            if cap != self._parked_cap:
                # Hosts were set aside under another limit: look at them all again.
                self._parked_cap = cap
                for host in self._parked:
                    queue = self._queues.get(host)
                    if queue:
                        heapq.heappush(self._heads, (queue[0], host))
                self._parked.clear()
            heads, queues, busy = self._heads, self._queues, self._busy
            claims: list[Claim] = []
            # The oldest due entry of all hosts comes first; a host at the limit is set aside
            # (until one of its deliveries leaves flight) instead of being looked at again.
            while heads and len(claims) < limit:
                entry, host = heads[0]
                if entry[0] > now:
                    break
                heapq.heappop(heads)
                queue = queues.get(host)
                if not queue or queue[0] is not entry or host in self._parked:
                    continue  # an outdated head
                if cap is not None and busy[host] >= cap:
                    self._parked.add(host)
                    continue
                heapq.heappop(queue)
                row = self._valid(entry)
                if row is not None:
                    claim = self._lease(row, now, lease_until)
                    if claim is not None:
                        claims.append(claim)
                if queue:
                    heapq.heappush(heads, (queue[0], host))
                else:
                    del queues[host]
            return claims

    def _lease(self, row: _Row, now: datetime, lease_until: datetime) -> Claim | None:
        hook = self._hooks.get(row.delivery.hook_id)
        if hook is None:  # pragma: no cover - removal cancels deliveries first
            return None
        row.token = new_token()
        row.lease_until = lease_until
        self._set(row, attrs.evolve(row.delivery, state=DeliveryState.IN_FLIGHT, updated_at=now))
        return Claim(
            delivery=row.delivery,
            hook=hook,
            body=row.body,
            token=row.token,
            lease_until=lease_until,
            trace_context=row.trace_context,
        )

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
            heads, queues = self._heads, self._queues
            # Drop outdated heads and the entries of rows that changed, so the answer is a
            # time something is really due.
            while heads:
                entry, host = heads[0]
                queue = queues.get(host)
                if not queue or queue[0] is not entry or host in self._parked:
                    heapq.heappop(heads)
                elif self._valid(entry) is None:
                    heapq.heappop(heads)
                    heapq.heappop(queue)
                    if queue:
                        heapq.heappush(heads, (queue[0], host))
                    else:
                        del queues[host]
                else:
                    break
            leases = self._leases
            while leases:
                lease_until, delivery_id = leases[0]
                row = self._rows.get(delivery_id)
                if (
                    row is not None
                    and row.delivery.state is DeliveryState.IN_FLIGHT
                    and row.lease_until == lease_until
                ):
                    break
                heapq.heappop(leases)
            times = [heads[0][0][0]] if heads else []
            if leases:
                times.append(leases[0][0])
            for host in self._parked:
                queue = queues.get(host)
                while queue and self._valid(queue[0]) is None:
                    heapq.heappop(queue)
                if queue:
                    times.append(queue[0][0])
        return min(times, default=None)

    def outbox_stats(self, *, now: datetime) -> OutboxStats:
        """What is due at ``now``: see :class:`~resthooks.OutboxStats` (read-only)."""
        with self._lock:
            rows = list(self._open.values())
            due_times = [t for r in rows if (t := self._due_at(r)) is not None and t <= now]
        retrying = sum(
            1 for r in rows if r.delivery.state is DeliveryState.PENDING and r.delivery.attempts
        )
        return OutboxStats(
            due=len(due_times), retrying=retrying, oldest_due_at=min(due_times, default=None)
        )

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
        blocked = sum(
            1
            for d in deliveries
            if d.state in NOT_FINAL_STATES and (d.last_error or "").startswith("blocked")
        )
        return Stats(
            hooks={s.value: hooks[s.value] for s in HookState},
            deliveries={s.value: counts[s.value] for s in DeliveryState},
            oldest_pending_at=oldest,
            blocked=blocked,
        )

    def purge(self, *, before: datetime, limit: int | None = None) -> int:
        with self._lock:
            doomed = [
                i
                for i, r in self._rows.items()
                if r.delivery.state.is_final and r.delivery.updated_at < before
            ]
            if limit is not None:
                doomed = sorted(doomed, key=lambda i: self._rows[i].delivery.updated_at)[
                    : max(limit, 0)
                ]
            for i in doomed:
                del self._rows[i]
                self._attempts.pop(i, None)
            return len(doomed)

    def close(self) -> None:
        """Nothing to release; present so MemoryStore is a complete :class:`Store`."""

    def __repr__(self) -> str:
        return f"<MemoryStore hooks={len(self._hooks)} deliveries={len(self._rows)}>"
