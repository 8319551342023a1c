"""Deliveries through an egress proxy (proxy.py on loopback) from a PostgreSQL store: the
thread engine on urllib3 and the async worker on aiohttp."""

# ruff: noqa: PLC0415 - psycopg is optional: imported only after the fixtures checked for it

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from proxy_support import ProxyServer
from resthooks import Dispatcher
from resthooks.testing import FakeClock, HookReceiver
from resthooks.transports import Urllib3Transport

if TYPE_CHECKING:
    from resthooks.stores.postgres import PostgresStore


@pytest.fixture(name="proxy", scope="module")
def _proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    proxy = ProxyServer(tmp_path_factory.mktemp("proxy"), "--basic-auth", "egress:pw")
    yield proxy
    proxy.stop()


def _url(receiver: HookReceiver, path: str) -> str:
    # A name, not the loopback literal: the default policy refuses the literal at subscribe
    # time, and names are the proxy's to resolve.
    return receiver.url(path).replace("127.0.0.1", "localhost")


def test_the_thread_engine_delivers_through_the_proxy(
    pg_store: PostgresStore, proxy: ProxyServer
) -> None:
    """Emit on PostgreSQL, deliver_due through the proxy, the receiver gets it once."""
    transport = Urllib3Transport(proxy=proxy.url("egress:pw"))
    dispatcher = Dispatcher(pg_store, clock=FakeClock(), transport=transport)
    with HookReceiver() as receiver:
        dispatcher.subscribe("party/created", _url(receiver, "/sync"), owner="acme")
        (delivery,) = dispatcher.emit("party/created", {"id": 1}, owner="acme")
        assert dispatcher.deliver_due().delivered == 1
        assert [d.webhook_id for d in receiver.deliveries] == [delivery.id]
    transport.close()


def test_the_async_worker_delivers_through_the_proxy(
    pg_store: PostgresStore, proxy: ProxyServer
) -> None:
    """AsyncDispatcher on AiohttpTransport(proxy=...): run_until_idle delivers every emit."""
    from resthooks.aio import AsyncDispatcher
    from resthooks.transports import AiohttpTransport

    transport = AiohttpTransport(proxy=proxy.url("egress:pw"))
    hooks = AsyncDispatcher(Dispatcher(pg_store, clock=FakeClock()), transport=transport)
    with HookReceiver() as receiver:

        async def main() -> int:
            await hooks.subscribe("party/created", _url(receiver, "/async"), owner="acme")
            for n in range(5):
                await hooks.emit("party/created", {"id": n}, owner="acme")
            summary = await hooks.run_until_idle(concurrency=8)
            await transport.aclose()
            return summary.delivered

        assert asyncio.run(main()) == 5
        assert sorted(p["id"] for p in receiver.payloads("party/created")) == list(range(5))
