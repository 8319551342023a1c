"""Slow hosts get less: timeouts cut a host's in-flight limit down to 1, in both workers."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from resthooks import Dispatcher, RetryPolicy, Timeouts
from resthooks._hosts import MAX_CUT_HOSTS, HostGate
from resthooks.aio import AsyncDispatcher
from resthooks.model import Attempt, Claim, Delivery, DeliveryState, Hook, Outcome, OutcomeKind
from resthooks.stores import MemoryStore
from resthooks.testing import LOOPBACK_POLICY, HookReceiver
from resthooks.transports import Request, Urllib3Transport

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _claim(n: int, host: str = "slow.example", lease: float = 60.0) -> Claim:
    hook = Hook(
        id=f"hook_{host}",
        owner="acme",
        event="party/created",
        target_url=f"https://{host}/h",
        created_at=T0,
        updated_at=T0,
    )
    delivery = Delivery(
        id=f"msg_{host}_{n}",
        hook_id=hook.id,
        owner="acme",
        event="party/created",
        state=DeliveryState.IN_FLIGHT,
        created_at=T0,
        updated_at=T0,
    )
    return Claim(
        delivery=delivery,
        hook=hook,
        body=b"{}",
        token=f"t{n}",
        lease_until=T0 + timedelta(seconds=lease),
    )


def _outcome(claim: Claim, *, status: int | None = None, error_kind: str | None = None) -> Outcome:
    attempt = Attempt(
        delivery_id=claim.delivery.id,
        number=1,
        started_at=T0,
        duration=1.0,
        status=status,
        error_kind=error_kind,
        error=error_kind,
    )
    return Outcome(
        delivery_id=claim.delivery.id, token=claim.token, kind=OutcomeKind.RETRY, attempt=attempt
    )


def _warm(gate: HostGate, host: str = "slow.example") -> None:
    """Answer attempts to ``host`` until it has earned its full limit (slow start)."""
    n = 10_000
    while gate.limit_of(host) != gate.limit:
        claim = _claim(n, host)
        n += 1
        gate.add([claim])
        [started] = gate.take(1)
        gate.finished(started, _outcome(started, status=204))


def _rounds(gate: HostGate, claims: int, *, status: int = 204) -> list[int]:
    """Attempts started per round, each round answered in full before the next."""
    gate.add([_claim(n) for n in range(claims)])
    rounds = []
    while started := gate.take(100):
        rounds.append(len(started))
        for claim in started:
            gate.finished(claim, _outcome(claim, status=status))
    return rounds


def test_a_new_host_starts_with_one_attempt_and_doubles_per_round_of_answers() -> None:
    """Slow start: 1, 2, 4, 8 in flight, then the full limit of 8 round after round; a 500
    is an answer too."""
    assert _rounds(HostGate(8), 31) == [1, 2, 4, 8, 8, 8]
    assert _rounds(HostGate(8), 15, status=500) == [1, 2, 4, 8]


def test_a_host_at_its_full_limit_stays_there() -> None:
    """Once earned, the full limit is kept: answers do not move it, the next claims start
    together."""
    gate = HostGate(4)
    _warm(gate)
    assert _rounds(gate, 8) == [4, 4]


def test_each_timeout_halves_the_hosts_limit_down_to_one() -> None:
    """4 -> 2 -> 1 -> 1: each timed-out attempt halves what the host may have in flight."""
    gate = HostGate(4)
    _warm(gate)
    claims = [_claim(n) for n in range(8)]
    gate.add(claims)
    started = gate.take(100)
    limits = []
    for claim in started:
        gate.finished(claim, _outcome(claim, error_kind="timeout"))
        limits.append(gate.limit_of("slow.example"))

    assert len(started) == 4
    assert limits == [2, 1, 1, 1]
    assert len(gate.take(100)) == 1  # the other three wait in the gate, holding no slot
    assert (len(gate), gate.startable) == (3, 0)


def test_a_timed_out_host_climbs_back_one_answer_at_a_time() -> None:
    """After its cut, a host that answers again earns its limit back by slow start (1 -> 2
    -> 4 per round), not all at once; a refused connection neither cuts nor raises it."""
    gate = HostGate(8)
    _warm(gate)
    for _ in range(3):  # 8 -> 4 -> 2 -> 1
        gate.add([_claim(0)])
        [claim] = gate.take(1)
        gate.finished(claim, _outcome(claim, error_kind="timeout"))
    gate.add([_claim(1)])
    [refused] = gate.take(1)
    gate.finished(refused, _outcome(refused, error_kind="connection"))

    assert gate.limit_of("slow.example") == 1
    assert _rounds(gate, 15) == [1, 2, 4, 8]


def test_other_hosts_are_not_held_back_by_a_slow_one() -> None:
    """Claims of a cut host wait; those of other hosts behind them start."""
    gate = HostGate(2)
    _warm(gate)
    _warm(gate, "fast.example")
    gate.add([_claim(n) for n in range(2)])
    for claim in gate.take(100):
        gate.finished(claim, _outcome(claim, error_kind="timeout"))
    gate.add([_claim(10), _claim(11), _claim(1, "fast.example"), _claim(2, "fast.example")])

    started = gate.take(100)

    assert [c.delivery.id for c in started] == [
        "msg_slow.example_10",
        "msg_fast.example_1",
        "msg_fast.example_2",
    ]


def test_no_configured_limit_cuts_to_half_of_what_was_in_flight() -> None:
    """Without a per-host limit, a timeout cuts the host to half of what it had in flight."""
    gate = HostGate(None)
    gate.add([_claim(n) for n in range(10)])
    started = gate.take(100)
    gate.finished(started[0], _outcome(started[0], error_kind="timeout"))

    assert gate.limit_of("slow.example") == 5


def test_waiting_claims_whose_lease_ends_too_soon_are_handed_back() -> None:
    """expiring() takes out the claims that could not finish within their lease."""
    gate = HostGate(4)
    gate.add([_claim(1, lease=10), _claim(2, lease=60)])

    gone = gate.expiring(T0 + timedelta(seconds=15))

    assert [c.delivery.id for c in gone] == ["msg_slow.example_1"]
    assert len(gate) == 1


def test_the_hosts_remembered_are_bounded() -> None:
    """Past MAX_CUT_HOSTS cut hosts, the one cut longest ago is forgotten, and starts again
    at one attempt (the cautious side); the hosts known at their full limit are bounded too."""
    gate = HostGate(4)
    for n in range(MAX_CUT_HOSTS + 1):
        claim = _claim(n, host=f"h{n}.example")
        gate.add([claim])
        gate.take(1)
        gate.finished(claim, _outcome(claim, error_kind="timeout"))
    cut = len(gate.cut)
    _warm(gate, "warm0.example")
    for n in range(1, MAX_CUT_HOSTS):
        gate.earned[f"warm{n}.example"] = None
    _warm(gate, "last.example")

    assert cut == MAX_CUT_HOSTS
    assert "h0.example" not in gate.cut
    assert gate.limit_of("h0.example") == 1
    assert gate.cut[f"h{MAX_CUT_HOSTS}.example"] == 1
    assert len(gate.earned) == MAX_CUT_HOSTS
    assert gate.limit_of("warm0.example") == 1
    assert gate.limit_of("last.example") == 4


# -- both workers, against real servers ------------------------------------------------------


def _overlap(attempts: list[Attempt]) -> int:
    """The most attempts that were in flight at one moment."""
    edges = sorted(
        [(a.started_at, 1) for a in attempts]
        + [(a.started_at + timedelta(seconds=a.duration), -1) for a in attempts],
        key=lambda edge: (edge[0], edge[1]),
    )
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


# The deadline of an attempt to the host that never answers: short, as every attempt to it
# times out whatever its length. The healthy host's attempts get a generous one (below), so
# that on a loaded machine an answer that takes its time is still an answer.
SILENT_HOST_TIMEOUTS = Timeouts(connect=0.6, total=0.6)
HEALTHY_HOST_TIMEOUTS = Timeouts(connect=20.0, total=30.0)


class _DeadlineOfHost:
    """The real transport, with the deadline of the requests to ``port`` changed to
    ``timeouts`` (the Dispatcher has one deadline for every host)."""

    def __init__(self, transport: Any, port: int, timeouts: Timeouts) -> None:
        self.transport, self.port, self.timeouts = transport, port, timeouts

    def _adjusted(self, request: Request) -> Request:
        if f":{self.port}/" in request.url:
            return attrs.evolve(request, timeouts=self.timeouts)
        return request

    def send(self, request: Request) -> Any:
        return self.transport.send(self._adjusted(request))

    def close(self) -> None:
        self.transport.close()


class _AsyncDeadlineOfHost(_DeadlineOfHost):
    async def send(self, request: Request) -> Any:  # type: ignore[override]
        return await self.transport.send(self._adjusted(request))

    async def aclose(self) -> None:
        await self.transport.aclose()


@pytest.mark.parametrize("kind", ["threads", "asyncio"])
def test_a_host_that_never_answers_gets_one_attempt_at_a_time_in_both_workers(
    kind: str, receiver: Any, async_transport: Any
) -> None:
    """Against a receiver that never answers in time: a new host gets one attempt (slow
    start), and each timeout keeps it at one, whatever the per-host limit (4); a healthy
    host's deliveries, queued behind, are all delivered meanwhile."""
    receiver.hold()  # held until the test ends: every attempt times out
    healthy = HookReceiver().start()  # the same kind of server, answering 204 at once
    options: dict[str, Any] = {
        "store": MemoryStore(),
        "network_policy": LOOPBACK_POLICY,
        "timeouts": SILENT_HOST_TIMEOUTS,
        "lease": 60.0,
        "retry": RetryPolicy(timeout_penalty=600.0),  # no retry comes back during the test
        "max_in_flight_per_host": 4,
        "max_hooks_per_owner": None,
    }
    if kind == "threads":
        options["transport"] = _DeadlineOfHost(
            Urllib3Transport(policy=LOOPBACK_POLICY), healthy.port, HEALTHY_HOST_TIMEOUTS
        )
    engine = Dispatcher(options.pop("store"), **options)
    slow = engine.subscribe("party/created", receiver.url("/slow"), owner="acme")
    fast = engine.subscribe("party/created", healthy.url("/fast"), owner="acme")
    for i in range(6):
        engine.emit("party/created", {"id": i}, owner="acme")
    try:
        if kind == "threads":
            summary = engine.run_until_idle(workers=16)
        else:
            transport = _AsyncDeadlineOfHost(async_transport, healthy.port, HEALTHY_HOST_TIMEOUTS)
            hooks = AsyncDispatcher(engine, transport=transport)

            async def run() -> Any:
                try:
                    return await hooks.run_until_idle(concurrency=64)
                finally:
                    await transport.aclose()

            summary = asyncio.run(run())
    finally:
        healthy.close()
        engine.transport.close()
    attempts = sorted(
        (
            a
            for d in engine.store.list_deliveries(hook_id=slow.id, limit=100)
            for a in engine.store.attempts(d.id)
        ),
        key=lambda a: a.started_at,
    )

    assert (summary.delivered, summary.retried) == (6, 6)
    assert {d.state for d in engine.store.list_deliveries(hook_id=fast.id)} == {
        DeliveryState.DELIVERED
    }
    assert {a.error_kind for a in attempts} == {"timeout"}
    assert len(attempts) == 6
    assert _overlap(attempts) == 1


