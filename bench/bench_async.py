"""Benchmark of the asyncio worker against a plain aiohttp client, black holes, and memory.

Run: ``python bench/bench_async.py [--quick]``. It prints ratios measured in one run, with
interleaved rounds (absolute rates vary with the machine and its load; ratios travel better).

Receivers: 100 hosts (distinct loopback addresses 127.0.0.2-101, one port each) that answer
every POST with ``204`` after 200 ms, an internet-like latency; they run in a separate
process, as an asyncio server that parses just enough HTTP/1.1. Black holes: 100 more
addresses (127.0.1.2-101) that accept connections and never answer. The store is a durable
SQLite file (``synchronous=FULL``).

1. Throughput: the async worker (``run_until_idle``, emit already done) at concurrency 256
   and 1,024, on its default transport and on ``AiohttpTransport``, against a plain
   ``aiohttp.ClientSession`` posting the same body to the same hosts with the same number of
   coroutines, in the same rounds. Target: at least 0.9x. The per-host limit is
   set to 3 x concurrency / 100, so that it does not bind (the plain client has none).
2. Black holes: 1,000 hooks, 100 of them on the 100 black-hole hosts (15 s attempt
   deadline); healthy deliveries per second at concurrency 1,024 and the default per-host
   limit (4), against the run with the 900 healthy hooks only. Target: at least 0.8x. Also
   the same runs without slow start (the rule before it: hosts start at their full limit,
   timeouts cut it, an answer gives it back), and with neither rule, to show what each buys.
3. Memory: backlogs of 150,000 deliveries (50,000 with ``--quick``) emitted and drained at
   concurrency 1,000, twice in one process (each drain a new ``run_until_idle``, so a
   second run's threads, connections and caches show too); the process's RSS sampled every
   second, with each drain's slope past its first tenth (a least-squares fit, MiB per
   100,000 deliveries). Target: flat. ``--drains N`` drains N backlogs instead of two;
   ``--memory-transport aiohttp`` runs it on ``AiohttpTransport`` instead of the async
   face's default; ``--trace-memory`` adds the allocation sites that grew most between the
   end of the first drain and the end of the last (tracemalloc; slower).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from resthooks import Dispatcher, Timeouts
from resthooks._hosts import HostGate
from resthooks.aio import AsyncDispatcher
from resthooks.lifecycle import DeliveryDelivered
from resthooks.stores import SQLiteStore
from resthooks.testing import LOOPBACK_POLICY
from resthooks.transports import AiohttpTransport

HOSTS = 100
LATENCY = 0.2
OWNER = "bench"
EVENT = "party/created"
PAYLOAD = {"id": 1, "name": "Acme Ltd", "email": "hello@acme.example", "tags": ["a", "b"]}
BODY = b'{"event":"party/created","payload":[{"id":1,"name":"Acme Ltd"}]}'
RESPONSE = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


# -- receivers, in their own process -------------------------------------------------------------


class _Slow(asyncio.Protocol):
    """Answers each complete request 204 after LATENCY seconds (keep-alive)."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15 :].split(b"\r\n", 1)[0])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.loop.call_later(LATENCY, self._answer)

    def _answer(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(RESPONSE)


class _BlackHole(asyncio.Protocol):
    """Accepts, reads, never answers."""

    def data_received(self, data: bytes) -> None:
        pass


def _serve(conn: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        healthy, holes = [], []
        for i in range(HOSTS):
            server = await loop.create_server(_Slow, f"127.0.0.{i + 2}", 0, backlog=4096)
            healthy.append(f"127.0.0.{i + 2}:{server.sockets[0].getsockname()[1]}")
            hole = await loop.create_server(_BlackHole, f"127.0.1.{i + 2}", 0, backlog=4096)
            holes.append(f"127.0.1.{i + 2}:{hole.sockets[0].getsockname()[1]}")
        conn.send((healthy, holes))
        await loop.run_in_executor(None, conn.recv)  # until told to stop

    asyncio.run(main())


# -- the measured runs -------------------------------------------------------------------------


async def plain_aiohttp(hosts: list[str], concurrency: int, total: int) -> float:
    """Requests per second of `concurrency` coroutines POSTing `total` requests round-robin."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        urls = [f"http://{h}/hook" for h in hosts]
        counter = iter(range(total))
        headers = {"Content-Type": "application/json"}

        async def one() -> None:
            for n in counter:
                async with session.post(urls[n % len(urls)], data=BODY, headers=headers) as r:
                    await r.read()

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return total / (time.perf_counter() - start)


def _engine(path: Path, **options: Any) -> Dispatcher:
    return Dispatcher(
        SQLiteStore(path, synchronous="FULL", busy_timeout=options.pop("busy_timeout", 5.0)),
        network_policy=LOOPBACK_POLICY,
        max_hooks_per_owner=None,
        max_in_flight_per_host=options.pop("max_in_flight_per_host", 16),
        **options,
    )


def _subscribe(engine: Dispatcher, targets: list[str]) -> None:
    for n, target in enumerate(targets):
        engine.subscribe(EVENT, f"http://{target}/hook/{n}", owner=OWNER)


def _emit(engine: Dispatcher, events: int) -> None:
    for i in range(events):
        engine.emit(EVENT, {**PAYLOAD, "id": i}, owner=OWNER)


async def worker_run(
    hosts: list[str], concurrency: int, total: int, directory: Path, *, aiohttp: bool = False
) -> float:
    """Deliveries per second of the async worker draining `total` (10 hooks per host), on
    the async face's default transport, or on AiohttpTransport with `aiohttp`."""
    # A per-host limit that does not bind below the concurrency (claims ahead included): the
    # plain client has none.
    per_host = 3 * concurrency // len(hosts)
    engine = _engine(directory / f"t{time.monotonic_ns()}.db", max_in_flight_per_host=per_host)
    hooks_count = 10 * len(hosts)
    _subscribe(engine, [hosts[n % len(hosts)] for n in range(hooks_count)])
    _emit(engine, total // hooks_count)
    transport = AiohttpTransport(policy=LOOPBACK_POLICY) if aiohttp else None
    face = AsyncDispatcher(engine, transport=transport)
    start = time.perf_counter()
    summary = await face.run_until_idle(concurrency=concurrency)
    elapsed = time.perf_counter() - start
    if transport is not None:
        await transport.aclose()
    await face.aclose()  # the default transport, if the face made it
    engine.store.close()
    assert summary.delivered == (total // hooks_count) * hooks_count, summary
    return summary.delivered / elapsed


async def black_hole_run(
    hosts: list[str], holes: list[str], *, with_holes: bool, healthy_target: int, directory: Path
) -> float:
    """Healthy deliveries per second until `healthy_target` of them are delivered."""
    # The Dispatcher's default per-host limit (4): 100 healthy hosts x 4 is 400 in flight,
    # above what one process delivers here; the black-hole hosts can hold 4 slots each until
    # their first timeouts, 1 each after.
    engine = _engine(
        directory / f"b{time.monotonic_ns()}.db",
        timeouts=Timeouts(5, 15),
        max_in_flight_per_host=4,
    )
    healthy_targets = [hosts[n % len(hosts)] for n in range(900)]
    _subscribe(engine, healthy_targets + (holes if with_holes else []))
    _emit(engine, healthy_target // 900 + 1)
    transport = AiohttpTransport(policy=LOOPBACK_POLICY)
    face = AsyncDispatcher(engine, transport=transport)
    worker = face.worker(concurrency=1024, grace=0)
    delivered = 0
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def count(event: Any) -> None:
        nonlocal delivered
        if isinstance(event, DeliveryDelivered):
            delivered += 1
            if delivered == healthy_target:
                loop.call_soon_threadsafe(done.set)

    engine.add_listener(count)
    start = time.perf_counter()
    running = asyncio.ensure_future(worker.run())
    await done.wait()
    elapsed = time.perf_counter() - start
    worker.stop()
    await running
    await transport.aclose()
    engine.store.close()
    return healthy_target / elapsed


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def memory_run(
    hosts: list[str],
    backlog: int,
    drains: int,
    directory: Path,
    *,
    trace: bool = False,
    aiohttp: bool = False,
) -> tuple[list[list[tuple[int, float]]], list[float], list[str]]:
    """RSS while backlogs drain at concurrency 1,000, one after another in this process, on
    the async face's default transport (on AiohttpTransport with `aiohttp`).

    Returns each drain's samples (deliveries done so far, RSS MiB), one a second from its
    start; the RSS after each drain (once the worker has returned and a collection has
    run); and, with ``trace``, the
    allocation sites that grew most between the end of the first drain and the end of the
    last (tracemalloc: slows the run, so off by default).
    """
    # A long drain on a loaded machine (and tracemalloc's slowness) can keep one store
    # thread waiting for the other's write longer than the default 5 s: wait, do not fail.
    engine = _engine(directory / "memory.db", busy_timeout=60.0)
    _subscribe(engine, [hosts[n % len(hosts)] for n in range(1000)])
    transport = AiohttpTransport(policy=LOOPBACK_POLICY) if aiohttp else None
    face = AsyncDispatcher(engine, transport=transport)  # None: the face's default
    delivered = 0

    def count(event: Any) -> None:
        nonlocal delivered
        if isinstance(event, DeliveryDelivered):
            delivered += 1

    engine.add_listener(count)
    samples: list[list[tuple[int, float]]] = []
    ends: list[float] = []
    first: tracemalloc.Snapshot | None = None
    if trace:
        tracemalloc.start(5)
    for _ in range(drains):
        _emit(engine, backlog // 1000)
        gc.collect()
        drain = [(delivered, _rss_mib())]
        samples.append(drain)
        running = asyncio.ensure_future(face.run_until_idle(concurrency=1000))
        while not running.done():
            await asyncio.wait({running}, timeout=1.0)
            drain.append((delivered, _rss_mib()))
        await running
        gc.collect()
        ends.append(_rss_mib())
        if trace and first is None:
            first = tracemalloc.take_snapshot()
    grown: list[str] = []
    if trace and first is not None:
        last = tracemalloc.take_snapshot()
        tracemalloc.stop()
        for stat in last.compare_to(first, "traceback")[:8]:
            frame = stat.traceback[-1]
            grown.append(
                f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7} blocks  "
                f"{frame.filename.rsplit('site-packages/', 1)[-1]}:{frame.lineno}"
            )
    if transport is not None:
        await transport.aclose()
    await face.aclose()  # the default transport, if the face made it
    engine.store.close()
    assert delivered == drains * (backlog // 1000) * 1000, delivered
    return samples, ends, grown


def _slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of RSS against deliveries done, in MiB per 100,000 deliveries."""
    if len(points) < 2:
        return float("nan")
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return float("nan")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx * 100_000


def _without_slow_start(self: HostGate, host: str) -> int | None:
    # The rule before slow start: a host starts at its full limit, and timeouts cut it.
    return self.cut.get(host, self.limit)


def _answered_at_full(self: HostGate, host: str) -> None:
    # ... and its first answer gives it the full limit back.
    self.cut.pop(host, None)


def _no_rule(self: HostGate, host: str) -> int | None:
    # Neither slow start nor the cut: every host at its full limit, whatever it does.
    return self.limit


# The gate's rule, switched per variant of part 2 (name -> HostGate methods replaced).
_VARIANTS: dict[str, dict[str, Callable[..., Any]]] = {
    "with them (slow start + cut)": {},
    "with them, no slow start": {"limit_of": _without_slow_start, "_answered": _answered_at_full},
    "with them, neither rule": {"limit_of": _no_rule},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--only", type=int, choices=(1, 2, 3), help="run one part")
    parser.add_argument(
        "--drains", type=int, default=2, help="part 3: how many backlogs to drain (default 2)"
    )
    parser.add_argument(
        "--memory-transport",
        choices=("default", "aiohttp"),
        default="default",
        help="part 3: the async face's default transport, or AiohttpTransport",
    )
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="part 3: list the allocation sites that grew between the drains (slower)",
    )
    args = parser.parse_args()
    rounds = 1 if args.quick else 2
    parts = {args.only} if args.only else {1, 2, 3}
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    hosts, holes = parent.recv()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, aiohttp {aiohttp.__version__}"
    )
    print("the machine is shared with other engineers' work: absolute rates are noisy\n")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        if 1 in parts:
            _throughput(hosts, directory, rounds=rounds, quick=args.quick)
        if 2 in parts:
            _black_holes(hosts, holes, directory, rounds=rounds, quick=args.quick)
        if 3 in parts:
            _memory(
                hosts,
                directory,
                quick=args.quick,
                trace=args.trace_memory,
                aiohttp=args.memory_transport == "aiohttp",
                drains=args.drains,
            )
    parent.send("stop")
    server.join(5)
    sys.stdout.flush()


def _throughput(hosts: list[str], directory: Path, *, rounds: int, quick: bool) -> None:
    print("1. throughput, 100 hosts x 200 ms, durable SQLite (deliveries/s)")
    # The worker on its default transport, and on AiohttpTransport (the default before
    # AsyncioTransport), each against the plain client of the same round.
    for concurrency, full in ((256, 8_000), (1024, 20_000)):
        total = full // 2 if quick else full
        plain, ours, on_aiohttp = [], [], []
        for _ in range(rounds + 1):
            plain.append(asyncio.run(plain_aiohttp(hosts, concurrency, total)))
            ours.append(asyncio.run(worker_run(hosts, concurrency, total, directory)))
            on_aiohttp.append(
                asyncio.run(worker_run(hosts, concurrency, total, directory, aiohttp=True))
            )
        p, o, a = statistics.median(plain), statistics.median(ours), statistics.median(on_aiohttp)
        print(
            f"   concurrency {concurrency:5}: plain aiohttp {p:7.0f}/s  async worker "
            f"{o:7.0f}/s  ratio {o / p:.2f}x  (rounds {[round(x) for x in ours]} vs "
            f"{[round(x) for x in plain]})"
        )
        print(
            f"   concurrency {concurrency:5}: on AiohttpTransport {a:7.0f}/s  ratio {a / p:.2f}x  "
            f"(rounds {[round(x) for x in on_aiohttp]})"
        )


def _black_holes(
    hosts: list[str], holes: list[str], directory: Path, *, rounds: int, quick: bool
) -> None:
    print("\n2. 100 of 1,000 hooks on 100 black-hole hosts, concurrency 1,024 (healthy/s)")
    target = 15_000 if quick else 30_000
    clean: list[float] = []
    holed: dict[str, list[float]] = {name: [] for name in _VARIANTS}

    def run(with_holes: bool) -> float:
        return asyncio.run(
            black_hole_run(
                hosts, holes, with_holes=with_holes, healthy_target=target, directory=directory
            )
        )

    for _ in range(rounds):
        clean.append(run(False))
        for name, methods in _VARIANTS.items():
            saved = {m: getattr(HostGate, m) for m in methods}
            for m, replacement in methods.items():
                setattr(HostGate, m, replacement)
            try:
                holed[name].append(run(True))
            finally:
                for m, original in saved.items():
                    setattr(HostGate, m, original)
    c = statistics.median(clean)
    print(f"   without black holes          {c:7.0f}/s  (rounds {[round(x) for x in clean]})")
    for name, rates in holed.items():
        h = statistics.median(rates)
        print(f"   {name:29}{h:7.0f}/s  ratio {h / c:.2f}x  (rounds {[round(x) for x in rates]})")


def _memory(
    hosts: list[str], directory: Path, *, quick: bool, trace: bool, aiohttp: bool, drains: int
) -> None:
    backlog = 50_000 if quick else 150_000
    print(
        f"\n3. memory: {drains} backlogs of {backlog:,} drained one after another in one "
        "process (each emitted, then drained by a new run_until_idle), concurrency 1,000, "
        f"on {'AiohttpTransport' if aiohttp else 'the default transport'}"
    )
    runs, ends, grown = asyncio.run(
        memory_run(hosts, backlog, drains, directory, trace=trace, aiohttp=aiohttp)
    )
    slopes = []
    for n, (drain, end) in enumerate(zip(runs, ends, strict=True), 1):
        done = drain[0][0]
        step = max(1, len(drain) // 6)
        shown = ", ".join(f"{rss:.1f}" for _, rss in [*drain[::step], drain[-1]])
        # Its first tenth warms up (connections opened, the caches filling to their caps).
        warm = [(d, r) for d, r in drain if d - done >= backlog // 10]
        slopes.append(_slope(warm))
        print(
            f"   drain {n}: RSS MiB {shown}; after it {end:.1f}; past its first tenth "
            f"{min(r for _, r in warm):.1f}-{max(r for _, r in warm):.1f}, slope "
            f"{slopes[-1]:+.2f} MiB per 100,000 deliveries"
            if warm
            else f"   drain {n}: RSS MiB {shown}; after it {end:.1f}"
        )
    print(
        f"   after the last drain {ends[-1] - ends[0]:+.1f} MiB against the first "
        f"({ends[0]:.1f} -> {ends[-1]:.1f} MiB)"
    )
    for line in grown:
        print(f"   grew: {line}")


if __name__ == "__main__":
    main()
