"""The Dispatcher's delivery policy, with a FakeClock and a RecordingTransport.

These pin what happens after each kind of answer: retries on Capsule's schedule, dead hooks,
410 Gone, the attempt log and the request every attempt sends.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

import resthooks
from resthooks import (
    DeliveryNotFound,
    DeliveryState,
    DeliverySummary,
    Dispatcher,
    HookNotFound,
    HookState,
    RetryPolicy,
    TransportError,
)
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock, RecordingTransport
from resthooks.transports import Request, Response, Timeouts

URL = "https://receiver.example/hooks"


def drain(dispatcher: Dispatcher, clock: FakeClock, *, until: datetime) -> DeliverySummary:
    """Jump from one due time to the next, delivering what is due, until nothing is left
    before ``until``."""
    summary = dispatcher.deliver_due()
    while (due := dispatcher.store.next_due_at()) is not None and due <= until:
        clock.set(max(due, clock.now()))
        summary += dispatcher.deliver_due()
    return summary


class Timeline:
    """A handler that answers from ``answer`` and notes (seconds since ``t0``, webhook-id)."""

    def __init__(self, clock: FakeClock, answer: int | Response | BaseException = 500) -> None:
        self.clock = clock
        self.t0 = clock.now()
        self.answer = answer
        self.seen: list[tuple[float, str]] = []

    def __call__(self, request: Request) -> Response:
        self.seen.append(
            ((self.clock.now() - self.t0).total_seconds(), request.headers["webhook-id"])
        )
        if isinstance(self.answer, BaseException):
            raise self.answer
        if isinstance(self.answer, Response):
            return self.answer
        return Response(status=self.answer)


def test_always_500_follows_capsules_schedule_then_the_hook_dies(clock: FakeClock) -> None:
    """Against an endpoint that always answers 500, attempts happen at exactly 0, 5, 65, 365,
    1265 and 2165 s after emit; then the hook is dead, and its other pending delivery is
    cancelled."""
    timeline = Timeline(clock, 500)
    dispatcher = Dispatcher(MemoryStore(), clock=clock, transport=RecordingTransport(timeline))
    hook = dispatcher.subscribe("party/created", URL, owner="acme")
    t0 = clock.now()
    [first] = dispatcher.emit("party/created", {"id": 1}, owner="acme")

    drain(dispatcher, clock, until=t0 + timedelta(seconds=2000))
    clock.set(t0 + timedelta(seconds=2000))
    [second] = dispatcher.emit("party/created", {"id": 2}, owner="acme")
    drain(dispatcher, clock, until=t0 + timedelta(days=1))

    assert [t for t, i in timeline.seen if i == first.id] == [0.0, 5.0, 65.0, 365.0, 1265.0, 2165.0]
    # The second delivery was tried at 2000 and 2005 and 2065 s, then cancelled at 2165 s.
    assert [t for t, i in timeline.seen if i == second.id] == [2000.0, 2005.0, 2065.0]
    dead = dispatcher.get_hook(hook.id, owner="acme")
    assert dead.state == HookState.DEAD
    assert t0 + timedelta(seconds=2165) == dead.dead_at
    assert dead.dead_reason is not None
    assert "6 attempts failed" in dead.dead_reason
    assert "HTTP 500" in dead.dead_reason
    assert dispatcher.get_delivery(first.id, owner="acme").state == DeliveryState.FAILED
    cancelled = dispatcher.get_delivery(second.id, owner="acme")
    assert cancelled.state == DeliveryState.CANCELLED
    assert cancelled.next_attempt_at is None
    # A dead hook stays listed, and emit skips it.
    assert [hook.id] == [h.id for h in dispatcher.hooks(owner="acme", state="dead")]
    assert dispatcher.emit("party/created", {"id": 3}, owner="acme") == []


def test_fails_twice_then_succeeds_is_delivered_on_the_third_attempt(
    clock: FakeClock,
) -> None:
    """Two failed attempts and then a 200: delivered on the 3rd attempt, the hook stays active."""
    transport = RecordingTransport(script=[500, TransportError("timeout", "timed out"), 200])
    dispatcher = Dispatcher(MemoryStore(), clock=clock, transport=transport)
    hook = dispatcher.subscribe("party/created", URL, owner="acme")
    [delivery] = dispatcher.emit("party/created", {"id": 1}, owner="acme")

    summary = drain(dispatcher, clock, until=clock.now() + timedelta(days=1))

    assert DeliverySummary(delivered=1, retried=2) == summary
    done = dispatcher.get_delivery(delivery.id, owner="acme")
    assert (done.state, done.attempts) == (DeliveryState.DELIVERED, 3)
    assert [a.status for a in dispatcher.attempts(delivery.id, owner="acme")] == [500, None, 200]
    assert dispatcher.get_hook(hook.id, owner="acme").state == HookState.ACTIVE


def test_410_deletes_the_hook_and_cancels_its_other_pending_deliveries(clock: FakeClock) -> None:
    """A 410 answer removes the hook at once and cancels its deliveries still pending."""
    transport = RecordingTransport()
    dispatcher = Dispatcher(MemoryStore(), clock=clock, transport=transport)
    hook = dispatcher.subscribe("party/created", URL, owner="acme")
    other = dispatcher.subscribe("party/created", URL + "/other", owner="acme")
    [waiting] = [
        d for d in dispatcher.emit("party/created", {"id": 1}, owner="acme") if d.hook_id == hook.id
    ]
    transport.handler = lambda r: Response(status=500 if r.url == URL else 204)
    dispatcher.deliver_due()  # the first delivery of `hook` now waits for its retry
    transport.handler = lambda r: Response(status=410 if r.url == URL else 204)
    [gone] = [
        d for d in dispatcher.emit("party/created", {"id": 2}, owner="acme") if d.hook_id == hook.id
    ]

    summary = dispatcher.deliver_due()

    assert DeliverySummary(delivered=1, gone=1, cancelled=1) == summary
    with pytest.raises(HookNotFound):
        dispatcher.get_hook(hook.id, owner="acme")
    assert [other.id] == [h.id for h in dispatcher.hooks(owner="acme")]
    assert dispatcher.get_delivery(gone.id, owner="acme").state == DeliveryState.CANCELLED
    assert dispatcher.get_delivery(waiting.id, owner="acme").state == DeliveryState.CANCELLED
    assert [a.status for a in dispatcher.attempts(gone.id, owner="acme")] == [410]
    # Nothing is sent to the removed hook afterwards.
    clock.advance(3600)
    transport.requests.clear()
    dispatcher.deliver_due()
    assert transport.requests == []


@pytest.mark.parametrize(
    ("answer", "status", "kind"),
    [
        (301, 301, "http"),
        (302, 302, "http"),
        (304, 304, "http"),
        (308, 308, "http"),
        (400, 400, "http"),
        (401, 401, "http"),
        (404, 404, "http"),
        (409, 409, "http"),
        (429, 429, "http"),
        (500, 500, "http"),
        (503, 503, "http"),
        (TransportError("timeout", "no answer within 15 s"), None, "timeout"),
        (TransportError("connection", "connection refused"), None, "connection"),
        (TransportError("tls", "certificate verify failed"), None, "tls"),
        (RuntimeError("a broken custom transport"), None, "protocol"),
    ],
)
def test_everything_but_2xx_and_410_is_a_failed_attempt(
    clock: FakeClock, answer: int | BaseException, status: int | None, kind: str
) -> None:
    """3xx (not followed), 4xx other than 410, 5xx, timeouts and connection errors are failed
    attempts: logged with their kind and retried 5 s later (60 s after a timeout); the hook
    stays active."""
    transport = RecordingTransport(script=[answer])
    dispatcher = Dispatcher(MemoryStore(), clock=clock, transport=transport)
    hook = dispatcher.subscribe("party/created", URL, owner="acme")
    [delivery] = dispatcher.emit("party/created", {"id": 1}, owner="acme")

    assert DeliverySummary(retried=1) == dispatcher.deliver_due()

    after = dispatcher.get_delivery(delivery.id, owner="acme")
    assert after.state == DeliveryState.PENDING
    # After a timeout the next attempt waits at least timeout_penalty (60 s) instead of 5 s.
    delay = dispatcher.retry.timeout_penalty if kind == "timeout" else 5
    assert after.next_attempt_at == clock.now() + timedelta(seconds=delay)
    [attempt] = dispatcher.attempts(delivery.id, owner="acme")
    assert (status, kind) == (attempt.status, attempt.error_kind)
    assert attempt.error
    assert after.last_error == attempt.summary
    assert dispatcher.get_hook(hook.id, owner="acme").state == HookState.ACTIVE
    assert len(transport.requests) == 1


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_any_2xx_is_delivered(clock: FakeClock, status: int) -> None:
    """Every 2xx status counts as delivered, and the attempt has no error."""
    dispatcher = Dispatcher(
        MemoryStore(), clock=clock, transport=RecordingTransport(default=status)
    )
    dispatcher.subscribe("party/created", URL, owner="acme")
    [delivery] = dispatcher.emit("party/created", {"id": 1}, owner="acme")

    assert DeliverySummary(delivered=1) == dispatcher.deliver_due()
    [attempt] = dispatcher.attempts(delivery.id, owner="acme")
    assert (status, None, None) == (attempt.status, attempt.error_kind, attempt.error)


def test_a_custom_schedule_is_followed(clock: FakeClock) -> None:
    """A RetryPolicy with its own delays sets the attempt times and the number of attempts."""
    timeline = Timeline(clock, TransportError("connection", "refused"))
    dispatcher = Dispatcher(
        MemoryStore(),
        clock=clock,
        transport=RecordingTransport(timeline),
        retry=RetryPolicy(delays=[1, timedelta(minutes=2), 30]),
    )
    hook = dispatcher.subscribe("party/created", URL, owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")

    summary = drain(dispatcher, clock, until=clock.now() + timedelta(days=1))

    assert [t for t, _ in timeline.seen] == [0.0, 1.0, 121.0, 151.0]
    assert DeliverySummary(retried=3, failed=1) == summary
    assert dispatcher.get_hook(hook.id, owner="acme").state == HookState.DEAD


def test_an_empty_schedule_gives_up_after_one_attempt(clock: FakeClock) -> None:
    """With no delays, the first failed attempt is the last: the hook dies at once."""
    dispatcher = Dispatcher(
        MemoryStore(),
        clock=clock,
        transport=RecordingTransport(default=503),
        retry=RetryPolicy(delays=[]),
    )
    hook = dispatcher.subscribe("party/created", URL, owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")

    assert DeliverySummary(failed=1) == dispatcher.deliver_due()
    assert dispatcher.get_hook(hook.id, owner="acme").state == HookState.DEAD


def test_jitter_stays_within_its_bounds() -> None:
    """With jitter j, each delay is within [d*(1-j), d*(1+j)], and the delays do vary."""
    policy = RetryPolicy(delays=[100, 1000], jitter=0.2)
    rng = random.Random(1234)
    firsts = [policy.delay_after(1, rng) for _ in range(500)]
    seconds = [policy.delay_after(2, rng) for _ in range(500)]
    assert all(d is not None and 80 <= d <= 120 for d in firsts)
    assert all(d is not None and 800 <= d <= 1200 for d in seconds)
    assert len(set(firsts)) > 100
    assert policy.delay_after(3, rng) is None


def test_the_dispatcher_applies_jitter_within_bounds(clock: FakeClock) -> None:
    """The Dispatcher schedules a jittered retry within the policy's bounds."""
    dispatcher = Dispatcher(
        MemoryStore(),
        clock=clock,
        transport=RecordingTransport(default=500),
        retry=RetryPolicy(delays=[100], jitter=0.5),
    )
    for n in range(20):
        dispatcher.subscribe("party/created", f"{URL}/{n}", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    dispatcher.deliver_due()

    delays = {
        (d.next_attempt_at - clock.now()).total_seconds()
        for d in dispatcher.deliveries(owner="acme")
        if d.next_attempt_at is not None
    }
    assert 20 >= len(delays) > 1
    assert all(50 <= d <= 150 for d in delays)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delays": [-1]}, "finite and >= 0"),
        ({"delays": [float("inf")]}, "finite and >= 0"),
        ({"delays": [float("nan")]}, "finite and >= 0"),
        ({"jitter": 1}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
    ],
)
def test_a_retry_policy_refuses_impossible_values(kwargs: dict[str, object], message: str) -> None:
    """Negative, infinite or NaN delays and jitter outside [0, 1) are refused."""
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_deliver_due_counts_every_kind_of_outcome(clock: FakeClock) -> None:
    """The summary counts delivered, retried, failed (hook died), gone (410) and the
    deliveries cancelled as a consequence."""
    answers = {"ok": 204, "flaky": 500, "gone": 500, "dying": 500}
    transport = RecordingTransport(lambda r: Response(status=answers[r.url.rsplit("/", 1)[1]]))
    dispatcher = Dispatcher(
        MemoryStore(), clock=clock, transport=transport, max_in_flight_per_host=None
    )
    for name in ("gone", "dying"):
        dispatcher.subscribe("party/created", f"{URL}/{name}", owner="acme")
    for name in ("ok", "flaky"):
        dispatcher.subscribe("party/updated", f"{URL}/{name}", owner="acme")
    # The first deliveries to "gone" and "dying" fail five times (at 0, 900, ... 3600 s);
    # their 6th and last attempt is due at 4500 s.
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    for step in (900, 900, 900, 900, 899):
        dispatcher.deliver_due()
        clock.advance(step)
    # A second delivery to each of them fails once at 4499 s and waits for its retry.
    dispatcher.emit("party/created", {"id": 2}, owner="acme")
    assert DeliverySummary(retried=2) == dispatcher.deliver_due()
    clock.advance(1)
    answers["gone"] = 410
    dispatcher.emit("party/updated", {"id": 3}, owner="acme")

    summary = dispatcher.deliver_due()

    # ok: delivered; flaky: retried; gone: 410 and its second delivery cancelled;
    # dying: failed for good (its hook died) and its second delivery cancelled.
    assert DeliverySummary(delivered=1, retried=1, failed=1, gone=1, cancelled=2) == summary
    assert summary.attempts == 4


