"""MemoryStore: fan-out and claiming, before and after, rounds interleaved in one run.

Run from the repository root: ``python bench/bench_memory.py [--before REV] [--rounds 5]``.

- fan-out, many owners: 500 owners with 20 hooks each (10,000 hooks), one emit per owner;
- fan-out, one emit: one owner with 10,000 hooks, one emit;
- claim + record: 1,000 hosts with a backlog of 20 deliveries each, claimed 32 at a time
  under the default per-host limit (4) and recorded delivered, until drained.

With ``--before`` the MemoryStore of that git revision runs beside the current one and the
ratio after / before is printed (median of rounds); otherwise the absolute rates only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from _before import load_before

from resthooks import Hook, Outcome, OutcomeKind
from resthooks.stores import MemoryStore

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
Make = Callable[[], MemoryStore]


def _hooks(store: MemoryStore, owners: int, per_owner: int, hosts: int) -> None:
    n = 0
    for o in range(owners):
        for _ in range(per_owner):
            store.add_hook(
                Hook(
                    id=f"hook_{n:06d}",
                    owner=f"owner{o}",
                    event="party/created",
                    target_url=f"https://h{n % hosts}.example.com/{n}",
                    created_at=T0,
                    updated_at=T0,
                ),
                max_per_owner=None,
            )
            n += 1


def fan_out_owners(make: Make) -> float:
    store = make()
    _hooks(store, 500, 20, 1000)
    start = time.perf_counter()
    made = sum(
        len(store.enqueue(owner=f"owner{o}", event="party/created", body=b"{}", now=T0))
        for o in range(500)
    )
    return made / (time.perf_counter() - start)


def fan_out_one(make: Make) -> float:
    store = make()
    _hooks(store, 1, 10_000, 1000)
    start = time.perf_counter()
    made = len(store.enqueue(owner="owner0", event="party/created", body=b"{}", now=T0))
    return made / (time.perf_counter() - start)


def claim_record(make: Make) -> float:
    store = make()
    _hooks(store, 1, 1000, 1000)
    for n in range(20):
        store.enqueue(
            owner="owner0", event="party/created", body=b"{}", now=T0 + timedelta(seconds=n)
        )
    now = T0 + timedelta(hours=1)
    done = 0
    start = time.perf_counter()
    while True:
        claims = store.claim_due(
            now=now, limit=32, lease_until=now + timedelta(minutes=1), max_in_flight_per_host=4
        )
        if not claims:
            break
        store.record(
            [
                Outcome(delivery_id=c.delivery.id, token=c.token, kind=OutcomeKind.DELIVERED)
                for c in claims
            ],
            now=now,
        )
        done += len(claims)
    assert done == 20_000, done
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a git revision whose MemoryStore to compare")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    stores: dict[str, Make] = {"after": MemoryStore}
    if args.before:
        stores["before"] = load_before(args.before, "resthooks.stores.memory").MemoryStore
    cases = {
        "fan-out, 500 owners x 20 hooks": fan_out_owners,
        "fan-out, one emit to 10,000 hooks": fan_out_one,
        "claim 32 + record, 1,000 hosts, limit 4": claim_record,
    }
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds, "
        "before and after interleaved"
    )
    for case, run in cases.items():
        rates: dict[str, list[float]] = {name: [] for name in stores}
        for r in range(args.rounds):
            order = list(stores) if r % 2 == 0 else list(reversed(stores))
            for name in order:
                rates[name].append(run(stores[name]))
        line = f"{case:40s}" + "".join(
            f" {name} {statistics.median(v):10,.0f}/s" for name, v in rates.items()
        )
        if args.before:
            ratios = [a / b for a, b in zip(rates["after"], rates["before"], strict=True)]
            line += (
                f"   after/before {statistics.median(ratios):5.2f}x"
                f" ({min(ratios):.2f}-{max(ratios):.2f}x)"
            )
        print(line)


if __name__ == "__main__":
    main()
