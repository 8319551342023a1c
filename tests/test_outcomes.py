"""The delivery state machine (resthooks.outcomes), on its own and as the stores apply it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from resthooks import (
    Attempt,
    DeliveryState,
    HookEffect,
    HookState,
    Outcome,
    OutcomeKind,
    RecordResult,
    Verdict,
)
from resthooks.outcomes import (
    DEFAULT_DEAD_REASON,
    DeliverySummary,
    StoredDelivery,
    may_touch_hook,
    summarize,
    transition,
)
from resthooks.stores import MemoryStore
from resthooks.testing import check_store

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
LATER = NOW + timedelta(seconds=60)


def _attempt(status: int) -> Attempt:
    return Attempt(
        delivery_id="msg_1",
        number=3,
        started_at=NOW,
        duration=0.1,
        status=status,
        error_kind=None if status == 200 else "http",
    )


def _outcome(kind: OutcomeKind, token: str = "t1") -> Outcome:
    status = {
        OutcomeKind.DELIVERED: 200,
        OutcomeKind.RETRY: 503,
        OutcomeKind.FAILED: 500,
        OutcomeKind.GONE: 410,
    }.get(kind)
    return Outcome(
        delivery_id="msg_1",
        token=token,
        kind=kind,
        attempt=None if status is None else _attempt(status),
        next_attempt_at=LATER if kind is OutcomeKind.RETRY else None,
    )


DUE = NOW - timedelta(seconds=5)
IN_FLIGHT = StoredDelivery(
    state=DeliveryState.IN_FLIGHT, token="t1", attempts=2, next_attempt_at=DUE, last_error="x"
)

# The rules written out by hand, independently of the module: (kind) -> state, next attempt,
# attempts, last_error, hook effect.
APPLIED = {
    OutcomeKind.DELIVERED: (DeliveryState.DELIVERED, None, 3, None, HookEffect.NONE),
    OutcomeKind.RETRY: (DeliveryState.PENDING, LATER, 3, "HTTP 503", HookEffect.NONE),
    OutcomeKind.FAILED: (DeliveryState.FAILED, None, 3, "HTTP 500", HookEffect.DEAD),
    OutcomeKind.GONE: (DeliveryState.CANCELLED, None, 3, "HTTP 410", HookEffect.REMOVED),
    OutcomeKind.RELEASE: (DeliveryState.PENDING, DUE, 2, "x", HookEffect.NONE),
}


@pytest.mark.parametrize("kind", list(OutcomeKind))
def test_in_flight_under_the_token_applies(kind: OutcomeKind) -> None:
    """An outcome for a delivery in flight under its own token moves it as the table says."""
    t = transition(IN_FLIGHT, _outcome(kind), now=NOW)
    assert t.verdict == Verdict.APPLIED
    assert t.delivery is not None
    got = (
        t.delivery.state,
        t.delivery.next_attempt_at,
        t.delivery.attempts,
        t.delivery.last_error,
        t.hook_effect,
    )
    assert APPLIED[kind] == got
    assert t.delivery.token is None, "the claim is spent"
    assert _outcome(kind).attempt == t.attempt
    assert may_touch_hook(kind) == (t.hook_effect is not HookEffect.NONE)


@pytest.mark.parametrize("kind", list(OutcomeKind))
def test_another_token_is_stale(kind: OutcomeKind) -> None:
    """An outcome under a token that is not the delivery's current one writes nothing."""
    t = transition(IN_FLIGHT, _outcome(kind, token="t0"), now=NOW)
    assert (
        t.verdict,
        t.delivery,
        t.attempt,
        t.hook_effect,
    ) == (Verdict.STALE, None, None, HookEffect.NONE)


@pytest.mark.parametrize("kind", list(OutcomeKind))
@pytest.mark.parametrize(
    "state", [DeliveryState.PENDING, DeliveryState.DELIVERED, DeliveryState.FAILED]
)
def test_not_in_flight_is_stale(kind: OutcomeKind, state: DeliveryState) -> None:
    """Pending and final deliveries refuse every outcome, even one carrying their last token."""
    stored = StoredDelivery(state=state, token=None, attempts=1)
    assert transition(stored, _outcome(kind), now=NOW).verdict == Verdict.STALE


@pytest.mark.parametrize("kind", [k for k in OutcomeKind if k is not OutcomeKind.RELEASE])
def test_cancelled_in_flight_logs_the_attempt_only(kind: OutcomeKind) -> None:
    """A delivery cancelled while this claim had it in flight logs the attempt and stays put."""
    cancelled = StoredDelivery(
        state=DeliveryState.CANCELLED, token="t1", attempts=2, hook_state=None
    )
    t = transition(cancelled, _outcome(kind), now=NOW)
    assert t.verdict == Verdict.LATE
    assert t.delivery is not None
    assert (
        t.delivery.state,
        t.delivery.next_attempt_at,
        t.delivery.attempts,
        t.delivery.token,
    ) == (DeliveryState.CANCELLED, None, 3, None)
    assert t.hook_effect == HookEffect.NONE, "a late attempt never touches the hook"
    assert t.attempt is not None
    assert t.attempt.summary == t.delivery.last_error


