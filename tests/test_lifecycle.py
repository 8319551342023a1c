"""Lifecycle listeners and log lines: what the host hears about each outcome."""

from __future__ import annotations

import logging

import pytest

from resthooks import (
    Dispatcher,
    HookState,
    OutcomeKind,
    TransportError,
    ValidationError,
    generate_secret,
)
from resthooks.lifecycle import (
    AttemptFinished,
    CancelReason,
    DeliveryCancelled,
    DeliveryDelivered,
    DeliveryFailed,
    HookDead,
    HookGone,
)
from resthooks.model import Hook
from resthooks.observability import LogListener
from resthooks.outcomes import Verdict
from resthooks.retry import RetryPolicy
from resthooks.testing import RecordingTransport, run_schedule
from resthooks.transports import Response

OWNER = "acme"
EVENT = "party/created"


@pytest.fixture(name="events")
def _events(dispatcher):
    seen = []
    dispatcher.add_listener(seen.append)
    return seen


def _kinds(events):
    return [type(e).__name__ for e in events]


def test_delivered(dispatcher, events):
    """A 2xx sends AttemptFinished then DeliveryDelivered, with the hook and the attempt."""
    hook = dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [delivery] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)

    dispatcher.deliver_due()

    assert _kinds(events) == ["AttemptFinished", "DeliveryDelivered"]
    finished, delivered = events
    assert (hook.id, delivery.id, OutcomeKind.DELIVERED, 204) == (
        finished.hook.id,
        finished.delivery_id,
        finished.outcome,
        finished.attempt.status,
    )
    assert DeliveryDelivered(hook=hook, delivery_id=delivery.id, attempt=finished.attempt) == (
        delivered
    )


def test_retry(dispatcher, transport, events, clock):
    """A failed attempt that will be retried sends only AttemptFinished, with the next time."""
    transport.default = 500
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    start = clock.now()

    dispatcher.deliver_due()

    [finished] = events
    assert isinstance(finished, AttemptFinished)
    assert (finished.outcome, finished.attempt.status) == (OutcomeKind.RETRY, 500)
    assert start.replace(second=5) == finished.next_attempt_at


def test_failed_for_good_kills_the_hook_and_cancels_the_rest(store, clock, events):
    """The last failure sends DeliveryFailed, HookDead (the dead hook) and the cancellations."""

    dispatcher = Dispatcher(
        store, clock=clock, transport=RecordingTransport(default=500), retry=RetryPolicy([])
    )
    dispatcher.add_listener(events.append)
    hook = dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [first] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    dispatcher.deliver_due(batch_size=1)
    del events[:]
    # Revive, queue two deliveries, fail the first: the second is cancelled.
    dispatcher.revive(hook.id, owner=OWNER)
    [a] = dispatcher.emit(EVENT, {"id": 2}, owner=OWNER)
    clock.advance(1)
    [b] = dispatcher.emit(EVENT, {"id": 3}, owner=OWNER)

    dispatcher.deliver_due(batch_size=1)

    assert _kinds(events) == ["AttemptFinished", "DeliveryFailed", "HookDead", "DeliveryCancelled"]
    _, failed, dead, cancelled = events
    assert (a.id, "1 attempts failed; the last: HTTP 500") == (failed.delivery_id, failed.reason)
    assert (HookState.DEAD, failed.reason, (b.id,)) == (
        dead.hook.state,
        dead.hook.dead_reason,
        dead.cancelled,
    )
    assert DeliveryCancelled(hook=hook, delivery_id=b.id, reason=CancelReason.HOOK_DEAD) == (
        cancelled
    )
    assert first.id != a.id


def test_gone_removes_the_hook_and_cancels_its_deliveries(dispatcher, transport, clock, events):
    """A 410 sends DeliveryCancelled for it, HookGone, then the other cancellations."""
    transport.default = 410
    hook = dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [a] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    clock.advance(1)
    [b] = dispatcher.emit(EVENT, {"id": 2}, owner=OWNER)

    dispatcher.deliver_due(batch_size=1)

    assert _kinds(events) == [
        "AttemptFinished",
        "DeliveryCancelled",
        "HookGone",
        "DeliveryCancelled",
    ]
    assert HookGone(hook=hook, delivery_id=a.id, cancelled=(b.id,)) == events[2]
    assert [(a.id, CancelReason.HOOK_GONE), (b.id, CancelReason.HOOK_GONE)] == [
        (e.delivery_id, e.reason) for e in events if isinstance(e, DeliveryCancelled)
    ]