def test_a_host_cut_while_waiting_for_its_turn_gets_nothing_more() -> None:
    """A host whose limit is cut below what it has in flight starts nothing until attempts
    end, even if it was already in line for its next turn."""
    gate = HostGate(4)
    _warm(gate)
    gate.add([_claim(n) for n in range(6)])
    first, *_ = gate.take(3)  # 3 in flight, room for one more: still in line
    gate.finished(first, _outcome(first, error_kind="timeout"))  # 2 in flight, limit now 2

    assert gate.take(100) == []
    assert (len(gate), gate.startable) == (3, 0)


def test_many_claims_parked_behind_cut_hosts_leave_others_startable() -> None:
    """1,500 claims waiting behind 100 cut hosts: another host's claims start at once, and
    the parked ones are not counted as startable."""
    gate = HostGate(16)
    for h in range(100):
        _warm(gate, f"hole{h}.example")
    _warm(gate, "fine.example")
    firsts = [_claim(0, host=f"hole{h}.example") for h in range(100)]
    gate.add(firsts)
    for first in gate.take(100):
        gate.finished(first, _outcome(first, error_kind="timeout"))  # each cut to 8
    for h in range(100):
        gate.add([_claim(n, host=f"hole{h}.example") for n in range(1, 16)])
    gate.take(10_000)  # each hole host now has 8 in flight, 7 parked
    gate.add([_claim(n, host="fine.example") for n in range(10)])

    assert gate.startable == 10
    assert len(gate) == 100 * 7 + 10
    assert [c.hook.target_url for c in gate.take(100)] == ["https://fine.example/h"] * 10


