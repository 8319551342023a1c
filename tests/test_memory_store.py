"""MemoryStore's indexes: claims and fan-outs give what a plain scan of every row would."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from resthooks import Attempt, Hook, Outcome, OutcomeKind
from resthooks.model import DeliveryState
from resthooks.stores import MemoryStore

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _hook(n: int, host: int, owner: str = "acme", event: str = "party/created") -> Hook:
    return Hook(
        id=f"hook_{n:04d}",
        owner=owner,
        event=event,
        target_url=f"https://h{host}.example.com/{n}",
        created_at=T0 + timedelta(microseconds=(n * 7919) % 101),
        updated_at=T0,
    )


def test_claims_match_a_scan_of_every_row() -> None:
    """Under random emits, claims (with and without a per-host limit), outcomes and expired
    leases, every claim takes exactly what a scan of all rows, oldest due first, skipping
    hosts at the limit, would take."""
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    store = MemoryStore()
    hosts = {}
    for n in range(12):
        host = rng.randrange(4)
        store.add_hook(_hook(n, host), max_per_owner=None)
        hosts[f"hook_{n:04d}"] = host
    now = T0
    leases: dict[str, datetime] = {}  # delivery id -> lease end, for those in flight
    held: dict[str, str] = {}  # delivery id -> token
    for _ in range(300):
        now += timedelta(seconds=rng.choice([0, 0, 1, 5, 40]))
        action = rng.random()
        if action < 0.3:
            store.enqueue(owner="acme", event="party/created", body=b"{}", now=now)
            continue
        if action < 0.6 and held:
            outcomes = []
            for delivery_id in rng.sample(sorted(held), rng.randint(1, len(held))):
                kind = rng.choice([OutcomeKind.DELIVERED, OutcomeKind.RETRY, OutcomeKind.RELEASE])
                outcomes.append(
                    Outcome(
                        delivery_id=delivery_id,
                        token=held.pop(delivery_id),
                        kind=kind,
                        next_attempt_at=now + timedelta(seconds=rng.choice([0, 3, 30]))
                        if kind is OutcomeKind.RETRY
                        else None,
                    )
                )
                leases.pop(delivery_id)
            store.record(outcomes, now=now)
            continue
        cap = rng.choice([None, 1, 2, 3])
        limit = rng.randint(1, 8)
        lease_until = now + timedelta(seconds=rng.choice([10, 60]))
        expected = _scan(store, now, limit, cap, leases, hosts)
        claims = store.claim_due(
            now=now, limit=limit, lease_until=lease_until, max_in_flight_per_host=cap
        )
        assert expected == [c.delivery.id for c in claims], seed
        for claim in claims:
            leases[claim.delivery.id] = lease_until
            held[claim.delivery.id] = claim.token
        due = _due_times(store, leases)
        assert min(due, default=None) == store.next_due_at(), seed


def _due_times(store: MemoryStore, leases: dict[str, datetime]) -> list[datetime]:
    times = []
    for d in store.list_deliveries(limit=10**6):
        if d.state is DeliveryState.PENDING:
            assert d.next_attempt_at is not None
            times.append(d.next_attempt_at)
        elif d.state is DeliveryState.IN_FLIGHT:
            times.append(leases[d.id])
    return times


def _scan(
    store: MemoryStore,
    now: datetime,
    limit: int,
    cap: int | None,
    leases: dict[str, datetime],
    hosts: dict[str, int],
) -> list[str]:
    due = []
    busy: dict[int, int] = {}
    for d in store.list_deliveries(limit=10**6):
        host = hosts[d.hook_id]
        if d.state is DeliveryState.PENDING and d.next_attempt_at is not None:
            if d.next_attempt_at <= now:
                due.append((d.next_attempt_at, d.created_at, d.id, host))
        elif d.state is DeliveryState.IN_FLIGHT:
            if leases[d.id] <= now:
                due.append((leases[d.id], d.created_at, d.id, host))
            else:
                busy[host] = busy.get(host, 0) + 1
    picked = []
    for _, _, delivery_id, host in sorted(due):
        if len(picked) == limit:
            break
        if cap is None or busy.get(host, 0) < cap:
            busy[host] = busy.get(host, 0) + 1
            picked.append(delivery_id)
    return picked


def test_fan_out_reads_the_subscription_index_in_order() -> None:
    """A fan-out goes to the owner's active hooks of that event only, oldest first, and the
    index follows removals, deaths, revivals and re-subscriptions."""
    store = MemoryStore()
    for n in range(6):
        store.add_hook(_hook(n, n % 2), max_per_owner=None)
    store.add_hook(_hook(10, 0, owner="other"), max_per_owner=None)
    store.add_hook(_hook(11, 0, event="party/deleted"), max_per_owner=None)
    oldest_first = [h.id for h in store.list_hooks(owner="acme", event="party/created")]
    made = store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
    assert oldest_first == [d.hook_id for d in made]
    assert len({d.id for d in made}) == 6
    store.remove_hook("hook_0001", now=T0)
    # hook_0002 dies as the engine kills a hook: one of its deliveries fails for good.
    claims = store.claim_due(now=T0, limit=100, lease_until=T0 + timedelta(minutes=1))
    (claim,) = [c for c in claims if c.hook.id == "hook_0002"]
    failed = Outcome(
        delivery_id=claim.delivery.id,
        token=claim.token,
        kind=OutcomeKind.FAILED,
        attempt=Attempt(
            delivery_id=claim.delivery.id, number=1, started_at=T0, duration=0.1, status=500
        ),
        reason="x",
    )
    assert store.record([failed], now=T0)[0].applied
    made = store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
    assert [i for i in oldest_first if i not in ("hook_0001", "hook_0002")] == [
        d.hook_id for d in made
    ]
    again, created = store.add_hook(_hook(2, 0), max_per_owner=None)  # revives the dead one
    assert (again.id, created) == ("hook_0002", False)
    store.add_hook(_hook(1, 1), max_per_owner=None)  # subscribed anew after its removal
    made = store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
    assert sorted(oldest_first) == sorted(d.hook_id for d in made)