def test_unsubscribe_sends_a_cancellation_per_pending_delivery(dispatcher, events):
    """Unsubscribing a hook with pending deliveries sends DeliveryCancelled (unsubscribed)."""
    hook = dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [a] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)

    dispatcher.unsubscribe(hook.id, owner=OWNER)

    assert [DeliveryCancelled(hook=hook, delivery_id=a.id, reason=CancelReason.UNSUBSCRIBED)] == (
        events
    )


def test_a_raising_listener_is_logged_and_does_not_stop_delivery(dispatcher, caplog):
    """A listener that raises is logged; deliveries go on and the other listeners still hear."""
    heard = []

    def broken(event):
        raise RuntimeError("boom")

    dispatcher.add_listener(broken)
    dispatcher.add_listener(heard.append)
    for n in range(3):
        dispatcher.subscribe(EVENT, f"https://example.com/h{n}", owner=OWNER)
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)

    with caplog.at_level(logging.ERROR, logger="resthooks"):
        summary = dispatcher.run_until_idle(workers=2)

    assert summary.delivered == 3
    assert sum(isinstance(e, DeliveryDelivered) for e in heard) == 3
    assert sum("listener" in r.getMessage() and r.exc_info is not None for r in caplog.records) == 6


def test_remove_listener(dispatcher, events):
    """A removed listener hears nothing more."""
    dispatcher.remove_listener(events.append)
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    dispatcher.deliver_due()
    assert events == []


def test_record_without_claims_reads_the_hooks(dispatcher, events):
    """record() called without the claims still gives listeners each delivery's hook."""
    hook = dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    now = dispatcher.clock.now()
    claims = dispatcher.store.claim_due(now=now, limit=10, lease_until=now + dispatcher.lease)
    outcomes = [dispatcher.attempt(c) for c in claims]

    assert dispatcher.record(outcomes).delivered == 1
    assert [hook.id, hook.id] == [e.hook.id for e in events]


def test_listener_must_be_callable(dispatcher):
    """add_listener refuses what cannot be called."""

    with pytest.raises(ValidationError, match="listener"):
        dispatcher.add_listener("not a function")


# -- logging --------------------------------------------------------------------------------


SECRET_URL = "https://alice:hunter22@example.com/hooks?token=tok_SECRET_123"


def test_one_log_line_per_attempt_with_structured_fields(dispatcher, transport, clock, caplog):
    """Each attempt logs one line: DEBUG when delivered, INFO when retried, WARNING when dead;
    with hook_id, delivery_id, attempt, status and duration as extra fields."""
    transport._script = [204, 500]
    hook = dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [ok] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)

    with caplog.at_level(logging.DEBUG, logger="resthooks"):
        dispatcher.deliver_due()
        [bad] = dispatcher.emit(EVENT, {"id": 2}, owner=OWNER)
        dispatcher.deliver_due()
        for delay in (5, 60, 300, 900, 900):
            clock.advance(delay)
            dispatcher.deliver_due()

    lines = [r for r in caplog.records if r.name == "resthooks"]
    assert [r.levelno for r in lines] == [logging.DEBUG] + [logging.INFO] * 5 + [logging.WARNING]
    first = lines[0]
    assert (hook.id, ok.id, 1, 204) == (
        first.hook_id,
        first.delivery_id,
        first.attempt,
        first.status,
    )
    assert isinstance(first.duration, float)
    assert [r.attempt for r in lines[1:]] == [1, 2, 3, 4, 5, 6]
    assert {bad.id} == {r.delivery_id for r in lines[1:]}
    assert {500} == {r.status for r in lines[1:]}
    assert lines[-1].outcome == "failed"


def test_no_secret_or_url_credential_is_ever_logged(store, clock, caplog):
    """Credentials and the query string of a target URL, and hook secrets, never reach a log."""

    def handler(request):
        if request.body.endswith(b'{"id":1}]}'):
            return 204
        raise TransportError("connection", f"could not connect to {request.url}")

    dispatcher = Dispatcher(store, clock=clock, transport=RecordingTransport(handler))
    # Subscribe refuses credentials now: a hook stored before it did.
    now = clock.now()
    hook, _ = store.add_hook(
        Hook(id="hook_legacy", owner=OWNER, event=EVENT, target_url=SECRET_URL,
             created_at=now, updated_at=now, secret=generate_secret()),
        max_per_owner=None,
    )  # fmt: skip
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    dispatcher.emit(EVENT, {"id": 2}, owner=OWNER)

    with caplog.at_level(logging.DEBUG, logger="resthooks"):
        dispatcher.deliver_due()

    by_outcome = {r.outcome: r for r in caplog.records}
    assert sorted(by_outcome) == ["delivered", "retry"]
    assert by_outcome["delivered"].target == "https://***@example.com/hooks?***"
    assert by_outcome["retry"].error_kind == "connection"
    assert "could not connect to https://***@example.com/hooks?***" in (
        by_outcome["retry"].getMessage()
    )
    text = caplog.text + " ".join(str(vars(r)) for r in caplog.records)
    for secret in ("hunter22", "tok_SECRET_123", "alice:", hook.secret):
        assert secret not in text