def _answer_as_slow_start_allows(receiver: Any, total: int, limit: int, failed: list[str]) -> None:
    """Answer ``receiver``'s requests one at a time, the oldest first, each once as many are
    waiting as slow start allows after the answers so far (one more per answer, up to
    ``limit``): however long the worker takes to send them, so nothing depends on speed. A
    worker that never sends that many is reported in ``failed`` after 30 s of waiting (the
    requests it holds are answered then, so the run ends)."""
    for answered in range(total):
        allowed = min(answered + 1, limit, total - answered)
        deadline = time.monotonic() + 30
        while len(receiver.received) - answered < allowed:
            if time.monotonic() > deadline:
                failed.append(f"{answered} answered: {len(receiver.received)} requests came")
                receiver.one_at_a_time = False
                for _ in range(len(receiver.received) - answered):
                    receiver.answer_oldest()
                return
            time.sleep(0.002)
        receiver.answer_oldest()


@pytest.mark.parametrize(
    "kind",
    ["threads", "asyncio"],
)
def test_a_new_host_earns_its_limit_by_answering_in_both_workers(
    kind: str, async_receiver: Any, async_transport: Any
) -> None:
    """Slow start against a real receiver that answers one request at a time, limit 8: the
    first request arrives alone and the second only after it was answered; then each answer
    lets one more in, up to 8 at once, and never past it, however many slots the worker has."""
    async_receiver.one_at_a_time = True
    engine = Dispatcher(
        MemoryStore(),
        network_policy=LOOPBACK_POLICY,
        timeouts=Timeouts(connect=20.0, total=45.0),  # longer than the answering waits
        transport=Urllib3Transport(policy=LOOPBACK_POLICY),
        max_in_flight_per_host=8,
        max_hooks_per_owner=None,
    )
    engine.subscribe("party/created", async_receiver.url(), owner="acme")
    for i in range(40):
        engine.emit("party/created", {"id": i}, owner="acme")
    failed: list[str] = []
    answering = threading.Thread(
        target=_answer_as_slow_start_allows, args=(async_receiver, 40, 8, failed), daemon=True
    )
    answering.start()
    try:
        if kind == "threads":
            summary = engine.run_until_idle(workers=32)
        else:
            hooks = AsyncDispatcher(engine, transport=async_transport)

            async def run() -> Any:
                try:
                    return await hooks.run_until_idle(concurrency=64)
                finally:
                    await async_transport.aclose()

            summary = asyncio.run(run())
    finally:
        engine.transport.close()
    answering.join(5)

    assert failed == []
    assert summary.delivered == 40
    assert async_receiver.open_at_arrival[:2] == [1, 1]
    assert async_receiver.max_open == 8
