"""Which claimed deliveries a worker may start now, host by host: slow hosts get less.

Both workers (the thread worker of :mod:`resthooks.worker` and the asyncio worker of
:mod:`resthooks.aio`) hand every claim to a :class:`HostGate` and start only what it lets
through, so the rule below lives here and nowhere else.

The rule, per target host, in this worker (the store enforces the Dispatcher's
``limits.in_flight_per_host`` too, across workers, when claiming):

- **Slow start.** A host starts with **one** attempt in flight, and earns its limit by
  answering: each attempt that gets an HTTP **answer** (any status) raises the host's limit
  by one, so it doubles with every round of answers (1 → 2 → 4 ...) up to
  ``limits.in_flight_per_host`` (1 → 2 → 4 with the default 4). A host at its full limit is
  remembered as such, so it stays there.
- **Slow hosts get less.** Each attempt that **times out** halves the host's limit, down to 1
  (4 → 2 → 1 with the default); the host then climbs back by slow start as it answers
  again, instead of getting its full limit at once: a burst to a host that was a black hole
  cannot take all its slots back on the first answer.
- Other failures (a refused connection, a blocked address) cost no time and change nothing.

"New" means new to this worker's run: a worker that starts sends one attempt to each host
first. With no per-host limit (``Limits(in_flight_per_host=None)``) there is nothing to ramp up
to: a host is unlimited until a timeout cuts it to half of what it had in flight, and its
first answer lifts the cut.

A claim of a host that is at its limit waits in the gate, not in a thread or a slot: it is
started when an attempt to its host ends, or released before its lease could run out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

from .model import Claim, Outcome
from .stores._common import target_host

__all__ = ["HostGate"]

# Hosts below their full limit (starting, ramping up or cut) and hosts known at their full
# limit are remembered, each up to this many; past it the ones changed longest ago are
# forgotten first, and start again at one attempt (the cautious side).
MAX_CUT_HOSTS = 10_000


@lru_cache(maxsize=4096)
def _host(url: str) -> str:
    return target_host(url)


class HostGate:
    """Claims waiting to start, and attempts in flight, counted per target host.

    Waiting claims are queued per host, in the order claimed (the store's: oldest due
    first); hosts with room take turns. Every operation costs in proportion to the claims it
    moves, not to the claims waiting: a thousand claims parked behind cut hosts cost nothing
    until their hosts have room again.

    Args:
        limit: The full per-host limit (``Dispatcher.limits.in_flight_per_host``); ``None``
            for no limit (a timeout then cuts the host to half of what it had in flight).
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.in_flight: dict[str, int] = {}
        # host -> its limit while below the full one (ramping up, or cut); insertion order:
        # the one changed longest ago first. A host in neither dict is new: it starts at 1.
        self.cut: dict[str, int] = {}
        self.earned: dict[str, None] = {}  # hosts that earned the full limit (same order)
        self._queues: dict[str, deque[Claim]] = {}  # waiting claims, per host
        self._turns: deque[str] = deque()  # hosts with waiting claims and room, in turn
        self._full: set[str] = set()  # hosts with waiting claims and no room
        self._waiting = 0
        self._blocked = 0  # claims waiting in the queues of hosts without room

    def limit_of(self, host: str) -> int | None:
        """The host's current limit in this worker (``None``: no limit)."""
        limit = self.cut.get(host)
        if limit is not None:
            return limit
        if self.limit is None or host in self.earned:
            return self.limit
        return 1  # new: slow start

    def _has_room(self, host: str) -> bool:
        limit = self.limit_of(host)
        return limit is None or self.in_flight.get(host, 0) < limit

    def add(self, claims: Iterable[Claim]) -> None:
        """Queue claims to start, in the order given (the store's: oldest due first)."""
        queues = self._queues
        for claim in claims:
            host = _host(claim.hook.target_url)
            queue = queues.get(host)
            if queue is None:
                queue = queues[host] = deque()
                if self._has_room(host):
                    self._turns.append(host)
                else:
                    self._full.add(host)
            queue.append(claim)
            self._waiting += 1
            if host in self._full:
                self._blocked += 1

    def __len__(self) -> int:
        return self._waiting

    @property
    def startable(self) -> int:
        """Waiting claims whose host has room now."""
        return self._waiting - self._blocked

    def take(self, room: int) -> list[Claim]:
        """Up to ``room`` waiting claims whose host has room, hosts taking turns, each host's
        oldest first; each counts as in flight until :meth:`finished`."""
        started: list[Claim] = []
        turns, queues = self._turns, self._queues
        while turns and len(started) < room:
            host = turns.popleft()
            queue = queues[host]
            if not self._has_room(host):  # cut since it took its turn
                self._full.add(host)
                self._blocked += len(queue)
                continue
            started.append(queue.popleft())
            self._waiting -= 1
            self.in_flight[host] = self.in_flight.get(host, 0) + 1
            if not queue:
                del queues[host]
            elif self._has_room(host):
                turns.append(host)
            else:
                self._full.add(host)
                self._blocked += len(queue)
        return started

    def finished(self, claim: Claim, outcome: Outcome | None) -> None:
        """An attempt started by :meth:`take` ended (``outcome`` ``None``: it was abandoned)."""
        host = _host(claim.hook.target_url)
        count = self.in_flight.get(host, 1) - 1
        if count > 0:
            self.in_flight[host] = count
        else:
            self.in_flight.pop(host, None)
        attempt = outcome.attempt if outcome is not None else None
        if attempt is not None:
            if attempt.status is not None:
                self._answered(host)
            elif attempt.error_kind == "timeout":
                current = self.limit_of(host)
                if current is None:
                    current = count + 1  # no configured limit: what it had in flight
                self._set_cut(host, max(1, current // 2))
        if host in self._full and self._has_room(host):
            self._full.discard(host)
            self._blocked -= len(self._queues[host])
            self._turns.append(host)

    def _answered(self, host: str) -> None:
        """An answer: one more in flight for the host, up to the full limit (slow start)."""
        limit = self.limit
        current = self.cut.get(host)
        if limit is None:
            if current is not None:
                del self.cut[host]  # no limit to climb to: the cut is lifted
            return
        if current is None:
            if host in self.earned:
                return
            current = 1  # a new host's first answer
        if current + 1 >= limit:
            self.cut.pop(host, None)
            self.earned[host] = None
            if len(self.earned) > MAX_CUT_HOSTS:
                del self.earned[next(iter(self.earned))]
        else:
            self._set_cut(host, current + 1)

    def _set_cut(self, host: str, limit: int) -> None:
        self.earned.pop(host, None)
        self.cut.pop(host, None)
        self.cut[host] = limit
        if len(self.cut) > MAX_CUT_HOSTS:
            del self.cut[next(iter(self.cut))]

    def expiring(self, before: datetime) -> list[Claim]:
        """Take out the waiting claims whose lease ends before ``before`` (too late to start
        an attempt that must end within the lease): the caller releases them.

        A host's queue is in claim order, so its leases only grow: each queue is looked at
        from its front, and only as far as it holds claims to take out.
        """
        gone: list[Claim] = []
        for host in [h for h, q in self._queues.items() if q[0].lease_until < before]:
            queue = self._queues[host]
            while queue and queue[0].lease_until < before:
                gone.append(queue.popleft())
                self._waiting -= 1
                if host in self._full:
                    self._blocked -= 1
            if not queue:
                del self._queues[host]
                self._full.discard(host)
                if host in self._turns:
                    self._turns.remove(host)
        return gone

    def drain(self) -> list[Claim]:
        """Take out every waiting claim (the worker is stopping: the caller releases them)."""
        claims = [claim for queue in self._queues.values() for claim in queue]
        self._queues.clear()
        self._turns.clear()
        self._full.clear()
        self._waiting = self._blocked = 0
        return claims