def test_logging_is_the_built_in_listener(dispatcher, caplog):
    """Every Dispatcher starts with its LogListener as a listener; removing it silences the
    outcome lines (and nothing else changes)."""
    from resthooks.observability import LogListener  # noqa: PLC0415

    assert isinstance(dispatcher.log_listener, LogListener)
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    with caplog.at_level(logging.DEBUG, logger="resthooks"):
        dispatcher.deliver_due()
    assert len([r for r in caplog.records if getattr(r, "outcome", None) == "delivered"]) == 1
    caplog.clear()
    dispatcher.remove_listener(dispatcher.log_listener)
    dispatcher.emit(EVENT, {"id": 2}, owner=OWNER)
    with caplog.at_level(logging.DEBUG, logger="resthooks"):
        assert dispatcher.deliver_due().delivered == 1
    assert [r for r in caplog.records if hasattr(r, "outcome")] == []


def test_a_refused_outcome_sends_attempt_refused_and_the_log_says_so(
    dispatcher, events, clock, caplog
):
    """An outcome whose claim another worker took over since: AttemptRefused (verdict stale),
    nothing else, and the log listener's line says another worker claimed it."""
    from resthooks.lifecycle import AttemptRefused  # noqa: PLC0415
    from resthooks.outcomes import Verdict  # noqa: PLC0415

    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    [delivery] = dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    [old] = dispatcher.claim_due(now=clock.now(), limit=1, per_host=False)
    clock.advance(dispatcher.lease.total_seconds() + 1)  # its lease ran out: claimed again
    [new] = dispatcher.claim_due(now=clock.now(), limit=1, per_host=False)
    assert new.token != old.token
    outcome = dispatcher.attempt(old)
    with caplog.at_level(logging.INFO, logger="resthooks"):
        summary = dispatcher.record([outcome], claims=[old])
    assert summary.stale == 1
    assert _kinds(events) == ["AttemptRefused"]
    (refused,) = events
    assert isinstance(refused, AttemptRefused)
    assert (refused.delivery_id, refused.verdict, refused.outcome) == (
        delivery.id,
        Verdict.STALE,
        OutcomeKind.DELIVERED,
    )
    messages = [r.getMessage() for r in caplog.records if delivery.id in r.getMessage()]
    assert any("another worker claimed it since" in m for m in messages), messages


def test_a_quarantined_row_is_logged_by_the_listener(caplog):
    """DeliveryQuarantined makes one ERROR line naming the delivery and the reason."""
    from resthooks.lifecycle import DeliveryQuarantined  # noqa: PLC0415
    from resthooks.observability import LogListener  # noqa: PLC0415

    with caplog.at_level(logging.ERROR, logger="resthooks"):
        LogListener()(DeliveryQuarantined(delivery_id="msg_1", reason="bad body"))
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert "delivery msg_1 was quarantined" in record.getMessage()
    assert "bad body" in record.getMessage()


# -- who wants which event -------------------------------------------------------------------


def answer(transport, url, *statuses):
    """``url`` is answered ``statuses`` in order, then 204 like every other URL."""
    left = list(statuses)

    def handler(request):
        return Response(status=left.pop(0) if request.url == url and left else 204)

    transport.handler = handler


class Chosen:
    """A listener that says which events it wants, and keeps what it was given."""

    def __init__(self, kinds, wants=None):
        self.lifecycle_events = frozenset(kinds)
        self.seen = []
        self.asked = []
        if wants is not None:

            def wants_attempt(outcome, verdict):
                self.asked.append((outcome.kind, verdict))
                return wants(outcome)

            self.wants_attempt = wants_attempt

    def __call__(self, event):
        self.seen.append(event)


def test_a_listener_is_called_with_the_event_types_it_asks_for_only(dispatcher, transport, events):
    """lifecycle_events: a listener of HookDead hears the death and nothing before it, while a
    listener of everything hears the attempts, the failure and the cancellation too."""
    transport.default = 500
    dead_only = dispatcher.add_listener(Chosen({HookDead}))
    hook = dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    dispatcher.deliver_due()
    dispatcher.emit(EVENT, {"id": 2}, owner=OWNER)
    run_schedule(dispatcher)
    assert _kinds(dead_only.seen) == ["HookDead"]
    assert hook.id == dead_only.seen[0].hook.id
    assert {"AttemptFinished", "DeliveryFailed", "HookDead", "DeliveryCancelled"} == set(
        _kinds(events)
    )


