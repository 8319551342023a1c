"""A store of your own, from scratch, with the delivery rules taken from resthooks.outcomes.

``DictStore`` keeps its rows in plain dicts under one lock: it stands for a store on your own
database, where the lock would be a transaction and ``_rows`` a table. Its ``record`` reads
the slice of each delivery that :func:`resthooks.outcomes.transition` needs, asks it what to
write, and writes exactly that; it decides nothing itself.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import attrs
import pytest

from resthooks import (
    Attempt,
    Claim,
    Delivery,
    DeliveryState,
    Hook,
    HookLimitReached,
    HookState,
    Outcome,
    RecordResult,
    Stats,
)
from resthooks.errors import ConfigurationError
from resthooks.outcomes import HookEffect, StoredDelivery, transition
from resthooks.testing import STORE_CHECKS, check_store

OPEN = (DeliveryState.PENDING, DeliveryState.IN_FLIGHT)


@attrs.define
class Row:
    """One delivery as the store keeps it: the public value, plus the claim."""

    delivery: Delivery
    body: bytes
    host: str
    token: str | None = None
    lease_until: datetime | None = None
    trace_context: str | None = None
    seq: int = 0  # emit order (a delivery waiting for its ordering key's turn has no
    # next_attempt_at: it is not due)


class DictStore:
    """A complete :class:`resthooks.stores.Store` in about 150 lines."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._hooks: dict[str, Hook] = {}
        self._rows: dict[str, Row] = {}
        self._log: dict[str, list[Attempt]] = {}
        self._emitted = itertools.count()

    # -- hooks --------------------------------------------------------------------------------

    def add_hook(self, hook: Hook, *, max_per_owner: int | None) -> tuple[Hook, bool]:
        with self._lock:
            key = (hook.owner, hook.event, hook.target_url)
            for old in self._hooks.values():
                if (old.owner, old.event, old.target_url) == key:
                    if old.state is HookState.DEAD:
                        return self._set_state(
                            old.id, HookState.ACTIVE, None, hook.updated_at
                        ), False
                    return old, False
            mine = sum(h.owner == hook.owner for h in self._hooks.values())
            if max_per_owner is not None and mine >= max_per_owner:
                raise HookLimitReached(max_per_owner)
            # One secret per endpoint: a hook to a URL its owner has hooks to takes theirs.
            endpoint = sorted(
                (
                    h
                    for h in self._hooks.values()
                    if (h.owner, h.target_url) == (hook.owner, hook.target_url)
                ),
                key=lambda h: (h.created_at, h.id),
            )
            if endpoint:
                oldest = endpoint[0]
                hook = attrs.evolve(
                    hook,
                    secret=oldest.secret,
                    previous_secret=oldest.previous_secret,
                    previous_secret_until=oldest.previous_secret_until,
                    signing_key=oldest.signing_key,
                )
            self._hooks[hook.id] = hook
            return hook, True

    def get_hook(self, hook_id: str) -> Hook | None:
        return self._hooks.get(hook_id)

    def list_hooks(
        self, *, owner: str | None = None, event: str | None = None, state: HookState | None = None
    ) -> list[Hook]:
        with self._lock:
            found = [
                h
                for h in self._hooks.values()
                if owner in (None, h.owner)
                and event in (None, h.event)
                and state in (None, h.state)
            ]
        return sorted(found, key=lambda h: (h.created_at, h.id))

    def active_hooks(self, *, owner: str, event: str) -> list[Hook]:
        return self.list_hooks(owner=owner, event=event, state=HookState.ACTIVE)

    def remove_hook(self, hook_id: str, *, now: datetime) -> list[str]:
        with self._lock:
            return self._cancel_open(hook_id, now) if self._hooks.pop(hook_id, None) else []

    def mark_dead(self, hook_id: str, *, reason: str, now: datetime) -> list[str]:
        with self._lock:
            hook = self._hooks.get(hook_id)
            if hook is None:
                return []
            if hook.state is HookState.ACTIVE:
                self._set_state(hook_id, HookState.DEAD, reason, now)
            return self._cancel_open(hook_id, now)

    def revive_hook(self, hook_id: str, *, now: datetime) -> Hook | None:
        with self._lock:
            hook = self._hooks.get(hook_id)
            if hook is None or hook.state is not HookState.DEAD:
                return hook
            return self._set_state(hook_id, HookState.ACTIVE, None, now)

    def confirm_hook(self, hook_id: str, *, now: datetime) -> Hook | None:
        with self._lock:
            hook = self._hooks.get(hook_id)
            if hook is None or hook.state is not HookState.UNCONFIRMED:
                return None
            confirmed = attrs.evolve(
                hook, state=HookState.ACTIVE, confirm_secret=None, confirm_by=None, updated_at=now
            )
            self._hooks[hook_id] = confirmed
            return confirmed

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
            if hook_id not in self._hooks:
                return None
            hook = attrs.evolve(
                self._hooks[hook_id],
                secret=secret,
                previous_secret=previous_secret,
                previous_secret_until=previous_secret_until,
                updated_at=now,
            )
            self._hooks[hook_id] = hook
            return hook

    def _set_state(self, hook_id: str, state: HookState, reason: str | None, now: datetime) -> Hook:
        dead_at = now if state is HookState.DEAD else None
        hook = attrs.evolve(
            self._hooks[hook_id], state=state, dead_reason=reason, dead_at=dead_at, updated_at=now
        )
        self._hooks[hook_id] = hook
        return hook

    def _cancel_open(self, hook_id: str, now: datetime) -> list[str]:
        # A cancelled delivery keeps its claim's token: that claim's attempt comes back late.
        cancelled = []
        for row in self._rows.values():
            d = row.delivery
            if d.hook_id == hook_id and d.state in OPEN:
                row.delivery = attrs.evolve(
                    d, state=DeliveryState.CANCELLED, next_attempt_at=None, updated_at=now
                )
                row.lease_until = None
                cancelled.append(d.id)
        return sorted(cancelled, key=lambda i: (self._rows[i].delivery.created_at, i))

    # -- the outbox ---------------------------------------------------------------------------

    def enqueue(
        self,
        *,
        owner: str,
        event: str,
        body: bytes,
        now: datetime,
        connection: object = None,
        trace_context: str | None = None,
        ordering_key: str | None = None,
    ) -> list[Delivery]:
        if connection is not None:
            raise ConfigurationError("DictStore cannot share a database connection")
        with self._lock:
            made = []
            for hook in self.active_hooks(owner=owner, event=event):
                d = Delivery(
                    id="msg_" + secrets.token_hex(16),
                    hook_id=hook.id,
                    owner=owner,
                    event=event,
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                    ordering_key=ordering_key,
                )
                if ordering_key is not None and self._key_rows(d):
                    # Its key has an open delivery: it waits for its turn.
                    d = attrs.evolve(d, next_attempt_at=None)
                host = urllib.parse.urlsplit(hook.target_url).netloc.lower()
                self._rows[d.id] = Row(
                    d, body, host, trace_context=trace_context, seq=next(self._emitted)
                )
                made.append(d)
            return made

    def _key_rows(self, d: Delivery) -> list[Row]:
        """The other open deliveries of d's hook and ordering key, in emit order."""
        return sorted(
            (
                r
                for r in self._rows.values()
                if r.delivery.id != d.id
                and r.delivery.hook_id == d.hook_id
                and r.delivery.ordering_key == d.ordering_key
                and r.delivery.state in OPEN
            ),
            key=lambda r: r.seq,
        )

    def _due_at(self, row: Row) -> datetime | None:
        if row.delivery.state is DeliveryState.PENDING:
            return row.delivery.next_attempt_at
        return row.lease_until if row.delivery.state is DeliveryState.IN_FLIGHT else None

    def claim_due(
        self,
        *,
        now: datetime,
        limit: int,
        lease_until: datetime,
        max_in_flight_per_host: int | None = None,
    ) -> list[Claim]:
        with self._lock:
            busy = Counter(
                r.host
                for r in self._rows.values()
                if r.delivery.state is DeliveryState.IN_FLIGHT
                and r.lease_until
                and r.lease_until > now
            )
            due = [
                (t, r.delivery.created_at, i)
                for i, r in self._rows.items()
                if (t := self._due_at(r)) and t <= now
            ]
            claims: list[Claim] = []
            for _, _, delivery_id in sorted(due):
                row = self._rows[delivery_id]
                if len(claims) == limit:
                    break
                if max_in_flight_per_host is not None and busy[row.host] >= max_in_flight_per_host:
                    continue
                busy[row.host] += 1
                row.token, row.lease_until = secrets.token_hex(12), lease_until
                row.delivery = attrs.evolve(
                    row.delivery, state=DeliveryState.IN_FLIGHT, updated_at=now
                )
                hook = self._hooks[row.delivery.hook_id]
                claims.append(
                    Claim(
                        delivery=row.delivery,
                        hook=hook,
                        body=row.body,
                        token=row.token,
                        lease_until=lease_until,
                        trace_context=row.trace_context,
                    )
                )
            return claims

    def record(self, outcomes: Sequence[Outcome], *, now: datetime) -> list[RecordResult]:
        with self._lock:  # one transaction for the batch
            return [self._record_one(outcome, now) for outcome in outcomes]

    def _record_one(self, outcome: Outcome, now: datetime) -> RecordResult:
        row = self._rows.get(outcome.delivery_id)
        if row is None:
            return transition(None, outcome, now=now).result(outcome.delivery_id)
        d = row.delivery
        hook = self._hooks.get(d.hook_id)
        # 1. Read the slice the rules need (under the row's lock).
        stored = StoredDelivery(
            state=d.state,
            token=row.token,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            last_error=d.last_error,
            hook_state=hook.state if hook else None,
        )
        # 2. Ask what to write.
        t = transition(stored, outcome, now=now)
        if t.delivery is None:  # stale: write nothing
            return t.result(d.id, hook_id=d.hook_id)
        # 3. Write exactly that: the delivery, the attempt, the hook's fate.
        new = t.delivery
        row.token = row.lease_until = None
        row.delivery = attrs.evolve(
            d,
            state=new.state,
            attempts=new.attempts,
            next_attempt_at=new.next_attempt_at,
            last_error=new.last_error,
            updated_at=now,
        )
        if t.attempt is not None:
            self._log.setdefault(d.id, []).append(t.attempt)
        if t.ends_turn and d.ordering_key is not None:
            # The key's turn goes to its oldest waiting delivery, due now.
            following = self._key_rows(d)
            if following:
                following[0].delivery = attrs.evolve(following[0].delivery, next_attempt_at=now)
        cancelled: list[str] = []
        if t.hook_effect is HookEffect.DEAD:
            self._set_state(d.hook_id, HookState.DEAD, t.dead_reason, now)
            cancelled = self._cancel_open(d.hook_id, now)
        elif t.hook_effect is HookEffect.REMOVED:
            cancelled = self.remove_hook(d.hook_id, now=now)
        return t.result(d.id, hook_id=d.hook_id, cancelled=cancelled)

    def get_delivery(self, delivery_id: str) -> Delivery | None:
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
                if owner in (None, r.delivery.owner)
                and hook_id in (None, r.delivery.hook_id)
                and state in (None, r.delivery.state)
            ]
        found.sort(key=lambda d: (d.created_at, d.id), reverse=True)
        return found[: max(limit, 0)]

    def attempts(self, delivery_id: str) -> list[Attempt]:
        return list(self._log.get(delivery_id, ()))

    def requeue(self, delivery_id: str, *, now: datetime) -> Delivery | None:
        with self._lock:
            row = self._rows.get(delivery_id)
            if row is None:
                return None
            row.token = row.lease_until = None
            row.delivery = attrs.evolve(
                row.delivery,
                state=DeliveryState.PENDING,
                attempts=0,
                next_attempt_at=now,
                updated_at=now,
            )
            if row.delivery.ordering_key is not None:
                # The turn is the oldest's, but one in flight keeps it.
                holder = next(
                    (r for r in self._key_rows(row.delivery) if r.delivery.next_attempt_at),
                    None,
                )
                if holder is not None:
                    waits = (
                        row
                        if (
                            holder.delivery.state is DeliveryState.IN_FLIGHT or holder.seq < row.seq
                        )
                        else holder
                    )
                    waits.delivery = attrs.evolve(waits.delivery, next_attempt_at=None)
            return row.delivery

    def next_due_at(self) -> datetime | None:
        with self._lock:
            return min((t for r in self._rows.values() if (t := self._due_at(r))), default=None)

    def stats(self, *, owner: str | None = None) -> Stats:
        with self._lock:
            hooks = Counter(h.state.value for h in self._hooks.values() if owner in (None, h.owner))
            mine = [r.delivery for r in self._rows.values() if owner in (None, r.delivery.owner)]
        counts = Counter(d.state.value for d in mine)
        return Stats(
            hooks={s.value: hooks[s.value] for s in HookState},
            deliveries={s.value: counts[s.value] for s in DeliveryState},
            oldest_pending_at=min((d.created_at for d in mine if d.state in OPEN), default=None),
            # Open deliveries whose last attempt the network policy refused.
            blocked=sum(
                1 for d in mine if d.state in OPEN and (d.last_error or "").startswith("blocked")
            ),
        )

    def purge(self, *, before: datetime, limit: int | None = None) -> int:
        with self._lock:
            doomed = sorted(
                (
                    i
                    for i, r in self._rows.items()
                    if r.delivery.state.is_final and r.delivery.updated_at < before
                ),
                key=lambda i: self._rows[i].delivery.updated_at,
            )[:limit]
            for delivery_id in doomed:
                del self._rows[delivery_id]
                self._log.pop(delivery_id, None)
            return len(doomed)

    def close(self) -> None:
        """Nothing to release."""


@pytest.mark.parametrize("check", sorted(STORE_CHECKS))
def test_dict_store_conforms(check: str) -> None:
    """DictStore passes each check of the conformance suite (one test per check)."""
    check_store(DictStore, only=check)