def test_an_empty_outbox_gives_an_empty_summary(dispatcher: Dispatcher) -> None:
    """deliver_due with nothing due sends nothing and counts nothing."""
    assert DeliverySummary() == dispatcher.deliver_due()


def test_not_yet_due_retries_are_not_sent(
    dispatcher: Dispatcher, clock: FakeClock, transport: RecordingTransport
) -> None:
    """A retry is not sent before its time, and is sent once its time comes."""
    transport._script = [500, 204]
    dispatcher.subscribe("party/created", URL, owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    dispatcher.deliver_due()
    clock.advance(4.999)
    assert DeliverySummary() == dispatcher.deliver_due()
    clock.advance(0.001)
    assert DeliverySummary(delivered=1) == dispatcher.deliver_due()
    assert len(transport.requests) == 2


def test_every_attempt_is_logged(clock: FakeClock) -> None:
    """Each attempt is logged with its number, start time, duration (from the clock), status
    or error kind and message, and at most 4 KiB of the response body."""
    big = ("é" * 5000).encode()  # 10,000 bytes; the cut falls inside a character

    def slow(request: Request) -> Response:
        clock.advance(1.5)
        if len(handler_calls) == 0:
            handler_calls.append(1)
            return Response(status=503, body=big)
        if len(handler_calls) == 1:
            handler_calls.append(1)
            raise TransportError("timeout", "the response did not finish before the deadline")
        return Response(status=200, body=b"thanks")

    handler_calls: list[int] = []
    dispatcher = Dispatcher(MemoryStore(), clock=clock, transport=RecordingTransport(slow))
    dispatcher.subscribe("party/created", URL, owner="acme")
    t0 = clock.now()
    [delivery] = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    drain(dispatcher, clock, until=t0 + timedelta(hours=1))

    first, second, third = dispatcher.attempts(delivery.id, owner="acme")
    assert [a.number for a in (first, second, third)] == [1, 2, 3]
    assert {delivery.id} == {a.delivery_id for a in (first, second, third)}
    assert [t0, t0 + timedelta(seconds=6.5), t0 + timedelta(seconds=68)] == [
        a.started_at for a in (first, second, third)
    ]
    assert [a.duration for a in (first, second, third)] == [1.5, 1.5, 1.5]
    assert (first.status, first.error_kind, first.error) == (503, "http", "HTTP 503")
    assert len(first.response_excerpt.encode()) <= 4096
    assert first.response_excerpt.startswith("é" * 2047)
    assert (second.status, second.error_kind) == (None, "timeout")
    assert second.error == "the response did not finish before the deadline"
    assert second.response_excerpt == ""
    assert (third.status, third.error_kind, third.response_excerpt) == (200, None, "thanks")


def test_the_excerpt_cap_follows_max_response_bytes(clock: FakeClock) -> None:
    """The kept excerpt is at most ``max_response_bytes`` of the body."""
    transport = RecordingTransport(default=200)
    transport.handler = lambda r: Response(status=200, body=b"x" * 100)
    dispatcher = Dispatcher(MemoryStore(), clock=clock, transport=transport, max_response_bytes=10)
    dispatcher.subscribe("party/created", URL, owner="acme")
    [delivery] = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    dispatcher.deliver_due()
    assert transport.requests[0].max_response_bytes == 10
    assert dispatcher.attempts(delivery.id, owner="acme")[0].response_excerpt == "x" * 10


def test_the_delivery_log_is_owner_scoped(dispatcher: Dispatcher) -> None:
    """Another owner cannot list, read, or read the attempts of an owner's deliveries."""
    dispatcher.subscribe("party/created", URL, owner="acme")
    dispatcher.subscribe("party/created", URL, owner="globex")
    [mine] = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    [theirs] = dispatcher.emit("party/created", {"id": 2}, owner="globex")
    dispatcher.deliver_due()

    assert [mine.id] == [d.id for d in dispatcher.deliveries(owner="acme")]
    assert [theirs.id] == [d.id for d in dispatcher.deliveries(owner="globex")]
    assert mine.id == dispatcher.get_delivery(mine.id, owner="acme").id
    assert len(dispatcher.attempts(mine.id, owner="acme")) == 1
    with pytest.raises(DeliveryNotFound):
        dispatcher.get_delivery(theirs.id, owner="acme")
    with pytest.raises(DeliveryNotFound):
        dispatcher.attempts(theirs.id, owner="acme")
    with pytest.raises(DeliveryNotFound):
        dispatcher.attempts("msg_nonexistent", owner="acme")


def test_deliveries_filters_by_hook_and_state(dispatcher: Dispatcher) -> None:
    """deliveries() filters by hook and by state, newest first, up to ``limit``."""
    a = dispatcher.subscribe("party/created", URL + "/a", owner="acme")
    b = dispatcher.subscribe("party/created", URL + "/b", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    dispatcher.deliver_due()
    dispatcher.emit("party/created", {"id": 2}, owner="acme")

    assert len(dispatcher.deliveries(owner="acme")) == 4
    assert {a.id} == {d.hook_id for d in dispatcher.deliveries(owner="acme", hook_id=a.id)}
    assert len(dispatcher.deliveries(owner="acme", state="pending")) == 2
    assert len(dispatcher.deliveries(owner="acme", state=DeliveryState.DELIVERED)) == 2
    assert len(dispatcher.deliveries(owner="acme", hook_id=b.id, state="pending")) == 1
    assert len(dispatcher.deliveries(owner="acme", limit=1)) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"state": "lost"}, "state"),
        ({"limit": "10"}, "limit"),
        ({"limit": -1}, "limit"),
        ({"hook_id": 5}, "hook_id"),
        ({"owner": ""}, "owner"),
    ],
)
def test_deliveries_refuses_bad_filters(
    dispatcher: Dispatcher, kwargs: dict[str, object], field: str
) -> None:
    """A bad filter of deliveries() is a ValidationError naming it."""
    args: dict[str, object] = {"owner": "acme", **kwargs}
    with pytest.raises(resthooks.ValidationError) as info:
        dispatcher.deliveries(**args)  # type: ignore[arg-type]
    assert field == info.value.field