def test_wants_attempt_is_asked_per_outcome_and_a_no_skips_it(dispatcher, transport, clock):
    """wants_attempt: asked with each outcome and its verdict before the AttemptFinished is
    built; the listener gets the attempts it said yes to and no other."""
    retried_only = dispatcher.add_listener(
        Chosen({AttemptFinished}, wants=lambda outcome: outcome.kind is OutcomeKind.RETRY)
    )
    answer(transport, "https://example.com/h", 500)
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    dispatcher.deliver_due()
    clock.advance(6)
    dispatcher.deliver_due()
    assert (retried_only.asked) == [
        (OutcomeKind.RETRY, Verdict.APPLIED),
        (OutcomeKind.DELIVERED, Verdict.APPLIED),
    ]
    assert [e.outcome for e in retried_only.seen] == [OutcomeKind.RETRY]


def test_an_event_nobody_wants_costs_no_store_read(store, clock, transport):
    """HookDead carries the hook as the store has it after its death, which costs a read:
    with no listener of HookDead, the read is not made."""

    class CountingStore(type(store)):
        reads = 0

        def get_hook(self, hook_id):
            CountingStore.reads += 1
            return super().get_hook(hook_id)

    transport.default = 500
    dispatcher = Dispatcher(CountingStore(), clock=clock, transport=transport)
    failed = dispatcher.add_listener(Chosen({DeliveryFailed}))
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    run_schedule(dispatcher)
    assert _kinds(failed.seen) == ["DeliveryFailed"]
    assert CountingStore.reads == 0
    dispatcher.add_listener(Chosen({HookDead}))
    dispatcher.subscribe(EVENT, "https://example.com/other", owner=OWNER)
    dispatcher.emit(EVENT, {"id": 2}, owner=OWNER)
    run_schedule(dispatcher)
    assert CountingStore.reads == 1


def test_the_log_listener_is_given_only_the_attempts_its_logger_would_write(
    dispatcher, transport, clock, caplog
):
    """With DEBUG off, a delivered attempt is not even handed to the log listener (nothing is
    built for a line that would be dropped); a retry's INFO line still is; turning DEBUG on
    later counts at once."""

    class Spy(LogListener):
        def __init__(self):
            self.given = []

        def __call__(self, event):
            self.given.append(event)
            super().__call__(event)

    spy = Spy()
    dispatcher.remove_listener(dispatcher.log_listener)
    dispatcher.add_listener(spy)
    answer(transport, "https://example.com/flaky", 500)
    dispatcher.subscribe(EVENT, "https://example.com/ok", owner=OWNER)
    dispatcher.subscribe(EVENT, "https://example.com/flaky", owner=OWNER)
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    with caplog.at_level(logging.INFO, logger="resthooks"):
        summary = dispatcher.deliver_due()
    assert (summary.delivered, summary.retried) == (1, 1)
    assert [e.outcome for e in spy.given] == [OutcomeKind.RETRY]
    assert [r.outcome for r in caplog.records if hasattr(r, "outcome")] == ["retry"]
    clock.advance(6)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="resthooks"):
        assert dispatcher.deliver_due().delivered == 1
    assert [e.outcome for e in spy.given] == [OutcomeKind.RETRY, OutcomeKind.DELIVERED]
    assert [r.outcome for r in caplog.records if hasattr(r, "outcome")] == ["delivered"]


@pytest.mark.parametrize(
    "events_attribute",
    ["AttemptFinished", [AttemptFinished, "HookDead"], [int], 3, iter([AttemptFinished])],
)
def test_add_listener_refuses_a_bad_lifecycle_events(dispatcher, events_attribute):
    """lifecycle_events must be a collection of event types: a ValidationError naming the
    listener otherwise, and the listeners stay as they were."""

    class Listener:
        lifecycle_events = events_attribute

        def __call__(self, event):
            pass

    heard = []
    with pytest.raises(ValidationError, match="listener") as raised:
        dispatcher.add_listener(Listener())
    assert raised.value.field == "listener"
    dispatcher.add_listener(heard.append)  # the refused one was not added: this one is next
    dispatcher.subscribe(EVENT, "https://example.com/h", owner=OWNER)
    dispatcher.emit(EVENT, {"id": 1}, owner=OWNER)
    dispatcher.deliver_due()
    assert _kinds(heard) == ["AttemptFinished", "DeliveryDelivered"]


def test_add_listener_refuses_a_wants_attempt_that_cannot_be_called(dispatcher):
    """wants_attempt must be callable."""

    class Listener:
        wants_attempt = "yes"

        def __call__(self, event):
            pass

    with pytest.raises(ValidationError, match="wants_attempt"):
        dispatcher.add_listener(Listener())
