"""The transactional outbox of asyncio hosts: AsyncDispatcher.emit through a psycopg
AsyncConnection, on the loop, commits and rolls back with the host's transaction."""

# ruff: noqa: PLC0415 - psycopg is optional: imported only after the fixtures checked for it

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
import support

from resthooks import ConfigurationError, DeliveryState
from resthooks.aio import AsyncDispatcher

if TYPE_CHECKING:
    from resthooks.stores.postgres import PostgresStore


def _face(store: PostgresStore) -> AsyncDispatcher:
    return AsyncDispatcher(support.make_dispatcher(store))


def test_an_emit_through_an_async_connection_commits_with_the_hosts_transaction(
    pg_store: PostgresStore, pg_conninfo: str
) -> None:
    """Invisible until the host commits; delivered after; a rolled-back one leaves nothing."""
    import psycopg

    hooks = _face(pg_store)

    async def main() -> tuple[Any, Any, Any]:
        await hooks.subscribe("party/created", "https://example.com/h", owner="acme")
        async with await psycopg.AsyncConnection.connect(pg_conninfo) as conn:
            (kept,) = await hooks.emit("party/created", {"id": 1}, owner="acme", connection=conn)
            before_commit = pg_store.get_delivery(kept.id)
            await conn.commit()
            (dropped,) = await hooks.emit("party/created", {"id": 2}, owner="acme", connection=conn)
            await conn.rollback()
        return kept, before_commit, dropped

    kept, before_commit, dropped = asyncio.run(main())

    assert before_commit is None
    stored = pg_store.get_delivery(kept.id)
    assert stored is not None
    assert stored.state is DeliveryState.PENDING
    assert pg_store.get_delivery(dropped.id) is None


def test_an_async_connection_in_autocommit_outside_a_transaction_is_refused(
    pg_store: PostgresStore, pg_conninfo: str
) -> None:
    """It would commit the deliveries on their own: a ConfigurationError, nothing stored."""
    import psycopg

    hooks = _face(pg_store)

    async def main() -> None:
        await hooks.subscribe("party/created", "https://example.com/h", owner="acme")
        async with await psycopg.AsyncConnection.connect(pg_conninfo, autocommit=True) as conn:
            with pytest.raises(ConfigurationError, match="autocommit"):
                await hooks.emit("party/created", {"id": 1}, owner="acme", connection=conn)
            async with conn.transaction():
                made = await hooks.emit("party/created", {"id": 2}, owner="acme", connection=conn)
            assert len(made) == 1

    asyncio.run(main())

    assert len(pg_store.list_deliveries()) == 1


def test_a_traced_emit_through_an_async_connection_links_its_attempts(
    pg_store: PostgresStore, pg_conninfo: str
) -> None:
    """With OpenTelemetry, an emit through the host's AsyncConnection stores the emit's trace
    context like any other: the async worker's attempt span links to the span the emit was
    made in (the host's request span)."""
    import psycopg
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from resthooks.otel import instrument
    from resthooks.testing import AsyncRecordingTransport

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    dispatcher = support.make_dispatcher(pg_store)
    instrument(dispatcher, tracer_provider=provider)
    hooks = AsyncDispatcher(dispatcher, transport=AsyncRecordingTransport())

    async def main() -> None:
        await hooks.subscribe("party/created", "https://example.com/h", owner="acme")
        async with await psycopg.AsyncConnection.connect(pg_conninfo) as conn:
            with provider.get_tracer("host").start_as_current_span("POST /parties"):
                await hooks.emit("party/created", {"id": 1}, owner="acme", connection=conn)
            await conn.commit()
        summary = await hooks.worker(concurrency=4).run_until_idle()
        assert summary.delivered == 1

    asyncio.run(main())
    request, attempt = spans.get_finished_spans()
    assert request.name == "POST /parties"
    assert [link.context.span_id for link in attempt.links] == [request.context.span_id]