def test_every_attempt_sends_the_same_id_and_the_documented_headers(clock: FakeClock) -> None:
    """Every attempt of a delivery carries webhook-id = the delivery's id, the User-Agent
    ``resthooks/<version>``, ``Content-Type: application/json``, and the emitted body."""
    transport = RecordingTransport(script=[500, 502, 204])
    dispatcher = Dispatcher(MemoryStore(), clock=clock, transport=transport, sign_deliveries=False)
    dispatcher.subscribe("party/created", URL, owner="acme")
    [delivery] = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    drain(dispatcher, clock, until=clock.now() + timedelta(hours=1))

    assert len(transport.requests) == 3
    for request in transport.requests:
        assert (request.method, request.url) == ("POST", URL)
        assert delivery.id == request.headers["webhook-id"]
        assert f"resthooks/{resthooks.__version__}" == request.headers["User-Agent"]
        assert request.headers["Content-Type"] == "application/json"
        assert request.body == b'{"event":"party/created","payload":[{"id":1}]}'
        assert dispatcher.timeouts == request.timeouts
    assert "webhook-signature" not in transport.requests[0].headers


def test_deliveries_to_two_hooks_have_distinct_ids(dispatcher: Dispatcher) -> None:
    """One emit to two hooks makes two deliveries with distinct ids, one per hook."""
    h1 = dispatcher.subscribe("party/created", URL + "/1", owner="acme")
    h2 = dispatcher.subscribe("party/created", URL + "/2", owner="acme")
    deliveries = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    assert {h1.id, h2.id} == {d.hook_id for d in deliveries}
    assert len({d.id for d in deliveries}) == 2
    assert all(d.state is DeliveryState.PENDING for d in deliveries)
    assert all(d.attempts == 0 for d in deliveries)


