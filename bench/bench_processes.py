"""Several worker processes on one SQLite file, against as many plain processes, in one run.

Run it from the repository root:

    python bench/bench_processes.py [--deliveries 6000] [--processes 1 2] [--rounds 3]
                                    [--hooks 10] [--instant]

nginx (see ``bench/_nginx.py``; skipped with a message when it is not installed) answers 204
to every POST on ``--hooks`` loopback addresses (one hook per address, so the hooks are on
different hosts). For each process count, rounds interleaved:

- ``plain``: that many processes, each a loop of ``urllib3.PoolManager().request`` POSTs
  (its share of ``--deliveries``), all started together: what the machine gives processes
  that share nothing;
- ``workers``: a SQLite file with ``--deliveries`` pending deliveries (emitted beforehand
  with ``emit_many``), and that many worker processes, each running ``deliver_due()`` in a
  loop on its own ``SQLiteStore`` of the file until nothing is left: the claims and records
  of all of them go through the one file;
- with ``--instant``, ``workers`` use a transport that answers 204 at once (no HTTP): the
  store alone.

Printed: deliveries per second for each, and each count's rate over one process's
(scaling), plain beside workers. Target (issue 16): workers at 2 processes on 2 cores at 1.5x
one process or better.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import urllib3
from _nginx import MISSING, Nginx, available, loopback_hosts

BODY = b'{"event":"party/created","payload":[{"id":1,"name":"Acme Ltd"}]}'
HEADERS = {"Content-Type": "application/json", "webhook-id": "msg_" + "0" * 32}


def _ready() -> None:
    print("ready", flush=True)
    sys.stdin.readline()


def _child_plain(urls: list[str], count: int) -> None:
    pool = urllib3.PoolManager(num_pools=len(urls) + 1)
    _ready()
    for n in range(count):
        response = pool.request("POST", urls[n % len(urls)], body=BODY, headers=HEADERS)
        assert response.status == 204, response.status


def _child_worker(path: str, instant: bool, before: str | None) -> None:
    from resthooks import Dispatcher  # noqa: PLC0415 - the child imports what it runs
    from resthooks.stores import SQLiteStore  # noqa: PLC0415
    from resthooks.testing import LOOPBACK_POLICY  # noqa: PLC0415
    from resthooks.transports import Response, Urllib3Transport  # noqa: PLC0415

    class Instant:
        def send(self, request: object) -> Response:
            return Response(status=204)

        def close(self) -> None:
            pass

    transport = Instant() if instant else Urllib3Transport(policy=LOOPBACK_POLICY)
    if before:
        from _before import load_before  # noqa: PLC0415 - beside this script

        SQLiteStore = load_before(before, "resthooks.stores.sqlite").SQLiteStore  # noqa: N806
    store = SQLiteStore(path)
    dispatcher = Dispatcher(store, transport=transport, network_policy=LOOPBACK_POLICY)  # type: ignore[arg-type]
    _ready()
    empty = 0
    while empty < 3:
        summary = dispatcher.deliver_due()
        empty = 0 if summary.delivered else empty + 1
    store.close()


def _prepare(path: Path, urls: list[str], deliveries: int) -> None:
    from resthooks import Dispatcher  # noqa: PLC0415
    from resthooks.stores import SQLiteStore  # noqa: PLC0415
    from resthooks.testing import LOOPBACK_POLICY, RecordingTransport  # noqa: PLC0415

    store = SQLiteStore(path)
    dispatcher = Dispatcher(
        store,
        transport=RecordingTransport(),
        network_policy=LOOPBACK_POLICY,
        max_hooks_per_owner=None,
    )
    for url in urls:
        dispatcher.subscribe("party/created", url, owner="bench")
    events = deliveries // len(urls)
    for first in range(0, events, 500):
        dispatcher.emit_many(
            [("party/created", {"id": n}, "bench") for n in range(first, min(events, first + 500))]
        )
    store.close()


def _run(children: list[list[str]]) -> float:
    """Start the children together (each waits for a line on stdin); seconds until all end."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for argv in children
    ]
    for p in procs:  # each says when it has imported and opened what it needs
        assert p.stdout is not None
        assert p.stdout.readline() == "ready\n"
    start = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
        p.stdin.close()
    for p in procs:
        assert p.wait() == 0
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=6000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hooks", type=int, default=10)
    parser.add_argument("--instant", action="store_true")
    parser.add_argument("--before", metavar="REV", help="also run workers on the store of REV")
    parser.add_argument("--child", choices=["plain", "worker"], help=argparse.SUPPRESS)
    parser.add_argument("--arg", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child == "plain":
            _child_plain(args.arg[1:], int(args.arg[0]))
        else:
            _child_worker(args.arg[0], args.arg[1] == "instant", (args.arg[2:] or [None])[0])
        return
    if not args.instant and not available():
        print(MISSING)
        return
    addresses = loopback_hosts(args.hooks)
    with tempfile.TemporaryDirectory() as tmp, Nginx(addresses) as nginx:
        urls = [f"http://{a}:{nginx.port}/hook" for a in addresses]
        rates: dict[tuple[str, int], list[float]] = {}
        for r in range(args.rounds):
            for count in args.processes:
                kinds = ["plain", "workers"] + (["workers before"] if args.before else [])
                shift = r % len(kinds)
                for kind in kinds[shift:] + kinds[:shift]:
                    if kind == "plain":
                        share = args.deliveries // count
                        argv = ["--child", "plain", "--arg", str(share)]
                        for url in urls:
                            argv += ["--arg", url]
                        elapsed = _run([argv] * count)
                        done = share * count
                    else:
                        path = Path(tmp, f"r{r}-p{count}-{kind.replace(' ', '-')}.db")
                        _prepare(path, urls, args.deliveries)
                        mode = "instant" if args.instant else "http"
                        argv = ["--child", "worker", "--arg", str(path), "--arg", mode]
                        if kind == "workers before":
                            argv += ["--arg", args.before]
                        elapsed = _run([argv] * count)
                        done = (args.deliveries // len(urls)) * len(urls)
                    rates.setdefault((kind, count), []).append(done / elapsed)
            print(
                f"round {r + 1}: "
                + ", ".join(f"{k} x{c} {v[-1]:,.0f}/s" for (k, c), v in rates.items()),
                flush=True,
            )
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.deliveries} "
        f"deliveries to {args.hooks} hosts, {args.rounds} rounds"
        + ("; workers with an instant transport (the store alone)" if args.instant else "")
    )
    for kind in ("plain", "workers", "workers before")[: 3 if args.before else 2]:
        one = rates[(kind, args.processes[0])]
        for count in args.processes:
            got = rates[(kind, count)]
            scaling = statistics.median(g / o for g, o in zip(got, one, strict=True))
            print(
                f"{kind:>8} x{count}: {statistics.median(got):8,.0f}/s  "
                f"{scaling:.2f}x of {args.processes[0]} process(es) (median of rounds)"
            )


if __name__ == "__main__":
    main()
