"""The figures every exporter shows: the metrics listener and the cached store reading."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from resthooks import ConfigurationError, Dispatcher
from resthooks.observability import (
    ATTEMPT_DURATION,
    DELIVERIES,
    METRICS,
    Metric,
    MetricsListener,
    OutboxMonitor,
    read_outbox,
)
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock, RecordingTransport, run_schedule


def counting(dispatcher: Dispatcher) -> Counter[tuple[str, str | None]]:
    seen: Counter[tuple[str, str | None]] = Counter()

    def record(metric: Metric, value: float, label: str | None) -> None:
        if metric is not ATTEMPT_DURATION:
            seen[(metric.name, label)] += int(value)
        else:
            seen[(metric.name, label)] += 1

    dispatcher.add_listener(MetricsListener(record))
    return seen


def test_a_hook_that_dies_counts_every_attempt_and_both_deliveries() -> None:
    """Retries run out: six attempts (five retries, one failed), the delivery failed, the
    hook's other delivery cancelled, and six durations observed."""
    dispatcher = Dispatcher(
        MemoryStore(), clock=FakeClock(), transport=RecordingTransport(default=500)
    )
    seen = counting(dispatcher)
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    dispatcher.deliver_due()
    dispatcher.emit("party/created", {"id": 2}, owner="acme")  # will be cancelled
    dispatcher.clock.advance(1)  # type: ignore[attr-defined]
    run_schedule(dispatcher)
    assert seen[(DELIVERIES.name, "failed")] == 1
    assert seen[(DELIVERIES.name, "cancelled")] == 1
    assert seen[(ATTEMPT_DURATION.name, "failed")] == 1
    logged = sum(len(dispatcher.store.attempts(d.id)) for d in dispatcher.store.list_deliveries())
    durations = sum(n for (name, _), n in seen.items() if name == ATTEMPT_DURATION.name)
    assert logged == durations, "the histogram counts every attempt logged"
    assert {name for name, _ in seen} == {ATTEMPT_DURATION.name, DELIVERIES.name}
    assert {label for (name, label) in seen if name == ATTEMPT_DURATION.name} <= set(
        ATTEMPT_DURATION.values
    )


def test_unsubscribing_counts_the_cancelled_deliveries() -> None:
    """Deliveries cancelled by an unsubscribe are counted as cancelled deliveries."""
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
    seen = counting(dispatcher)
    hook = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    dispatcher.emit("party/created", [{"id": 1}], owner="acme")
    dispatcher.emit("party/created", [{"id": 2}], owner="acme")
    dispatcher.unsubscribe(hook.id, owner="acme")
    assert {(DELIVERIES.name, "cancelled"): 2} == dict(seen)


def test_every_metric_has_one_prometheus_spelling() -> None:
    """No two metrics share a name, in either exporter's spelling."""
    assert len({m.name for m in METRICS}) == len(METRICS)
    assert len({m.prometheus_name for m in METRICS}) == len(METRICS)


DOCS = Path(__file__).resolve().parent.parent / "docs" / "observability.md"
# | `resthooks.x` (kind[, s][, `resthooks.label`]) | `resthooks_x[{label}]` | what |
_FIGURE_ROW = re.compile(
    r"^\| `(resthooks\.[a-z_.]+)` \(([^)]*)\) \| `([a-z_]+)(?:\{([a-z]+)\})?` \|"
)


def test_the_docs_table_of_figures_is_metrics() -> None:
    """docs/observability.md's table lists every figure of METRICS and nothing else, each
    with its kind, a seconds unit, its attribute and its Prometheus name and label."""
    documented = {}
    for line in DOCS.read_text().splitlines():
        if found := _FIGURE_ROW.match(line):
            name, details, prometheus_name, prometheus_label = found.groups()
            kind, *rest = (part.strip().strip("`") for part in details.split(","))
            unit = next((p for p in rest if not p.startswith("resthooks.")), None)
            attribute = next((p for p in rest if p.startswith("resthooks.")), None)
            documented[name] = (kind, unit, attribute, prometheus_name, prometheus_label)
    expected = {
        m.name: (
            m.kind,
            "s" if m.unit == "s" else None,
            m.attribute,
            m.prometheus_name,
            m.prometheus_label,
        )
        for m in METRICS
    }
    assert expected == documented


@pytest.mark.parametrize("bad", [-1, float("inf"), float("nan"), "10", True, None])
def test_the_cache_age_must_be_seconds(bad: object) -> None:
    """OutboxMonitor refuses a max_age that is not a finite number of seconds >= 0."""
    with pytest.raises(ConfigurationError, match="max_age"):
        OutboxMonitor(MemoryStore(), max_age=bad)  # type: ignore[arg-type]


def test_a_store_without_outbox_stats_still_has_the_oldest_due_time() -> None:
    """A store of one's own without outbox_stats: due and retrying unknown (None), the age
    of the oldest due delivery read from next_due_at."""

    class OwnStore(MemoryStore):
        outbox_stats = None

    clock = FakeClock()
    dispatcher = Dispatcher(OwnStore(), clock=clock)
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    clock.advance(12)
    figures = read_outbox(dispatcher.store, now=clock.now())
    assert (
        figures.due,
        figures.retrying,
        figures.oldest_due_age,
        figures.depth,
    ) == (None, None, 12.0, 1)
    assert "resthooks.outbox.due" not in {m.name for m, _, _ in figures.gauges()}