def test_deliver_due_never_starts_an_attempt_that_could_outlive_its_claim(
    clock: FakeClock,
) -> None:
    """deliver_due sends the deliveries it claimed one after the other; one whose attempt
    could end after its lease expires is released and claimed afresh, not sent under an
    expiring claim, so a second worker never sends it at the same time."""
    sent: list[str] = []
    second_worker_ran = False

    def slow(request: Request) -> Response:
        nonlocal second_worker_ran
        sent.append(request.headers["webhook-id"])
        clock.advance(14)
        if clock.now() > t0 + timedelta(seconds=40) and not second_worker_ran:
            # Another worker wakes up while this attempt is in flight.
            second_worker_ran = True
            other.deliver_due()
        return Response(status=204)

    store = MemoryStore()
    first = Dispatcher(
        store,
        clock=clock,
        transport=RecordingTransport(slow),
        timeouts=Timeouts(connect=5, total=15),
        lease=30,
    )
    other = Dispatcher(store, clock=clock, transport=RecordingTransport(slow), lease=30)
    for n in range(4):
        first.subscribe("party/created", f"https://receiver{n}.example/hooks", owner="acme")
    t0 = clock.now()
    deliveries = first.emit("party/created", {"id": 1}, owner="acme")

    summary = first.deliver_due()

    assert second_worker_ran
    assert sorted(sent) == sorted(d.id for d in deliveries)
    assert summary.stale == 0
    assert {d.state for d in first.deliveries(owner="acme")} == {DeliveryState.DELIVERED}
