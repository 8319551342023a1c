"""Many hosts at 200 ms: AiohttpTransport against a plain aiohttp ClientSession, in one run.

Run it from the repository root (needs the ``async`` extra):

    python bench/bench_aio_transport.py [--quick] [--hosts 100] [--concurrency 256 1024]
                                        [--seconds 4] [--rounds 3] [--httpx]

``--quick`` is 2 rounds of 3 s.

The asyncio receiver of ``bench/bench_hosts.py`` runs in a subprocess, listening on ``--hosts``
distinct loopback addresses (127.0.0.2, 127.0.0.3, ...) and answering every POST with 204
after ``--latency`` seconds on kept-alive connections. Then, for each concurrency, rounds
interleaved (the order rotating) so a burst of load from elsewhere hits both clients alike:

- ``plain aiohttp``: one ``aiohttp.ClientSession`` (its connector without a connection limit,
  which would otherwise cap it at 100 in flight), N tasks each POSTing to the hosts in turn
  and reading the whole answer;
- ``plain, tuned``: the same with the session settings the transport uses (no cookie jar,
  no decompression), to show what the transport's own work costs;
- ``plain httpx`` (with ``--httpx``): the same with an ``httpx.AsyncClient`` without
  connection limits, the other client the transport could be built on;
- ``transport``: the same N tasks awaiting ``AiohttpTransport.send`` (network policy, capped
  read, deadline and all), with a new transport per round, as the plain client has a new
  session;
- ``asyncio transport``: the same with ``AsyncioTransport``, the async worker's default.

Each run has a warm-up second (the connections open) before its measured seconds. Each
prints requests per second and its ratio to plain aiohttp in the same round (the ceiling
is N / latency), and the client's CPU time per request with its ratio (steadier than the rate
on a loaded machine: the CPU another engineer's job takes does not count).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from resthooks.testing import LOOPBACK_POLICY
from resthooks.transports import AiohttpTransport, AsyncioTransport, Request, Timeouts

BODY = b'{"event":"party/created","payload":[{"id":1,"name":"Acme Ltd"}]}'
HEADERS = {"Content-Type": "application/json", "webhook-id": "msg_" + "0" * 32}
RECEIVER = Path(__file__).resolve().parent / "bench_hosts.py"

Send = Callable[[str], Awaitable[None]]
WARMUP = 1.0  # seconds of each run not measured
ERRORS: dict[str, int] = {}  # failed requests by exception type, of the last client run


Rate = tuple[float, float]  # requests per second, client CPU microseconds per request


async def _run(send: Send, urls: list[str], concurrency: int, seconds: float) -> Rate:
    """Requests per second of ``concurrency`` tasks calling ``send`` for ``seconds`` after a
    warm-up of ``WARMUP`` seconds (opening the connections: a worker runs for hours, so its
    steady state is what counts), and the client's CPU time per request over the same
    seconds (this process only: the receiver runs in another)."""
    done = [0]
    loop = asyncio.get_running_loop()
    t0 = loop.time() + WARMUP
    end = t0 + seconds
    counting = [False]

    async def work(i: int) -> None:
        n = i
        while loop.time() < end:
            try:
                await send(urls[n % len(urls)])
            except Exception as exc:  # counted and shown, not fatal: a baseline may fail too
                ERRORS[type(exc).__name__] = ERRORS.get(type(exc).__name__, 0) + 1
            else:
                if counting[0] and loop.time() < end:
                    done[0] += 1
            n += concurrency

    async def clock() -> tuple[float, float]:
        await asyncio.sleep(WARMUP)
        counting[0] = True
        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        counting[0] = False
        return time.perf_counter() - start, time.process_time() - cpu

    timing = asyncio.ensure_future(clock())
    await asyncio.gather(*(work(i) for i in range(concurrency)))
    elapsed, cpu = await timing
    return done[0] / elapsed, cpu / max(done[0], 1) * 1e6


async def plain(urls: list[str], concurrency: int, seconds: float, **options: Any) -> Rate:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, **options) as session:

        async def send(url: str) -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                await response.read()
                assert response.status == 204, response.status

        return await _run(send, urls, concurrency, seconds)


async def transport(
    urls: list[str], concurrency: int, seconds: float, kind: type[Any] = AiohttpTransport
) -> Rate:
    timeouts = Timeouts()
    async with kind(policy=LOOPBACK_POLICY) as sender:

        async def send(url: str) -> None:
            request = Request(method="POST", url=url, headers=HEADERS, body=BODY, timeouts=timeouts)
            response = await sender.send(request)
            assert response.status == 204, response.status

        return await _run(send, urls, concurrency, seconds)


async def lean(urls: list[str], concurrency: int, seconds: float) -> Rate:
    # The lean HTTP/1.1 client on asyncio the async worker uses by default.
    return await transport(urls, concurrency, seconds, AsyncioTransport)


async def plain_tuned(urls: list[str], concurrency: int, seconds: float) -> Rate:
    # The session settings the transport uses, to show what its own work costs.
    return await plain(
        urls,
        concurrency,
        seconds,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )


async def plain_httpx(urls: list[str], concurrency: int, seconds: float) -> Rate:
    # The other asyncio HTTP client one could build the transport on.
    import httpx  # noqa: PLC0415 - only with --httpx

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(limits=limits) as client:

        async def send(url: str) -> None:
            response = await client.post(url, content=BODY, headers=HEADERS)
            assert response.status_code == 204, response.status_code

        return await _run(send, urls, concurrency, seconds)


CLIENTS = {
    "plain aiohttp": plain,
    "plain, tuned": plain_tuned,
    "transport": transport,
    "asyncio transport": lean,
}


async def bench(urls: list[str], args: argparse.Namespace) -> None:
    for concurrency in args.concurrency:
        print(
            f"\n{len(urls)} hosts at {args.latency * 1000:.0f} ms, {concurrency} in flight "
            f"(ceiling {concurrency / args.latency:,.0f}/s), {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds of {args.seconds} s, "
            "interleaved (order rotating)"
        )
        names = list(CLIENTS)
        rates: dict[str, list[float]] = {name: [] for name in names}
        ratios: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        cpu_ratios: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            got = {}
            for name in order:
                ERRORS.clear()
                got[name] = await CLIENTS[name](urls, concurrency, args.seconds)
                if ERRORS:
                    print(f"  {name}: failed requests (not counted) {ERRORS}")
            for name in names:
                rates[name].append(got[name][0])
                ratios[name].append(got[name][0] / got["plain aiohttp"][0])
                cpu[name].append(got[name][1])
                cpu_ratios[name].append(got[name][1] / got["plain aiohttp"][1])
            print(
                f"round {r + 1}: "
                + ", ".join(f"{n} {got[n][0]:,.0f}/s ({got[n][1]:,.0f} us CPU/req)" for n in names)
            )
        print(
            f"{'':16s} {'median/s':>9s} {'ratio to plain (rounds)':>26s} "
            f"{'CPU us/req':>11s} {'CPU ratio (rounds)':>22s}"
        )
        for name in names:
            print(
                f"{name:16s} {statistics.median(rates[name]):9,.0f} "
                f"{statistics.median(ratios[name]):8.2f}x ({min(ratios[name]):.2f}-"
                f"{max(ratios[name]):.2f}x) {statistics.median(cpu[name]):11,.0f} "
                f"{statistics.median(cpu_ratios[name]):8.2f}x ({min(cpu_ratios[name]):.2f}-"
                f"{max(cpu_ratios[name]):.2f}x)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--httpx", action="store_true", help="add a plain httpx.AsyncClient")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 2, 3.0
    if args.httpx:
        CLIENTS["plain httpx"] = plain_httpx
    receiver = subprocess.Popen(
        [
            sys.executable,
            str(RECEIVER),
            "--serve",
            "--hosts",
            str(args.hosts),
            "--latency",
            str(args.latency),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        urls = [f"http://127.0.0.{n + 2}:{port}/hook/{n}" for n in range(args.hosts)]
        asyncio.run(bench(urls, args))
    finally:
        receiver.kill()
        receiver.wait()


if __name__ == "__main__":
    main()
