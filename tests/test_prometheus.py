"""Prometheus metrics: the collector in a registry, a real worker's /metrics over HTTP, and
prometheus_client's multiprocess mode with two worker processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import resthooks.prometheus
from resthooks import ConfigurationError, Dispatcher
from resthooks.observability import METRICS
from resthooks.prometheus import instrument, metrics_registry, serve_metrics
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import FakeClock, HookReceiver, RecordingTransport

LOOPBACK = "127.0.0.0/8"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, parsed with prometheus_client's own parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_the_module_docstring_lists_every_figure() -> None:
    """The table in resthooks.prometheus's docstring is METRICS, in its order: each figure's
    Prometheus name, type and label, and no other."""
    assert resthooks.prometheus.__doc__ is not None
    rows = [
        found.groups()
        for line in resthooks.prometheus.__doc__.splitlines()
        if (found := re.match(r"``(resthooks_\w+)``\s+(\w+)(?:\s+``(\w+)``)?", line))
    ]
    assert [(m.prometheus_name, m.kind, m.prometheus_label) for m in METRICS] == rows


def test_the_registry_holds_every_figure() -> None:
    """After a run, the counters, the histogram and the store's gauges are in the registry,
    every outcome series starting at 0."""
    registry = CollectorRegistry()
    clock = FakeClock()
    dispatcher = Dispatcher(MemoryStore(), clock=clock, transport=RecordingTransport(default=500))
    instrument(dispatcher, registry=registry, max_age=0)
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    dispatcher.deliver_due()
    clock.advance(35)
    found = samples(generate_latest(registry).decode())
    assert (
        "resthooks_attempts_total",
        (("outcome", "retry"),),
    ) not in found  # the histogram counts
    assert found[("resthooks_attempt_duration_seconds_count", (("outcome", "delivered"),))] == 0
    assert found[("resthooks_deliveries_total", (("outcome", "failed"),))] == 0
    assert found[("resthooks_attempt_duration_seconds_count", (("outcome", "retry"),))] == 1
    assert found[("resthooks_outbox_depth", ())] == 1
    assert found[("resthooks_outbox_oldest_due_age_seconds", ())] == 30
    assert found[("resthooks_deliveries_in_flight", ())] == 0
    assert found[("resthooks_hooks", (("state", "active"),))] == 1
    assert found[("resthooks_hooks", (("state", "dead"),))] == 0
    assert found[("resthooks_store_up", ())] == 1


def test_two_dispatchers_share_the_metrics_of_one_registry() -> None:
    """Instrumenting a second Dispatcher on the same registry adds to the same counters."""
    registry = CollectorRegistry()
    for _ in range(2):
        dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=RecordingTransport())
        instrument(dispatcher, registry=registry, gauges=False)
        dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
        dispatcher.emit("party/created", {"id": 1}, owner="acme")
        dispatcher.deliver_due()
    found = samples(generate_latest(registry).decode())
    assert found[("resthooks_deliveries_total", (("outcome", "delivered"),))] == 2


def test_an_unreadable_store_reports_only_store_up_zero(tmp_path: Path) -> None:
    """A store that cannot be read makes the scrape say resthooks_store_up 0, not fail."""
    registry = CollectorRegistry()
    store = SQLiteStore(tmp_path / "hooks.db")
    instrument(Dispatcher(store, clock=FakeClock()), registry=registry, max_age=0)
    store.close()
    found = samples(generate_latest(registry).decode())
    assert found[("resthooks_store_up", ())] == 0
    assert ("resthooks_outbox_depth", ()) not in found


def test_close_unregisters_the_collector() -> None:
    """close() removes the listener and the gauges; counting stops."""
    registry = CollectorRegistry()
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=RecordingTransport())
    instrument(dispatcher, registry=registry).close()
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    dispatcher.deliver_due()
    found = samples(generate_latest(registry).decode())
    assert found[("resthooks_deliveries_total", (("outcome", "delivered"),))] == 0
    assert ("resthooks_store_up", ()) not in found


def test_serve_metrics_answers_over_http() -> None:
    """serve_metrics() serves the registry on a free loopback port."""
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
    instrumentation, server = serve_metrics(dispatcher, port=0)
    try:
        with urllib.request.urlopen(server.url, timeout=10) as response:
            text = response.read().decode()
    finally:
        server.close()
        instrumentation.close()
    assert "resthooks_store_up 1.0" in text


def test_metrics_registry_needs_multiprocess_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside multiprocess mode, metrics_registry() says what it is for."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    with pytest.raises(ConfigurationError, match="PROMETHEUS_MULTIPROC_DIR"):
        metrics_registry(MemoryStore())


# -- a real worker ---------------------------------------------------------------------------


class Worker:
    """``resthooks worker --metrics-port 0`` in a subprocess, and its /metrics URL."""

    def __init__(
        self, db: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "resthooks",
                "worker",
                "--allow-network",
                LOOPBACK,
                "--metrics-port",
                "0",
                *args,
            ],
            env={**os.environ, "RESTHOOKS_DB": str(db), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        match = re.search(r"metrics on (http://\S+)", line)
        assert match, line
        self.url = match.group(1)

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(self.url, timeout=10) as response:
            assert response.status == 200
            return samples(response.read().decode())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[HookReceiver]:
    with HookReceiver() as receiver:
        yield receiver


def seed(db: Path, receiver: HookReceiver) -> Dispatcher:
    from resthooks.testing import LOOPBACK_POLICY  # noqa: PLC0415

    dispatcher = Dispatcher(SQLiteStore(db), network_policy=LOOPBACK_POLICY)
    receiver.subscribe(dispatcher, "party/created", owner="acme")
    return dispatcher


def wait_until(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.parametrize("args", [(), ("--concurrency", "8")], ids=["threads", "asyncio"])
def test_a_real_worker_serves_metrics(
    tmp_path: Path, receiver: HookReceiver, args: tuple[str, ...]
) -> None:
    """`resthooks worker --metrics-port` serves /metrics, scraped over HTTP while it works,
    with the thread worker and with the asyncio one (`--concurrency`)."""
    db = tmp_path / "hooks.db"
    dispatcher = seed(db, receiver)
    worker = Worker(db, args=args)
    try:
        for i in range(3):
            dispatcher.emit("party/created", {"id": i}, owner="acme")
        receiver.wait_for(3, timeout=30)

        def delivered() -> bool:
            found = worker.scrape()
            return found[("resthooks_deliveries_total", (("outcome", "delivered"),))] == 3

        wait_until(delivered)
        found = worker.scrape()
        assert found[("resthooks_hooks", (("state", "active"),))] == 1
        assert found[("resthooks_attempt_duration_seconds_count", (("outcome", "delivered"),))] == 3
        assert found[("resthooks_store_up", ())] == 1
        worker.stop()
    finally:
        worker.kill()
        dispatcher.store.close()


def test_multiprocess_mode_adds_up_the_workers(tmp_path: Path, receiver: HookReceiver) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, a scrape of one worker shows every worker's counts:
    10 deliveries by a first worker, 10 more by a second, 20 on the second's /metrics; the
    store's gauges appear once."""
    db = tmp_path / "hooks.db"
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    dispatcher = seed(db, receiver)
    first = Worker(db, env)
    second = None
    try:
        for i in range(10):
            dispatcher.emit("party/created", {"id": i}, owner="acme")
        receiver.wait_for(10, timeout=30)
        wait_until(
            lambda: (
                first.scrape()[("resthooks_deliveries_total", (("outcome", "delivered"),))] == 10
            )
        )
        first.stop()  # what it counted stays in its file, as for a recycled gunicorn worker
        second = Worker(db, env)
        for i in range(10, 20):
            dispatcher.emit("party/created", {"id": i}, owner="acme")
        receiver.wait_for(20, timeout=30)
        wait_until(
            lambda: (
                second.scrape()[("resthooks_deliveries_total", (("outcome", "delivered"),))] == 20
            )
        )
        with urllib.request.urlopen(second.url, timeout=10) as response:
            text = response.read().decode()
        assert text.count('resthooks_hooks{state="active"}') == 1
        assert text.count("\nresthooks_store_up ") == 1
        assert len(list(metrics_dir.glob("counter_*.db"))) >= 2  # one file per process
        second.stop()
    finally:
        first.kill()
        if second is not None:
            second.kill()
        dispatcher.store.close()


def test_a_taken_port_is_refused_clearly(tmp_path: Path, receiver: HookReceiver) -> None:
    """--metrics-port on a port in use exits 2 with one line naming it."""
    import socket  # noqa: PLC0415

    db = tmp_path / "hooks.db"
    seed(db, receiver).store.close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "resthooks",
                "worker",
                "--once",
                "--allow-network",
                "127.0.0.0/8",
                "--metrics-port",
                str(port),
            ],
            env={**os.environ, "RESTHOOKS_DB": str(db)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert f"--metrics-port: cannot serve metrics on 127.0.0.1:{port}" in done.stderr
