"""The async worker's CPU per delivery: against a plain aiohttp client, and before/after.

Run: ``python bench/bench_aio_worker.py [--quick] [--before REV] [--concurrency 1024 ...]``
(needs the ``async`` extra). The receivers are those of ``bench/bench_async.py`` (100
loopback hosts answering ``204`` after 200 ms, in another process); the store a durable
SQLite file; the worker on the async face's default transport (``--aiohttp``: on
``AiohttpTransport``). Rounds interleave, their order rotating, and each client reports:

- deliveries (requests) per second;
- its process's CPU time per delivery (``getrusage``: the loop and the store threads), the
  figure that decides the rate where one process is CPU-bound (1,024 in flight);
- the part of it spent in the garbage collector (``gc.callbacks``);
- the receiver process's CPU per request: what the other core has left to give.

``--gc-freeze`` calls ``gc.freeze()`` before every round, for every client: what a host
that owns its process may do, to see what the collector's full scans cost each side.

With ``--before REV`` the worker module (``resthooks.aio._worker``) of that git revision runs
beside the current one, on the same engine, and the ratio after/before is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from _before import load_before
from bench_async import _emit, _engine, _serve, _subscribe, plain_aiohttp

from resthooks.aio import AsyncDispatcher
from resthooks.outcomes import DeliverySummary
from resthooks.testing import LOOPBACK_POLICY
from resthooks.transports import AiohttpTransport


class _GCTime:
    """CPU time spent in the garbage collector, whichever thread runs it."""

    def __init__(self) -> None:
        self.total = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        # One collection at a time (under the GIL), in the thread that triggered it.
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.total += time.thread_time() - self._started


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Measured = tuple[float, float, float, float]  # rate, CPU us, GC us, receiver CPU us


async def _measure(run: Callable[[], Awaitable[int]], gc_time: _GCTime, receiver: int) -> Measured:
    gc.collect()
    gc0, cpu0, rcv0, t0 = gc_time.total, _cpu(), _cpu_of(receiver), time.perf_counter()
    done = await run()
    elapsed = time.perf_counter() - t0
    cpu, rcv, spent = _cpu() - cpu0, _cpu_of(receiver) - rcv0, gc_time.total - gc0
    return done / elapsed, cpu / done * 1e6, spent / done * 1e6, rcv / done * 1e6


async def _worker(
    hosts: list[str], concurrency: int, total: int, directory: Path, module: Any, *, aiohttp: bool
) -> Callable[[], Awaitable[int]]:
    per_host = 3 * concurrency // len(hosts)  # as bench_async part 1: does not bind
    engine = _engine(directory / f"w{time.monotonic_ns()}.db", max_in_flight_per_host=per_host)
    hooks_count = 10 * len(hosts)
    _subscribe(engine, [hosts[n % len(hosts)] for n in range(hooks_count)])
    _emit(engine, total // hooks_count)
    transport = AiohttpTransport(policy=LOOPBACK_POLICY) if aiohttp else None
    face = AsyncDispatcher(engine, transport=transport)  # None: the face's default
    worker = (
        face.worker(concurrency=concurrency)
        if module is None
        else module.AsyncWorker(face, concurrency=concurrency)
    )

    async def run() -> int:
        try:
            summary: DeliverySummary = await worker.run_until_idle()
        finally:
            if transport is not None:
                await transport.aclose()
            await face.aclose()  # the default transport, if the face made it
            engine.store.close()
        assert summary.delivered == (total // hooks_count) * hooks_count, summary
        return summary.delivered

    return run


async def _round(
    name: str,
    module: Any,
    hosts: list[str],
    concurrency: int,
    total: int,
    directory: Path,
    gc_time: _GCTime,
    receiver: int,
    aiohttp: bool,
) -> Measured:
    if name == "plain aiohttp":

        async def run() -> int:
            await plain_aiohttp(hosts, concurrency, total)
            return total

    else:
        run = await _worker(hosts, concurrency, total, directory, module, aiohttp=aiohttp)
    return await _measure(run, gc_time, receiver)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--before", help="a git revision whose resthooks.aio._worker to compare")
    parser.add_argument("--rounds", type=int, help="rounds per concurrency (default 4; 2 quick)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[256, 1024])
    parser.add_argument(
        "--aiohttp", action="store_true", help="the worker on AiohttpTransport, not the default"
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() before every round, for every client (what a host may do)",
    )
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 4)
    before = load_before(args.before, "resthooks.aio._worker") if args.before else None
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    hosts, _ = parent.recv()
    assert server.pid is not None
    gc_time = _GCTime()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, aiohttp "
        f"{aiohttp.__version__}, load average {os.getloadavg()[0]:.1f} at the start; "
        f"{rounds} rounds, order rotating"
    )
    print("the machine is shared with other engineers' work: absolute rates are noisy")
    clients = ["plain aiohttp", "worker"] + ([f"worker {args.before}"] if before else [])
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for concurrency in args.concurrency:
            total = (5_000 if args.quick else 10_000) * max(1, concurrency // 512)
            results: dict[str, list[Measured]] = {name: [] for name in clients}
            for r in range(rounds):
                order = clients[r % len(clients) :] + clients[: r % len(clients)]
                for name in order:
                    module = before if name != "worker" else None
                    if args.gc_freeze:
                        gc.collect()
                        gc.freeze()  # what was made before the round is never scanned again
                    results[name].append(
                        asyncio.run(
                            _round(
                                name,
                                module,
                                hosts,
                                concurrency,
                                total,
                                directory,
                                gc_time,
                                server.pid,
                                args.aiohttp,
                            )
                        )
                    )
            _report(concurrency, total, results, args.before)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    parent.send("stop")
    server.join(5)


def _report(
    concurrency: int, total: int, results: dict[str, list[Measured]], before: str | None
) -> None:
    print(f"\n{concurrency} in flight, {total:,} deliveries a round (medians; rounds in brackets)")
    medians = {
        name: [statistics.median(m[i] for m in rows) for i in range(4)]
        for name, rows in results.items()
    }
    for name, (rate, cpu, spent, rcv) in medians.items():
        rates = [round(m[0]) for m in results[name]]
        cpus = [round(m[1]) for m in results[name]]
        print(
            f"   {name:22} {rate:6.0f}/s {rates}  CPU {cpu:4.0f} us/delivery {cpus}, "
            f"of it GC {spent:3.0f} us; receiver {rcv:3.0f} us"
        )
    plain = results["plain aiohttp"]
    for name in [n for n in results if n != "plain aiohttp"]:
        ours = results[name]
        rate_ratios = [o[0] / p[0] for o, p in zip(ours, plain, strict=True)]
        cpu_ratios = [o[1] / p[1] for o, p in zip(ours, plain, strict=True)]
        print(
            f"   {name} / plain aiohttp: rate {statistics.median(rate_ratios):.2f}x "
            f"({min(rate_ratios):.2f}-{max(rate_ratios):.2f}), CPU per delivery "
            f"{statistics.median(cpu_ratios):.2f}x"
        )
    if before:
        after, old = results["worker"], results[f"worker {before}"]
        ratios = [a[1] / b[1] for a, b in zip(after, old, strict=True)]
        print(
            f"   CPU per delivery, worker now / worker {before}: "
            f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        )


if __name__ == "__main__":
    main()
