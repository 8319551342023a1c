"""The store conformance suite: the checks every store must pass, ours and yours."""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import attrs

from ..batching import BATCH_ORDERING_KEY, Batching
from ..encoding import encode_body
from ..errors import HookLimitReached, SubscriptionExists
from ..model import (
    Attempt,
    DeliveryState,
    Hook,
    HookState,
    Outcome,
    OutcomeKind,
)
from ..outcomes import (
    HookEffect,
    RecordResult,
    StoredDelivery,
    Transition,
    Verdict,
    transition,
)
from ..stores import Store

__all__ = ["STORE_CHECKS", "check_store"]

StoreFactory = Callable[[], Store]
Check = Callable[[Store], None]

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
STORE_CHECKS: dict[str, Check] = {}


def _check(fn: Check) -> Check:
    STORE_CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


def _t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _hook(
    n: int,
    *,
    owner: str = "acme",
    event: str = "party/created",
    url: str | None = None,
    at: float = 0,
) -> Hook:
    return Hook(
        id=f"hook_{n:04d}",
        owner=owner,
        event=event,
        target_url=url or f"https://h{n}.example.com/hook",
        description=f"hook {n}",
        created_at=_t(at),
        updated_at=_t(at),
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # noqa: S106 - the spec's test secret
    )


def _attempt(delivery_id: str, number: int, at: float, status: int | None = 500) -> Attempt:
    return Attempt(
        delivery_id=delivery_id,
        number=number,
        started_at=_t(at),
        duration=0.25,
        status=status,
        error_kind=None if status and 200 <= status < 300 else ("http" if status else "timeout"),
        error=None if status and 200 <= status < 300 else "boom",
        response_excerpt="résumé ok",
    )


def _lease(at: float, seconds: float = 60) -> datetime:
    return _t(at + seconds)


def _fail_for_good(store: Store, hook_id: str, at: float, reason: str = "dead") -> str:
    # The one way a hook dies: an outcome the engine records when its retries ran out. A new
    # delivery of the hook is claimed and fails for good; every other claim this makes must be
    # the hook's own (they are then cancelled), so the check knows what it changed.
    hook = store.get_hook(hook_id)
    assert hook is not None, f"{hook_id} must exist"
    made = store.enqueue(owner=hook.owner, event=hook.event, body=b"{}", now=_t(at))
    (mine,) = [d for d in made if d.hook_id == hook_id]
    claims = store.claim_due(now=_t(at), limit=1000, lease_until=_lease(at))
    assert {c.hook.id for c in claims} == {hook_id}, "only the hook's own deliveries are due"
    (claim,) = [c for c in claims if c.delivery.id == mine.id]
    (result,) = store.record(
        [
            Outcome(
                delivery_id=mine.id,
                token=claim.token,
                kind=OutcomeKind.FAILED,
                attempt=_attempt(mine.id, 1, at, 500),
                reason=reason,
            )
        ],
        now=_t(at),
    )
    assert result.applied, "a failed-for-good outcome must apply"
    assert result.hook_effect is HookEffect.DEAD, "a failed-for-good outcome kills the hook"
    return mine.id


# -- hooks ------------------------------------------------------------------------------------


@_check
def check_add_and_get_hook(store: Store) -> None:
    hook = _hook(1)
    stored, created = store.add_hook(hook, max_per_owner=20)
    assert created, "a new hook must be created"
    assert stored == hook, f"add_hook must return the hook as given: {stored!r}"
    got = store.get_hook(hook.id)
    assert got == hook, f"get_hook must round-trip every field: {got!r} != {hook!r}"
    assert got is not None
    assert got.secret == hook.secret, "the secret must round-trip"
    assert store.get_hook("hook_missing") is None


@_check
def check_signing_key_round_trips(store: Store) -> None:
    # A v1a (ed25519) key is kept like the v1 secret: as given, through every read.
    key = "whsk_" + "A" * 86 + "=="
    hook = attrs.evolve(_hook(1), signing_key=key)
    store.add_hook(hook, max_per_owner=20)
    got = store.get_hook(hook.id)
    assert got is not None, "get_hook must find the hook"
    assert got.signing_key == key, "get_hook must keep signing_key"
    assert [h.signing_key for h in store.list_hooks(owner=hook.owner)] == [key]
    store.enqueue(owner=hook.owner, event=hook.event, body=b"{}", now=_t(0))
    (claim,) = store.claim_due(now=_t(0), limit=1, lease_until=_lease(0))
    assert claim.hook.signing_key == key, "a claim's hook must carry signing_key"


@_check
def check_unconfirmed_hook_receives_nothing_until_confirmed(store: Store) -> None:
    # Intent verification: an unconfirmed hook is stored, listed and counted, gets no fan-out
    # and cannot be revived; confirm_hook makes it active once, clearing what it waited with.
    hook = attrs.evolve(
        _hook(1),
        state=HookState.UNCONFIRMED,
        confirm_secret="s3cret-handshake",  # noqa: S106 - a test value
        confirm_by=_t(3600),
    )
    store.add_hook(hook, max_per_owner=20)
    got = store.get_hook(hook.id)
    assert got == hook, f"an unconfirmed hook must round-trip every field: {got!r}"
    assert store.enqueue(owner=hook.owner, event=hook.event, body=b"{}", now=_t(1)) == [], (
        "an unconfirmed hook must not receive deliveries"
    )
    assert store.stats().hooks["unconfirmed"] == 1
    assert [h.id for h in store.list_hooks(state=HookState.UNCONFIRMED)] == [hook.id]
    revived = store.revive_hook(hook.id, now=_t(2))
    assert revived is not None, "revive_hook must find the hook"
    assert revived.state is HookState.UNCONFIRMED, "revive_hook must not confirm a hook"
    confirmed = store.confirm_hook(hook.id, now=_t(3))
    assert confirmed is not None, "confirm_hook must confirm an unconfirmed hook"
    assert confirmed.state is HookState.ACTIVE
    assert (confirmed.confirm_secret, confirmed.confirm_by) == (None, None)
    assert confirmed.updated_at == _t(3)
    assert store.get_hook(hook.id) == confirmed
    assert store.confirm_hook(hook.id, now=_t(4)) is None, "confirming twice must do nothing"
    assert store.confirm_hook("hook_missing", now=_t(4)) is None
    assert len(store.enqueue(owner=hook.owner, event=hook.event, body=b"{}", now=_t(5))) == 1


@_check
def check_duplicate_subscription_returns_existing(store: Store) -> None:
    first, _ = store.add_hook(_hook(1, url="https://a.example.com/"), max_per_owner=20)
    again = _hook(2, url="https://a.example.com/")
    stored, created = store.add_hook(again, max_per_owner=20)
    assert not created
    assert stored.id == first.id
    assert len(store.list_hooks(owner="acme")) == 1


@_check
def check_owner_cap(store: Store) -> None:
    for n in range(3):
        store.add_hook(_hook(n), max_per_owner=3)
    try:
        store.add_hook(_hook(9), max_per_owner=3)
    except HookLimitReached:
        pass
    else:
        raise AssertionError("the fourth hook over a cap of 3 must raise HookLimitReached")
    assert store.get_hook(_hook(9).id) is None, "nothing is stored past the cap"
    # The cap is per owner, and a duplicate is not refused by it.
    store.add_hook(_hook(10, owner="other"), max_per_owner=3)
    _, created = store.add_hook(_hook(11, url=_hook(0).target_url), max_per_owner=3)
    assert not created


@_check
def check_list_hooks_filters_and_order(store: Store) -> None:
    store.add_hook(_hook(3, at=3), max_per_owner=None)
    store.add_hook(_hook(1, at=1, event="party/updated"), max_per_owner=None)
    store.add_hook(_hook(2, at=2, owner="other"), max_per_owner=None)
    assert [h.id for h in store.list_hooks(owner="acme")] == ["hook_0001", "hook_0003"]
    assert [h.id for h in store.list_hooks(event="party/created")] == ["hook_0002", "hook_0003"]
    assert [h.id for h in store.list_hooks()] == ["hook_0001", "hook_0002", "hook_0003"]
    assert store.list_hooks(state=HookState.DEAD) == []
    active = store.list_hooks(owner="acme", event="party/created", state=HookState.ACTIVE)
    assert [h.id for h in active] == ["hook_0003"]


@_check
def check_dead_hook_and_revive(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    _fail_for_good(store, "hook_0001", 10, reason="6 attempts failed")
    dead = store.get_hook("hook_0001")
    assert dead is not None
    assert dead.state is HookState.DEAD
    assert dead.dead_reason == "6 attempts failed"
    assert dead.dead_at == _t(10)
    assert dead.updated_at == _t(10)
    assert store.list_hooks(owner="acme", event="party/created", state=HookState.ACTIVE) == []
    assert store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(11)) == [], (
        "a dead hook receives nothing"
    )
    assert [h.id for h in store.list_hooks(state=HookState.DEAD)] == ["hook_0001"]
    revived = store.revive_hook("hook_0001", now=_t(20))
    assert revived is not None
    assert revived.state is HookState.ACTIVE
    assert revived.dead_reason is None
    assert revived.updated_at == _t(20)
    assert store.revive_hook("hook_missing", now=_t(20)) is None