def test_cancelled_in_flight_release_is_stale() -> None:
    """A release (no attempt made) of a delivery cancelled in flight writes nothing."""
    cancelled = StoredDelivery(state=DeliveryState.CANCELLED, token="t1")
    assert transition(cancelled, _outcome(OutcomeKind.RELEASE), now=NOW).verdict == Verdict.STALE


def test_unknown_delivery_is_stale() -> None:
    """An outcome for a delivery the store does not have is stale."""
    assert transition(None, _outcome(OutcomeKind.DELIVERED), now=NOW).verdict == Verdict.STALE


def test_failed_gives_the_reason_or_the_default() -> None:
    """The dead hook's reason is the outcome's, or the default one."""
    failed = _outcome(OutcomeKind.FAILED)
    assert transition(IN_FLIGHT, failed, now=NOW).dead_reason == DEFAULT_DEAD_REASON
    with_reason = Outcome(delivery_id="msg_1", token="t1", kind=OutcomeKind.FAILED, reason="6")
    assert transition(IN_FLIGHT, with_reason, now=NOW).dead_reason == "6"


@pytest.mark.parametrize("kind", [OutcomeKind.FAILED, OutcomeKind.GONE])
def test_no_hook_effect_on_a_removed_hook(kind: OutcomeKind) -> None:
    """Failing or gone for a delivery whose hook no longer exists touches no hook."""
    stored = StoredDelivery(state=DeliveryState.IN_FLIGHT, token="t1", hook_state=None)
    t = transition(stored, _outcome(kind), now=NOW)
    assert (t.verdict, t.hook_effect) == (Verdict.APPLIED, HookEffect.NONE)


def test_a_dead_hook_dies_once_but_can_be_removed() -> None:
    """A hook already dead keeps its reason on another failure; a 410 still removes it."""
    dead = StoredDelivery(state=DeliveryState.IN_FLIGHT, token="t1", hook_state=HookState.DEAD)
    assert transition(dead, _outcome(OutcomeKind.FAILED), now=NOW).hook_effect == HookEffect.NONE
    assert transition(dead, _outcome(OutcomeKind.GONE), now=NOW).hook_effect == HookEffect.REMOVED


def test_a_retry_without_a_time_is_due_now() -> None:
    """A retry outcome that names no time makes the delivery due at once, never never."""
    retry = Outcome(delivery_id="msg_1", token="t1", kind=OutcomeKind.RETRY)
    t = transition(IN_FLIGHT, retry, now=NOW)
    assert t.delivery is not None
    assert t.delivery.next_attempt_at == NOW


def test_summarize_counts_by_verdict_then_kind() -> None:
    """A batch is counted: applied ones by kind (with what they cancelled), late, stale."""
    kinds = [OutcomeKind.DELIVERED, OutcomeKind.RETRY, OutcomeKind.FAILED, OutcomeKind.GONE]
    outcomes = [_outcome(k) for k in kinds] + [_outcome(OutcomeKind.DELIVERED)] * 2
    results = [
        RecordResult(delivery_id="msg_1", verdict="applied"),
        RecordResult(delivery_id="msg_1", verdict=Verdict.APPLIED),
        RecordResult(delivery_id="msg_1", verdict="applied", cancelled=("a", "b")),
        RecordResult(delivery_id="msg_1", verdict="applied", cancelled=("c",)),
        RecordResult(delivery_id="msg_1", verdict="late", logged=True),
        RecordResult(delivery_id="msg_1", verdict="stale"),
    ]
    assert DeliverySummary(
        delivered=1, retried=1, failed=1, gone=1, cancelled=3, stale=1, late=1
    ) == summarize(outcomes, results)
    assert [r.applied for r in results] == [True, True, True, True, False, False]


class _Undying(MemoryStore):
    """A store that forgets to kill hooks: the transition table must catch it."""

    def _kill(self, hook_id: str, reason: str, now: datetime) -> list[str]:
        return []


class _Forgetful(MemoryStore):
    """A store that does not log the attempts of deliveries cancelled in flight."""

    def record(self, outcomes, *, now):  # type: ignore[no-untyped-def]
        results = super().record(outcomes, now=now)
        for outcome, result in zip(outcomes, results, strict=True):
            if result.verdict is Verdict.LATE:
                self._attempts[outcome.delivery_id].pop()
        return results


@pytest.mark.parametrize("store", [_Undying, _Forgetful])
def test_the_table_check_catches_a_store_that_breaks_a_rule(store: type[MemoryStore]) -> None:
    """The conformance suite's transition table fails for a store that departs from it."""
    with pytest.raises(AssertionError, match="transition_table"):
        check_store(store, only="transition_table")
