"""A delivery worker process for the scale-out tests and the benchmark.

Usage: ``python worker.py CONNINFO SCHEMA BATCH_SIZE LEASE_SECONDS``. It delivers until it is
sent SIGTERM (or killed). It runs ``Dispatcher.run`` (or, with
``RESTHOOKS_WORKER_LOOP=deliver_due``, a loop of ``deliver_due`` that sleeps briefly when
nothing is due). With
``WORKER_TRANSPORT=null`` (the benchmark's store-only runs) nothing is sent over the network:
every attempt is answered 204 at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import support

from resthooks.stores.postgres import PostgresStore
from resthooks.testing import RecordingTransport
from resthooks.transports import Timeouts


def main() -> None:
    conninfo, schema, batch, lease = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    store = PostgresStore(conninfo, schema=schema, min_size=1, max_size=2)
    options = {}
    if os.environ.get("WORKER_TRANSPORT") == "null":
        options["transport"] = RecordingTransport()
    dispatcher = support.make_dispatcher(
        store,
        **options,
        lease=lease,
        timeouts=Timeouts(connect=min(1.0, lease / 3), total=lease / 2),
        max_in_flight_per_host=None,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if os.environ.get("RESTHOOKS_WORKER_LOOP") != "deliver_due":
        # The worker claims up to two batches of its thread count: half the batch size in
        # threads keeps what one process holds in flight within one batch.
        dispatcher.run(workers=max(1, batch // 2), stop=stop, poll_interval=0.05)
    else:
        while not stop.is_set():
            if dispatcher.deliver_due(batch_size=batch).attempts == 0:
                stop.wait(0.02)
    store.close()


if __name__ == "__main__":
    main()
