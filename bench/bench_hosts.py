"""Many hosts at 200 ms: the transport's pools against plain urllib3 threads, in one run.

Run it from the repository root:

    python bench/bench_hosts.py [--hosts 100] [--threads 256] [--seconds 4] [--rounds 3]
                                [--before REV]

An asyncio receiver in a subprocess listens on ``--hosts`` distinct loopback addresses
(127.0.0.2, 127.0.0.3, ... then 127.0.1.1 on: 1,000 hosts fit) and answers every POST with
204 after ``--latency`` seconds, keeping connections alive; with ``--nginx``, nginx answers
at once on the same addresses instead (see ``bench/_nginx.py``; skipped with a message when
it is not installed). Then, rounds interleaved so a burst of load from elsewhere hits
every client alike:

- ``plain urllib3 threads``: ``--threads`` threads, one shared ``urllib3.PoolManager`` with a
  pool per host (``num_pools`` = hosts), each thread POSTing to the hosts in turn;
- ``transport``: the same threads calling ``Urllib3Transport.send``;
- ``transport before``: the same with the transport of git revision ``--before`` (loaded
  beside the current one), if given;
- ``worker``: ``Dispatcher.run_until_idle(workers=threads)`` on a ``MemoryStore`` with one
  hook per host, end to end (emit, claim, send, record), default settings otherwise;
- ``worker before``: the same on the ``--before`` transport.

Every client sends the same number of requests (about as many as ``--threads`` plain threads
send in ``--seconds``, the same number to every host), so a last round of a few slow requests
costs every client alike. Each prints requests per second and its ratio to the plain threads
of the same round.

``--matrix`` runs the cases of issue 16's thread-worker target one after the other (nginx on
1 host with 1 thread, 10 hosts with 16, 100 hosts with 256; 200 ms receivers on 100 hosts
with 1, 16 and 256 threads and on 1,000 hosts with 16 and 256), each in a process of its
own, passing ``--before-worker`` on, and ends with one table of the medians; ``--quick``
makes it 2 rounds of 2 s each:

    python bench/bench_hosts.py --matrix --quick --before-worker REV
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import urllib3
from _nginx import MISSING, Nginx, available, loopback_hosts

from resthooks import Dispatcher
from resthooks.stores import MemoryStore
from resthooks.testing import LOOPBACK_POLICY
from resthooks.transports import Request, Timeouts, Transport, Urllib3Transport

BODY = b'{"event":"party/created","payload":[{"id":1,"name":"Acme Ltd"}]}'
HEADERS = {"Content-Type": "application/json", "webhook-id": "msg_" + "0" * 32}
_ANSWER = b"HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n"

# -- the receiver (a subprocess) ---------------------------------------------------------------


async def _serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            await asyncio.sleep(latency)
            writer.write(_ANSWER)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve(hosts: int, latency: float) -> None:
    port = 0
    servers = []
    for address in loopback_hosts(hosts):
        server = await asyncio.start_server(
            lambda r, w: _serve_connection(r, w, latency),
            address,
            port,
            backlog=4096,
        )
        port = server.sockets[0].getsockname()[1]
        servers.append(server)
    print(port, flush=True)
    await asyncio.Event().wait()


# -- clients -----------------------------------------------------------------------------------


def requests_for(hosts: int, threads: int, seconds: float, latency: float) -> int:
    """How many requests each client sends: about as many as ``threads`` plain threads send
    in ``seconds``, a whole number for every host (the worker emits one event to each host's
    hook at a time)."""
    per_second = threads / latency if latency > 0 else 3000.0
    return max(1, int(seconds * per_second / hosts)) * hosts


def _threads(send: Callable[[str], None], urls: list[str], threads: int, count: int) -> float:
    # Every client sends the same ``count`` requests, the threads taking the next one as they
    # finish: with receivers that take 200 ms, the last round of a few requests takes as long
    # as a full one, for the plain threads as for the worker (timing the plain threads for a
    # fixed time instead put the worker at 0.89x for 100 requests on 16 threads: 7 rounds).
    numbers = itertools.count()
    barrier = threading.Barrier(threads + 1)

    def work(i: int) -> None:
        barrier.wait()
        while (n := next(numbers)) < count:
            send(urls[n % len(urls)])

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    return count / (time.perf_counter() - start)


def plain(urls: list[str], threads: int, count: int) -> float:
    manager = urllib3.PoolManager(num_pools=len(urls), maxsize=threads, retries=False)

    def send(url: str) -> None:
        response = manager.request("POST", url, body=BODY, headers=HEADERS)
        assert response.status == 204, response.status

    try:
        return _threads(send, urls, threads, count)
    finally:
        manager.clear()


def transport_rate(
    make: Callable[[], Transport], urls: list[str], threads: int, count: int
) -> float:
    transport = make()
    timeouts = Timeouts()

    def send(url: str) -> None:
        request = Request(method="POST", url=url, headers=HEADERS, body=BODY, timeouts=timeouts)
        assert transport.send(request).status == 204

    try:
        return _threads(send, urls, threads, count)
    finally:
        transport.close()


def worker_rate(
    make: Callable[[], Transport],
    urls: list[str],
    threads: int,
    count: int,
    worker_class: Any = None,
) -> float:
    transport = make()
    dispatcher = Dispatcher(
        MemoryStore(),
        transport=transport,
        network_policy=LOOPBACK_POLICY,
        max_hooks_per_owner=None,
        sign_deliveries=True,
    )
    for url in urls:
        dispatcher.subscribe("party/created", url, owner="bench")
    events = count // len(urls)
    for n in range(events):
        dispatcher.emit("party/created", {"id": n, "name": "Acme Ltd"}, owner="bench")
    start = time.perf_counter()
    if worker_class is None:
        summary = dispatcher.run_until_idle(workers=threads)
    else:
        summary = worker_class(dispatcher, workers=threads).run_until_idle()
    elapsed = time.perf_counter() - start
    transport.close()
    assert summary.delivered == events * len(urls), summary
    return summary.delivered / elapsed


def _load_before(rev: str) -> type[Urllib3Transport]:
    """The transport class of git revision ``rev``, loaded beside the current one."""
    from _before import load_before  # noqa: PLC0415 - beside this script

    return load_before(rev, "resthooks.transports._urllib3").Urllib3Transport  # type: ignore[no-any-return]


# (receiver, hosts, threads): the cases of the thread worker's target in issue 16. One thread
# on 1,000 hosts at 200 ms is left out: one event to every hook is 200 s for one thread.
MATRIX = [
    ("nginx", 1, 1),
    ("nginx", 10, 16),
    ("nginx", 100, 256),
    ("200 ms", 100, 1),
    ("200 ms", 100, 16),
    ("200 ms", 100, 256),
    ("200 ms", 1000, 16),
    ("200 ms", 1000, 256),
]


def matrix(args: argparse.Namespace) -> None:
    """Run every case of MATRIX in a process of its own; print one table of the medians."""
    rounds, secs = (2, 2.0) if args.quick else (args.rounds, args.seconds)
    rows = []
    for receiver, hosts, threads in MATRIX:
        command = [sys.executable, __file__, "--hosts", str(hosts), "--threads", str(threads)]
        command += ["--rounds", str(rounds), "--seconds", str(secs)]
        if receiver == "nginx":
            command.append("--nginx")
        if args.before_worker:
            command += ["--before-worker", args.before_worker]
        load = os.getloadavg()[0]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        out = done.stdout
        print(out, flush=True)
        if done.returncode:  # say why, and go on with the other cases
            print(done.stderr[-3000:], flush=True)
        medians = {}
        for line in out.splitlines():
            name = line[:24].strip()  # the summary lines: name, median/s, ratio, range
            if name in ("transport", "worker", "worker before"):
                medians[name] = line.split()[-2]
        rows.append((receiver, hosts, threads, load, medians))
    print(
        f"{'receivers':>10s} {'hosts':>5s} {'threads':>7s} {'load':>5s} "
        f"{'transport':>10s} {'worker':>8s} {'worker before':>14s}   (ratios to plain threads)"
    )
    for receiver, hosts, threads, load, medians in rows:
        print(
            f"{receiver:>10s} {hosts:5d} {threads:7d} {load:5.1f} "
            f"{medians.get('transport', '-'):>10s} {medians.get('worker', '-'):>8s} "
            f"{medians.get('worker before', '-'):>14s}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--threads", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", help="a git revision whose transport to compare")
    parser.add_argument(
        "--before-worker", help="also run the thread worker of this git revision (same transport)"
    )
    parser.add_argument("--matrix", action="store_true", help="run the issue's cases in turn")
    parser.add_argument("--quick", action="store_true", help="with --matrix: 2 rounds of 2 s")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-worker", action="store_true", help="transport only")
    parser.add_argument(
        "--nginx", action="store_true", help="nginx as the receiver (no latency) instead"
    )
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.hosts, args.latency))
        return
    if args.matrix:
        matrix(args)
        return
    nginx: Nginx | None = None
    receiver: subprocess.Popen[str] | None = None
    if args.nginx:
        if not available():
            print(MISSING)
            return
        args.latency = 0.0
        nginx = Nginx(loopback_hosts(args.hosts))
        port = nginx.port
    else:
        receiver = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                "--hosts",
                str(args.hosts),
                "--latency",
                str(args.latency),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
    try:
        urls = [f"http://{a}:{port}/hook/{n}" for n, a in enumerate(loopback_hosts(args.hosts))]
        count = requests_for(args.hosts, args.threads, args.seconds, args.latency)
        now: Callable[[], Transport] = lambda: Urllib3Transport(policy=LOOPBACK_POLICY)  # noqa: E731
        clients: dict[str, Callable[[], float]] = {
            "plain urllib3 threads": lambda: plain(urls, args.threads, count),
            "transport": lambda: transport_rate(now, urls, args.threads, count),
        }
        if args.before:
            old = _load_before(args.before)
            then: Callable[[], Transport] = lambda: old(policy=LOOPBACK_POLICY)  # noqa: E731
            clients["transport before"] = lambda: transport_rate(then, urls, args.threads, count)
        if not args.no_worker:
            clients["worker"] = lambda: worker_rate(now, urls, args.threads, count)
            if args.before_worker:
                from _before import load_before  # noqa: PLC0415 - beside this script

                old_worker = load_before(args.before_worker, "resthooks.worker").Worker
                clients["worker before"] = lambda: worker_rate(
                    now, urls, args.threads, count, old_worker
                )
            elif args.before:
                clients["worker before"] = lambda: worker_rate(then, urls, args.threads, count)
        print(
            f"{args.hosts} hosts at {args.latency * 1000:.0f} ms"
            f"{' (nginx)' if args.nginx else ''}, {args.threads} threads, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
            f"{count:,} requests per client, {args.rounds} rounds, interleaved (order rotating)"
        )
        rates: dict[str, list[float]] = {name: [] for name in clients}
        ratios: dict[str, list[float]] = {name: [] for name in clients}
        names = list(clients)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            got = {name: clients[name]() for name in order}
            for name in names:
                rates[name].append(got[name])
                ratios[name].append(got[name] / got["plain urllib3 threads"])
            print(f"round {r + 1}: " + ", ".join(f"{n} {got[n]:,.0f}/s" for n in names))
        print(f"{'':24s} {'median/s':>9s} {'ratio to plain (median of rounds)':>34s}")
        for name in names:
            print(
                f"{name:24s} {statistics.median(rates[name]):9,.0f} "
                f"{statistics.median(ratios[name]):8.2f}x  "
                f"({min(ratios[name]):.2f}-{max(ratios[name]):.2f}x)"
            )
    finally:
        if receiver is not None:
            receiver.kill()
            receiver.wait()
        if nginx is not None:
            nginx.stop()


if __name__ == "__main__":
    main()
