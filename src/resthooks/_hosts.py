"""Which claimed deliveries a worker may start now, host by host: slow hosts get less.

Both workers (the thread worker of :mod:`resthooks.worker` and the asyncio worker of
:mod:`resthooks.aio`) hand every claim to a :class:`HostGate` and start only what it lets
through, so the rule below lives here and nowhere else.

The rule: a host starts with the Dispatcher's ``max_in_flight_per_host`` (the store enforces
it too, across workers, when claiming). Each attempt to it that **times out** halves this
worker's limit for the host, down to 1 (4 → 2 → 1 with the default); the first attempt that
gets an HTTP **answer** (any status) gives the host its full limit back. Other failures (a
refused connection, a blocked address) cost no time and change nothing. A claim of a host
that is at its limit waits in the gate, not in a thread or a slot: it is started when an
attempt to its host ends, or released before its lease could run out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

from .model import Claim, Outcome
from .stores._common import target_host

__all__ = ["HostGate"]

# Hosts whose limit is cut stay remembered until they answer; past this many, the ones cut
# longest ago are forgotten first (they start again at the full limit).
MAX_CUT_HOSTS = 10_000


@lru_cache(maxsize=4096)
def _host(url: str) -> str:
    return target_host(url)


class HostGate:
    """Claims waiting to start, and attempts in flight, counted per target host.

    Args:
        limit: The full per-host limit (``Dispatcher.max_in_flight_per_host``); ``None``
            for no limit (a timeout then cuts the host to half of what it had in flight).
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.in_flight: dict[str, int] = {}
        self.cut: dict[str, int] = {}  # host -> its reduced limit (insertion order: oldest)
        self._waiting: deque[Claim] = deque()
        self._blocked = 0  # waiting claims whose host was at its limit at the last take()

    def limit_of(self, host: str) -> int | None:
        """The host's current limit in this worker (``None``: no limit)."""
        return self.cut.get(host, self.limit)

    def add(self, claims: Iterable[Claim]) -> None:
        """Queue claims to start, in the order given (the store's: oldest due first)."""
        self._waiting.extend(claims)

    def __len__(self) -> int:
        return len(self._waiting)

    @property
    def startable(self) -> int:
        """Waiting claims that were not held back by their host at the last :meth:`take`."""
        return len(self._waiting) - self._blocked

    def take(self, room: int) -> list[Claim]:
        """Up to ``room`` waiting claims whose host has room, oldest first; each counts as
        in flight until :meth:`finished`."""
        started: list[Claim] = []
        held: list[Claim] = []
        waiting = self._waiting
        while waiting and len(started) < room:
            claim = waiting.popleft()
            host = _host(claim.hook.target_url)
            limit = self.cut.get(host, self.limit)
            count = self.in_flight.get(host, 0)
            if limit is not None and count >= limit:
                held.append(claim)
                continue
            self.in_flight[host] = count + 1
            started.append(claim)
        if held:
            waiting.extendleft(reversed(held))
        self._blocked = len(held)
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
        if attempt is None:
            return
        if attempt.status is not None:
            self.cut.pop(host, None)  # it answers again: its full limit back
        elif attempt.error_kind == "timeout":
            current = self.cut.get(host, self.limit)
            if current is None:
                current = count + 1  # no configured limit: what it had in flight
            self.cut.pop(host, None)
            self.cut[host] = max(1, current // 2)
            if len(self.cut) > MAX_CUT_HOSTS:
                del self.cut[next(iter(self.cut))]
        self._blocked = 0  # its waiting claims may start now

    def expiring(self, before: datetime) -> list[Claim]:
        """Take out the waiting claims whose lease ends before ``before`` (too late to start
        an attempt that must end within the lease): the caller releases them."""
        if not self._waiting or all(c.lease_until >= before for c in self._waiting):
            return []
        keep: deque[Claim] = deque()
        gone: list[Claim] = []
        for claim in self._waiting:
            (gone if claim.lease_until < before else keep).append(claim)
        self._waiting = keep
        self._blocked = 0
        return gone

    def drain(self) -> list[Claim]:
        """Take out every waiting claim (the worker is stopping: the caller releases them)."""
        claims = list(self._waiting)
        self._waiting.clear()
        self._blocked = 0
        return claims