@_check
def check_resubscribing_a_dead_hook_revives_it(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    _fail_for_good(store, "hook_0001", 1)
    stored, created = store.add_hook(_hook(2, url=_hook(1).target_url, at=5), max_per_owner=None)
    assert not created
    assert stored.id == "hook_0001"
    assert stored.state is HookState.ACTIVE


@_check
def check_remove_hook(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    store.add_hook(_hook(2), max_per_owner=None)
    assert store.remove_hook("hook_0001", now=_t(1)) == []
    assert store.get_hook("hook_0001") is None
    assert store.get_hook("hook_0002") is not None
    assert store.remove_hook("hook_0001", now=_t(2)) == []


@_check
def check_set_secret(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    new = "whsec_" + "A" * 44
    hook = store.set_secret(
        "hook_0001",
        secret=new,
        previous_secret=_hook(1).secret,
        previous_secret_until=_t(86400),
        now=_t(5),
    )
    assert hook is not None
    again = store.get_hook("hook_0001")
    assert again == hook
    assert again is not None
    assert again.secret == new
    assert again.previous_secret == _hook(1).secret
    assert again.previous_secret_until == _t(86400)
    assert (
        store.set_secret(
            "hook_x", secret=None, previous_secret=None, previous_secret_until=None, now=_t(5)
        )
        is None
    )


@_check
def check_hooks_of_one_endpoint_share_its_secrets(store: Store) -> None:
    # One secret per endpoint: a hook added to a URL its owner already has hooks to takes the
    # oldest one's secrets; another owner's hooks to the same URL do not count.
    first = attrs.evolve(_hook(1, url="https://a.example.com/h"), signing_key="whsk_" + "B" * 88)
    store.add_hook(first, max_per_owner=None)
    other_owner = attrs.evolve(
        _hook(2, owner="globex", url="https://a.example.com/h"), secret="whsec_" + "C" * 44
    )
    store.add_hook(other_owner, max_per_owner=None)
    joining = attrs.evolve(
        _hook(3, event="party/updated", url="https://a.example.com/h", at=1),
        secret="whsec_" + "D" * 44,
        signing_key=None,
    )
    stored, created = store.add_hook(joining, max_per_owner=None)
    assert created, "a hook of another event to the same URL is a new hook"
    assert (stored.secret, stored.signing_key) == (first.secret, first.signing_key), (
        "a hook joining an endpoint must take its secret and signing key"
    )
    got = store.get_hook(joining.id)
    assert got == stored, f"get_hook must return the hook as add_hook stored it: {got!r}"
    globex = store.get_hook(other_owner.id)
    assert globex is not None
    assert globex.secret == other_owner.secret, "another owner's endpoint keeps its own secret"
    alone = attrs.evolve(_hook(4, url="https://b.example.com/h"), secret="whsec_" + "E" * 44)
    assert store.add_hook(alone, max_per_owner=None)[0].secret == alone.secret, (
        "a hook to a new URL keeps the secret it was given"
    )


@_check
def check_update_hook(store: Store) -> None:
    update = getattr(store, "update_hook", None)
    if update is None:
        return  # optional: a store without it cannot serve PATCH (Dispatcher.update_hook)
    a = _hook(1, url="https://a.example.com/h")
    b = attrs.evolve(_hook(2, url="https://b.example.com/h"), secret="whsec_" + "F" * 44)
    store.add_hook(a, max_per_owner=None)
    store.add_hook(b, max_per_owner=None)
    moved = update(
        b.id, event="party/updated", target_url=b.target_url, description="moved", now=_t(2)
    )
    assert moved is not None, "update_hook must find the hook"
    assert (moved.event, moved.description, moved.updated_at) == ("party/updated", "moved", _t(2))
    assert moved.secret == b.secret, "a hook that stays at its URL keeps its secret"
    assert store.get_hook(b.id) == moved, "update_hook must store what it returns"
    active = store.list_hooks(owner="acme", event="party/updated", state=HookState.ACTIVE)
    assert [h.id for h in active] == [b.id], "the fan-out must follow the new event"
    refused: SubscriptionExists | None = None
    try:
        update(a.id, event="party/updated", target_url=b.target_url, description="", now=_t(3))
    except SubscriptionExists as exc:
        refused = exc
    assert refused is not None, "update_hook must refuse another hook's (event, target_url)"
    assert refused.hook_id == b.id, "SubscriptionExists must name the hook that has it"
    assert store.get_hook(a.id) == a, "a refused update must change nothing"
    joined = update(b.id, event="party/updated", target_url=a.target_url, description="", now=_t(4))
    assert joined is not None
    assert joined.secret == a.secret, "a hook moved to an endpoint must take its secret"
    assert store.get_hook(b.id) == joined
    missing = update(
        "hook_missing", event="x/y", target_url=a.target_url, description="", now=_t(5)
    )
    assert missing is None, "update_hook of an unknown id must return None"


# -- deliveries -------------------------------------------------------------------------------


@_check
def check_enqueue_fans_out_to_active_hooks_of_owner(store: Store) -> None:
    store.add_hook(_hook(5), max_per_owner=None)
    failed = _fail_for_good(store, "hook_0005", 0)
    store.add_hook(_hook(1), max_per_owner=None)
    store.add_hook(_hook(2), max_per_owner=None)
    store.add_hook(_hook(3, owner="other"), max_per_owner=None)
    store.add_hook(_hook(4, event="party/deleted"), max_per_owner=None)
    body = b'{"event":"party/created","payload":[{"id":1}]}'
    made = store.enqueue(owner="acme", event="party/created", body=body, now=_t(1))
    assert sorted(d.hook_id for d in made) == ["hook_0001", "hook_0002"]
    assert len({d.id for d in made}) == 2, "delivery ids are unique"
    for d in made:
        assert d.state is DeliveryState.PENDING
        assert d.attempts == 0
        assert d.next_attempt_at == _t(1)
        assert d.created_at == _t(1)
        assert d.owner == "acme"
        assert d.event == "party/created"
        assert store.get_delivery(d.id) == d
    assert store.enqueue(owner="acme", event="task/created", body=b"{}", now=_t(1)) == []
    assert sorted(d.id for d in store.list_deliveries()) == sorted(
        [failed, *(d.id for d in made)]
    ), "an emit with no hook stores nothing"


@_check
def check_claim_due_leases_and_returns_body(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    body = '{"event":"party/created","payload":[{"name":"Zoë"}]}'.encode()
    (d,) = store.enqueue(owner="acme", event="party/created", body=body, now=_t(0))
    assert store.claim_due(now=_t(-1), limit=10, lease_until=_lease(-1)) == []
    (claim,) = store.claim_due(now=_t(0), limit=10, lease_until=_lease(0))
    assert claim.delivery.id == d.id
    assert claim.delivery.state is DeliveryState.IN_FLIGHT
    assert claim.body == body, "the body must come back byte for byte"
    assert claim.hook.id == "hook_0001"
    assert claim.hook.secret == _hook(1).secret
    assert claim.lease_until == _lease(0)
    assert claim.token
    got = store.get_delivery(d.id)
    assert got is not None
    assert got.state is DeliveryState.IN_FLIGHT
    assert store.claim_due(now=_t(1), limit=10, lease_until=_lease(1)) == [], (
        "a claimed delivery is not claimed again while its lease lasts"
    )


@_check
def check_claim_order_and_limit(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    ids = [
        store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(i))[0].id
        for i in range(5)
    ]
    first = store.claim_due(now=_t(10), limit=2, lease_until=_lease(10))
    assert [c.delivery.id for c in first] == ids[:2], "oldest due first"
    rest = store.claim_due(now=_t(10), limit=10, lease_until=_lease(10))
    assert [c.delivery.id for c in rest] == ids[2:]


@_check
def check_expired_lease_is_claimable_and_fenced(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    (d,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(0))
    (old,) = store.claim_due(now=_t(0), limit=1, lease_until=_lease(0, 30))
    assert store.next_due_at() == _lease(0, 30), "an in-flight delivery is due at its lease end"
    (new,) = store.claim_due(now=_t(30), limit=1, lease_until=_lease(30, 30))
    assert new.delivery.id == d.id
    assert new.token != old.token, "every claim gets a new token"
    stale = Outcome(
        delivery_id=d.id,
        token=old.token,
        kind=OutcomeKind.DELIVERED,
        attempt=_attempt(d.id, 1, 0, 200),
    )
    (result,) = store.record([stale], now=_t(31))
    assert not result.applied, "a stale claim cannot record an outcome"
    assert store.attempts(d.id) == [], "nothing of a stale outcome is written"
    fresh = Outcome(
        delivery_id=d.id,
        token=new.token,
        kind=OutcomeKind.DELIVERED,
        attempt=_attempt(d.id, 1, 30, 200),
    )
    (result,) = store.record([fresh], now=_t(32))
    assert result.applied
    got = store.get_delivery(d.id)
    assert got is not None
    assert got.state is DeliveryState.DELIVERED
    assert got.next_attempt_at is None
    (again,) = store.record([fresh], now=_t(33))
    assert not again.applied, "an outcome applies once"


@_check
def check_record_retry_then_delivered(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    (d,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(0))
    (claim,) = store.claim_due(now=_t(0), limit=1, lease_until=_lease(0))
    retry = Outcome(
        delivery_id=d.id,
        token=claim.token,
        kind=OutcomeKind.RETRY,
        attempt=_attempt(d.id, 1, 0, 503),
        next_attempt_at=_t(5),
    )
    (result,) = store.record([retry], now=_t(1))
    assert result.applied
    got = store.get_delivery(d.id)
    assert got is not None
    assert got.state is DeliveryState.PENDING
    assert got.attempts == 1
    assert got.next_attempt_at == _t(5)
    assert got.last_error == "HTTP 503"
    assert store.next_due_at() == _t(5)
    assert store.claim_due(now=_t(4), limit=1, lease_until=_lease(4)) == []
    (claim,) = store.claim_due(now=_t(5), limit=1, lease_until=_lease(5))
    assert claim.delivery.attempts == 1
    ok = Outcome(
        delivery_id=d.id,
        token=claim.token,
        kind=OutcomeKind.DELIVERED,
        attempt=_attempt(d.id, 2, 5, 200),
    )
    store.record([ok], now=_t(6))
    got = store.get_delivery(d.id)
    assert got is not None
    assert got.state is DeliveryState.DELIVERED
    assert got.attempts == 2
    log = store.attempts(d.id)
    assert [a.number for a in log] == [1, 2]
    assert log[0] == _attempt(d.id, 1, 0, 503), f"the attempt log round-trips: {log[0]!r}"
    assert log[1].status == 200
    assert store.next_due_at() is None


@_check
def check_record_failed_kills_hook_and_cancels_pending(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    store.add_hook(_hook(2, event="party/updated"), max_per_owner=None)
    (first,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(0))
    (second,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(1))
    (other,) = store.enqueue(owner="acme", event="party/updated", body=b"{}", now=_t(1))
    (claim,) = store.claim_due(now=_t(0), limit=1, lease_until=_lease(0))
    assert claim.delivery.id == first.id
    outcome = Outcome(
        delivery_id=first.id,
        token=claim.token,
        kind=OutcomeKind.FAILED,
        attempt=_attempt(first.id, 1, 0, 500),
        reason="6 attempts failed",
    )
    (result,) = store.record([outcome], now=_t(2))
    assert result.applied
    assert result.hook_id == "hook_0001"
    assert list(result.cancelled) == [second.id]
    hook = store.get_hook("hook_0001")
    assert hook is not None
    assert hook.state is HookState.DEAD
    assert hook.dead_reason == "6 attempts failed"
    assert hook.dead_at == _t(2)
    failed = store.get_delivery(first.id)
    assert failed is not None
    assert failed.state is DeliveryState.FAILED
    assert failed.attempts == 1
    assert failed.last_error == "HTTP 500"
    cancelled = store.get_delivery(second.id)
    assert cancelled is not None
    assert cancelled.state is DeliveryState.CANCELLED
    untouched = store.get_delivery(other.id)
    assert untouched is not None
    assert untouched.state is DeliveryState.PENDING, "other hooks are untouched"


@_check
def check_record_gone_removes_hook(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    (d1,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(0))
    (d2,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(1))
    (claim,) = store.claim_due(now=_t(0), limit=1, lease_until=_lease(0))
    gone = Outcome(
        delivery_id=d1.id,
        token=claim.token,
        kind=OutcomeKind.GONE,
        attempt=_attempt(d1.id, 1, 0, 410),
    )
    (result,) = store.record([gone], now=_t(2))
    assert result.cancelled == (d2.id,)
    assert store.get_hook("hook_0001") is None
    got1, got2 = store.get_delivery(d1.id), store.get_delivery(d2.id)
    assert got1 is not None
    assert got2 is not None
    assert got1.state is DeliveryState.CANCELLED
    assert got2.state is DeliveryState.CANCELLED
    assert [a.status for a in store.attempts(d1.id)] == [410], "the log outlives the hook"
    assert store.claim_due(now=_t(100), limit=10, lease_until=_lease(100)) == []


@_check
def check_release_keeps_attempts(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    (d,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(0))
    (claim,) = store.claim_due(now=_t(0), limit=1, lease_until=_lease(0))
    (result,) = store.record(
        [Outcome(delivery_id=d.id, token=claim.token, kind=OutcomeKind.RELEASE)], now=_t(1)
    )
    assert result.applied
    got = store.get_delivery(d.id)
    assert got is not None
    assert got.state is DeliveryState.PENDING
    assert got.attempts == 0
    assert store.attempts(d.id) == []
    assert len(store.claim_due(now=_t(1), limit=1, lease_until=_lease(1))) == 1


@_check
def check_removing_hook_cancels_in_flight_and_fences_it(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    (d,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(0))
    (claim,) = store.claim_due(now=_t(0), limit=1, lease_until=_lease(0))
    assert store.remove_hook("hook_0001", now=_t(1)) == [d.id]
    ok = Outcome(
        delivery_id=d.id,
        token=claim.token,
        kind=OutcomeKind.DELIVERED,
        attempt=_attempt(d.id, 1, 0, 200),
    )
    (result,) = store.record([ok], now=_t(2))
    assert not result.applied, "the outcome of a cancelled delivery does not apply"
    assert result.logged, "the attempt in flight when its hook was removed is logged"
    assert result.hook_id == "hook_0001"
    assert store.attempts(d.id) == [ok.attempt], "the receiver may have got it: it is logged"
    got = store.get_delivery(d.id)
    assert got is not None
    assert got.state is DeliveryState.CANCELLED, "the delivery stays cancelled"
    assert got.next_attempt_at is None
    assert got.attempts == 1, "attempts counts the logged attempt"
    (again,) = store.record([ok], now=_t(3))
    assert not again.applied
    assert not again.logged, "a late attempt is logged once"
    assert store.attempts(d.id) == [ok.attempt]


@_check
def check_dead_hook_logs_the_attempt_in_flight(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    (d,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(0))
    (claim,) = store.claim_due(now=_t(0), limit=1, lease_until=_lease(0))
    # Another delivery of the hook fails for good while this one is in flight.
    (other,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(1))
    (other_claim,) = store.claim_due(now=_t(1), limit=1, lease_until=_lease(1))
    (dead,) = store.record(
        [
            Outcome(
                delivery_id=other.id,
                token=other_claim.token,
                kind=OutcomeKind.FAILED,
                attempt=_attempt(other.id, 1, 1, 500),
                reason="retries exhausted",
            )
        ],
        now=_t(1),
    )
    assert (dead.applied, dead.hook_effect, dead.cancelled) == (True, HookEffect.DEAD, (d.id,))
    failed = Outcome(
        delivery_id=d.id,
        token=claim.token,
        kind=OutcomeKind.RETRY,
        attempt=_attempt(d.id, 1, 0, 503),
        next_attempt_at=_t(5),
    )
    (result,) = store.record([failed], now=_t(2))
    assert (result.applied, result.logged) == (False, True)
    assert store.attempts(d.id) == [failed.attempt]
    got = store.get_delivery(d.id)
    assert got is not None
    assert (got.state, got.next_attempt_at) == (DeliveryState.CANCELLED, None)
    assert store.claim_due(now=_t(10), limit=10, lease_until=_lease(10)) == []
    assert store.next_due_at() is None, "a late attempt makes nothing due"


@_check
def check_gone_in_a_batch_logs_the_other_attempts_in_flight(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    first, second, third = (
        store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(i))[0]
        for i in range(3)
    )
    claims = store.claim_due(now=_t(3), limit=2, lease_until=_lease(3))
    assert [c.delivery.id for c in claims] == [first.id, second.id]
    gone = Outcome(
        delivery_id=first.id,
        token=claims[0].token,
        kind=OutcomeKind.GONE,
        attempt=_attempt(first.id, 1, 3, 410),
    )
    ok = Outcome(
        delivery_id=second.id,
        token=claims[1].token,
        kind=OutcomeKind.DELIVERED,
        attempt=_attempt(second.id, 1, 4, 200),
    )
    results = store.record([gone, ok], now=_t(5))
    assert [(r.applied, r.logged) for r in results] == [(True, True), (False, True)]
    assert set(results[0].cancelled) == {second.id, third.id}
    assert store.attempts(second.id) == [ok.attempt]
    assert store.attempts(third.id) == []
    for d in (first, second, third):
        got = store.get_delivery(d.id)
        assert got is not None
        assert got.state is DeliveryState.CANCELLED, f"{d.id} stays cancelled"


@_check
def check_cancelled_after_takeover_refuses_the_old_claim(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    (d,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(0))
    (old,) = store.claim_due(now=_t(0), limit=1, lease_until=_lease(0, 30))
    (new,) = store.claim_due(now=_t(30), limit=1, lease_until=_lease(30, 30))
    assert store.remove_hook("hook_0001", now=_t(31)) == [d.id]
    stale = Outcome(
        delivery_id=d.id,
        token=old.token,
        kind=OutcomeKind.DELIVERED,
        attempt=_attempt(d.id, 1, 0, 200),
    )
    (result,) = store.record([stale], now=_t(32))
    assert (result.applied, result.logged) == (False, False), "a taken-over claim logs nothing"
    assert store.attempts(d.id) == []
    late = Outcome(
        delivery_id=d.id,
        token=new.token,
        kind=OutcomeKind.DELIVERED,
        attempt=_attempt(d.id, 1, 30, 200),
    )
    (result,) = store.record([late], now=_t(33))
    assert (result.applied, result.logged) == (False, True)
    assert store.attempts(d.id) == [late.attempt]


@_check
def check_requeue_forgets_the_cancelled_claim(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    (d,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(0))
    (claim,) = store.claim_due(now=_t(0), limit=1, lease_until=_lease(0))
    _fail_for_good(store, "hook_0001", 1, reason="retries exhausted")
    store.revive_hook("hook_0001", now=_t(2))
    requeued = store.requeue(d.id, now=_t(3))
    assert requeued is not None
    assert requeued.state is DeliveryState.PENDING
    late = Outcome(
        delivery_id=d.id,
        token=claim.token,
        kind=OutcomeKind.DELIVERED,
        attempt=_attempt(d.id, 1, 0, 200),
    )
    (result,) = store.record([late], now=_t(4))
    assert (result.applied, result.logged) == (False, False)
    assert store.attempts(d.id) == []
    got = store.get_delivery(d.id)
    assert got is not None
    assert (got.state, got.attempts) == (DeliveryState.PENDING, 0)


@_check
def check_record_batch_is_in_order(store: Store) -> None:
    for n in range(3):
        store.add_hook(_hook(n), max_per_owner=None)
    store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(0))
    claims = store.claim_due(now=_t(0), limit=10, lease_until=_lease(0))
    assert len(claims) == 3
    outcomes = [
        Outcome(
            delivery_id=c.delivery.id,
            token=c.token if i != 1 else "not-the-token",
            kind=OutcomeKind.DELIVERED,
            attempt=_attempt(c.delivery.id, 1, 0, 200),
        )
        for i, c in enumerate(claims)
    ]
    results = store.record(outcomes, now=_t(1))
    assert [r.delivery_id for r in results] == [c.delivery.id for c in claims]
    assert [r.applied for r in results] == [True, False, True]


@_check
def check_per_host_limit(store: Store) -> None:
    store.add_hook(_hook(1, url="https://slow.example.com/a"), max_per_owner=None)
    store.add_hook(_hook(2, url="https://SLOW.example.com/b"), max_per_owner=None)
    store.add_hook(_hook(3, url="https://fast.example.com/"), max_per_owner=None)
    for i in range(3):
        store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(i))
    claims = store.claim_due(
        now=_t(10), limit=100, lease_until=_lease(10), max_in_flight_per_host=2
    )
    hosts = sorted(c.hook.target_url.split("/")[2].lower() for c in claims)
    assert hosts == ["fast.example.com"] * 2 + ["slow.example.com"] * 2, hosts
    more = store.claim_due(now=_t(10), limit=100, lease_until=_lease(10), max_in_flight_per_host=2)
    assert [c.hook.target_url for c in more] == []
    everything = store.claim_due(now=_t(10), limit=100, lease_until=_lease(10))
    assert len(everything) == 5, "without a limit every due delivery is claimed"


@_check
def check_requeue(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    (d,) = store.enqueue(owner="acme", event="party/created", body=b"body", now=_t(0))
    (claim,) = store.claim_due(now=_t(0), limit=1, lease_until=_lease(0))
    store.record(
        [
            Outcome(
                delivery_id=d.id,
                token=claim.token,
                kind=OutcomeKind.FAILED,
                attempt=_attempt(d.id, 1, 0, 500),
                reason="dead",
            )
        ],
        now=_t(1),
    )
    store.revive_hook("hook_0001", now=_t(2))
    again = store.requeue(d.id, now=_t(3))
    assert again is not None
    assert again.id == d.id
    assert again.state is DeliveryState.PENDING
    assert again.attempts == 0
    assert again.next_attempt_at == _t(3)
    (claim,) = store.claim_due(now=_t(3), limit=1, lease_until=_lease(3))
    assert claim.body == b"body"
    assert store.requeue("msg_missing", now=_t(3)) is None


@_check
def check_list_deliveries(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    store.add_hook(_hook(2, owner="other"), max_per_owner=None)
    a = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(0))[0]
    b = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(1))[0]
    c = store.enqueue(owner="other", event="party/created", body=b"{}", now=_t(2))[0]
    assert [d.id for d in store.list_deliveries(owner="acme")] == [b.id, a.id], "newest first"
    assert [d.id for d in store.list_deliveries(hook_id="hook_0002")] == [c.id]
    assert [d.id for d in store.list_deliveries(limit=1)] == [c.id]
    assert store.list_deliveries(state=DeliveryState.DELIVERED) == []


@_check
def check_stats(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    store.add_hook(_hook(2, owner="other"), max_per_owner=None)
    _fail_for_good(store, "hook_0002", 0)
    store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(5))
    store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(6))
    stats = store.stats()
    assert stats.hooks == {"active": 1, "dead": 1, "unconfirmed": 0}
    assert stats.deliveries["pending"] == 2
    assert stats.deliveries["delivered"] == 0
    assert set(stats.deliveries) == {s.value for s in DeliveryState}
    assert stats.oldest_pending_at == _t(5)
    other = store.stats(owner="other")
    assert other.hooks == {"active": 0, "dead": 1, "unconfirmed": 0}
    assert other.oldest_pending_at is None


@_check
def check_stats_counts_blocked_deliveries(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    store.add_hook(_hook(2, owner="other"), max_per_owner=None)
    made = [
        d
        for owner in ("acme", "acme", "other")
        for d in store.enqueue(owner=owner, event="party/created", body=b"{}", now=_t(0))
    ]
    claims = {c.delivery.id: c for c in store.claim_due(now=_t(0), limit=3, lease_until=_lease(0))}
    blocked = Attempt(
        delivery_id="",
        number=1,
        started_at=_t(0),
        duration=0.0,
        status=None,
        error_kind="blocked",
        error="h1.example.com resolves to 10.0.0.1, which is private",
    )
    outcomes = [
        Outcome(
            delivery_id=d.id,
            token=claims[d.id].token,
            kind=OutcomeKind.RETRY,
            attempt=attrs.evolve(blocked, delivery_id=d.id)
            if n != 1
            else _attempt(d.id, 1, 0, 503),
            next_attempt_at=_t(5),
        )
        for n, d in enumerate(made)
    ]
    store.record(outcomes, now=_t(1))
    assert store.stats().blocked == 2, "pending deliveries whose last attempt was blocked"
    assert store.stats(owner="acme").blocked == 1
    assert store.stats(owner="other").blocked == 1
    store.remove_hook("hook_0002", now=_t(2))  # its delivery is cancelled: final, not counted
    assert store.stats().blocked == 1


@_check
def check_outbox_stats(store: Store) -> None:
    outbox_stats = getattr(store, "outbox_stats", None)
    if outbox_stats is None:
        return  # optional: a store without it shows no due or retrying counts
    store.add_hook(_hook(1), max_per_owner=None)
    empty = outbox_stats(now=_t(0))
    assert (empty.due, empty.retrying, empty.oldest_due_at) == (0, 0, None)
    (a,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(0))
    (b,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(1))
    (c,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(2))
    assert outbox_stats(now=_t(1)).due == 2, "due means next_attempt_at <= now"
    claims = store.claim_due(now=_t(2), limit=2, lease_until=_lease(2, 30))
    assert [x.delivery.id for x in claims] == [a.id, b.id]
    (result,) = store.record(
        [
            Outcome(
                delivery_id=a.id,
                token=claims[0].token,
                kind=OutcomeKind.RETRY,
                attempt=_attempt(a.id, 1, 2),
                next_attempt_at=_t(100),
            )
        ],
        now=_t(3),
    )
    assert result.applied
    now = outbox_stats(now=_t(10))
    assert (now.due, now.retrying, now.oldest_due_at) == (1, 1, _t(2)), (
        "c is due; b is in flight under its lease; a waits for its retry"
    )
    later = outbox_stats(now=_t(40))
    assert (later.due, later.oldest_due_at) == (2, _t(2)), "b's lease expired at 32: due again"
    assert outbox_stats(now=_t(200)).due == 3
    assert store.stats().deliveries["pending"] == 2, "outbox_stats changes nothing"
    assert c.id


_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@_check
def check_trace_context_travels_with_the_delivery(store: Store) -> None:
    if "trace_context" not in inspect.signature(store.enqueue).parameters:
        return  # optional: a store without it works until tracing is turned on
    store.add_hook(_hook(1), max_per_owner=None)
    store.add_hook(_hook(2), max_per_owner=None)
    traced = store.enqueue(
        owner="acme", event="party/created", body=b"{}", now=_t(0), trace_context=_TRACEPARENT
    )
    assert len(traced) == 2
    store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(1))
    claims = store.claim_due(now=_t(2), limit=10, lease_until=_lease(2))
    assert [c.trace_context for c in claims] == [_TRACEPARENT, _TRACEPARENT, None, None], (
        "every delivery of a traced emit carries its trace context; others carry None"
    )
    first = claims[0]
    (result,) = store.record(
        [
            Outcome(
                delivery_id=first.delivery.id,
                token=first.token,
                kind=OutcomeKind.RETRY,
                attempt=_attempt(first.delivery.id, 1, 2),
                next_attempt_at=_t(10),
            )
        ],
        now=_t(3),
    )
    assert result.applied
    (again,) = store.claim_due(now=_t(10), limit=10, lease_until=_lease(10))
    assert again.delivery.id == first.delivery.id
    assert again.trace_context == _TRACEPARENT, "a retry is linked to the same emit"


@_check
def check_purge(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    (old,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(0))
    (claim,) = store.claim_due(now=_t(0), limit=1, lease_until=_lease(0))
    store.record(
        [
            Outcome(
                delivery_id=old.id,
                token=claim.token,
                kind=OutcomeKind.DELIVERED,
                attempt=_attempt(old.id, 1, 0, 200),
            )
        ],
        now=_t(1),
    )
    (pending,) = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(2))
    assert store.purge(before=_t(1)) == 0, "purge is strictly before"
    assert store.purge(before=_t(100)) == 1
    assert store.get_delivery(old.id) is None
    assert store.attempts(old.id) == []
    assert store.get_delivery(pending.id) is not None, "deliveries not final are kept"


@_check
def check_purge_in_batches(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    store.add_hook(_hook(2), max_per_owner=None)
    done: list[str] = []
    for n in range(3):  # 6 deliveries, final at t=1, 2, 3 (two by two)
        deliveries = store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(0))
        claims = store.claim_due(now=_t(0), limit=2, lease_until=_lease(0))
        assert len(claims) == 2 == len(deliveries)
        store.record(
            [
                Outcome(delivery_id=c.delivery.id, token=c.token, kind=OutcomeKind.DELIVERED)
                for c in claims
            ],
            now=_t(n + 1),
        )
        done.extend(c.delivery.id for c in claims)
    assert store.purge(before=_t(100), limit=4) == 4, "purge deletes at most limit"
    kept = [d for d in done if store.get_delivery(d) is not None]
    assert kept == done[4:], "purge deletes the oldest first"
    assert store.purge(before=_t(100), limit=4) == 2
    assert store.purge(before=_t(100), limit=4) == 0


# -- ordering keys ----------------------------------------------------------------------------


def _keyed(store: Store, key: str | None, at: float, *, body: bytes = b"{}") -> str:
    """Enqueue one event with an ordering key (``None``: without one); the first delivery's
    id."""
    if key is None:
        made = store.enqueue(owner="acme", event="party/created", body=body, now=_t(at))
    else:
        made = store.enqueue(
            owner="acme", event="party/created", body=body, now=_t(at), ordering_key=key
        )
    assert made, "the event must fan out"
    return made[0].id


def _claimed_ids(store: Store, at: float, *, limit: int = 50, lease: float = 60) -> list[str]:
    return [
        c.delivery.id
        for c in store.claim_due(now=_t(at), limit=limit, lease_until=_lease(at, lease))
    ]


def _finish(store: Store, claim_id: str, token: str, at: float, kind: OutcomeKind) -> None:
    status = {OutcomeKind.DELIVERED: 200, OutcomeKind.GONE: 410}.get(kind, 500)
    (result,) = store.record(
        [
            Outcome(
                delivery_id=claim_id,
                token=token,
                kind=kind,
                attempt=_attempt(claim_id, 1, at, status),
                next_attempt_at=_t(at + 100) if kind is OutcomeKind.RETRY else None,
            )
        ],
        now=_t(at),
    )
    assert result.applied, f"the outcome of the claim must apply: {result!r}"


def _claim_map(store: Store, at: float, *, lease: float = 60) -> dict[str, str]:
    """Claim what is due: delivery id -> token."""
    return {
        c.delivery.id: c.token
        for c in store.claim_due(now=_t(at), limit=50, lease_until=_lease(at, lease))
    }


@_check
def check_ordering_key_one_at_a_time_in_emit_order(store: Store) -> None:
    # Deliveries of one hook and key go one at a time, in emit order; other keys and
    # deliveries without a key are not held back.
    store.add_hook(_hook(1), max_per_owner=None)
    k1 = [_keyed(store, "party:1", i) for i in range(3)]
    free = _keyed(store, None, 1)
    k2 = _keyed(store, "party:2", 1)
    got = store.get_delivery(k1[1])
    assert got is not None, "a waiting delivery must be stored"
    assert (got.state, got.ordering_key, got.next_attempt_at) == (
        DeliveryState.PENDING,
        "party:1",
        None,
    ), f"a waiting delivery is pending, keeps its key and has no next attempt time: {got!r}"
    claims = {
        c.delivery.id: c for c in store.claim_due(now=_t(10), limit=50, lease_until=_lease(10))
    }
    assert set(claims) == {k1[0], free, k2}, (
        "only the first delivery of a key may be claimed; other keys and keyless ones go too"
    )
    assert claims[k1[0]].delivery.ordering_key == "party:1", "a claim carries the ordering key"
    assert claims[free].delivery.ordering_key is None
    assert _claimed_ids(store, 10) == [], "the next of a key waits while the first is in flight"
    for n in (1, 2):
        _finish(store, k1[n - 1], claims[k1[n - 1]].token, 11 + n, OutcomeKind.DELIVERED)
        following = store.get_delivery(k1[n])
        assert following is not None
        assert following.next_attempt_at == _t(11 + n), (
            f"the next of a key is due when the one before it is delivered: {following!r}"
        )
        claims = {
            c.delivery.id: c for c in store.claim_due(now=_t(20), limit=50, lease_until=_lease(20))
        }
        assert list(claims) == [k1[n]], (
            f"when a delivery of a key is delivered, the next one (emit order) is due: {claims}"
        )
    _finish(store, k1[2], claims[k1[2]].token, 21, OutcomeKind.DELIVERED)
    # Once the key is idle, a new emit with it is due at once.
    k1_next = _keyed(store, "party:1", 22)
    assert _claimed_ids(store, 22) == [k1_next], "a key with no open delivery does not wait"


@_check
def check_ordering_key_retry_holds_back_only_its_key(store: Store) -> None:
    # A delivery waiting on a retry keeps its key's turn: the rest of its key waits, other
    # keys of the same hook (and host) go on, under the per-host limit as usual.
    store.add_hook(_hook(1), max_per_owner=None)
    first = _keyed(store, "party:1", 0)
    second = _keyed(store, "party:1", 1)
    claims = _claim_map(store, 1)
    assert list(claims) == [first]
    _finish(store, first, claims[first], 2, OutcomeKind.RETRY)  # due again at 102
    other = _keyed(store, "party:2", 3)
    free = _keyed(store, None, 3)
    got = store.claim_due(now=_t(50), limit=50, lease_until=_lease(50), max_in_flight_per_host=5)
    assert {c.delivery.id for c in got} == {other, free}, (
        "a retry holds back its own key only, never the hook or the host"
    )
    assert store.next_due_at() == _t(102), "the retry is the next thing due"
    if hasattr(store, "outbox_stats"):
        stats = store.outbox_stats(now=_t(50))
        assert stats.due == 0, f"a delivery waiting for its key's turn is not due: {stats!r}"
    claims = _claim_map(store, 102)
    assert list(claims) == [first], "the retry comes before the rest of its key"
    _finish(store, first, claims[first], 103, OutcomeKind.DELIVERED)
    assert _claimed_ids(store, 104) == [second]


@_check
def check_ordering_key_expired_lease_keeps_the_turn(store: Store) -> None:
    # A worker killed mid-attempt: its claim's lease runs out and the same delivery is due
    # again; the next of its key must not overtake it.
    store.add_hook(_hook(1), max_per_owner=None)
    first = _keyed(store, "party:1", 0)
    second = _keyed(store, "party:1", 1)
    old = _claim_map(store, 1, lease=30)
    assert list(old) == [first]
    again = _claim_map(store, 31)
    assert list(again) == [first], "the re-claimed delivery keeps its key's turn"
    (stale,) = store.record(
        [
            Outcome(
                delivery_id=first,
                token=old[first],
                kind=OutcomeKind.DELIVERED,
                attempt=_attempt(first, 1, 31, 200),
            )
        ],
        now=_t(32),
    )
    assert not stale.applied
    assert _claimed_ids(store, 33) == [], "a stale outcome hands the turn to no one"
    _finish(store, first, again[first], 34, OutcomeKind.DELIVERED)
    assert _claimed_ids(store, 35) == [second]


@_check
def check_ordering_key_is_per_hook(store: Store) -> None:
    # The same key on two hooks is two keys: each hook gets its first delivery at once.
    store.add_hook(_hook(1), max_per_owner=None)
    store.add_hook(_hook(2, at=1), max_per_owner=None)
    made = store.enqueue(
        owner="acme", event="party/created", body=b"{}", now=_t(2), ordering_key="party:1"
    )
    later = store.enqueue(
        owner="acme", event="party/created", body=b"{}", now=_t(3), ordering_key="party:1"
    )
    assert [d.ordering_key for d in made] == ["party:1", "party:1"]
    assert set(_claimed_ids(store, 4)) == {d.id for d in made}, "one turn per hook and key"
    assert {d.id for d in later}.isdisjoint(_claimed_ids(store, 4))


@_check
def check_ordering_key_head_failing_or_gone_cancels_the_rest(store: Store) -> None:
    # A delivery that fails for good kills its hook, and a 410 removes it: either way the
    # rest of its key is cancelled with the hook's other open deliveries; nothing is due.
    store.add_hook(_hook(1), max_per_owner=None)
    store.add_hook(_hook(2, event="party/updated"), max_per_owner=None)
    first = _keyed(store, "party:1", 0)
    rest = [_keyed(store, "party:1", 1), _keyed(store, "party:1", 2)]
    claims = _claim_map(store, 3)
    _finish(store, first, claims[first], 4, OutcomeKind.FAILED)
    for delivery_id in rest:
        got = store.get_delivery(delivery_id)
        assert got is not None
        assert got.state is DeliveryState.CANCELLED, "the rest of a failed key is cancelled"
    assert _claimed_ids(store, 5) == []
    # Revived with its deliveries queued again (in any order): the key goes in emit order.
    store.revive_hook("hook_0001", now=_t(6))
    for delivery_id in [*reversed(rest), first]:
        store.requeue(delivery_id, now=_t(6))
    order: list[str] = []
    for step in range(3):
        claims = _claim_map(store, 7 + step)
        assert len(claims) == 1, f"one at a time after a revival: {claims}"
        (delivery_id,) = claims
        order.append(delivery_id)
        _finish(store, delivery_id, claims[delivery_id], 7 + step, OutcomeKind.DELIVERED)
    assert order == [first, *rest], "redeliveries of a key go in emit order"
    # 410: the hook is removed, the rest of the key with it.
    head = _keyed(store, "party:1", 20)
    tail = _keyed(store, "party:1", 21)
    claims = _claim_map(store, 22)
    assert list(claims) == [head]
    _finish(store, head, claims[head], 23, OutcomeKind.GONE)
    got = store.get_delivery(tail)
    assert got is not None
    assert got.state is DeliveryState.CANCELLED, "a 410 cancels the rest of the key"
    assert _claimed_ids(store, 24) == []


@_check
def check_ordering_key_hook_removed_mid_flight(store: Store) -> None:
    # Unsubscribing cancels the whole key, the one in flight too: its late outcome is logged
    # and hands the turn to no one.
    store.add_hook(_hook(1), max_per_owner=None)
    first = _keyed(store, "party:1", 0)
    second = _keyed(store, "party:1", 1)
    claims = _claim_map(store, 2)
    assert sorted(store.remove_hook("hook_0001", now=_t(3))) == sorted([first, second])
    (late,) = store.record(
        [
            Outcome(
                delivery_id=first,
                token=claims[first],
                kind=OutcomeKind.DELIVERED,
                attempt=_attempt(first, 1, 2, 200),
            )
        ],
        now=_t(4),
    )
    assert late.verdict is Verdict.LATE
    got = store.get_delivery(second)
    assert got is not None
    assert got.state is DeliveryState.CANCELLED
    assert _claimed_ids(store, 5) == []


@_check
def check_ordering_key_redelivery_waits_for_its_turn(store: Store) -> None:
    # A redelivered delivery of a key waits while another of its key is in flight; older
    # than a pending one that has the turn, it takes the turn from it (emit order).
    store.add_hook(_hook(1), max_per_owner=None)
    old = _keyed(store, "party:1", 0)
    claims = _claim_map(store, 1)
    _finish(store, old, claims[old], 2, OutcomeKind.DELIVERED)
    newer = _keyed(store, "party:1", 3)
    claims = _claim_map(store, 4)
    assert list(claims) == [newer]
    store.requeue(old, now=_t(5))
    assert _claimed_ids(store, 5) == [], "a redelivery waits while its key is in flight"
    _finish(store, newer, claims[newer], 6, OutcomeKind.RETRY)  # newer: due again at 106
    assert _claimed_ids(store, 7) == [], "a retry keeps its key's turn"
    claims = _claim_map(store, 106)
    assert list(claims) == [newer]
    _finish(store, newer, claims[newer], 107, OutcomeKind.DELIVERED)
    claims = _claim_map(store, 108)
    assert list(claims) == [old], "then the redelivery has the turn"
    _finish(store, old, claims[old], 109, OutcomeKind.DELIVERED)
    # A redelivery older than the pending delivery that has the turn takes it (emit order).
    newest = _keyed(store, "party:1", 110)
    store.requeue(old, now=_t(111))
    claims = _claim_map(store, 112)
    assert list(claims) == [old], "an older redelivery goes before a pending newer one"
    _finish(store, old, claims[old], 113, OutcomeKind.DELIVERED)
    assert _claimed_ids(store, 114) == [newest]


@_check
def check_ordering_keys_in_one_enqueue_many(store: Store) -> None:
    # enqueue_many (when the store has it) keeps the order of its events within a key.
    enqueue_many = getattr(store, "enqueue_many", None)
    if enqueue_many is None:
        return
    store.add_hook(_hook(1), max_per_owner=None)
    made = enqueue_many(
        [("acme", "party/created", b'{"n": %d}' % n) for n in range(4)],
        now=_t(0),
        ordering_keys=["party:1", None, "party:1", "party:2"],
    )
    assert [d.ordering_key for d in made] == ["party:1", None, "party:1", "party:2"]
    claims = _claim_map(store, 1)
    assert set(claims) == {made[0].id, made[1].id, made[3].id}
    _finish(store, made[0].id, claims[made[0].id], 2, OutcomeKind.DELIVERED)
    assert _claimed_ids(store, 3) == [made[2].id]


@_check
def check_concurrent_claims_never_share(store: Store) -> None:
    store.add_hook(_hook(1), max_per_owner=None)
    for _ in range(200):
        store.enqueue(owner="acme", event="party/created", body=b"{}", now=_t(0))
    seen: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while claims := store.claim_due(now=_t(1), limit=7, lease_until=_lease(1)):
                with lock:
                    seen.extend(c.delivery.id for c in claims)
        except BaseException as exc:  # noqa: BLE001 - any error in a thread is reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(seen) == 200
    assert len(set(seen)) == 200, "no delivery is claimed twice"


# -- batching (stores that say they batch: a true ``batches`` attribute) -----------------------


def _batched_hook(n: int, batching: Batching, *, at: float = 0) -> Hook:
    return attrs.evolve(_hook(n, at=at), batching=batching)


def _body(*ids: int, event: str = "party/created") -> bytes:
    return encode_body(event, [{"id": i} for i in ids], max_bytes=1 << 20)


def _emit(store: Store, at: float, *ids: int, key: str | None = None) -> dict[str, str]:
    """Emit one event carrying these entities; hook id -> the delivery it went into."""
    extra = {} if key is None else {"ordering_key": key}
    made = store.enqueue(owner="acme", event="party/created", body=_body(*ids), now=_t(at), **extra)
    return {d.hook_id: d.id for d in made}


def _entities(body: bytes) -> list[int]:
    return [e["id"] for e in json.loads(body)["payload"]]


def _claimed_bodies(
    store: Store, at: float, *, lease: float = 60
) -> dict[str, tuple[str, list[int]]]:
    """Claim what is due: delivery id -> (token, the ids of the entities of its body)."""
    return {
        c.delivery.id: (c.token, _entities(c.body))
        for c in store.claim_due(now=_t(at), limit=50, lease_until=_lease(at, lease))
    }


def _batches(store: Store) -> bool:
    return getattr(store, "batches", False) is True


@_check
def check_batching_setting_round_trips(store: Store) -> None:
    if not _batches(store):
        return
    batching = Batching(max_wait=2.5, max_entities=7, max_bytes=4096)
    stored, created = store.add_hook(_batched_hook(1, batching), max_per_owner=None)
    assert created
    assert stored.batching == batching
    got = store.get_hook("hook_0001")
    assert got is not None
    assert got.batching == batching, f"the hook keeps its batching: {got!r}"
    assert [h.batching for h in store.list_hooks(owner="acme")] == [batching]
    _emit(store, 0, 1)
    (claim,) = store.claim_due(now=_t(3), limit=5, lease_until=_lease(3))
    assert claim.hook.batching == batching, "a claim's hook carries its batching"
    plain, _ = store.add_hook(_hook(2), max_per_owner=None)
    assert plain.batching is None
    again = store.get_hook("hook_0002")
    assert again is not None
    assert again.batching is None


@_check
def check_batching_joins_emits_in_order(store: Store) -> None:
    # The emits of a batched hook's event join its open batch, one delivery, entities in
    # emit order, due max_wait after the first emit; a hook that does not batch gets one
    # delivery per emit as ever.
    store.add_hook(_hook(1), max_per_owner=None)
    if not _batches(store):
        return
    store.add_hook(_batched_hook(2, Batching(max_wait=5, max_entities=10)), max_per_owner=None)
    first = _emit(store, 0, 1)
    second = _emit(store, 1, 2, 3)
    third = _emit(store, 2, 4)
    assert first["hook_0002"] == second["hook_0002"] == third["hook_0002"], (
        "the emits of a batched hook go into one delivery, which each emit returns"
    )
    assert len({first["hook_0001"], second["hook_0001"], third["hook_0001"]}) == 3
    batch = store.get_delivery(first["hook_0002"])
    assert batch is not None
    assert (batch.state, batch.created_at, batch.next_attempt_at, batch.ordering_key) == (
        DeliveryState.PENDING,
        _t(0),
        _t(5),
        None,
    ), f"a batch is pending, made at its first emit, due max_wait later: {batch!r}"
    early = _claimed_bodies(store, 4.9)
    assert batch.id not in early, "a batch is not due before its max_wait"
    assert len(early) == 3, "a hook that does not batch: one delivery per emit"
    (_token, ids), *_ = _claimed_bodies(store, 5).values()
    assert ids == [1, 2, 3, 4], f"the batch holds the entities in emit order: {ids}"


@_check
def check_batching_claimed_batch_takes_no_more(store: Store) -> None:
    # A batch is sealed when it is claimed: the next emit opens a new batch, the claimed one
    # keeps its body (as released, retried, or claimed again after its lease expired).
    if not _batches(store):
        return
    store.add_hook(_batched_hook(1, Batching(max_wait=1)), max_per_owner=None)
    old = _emit(store, 0, 1)["hook_0001"]
    claims = _claimed_bodies(store, 1)
    assert list(claims) == [old]
    new = _emit(store, 1.5, 2)["hook_0001"]
    assert new != old, "an emit after the claim opens a new batch"
    store.record(
        [Outcome(delivery_id=old, token=claims[old][0], kind=OutcomeKind.RELEASE)], now=_t(1.6)
    )
    newer = _emit(store, 1.7, 3)["hook_0001"]
    assert newer == new, "the emits join the new batch, not the released one"
    again = _claimed_bodies(store, 3)
    assert {k: v[1] for k, v in again.items()} == {old: [1], new: [2, 3]}, again
    _finish(store, old, again[old][0], 3, OutcomeKind.RETRY)
    assert _emit(store, 4, 4)["hook_0001"] not in (old, new), "a retried batch takes no more"
    retried = _claimed_bodies(store, 200, lease=1)
    assert retried[old][1] == [1], "a retry sends the batch as it was"
    lapsed = _claimed_bodies(store, 202)
    assert lapsed[old][1] == [1], "a claim whose lease expired takes the same body"
    assert len(store.attempts(old)) == 1, "one attempt log for the whole batch"


@_check
def check_batching_max_entities(store: Store) -> None:
    # A batch holding max_entities entities is sealed and due at once; an emit that would
    # take it past seals it and opens the next; an emit larger than the limit is a batch of
    # its own.
    if not _batches(store):
        return
    store.add_hook(_batched_hook(1, Batching(max_wait=60, max_entities=3)), max_per_owner=None)
    a = _emit(store, 0, 1, 2)["hook_0001"]
    b = _emit(store, 1, 3, 4)["hook_0001"]  # does not fit: a is sealed, b opens
    assert a != b
    assert _emit(store, 2, 5)["hook_0001"] == b  # b is full now: sealed, due at once
    c = _emit(store, 3, 6, 7, 8, 9)["hook_0001"]  # alone, more than the limit
    d = _emit(store, 4, 10)["hook_0001"]
    assert len({a, b, c, d}) == 4
    due = {k: v[1] for k, v in _claimed_bodies(store, 4, lease=3600).items()}
    assert due == {a: [1, 2], b: [3, 4, 5], c: [6, 7, 8, 9]}, (
        f"sealed batches are due at once, the open one at its max_wait: {due}"
    )
    assert {k: v[1] for k, v in _claimed_bodies(store, 64).items()} == {d: [10]}


@_check
def check_batching_max_bytes(store: Store) -> None:
    # A batch's body never grows past max_bytes: the emit that does not fit seals it.
    if not _batches(store):
        return
    # Room for two entities, not three.
    limit = len(_body(100_001, 100_002)) + 5
    store.add_hook(_batched_hook(1, Batching(max_wait=60, max_bytes=limit)), max_per_owner=None)
    a = _emit(store, 0, 100_001)["hook_0001"]
    assert _emit(store, 0, 100_002)["hook_0001"] == a
    b = _emit(store, 1, 100_003)["hook_0001"]
    assert b != a, "an emit that would take the body past max_bytes opens a new batch"
    due = _claimed_bodies(store, 1)
    assert {k: v[1] for k, v in due.items()} == {a: [100_001, 100_002]}, (
        "the batch the next emit did not fit in is due at once"
    )
    big = _emit(store, 2, *range(200_000, 200_010))["hook_0001"]
    assert big != b, "an emit larger than max_bytes is a batch of its own"
    due = _claimed_bodies(store, 2)
    assert {k: len(v[1]) for k, v in due.items()} == {b: 1, big: 10}, due


@_check
def check_batching_keyed_batches_go_one_at_a_time(store: Store) -> None:
    # Emits with ordering keys join the hook's keyed batches, which go one at a time in
    # order (a retry of one holds back the next); emits without a key batch apart and are
    # not held back.
    if not _batches(store):
        return
    store.add_hook(_batched_hook(1, Batching(max_wait=1)), max_per_owner=None)
    k1 = _emit(store, 0, 1, key="party:1")["hook_0001"]
    assert _emit(store, 0.5, 2, key="party:2")["hook_0001"] == k1, "keyed emits share a batch"
    free = _emit(store, 0.5, 3)["hook_0001"]
    assert free != k1, "emits without a key batch apart from keyed ones"
    got = store.get_delivery(k1)
    assert got is not None
    assert got.ordering_key == BATCH_ORDERING_KEY, got
    claims = _claimed_bodies(store, 2, lease=3600)
    assert {k: v[1] for k, v in claims.items()} == {k1: [1, 2], free: [3]}
    k2 = _emit(store, 3, 4, key="party:1")["hook_0001"]
    free2 = _emit(store, 3, 5)["hook_0001"]
    waiting = store.get_delivery(k2)
    assert waiting is not None
    assert waiting.next_attempt_at is None, (
        f"a keyed batch waits while an earlier keyed batch is open: {waiting!r}"
    )
    assert _emit(store, 3.5, 6, key="party:3")["hook_0001"] == k2, "a waiting batch still joins"
    _finish(store, k1, claims[k1][0], 4, OutcomeKind.RETRY)
    assert set(_claimed_bodies(store, 10, lease=3600)) == {free2}, (
        "a retried keyed batch holds back the next"
    )
    retry = _claimed_bodies(store, 104)
    assert set(retry) == {k1}
    _finish(store, k1, retry[k1][0], 105, OutcomeKind.DELIVERED)
    after = _claimed_bodies(store, 105)
    assert {k: v[1] for k, v in after.items()} == {k2: [4, 6]}, (
        "the next keyed batch is due when the one before is delivered, as a key's turn"
    )


@_check
def check_batching_enqueue_many(store: Store) -> None:
    # Several events of one enqueue_many join the batch in their order, keyed or not.
    enqueue_many = getattr(store, "enqueue_many", None)
    if not _batches(store) or enqueue_many is None:
        return
    store.add_hook(_batched_hook(1, Batching(max_wait=1)), max_per_owner=None)
    store.add_hook(_hook(2), max_per_owner=None)
    events = [("acme", "party/created", _body(i)) for i in range(1, 5)]
    made = enqueue_many(events, now=_t(0))
    assert [d.hook_id for d in made].count("hook_0002") == 4
    assert len({d.id for d in made if d.hook_id == "hook_0001"}) == 1, "one batch"
    keyed = enqueue_many(
        [("acme", "party/created", _body(i)) for i in (5, 6)],
        now=_t(0.5),
        ordering_keys=["party:5", None],
    )
    batches = {d.id for d in keyed if d.hook_id == "hook_0001"}
    assert len(batches) == 2, "a keyed event joins the keyed batch, the other the plain one"
    bodies = {
        tuple(_entities(c.body))
        for c in store.claim_due(now=_t(2), limit=50, lease_until=_lease(2))
        if c.hook.id == "hook_0001"
    }
    assert bodies == {(1, 2, 3, 4, 6), (5,)}, bodies


@_check
def check_batching_removed_or_dead_hook(store: Store) -> None:
    # A hook's open batch is cancelled with its hook; revived, the hook's next emit opens a
    # new batch (a cancelled batch takes no more entities).
    if not _batches(store):
        return
    store.add_hook(_batched_hook(1, Batching(max_wait=30)), max_per_owner=None)
    store.add_hook(_batched_hook(2, Batching(max_wait=30)), max_per_owner=None)
    gone = _emit(store, 0, 1)
    assert store.remove_hook("hook_0002", now=_t(1)) == [gone["hook_0002"]]
    failing = store.claim_due(now=_t(30), limit=5, lease_until=_lease(30))
    (claim,) = [c for c in failing if c.hook.id == "hook_0001"]
    open_ = _emit(store, 31, 2)["hook_0001"]
    (result,) = store.record(
        [
            Outcome(
                delivery_id=claim.delivery.id,
                token=claim.token,
                kind=OutcomeKind.FAILED,
                attempt=_attempt(claim.delivery.id, 1, 32),
            )
        ],
        now=_t(32),
    )
    assert result.cancelled == (open_,), "the dead hook's open batch is cancelled"
    store.revive_hook("hook_0001", now=_t(33))
    revived = _emit(store, 34, 3)["hook_0001"]
    assert revived != open_, "a cancelled batch takes no more entities"
    cancelled = store.get_delivery(open_)
    assert cancelled is not None
    assert cancelled.state is DeliveryState.CANCELLED
    due = {k: v[1] for k, v in _claimed_bodies(store, 64).items()}
    assert due == {revived: [3]}, due


@_check
def check_batching_concurrent_emits_and_claims(store: Store) -> None:
    # Emits and claims at once, from several threads: every entity is sent exactly once (a
    # claimed batch never gains entities, which would then never be sent).
    if not _batches(store):
        return
    store.add_hook(_batched_hook(1, Batching(max_wait=0.001, max_entities=5)), max_per_owner=None)
    errors: list[BaseException] = []
    sent: list[int] = []
    claimed: list[str] = []
    lock = threading.Lock()
    done = threading.Event()

    def emitter(first: int) -> None:
        try:
            for i in range(first, first + 60):
                _emit(store, 0, i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def claimer() -> None:
        try:
            while True:
                finished = done.is_set()
                claims = store.claim_due(now=_t(1), limit=3, lease_until=_lease(1, 3600))
                for c in claims:
                    with lock:
                        sent.extend(_entities(c.body))
                        claimed.append(c.delivery.id)
                    _finish(store, c.delivery.id, c.token, 1, OutcomeKind.DELIVERED)
                if finished and not claims:
                    return
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    emitters = [threading.Thread(target=emitter, args=(n * 1000,)) for n in range(3)]
    claimers = [threading.Thread(target=claimer) for _ in range(2)]
    for t in (*emitters, *claimers):
        t.start()
    for t in emitters:
        t.join()
    done.set()
    for t in claimers:
        t.join()
    assert not errors, errors
    assert len(claimed) == len(set(claimed)), "no batch is claimed twice"
    expected = sorted(n * 1000 + i for n in range(3) for i in range(60))
    assert sorted(sent) == expected, (
        f"every entity is sent exactly once: {len(sent)} sent of {len(expected)}"
    )
    for n in range(3):  # one emitter's entities keep their order across its batches
        mine = [i for i in sent if n * 1000 <= i < n * 1000 + 1000]
        assert len(mine) == 60


# -- the transition table ---------------------------------------------------------------------

# The stored states the table starts from, and the token the store keeps in each.
TRANSITION_STATES = (
    "pending",
    "in_flight",
    "delivered",
    "failed",
    "cancelled_in_flight",
    "cancelled",
)
# Which token the outcome carries: the last claim's, or an earlier claim's (for a pending or
# cancelled delivery that was claimed once: a token that was never issued).
TRANSITION_TOKENS = ("last_claim", "earlier_claim")
_STORED_STATE = {s: s for s in TRANSITION_STATES} | {"cancelled_in_flight": "cancelled"}


def _table_outcome(
    kind: OutcomeKind, delivery_id: str, token: str, number: int, at: float
) -> Outcome:
    status = {
        OutcomeKind.DELIVERED: 200,
        OutcomeKind.RETRY: 503,
        OutcomeKind.FAILED: 500,
        OutcomeKind.GONE: 410,
    }.get(kind)
    return Outcome(
        delivery_id=delivery_id,
        token=token,
        kind=kind,
        attempt=None if status is None else _attempt(delivery_id, number, at, status),
        next_attempt_at=_t(at + 100) if kind is OutcomeKind.RETRY else None,
        reason=f"{number} attempts failed" if kind is OutcomeKind.FAILED else None,
    )


def _table_setup(store: Store, n: int, state: str, b: float) -> tuple[str, str | None, str, str]:
    """Bring delivery ``n`` to ``state``; return its id, the token the store keeps, and the
    last and an earlier claim's tokens."""
    store.add_hook(_hook(n, owner=f"table{n}"), max_per_owner=None)
    (d,) = store.enqueue(owner=f"table{n}", event="party/created", body=b"{}", now=_t(b))
    (first,) = store.claim_due(now=_t(b), limit=1, lease_until=_lease(b, 30))
    release = Outcome(delivery_id=d.id, token=first.token, kind=OutcomeKind.RELEASE)
    store.record([release], now=_t(b + 1))
    if state in ("pending", "cancelled"):
        if state == "cancelled":
            store.remove_hook(f"hook_{n:04d}", now=_t(b + 2))
        return d.id, None, first.token, "never-issued"
    (second,) = store.claim_due(now=_t(b + 2), limit=1, lease_until=_lease(b + 2, 30))
    if state == "in_flight":  # the second claim expired and a third took it over
        (third,) = store.claim_due(now=_t(b + 32), limit=1, lease_until=_lease(b + 32))
        return d.id, third.token, third.token, second.token
    if state == "cancelled_in_flight":
        store.remove_hook(f"hook_{n:04d}", now=_t(b + 3))
        return d.id, second.token, second.token, first.token
    kind = OutcomeKind.DELIVERED if state == "delivered" else OutcomeKind.FAILED
    store.record([_table_outcome(kind, d.id, second.token, 1, b + 2)], now=_t(b + 3))
    return d.id, None, second.token, first.token


def _check_hook_effect(
    store: Store,
    where: str,
    *,
    expected: Transition,
    result: RecordResult,
    hook_before: Hook | None,
    sibling_ids: list[str],
) -> None:
    hook_id = result.hook_id
    hook_after = store.get_hook(hook_id)
    now = expected.now
    if expected.hook_effect is HookEffect.DEAD:
        assert hook_after is not None, f"{where}: the hook must still exist, dead"
        assert (hook_after.state, hook_after.dead_reason, hook_after.dead_at) == (
            HookState.DEAD,
            expected.dead_reason,
            now,
        ), f"{where}: the hook is {hook_after!r}"
    elif expected.hook_effect is HookEffect.REMOVED:
        assert hook_after is None, f"{where}: the hook must be removed"
    else:
        assert hook_after == hook_before, f"{where}: the hook must not change"
    if expected.hook_effect is HookEffect.NONE:
        assert result.cancelled == (), f"{where}: nothing is cancelled"
    else:
        assert list(result.cancelled) == sibling_ids, f"{where}: cancelled {result.cancelled}"
    for sibling_id in sibling_ids:
        sibling = store.get_delivery(sibling_id)
        assert sibling is not None
        cancelled = expected.hook_effect is not HookEffect.NONE
        assert (sibling.state is DeliveryState.CANCELLED) == cancelled, (
            f"{where}: the hook's other delivery is {sibling.state.value}"
        )


def _check_one_transition(store: Store, n: int, state: str, which: str, kind: OutcomeKind) -> None:
    b = n * 1000.0
    hook_id = f"hook_{n:04d}"
    delivery_id, kept, last, earlier = _table_setup(store, n, state, b)
    siblings = store.enqueue(owner=f"table{n}", event="party/created", body=b"{}", now=_t(b + 40))
    before = store.get_delivery(delivery_id)
    assert before is not None
    assert before.state.value == _STORED_STATE[state], (
        f"setting up {state!r}: the delivery is {before.state.value}"
    )
    hook_before = store.get_hook(hook_id)
    log_before = store.attempts(delivery_id)
    stored = StoredDelivery(
        state=before.state,
        token=kept,
        attempts=before.attempts,
        next_attempt_at=before.next_attempt_at,
        last_error=before.last_error,
        hook_state=hook_before.state if hook_before is not None else None,
    )
    token = last if which == "last_claim" else earlier
    now = _t(b + 50)
    outcome = _table_outcome(kind, delivery_id, token, before.attempts + 1, b + 45)
    expected = transition(stored, outcome, now=now)
    where = f"{state} x {which} x {kind.value}"
    (result,) = store.record([outcome], now=now)
    assert result.verdict is expected.verdict, (
        f"{where}: verdict {result.verdict.value}, the transition says {expected.verdict.value}"
    )
    assert result.delivery_id == delivery_id
    assert result.hook_id == hook_id, f"{where}: hook_id {result.hook_id!r}"
    assert result.logged == (expected.attempt is not None), f"{where}: logged {result.logged}"
    assert result.hook_effect is expected.hook_effect, f"{where}: {result.hook_effect}"
    after = store.get_delivery(delivery_id)
    assert after is not None
    written = expected.delivery
    if written is None:
        assert after == before, f"{where}: nothing may be written, got {after!r}"
    else:
        got = (after.state, after.attempts, after.next_attempt_at, after.last_error)
        want = (written.state, written.attempts, written.next_attempt_at, written.last_error)
        assert got == want, f"{where}: the delivery is {got}, the transition says {want}"
        assert after.updated_at == now, f"{where}: updated_at {after.updated_at}"
    log = [*log_before, expected.attempt] if expected.attempt is not None else log_before
    assert store.attempts(delivery_id) == log, f"{where}: the attempt log"
    _check_hook_effect(
        store,
        where,
        expected=expected,
        result=result,
        hook_before=hook_before,
        sibling_ids=[s.id for s in siblings],
    )
    # The token is spent (or kept) as the transition says: recording again follows it too.
    again_expected = transition(written or stored, outcome, now=_t(b + 60))
    (again,) = store.record([outcome], now=_t(b + 60))
    assert again.verdict is again_expected.verdict, (
        f"{where}, recorded twice: {again.verdict.value}, not {again_expected.verdict.value}"
    )
    if store.get_hook(hook_id) is not None:  # leave nothing due for the next row
        store.remove_hook(hook_id, now=_t(b + 70))


@_check
def check_transition_table(store: Store) -> None:
    """Every stored state x token x outcome kind does what :func:`~resthooks.outcomes.transition`
    says: verdict, delivery, attempt log, hook and its other deliveries."""
    n = 0
    for state in TRANSITION_STATES:
        for which in TRANSITION_TOKENS:
            for kind in OutcomeKind:
                n += 1
                _check_one_transition(store, n, state, which, kind)
    unknown = Outcome(delivery_id="msg_unknown", token="t", kind=OutcomeKind.DELIVERED)  # noqa: S106
    (result,) = store.record([unknown], now=_t(0))
    assert (result.verdict, result.hook_id, result.logged) == (Verdict.STALE, "", False), (
        f"an unknown delivery: {result!r}"
    )


@contextmanager
def _opened(factory: StoreFactory) -> Iterator[Store]:
    store = factory()
    try:
        yield store
    finally:
        store.close()


def check_store(factory: StoreFactory, *, only: str | None = None) -> None:
    """Run the conformance suite against the stores ``factory`` makes.

    Each check gets a new, empty store from ``factory`` and closes it afterwards.

    Args:
        factory: Returns a new, empty store each time it is called.
        only: Run only the check of this name (a key of :data:`STORE_CHECKS`).

    Raises:
        AssertionError: On the first check that fails, naming it.

    Example:
        >>> from resthooks.stores import MemoryStore
        >>> check_store(MemoryStore)
    """
    names = [only] if only is not None else list(STORE_CHECKS)
    for name in names:
        check = STORE_CHECKS[name]
        with _opened(factory) as store:
            try:
                check(store)
            except AssertionError as exc:
                raise AssertionError(f"store check {name!r} failed: {exc}") from exc
