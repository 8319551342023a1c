"""What only the async transports have to show: a thousand requests in flight on one loop, a
pool that keeps every host, its limits and idle timeout, cancellation, its loop, and its
configuration errors. Each test runs on AiohttpTransport and on AsyncioTransport.

The promises it shares with the sync transport are tested on both, in
test_transport_pinning.py, test_delivery_http.py and test_transport_parity.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from resthooks import ConfigurationError, NetworkPolicy, TransportError
from resthooks.testing import AsyncRecordingTransport, RecordingTransport
from resthooks.transports import AsyncTransport, PooledHost, Request, Timeouts, Transport


class SlowReceiver:
    """An asyncio HTTP receiver on loopback, on a loop of its own in a thread.

    Every request is held until ``hold_until`` requests are in flight at once (or ``patience``
    seconds pass), then answered 204 on a kept-alive connection. It listens on each of
    ``hosts`` (127.0.0.x addresses), on a port of its own per host.
    """

    def __init__(self, *, hosts: int = 1, hold_until: int = 0, patience: float = 30.0) -> None:
        self.hold_until = hold_until
        self.patience = patience
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self._released: asyncio.Event | None = None
        self._servers: list[asyncio.Server] = []
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.urls = self._call(self._start([f"127.0.0.{i + 1}" for i in range(hosts)]))

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _start(self, hosts: list[str]) -> list[str]:
        self._released = asyncio.Event()
        urls = []
        for host in hosts:
            server = await asyncio.start_server(self._serve, host, 0, backlog=4096)
            self._servers.append(server)
            port = server.sockets[0].getsockname()[1]
            urls.append(f"http://{host}:{port}/hook")
        return urls

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._released is not None
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.requests += 1
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                if self.in_flight >= self.hold_until:
                    self._released.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), self.patience)
                self.in_flight -= 1
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def release(self) -> None:
        """Answer every request held, and every later one, at once."""
        assert self._released is not None
        self.loop.call_soon_threadsafe(self._released.set)

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        self._call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(name="transport_class")
def _transport_class(async_transport_class: type[AsyncTransport]) -> type[Any]:
    return async_transport_class


def _request(url: str, total: float = 30.0) -> Request:
    return Request(
        method="POST",
        url=url,
        headers={"Content-Type": "application/json"},
        body=b"{}",
        timeouts=Timeouts(connect=min(5.0, total), total=total),
    )


@pytest.fixture(name="slow_receiver")
def _slow_receiver(request: pytest.FixtureRequest) -> Iterator[SlowReceiver]:
    receiver = SlowReceiver(**getattr(request, "param", {}))
    yield receiver
    receiver.close()


@pytest.mark.parametrize("slow_receiver", [{"hold_until": 1000}], indirect=True)
def test_a_thousand_requests_in_flight_at_once(
    transport_class: type[Any], slow_receiver: SlowReceiver, loopback_policy: NetworkPolicy
) -> None:
    """1,000 sends awaited at once on one loop are all in flight at the receiver together
    (it answers none until all 1,000 arrived), each on its own connection, and all succeed:
    the default pool sets no limit below the requests in flight."""

    async def main() -> list[int]:
        async with transport_class(policy=loopback_policy) as transport:
            url = slow_receiver.urls[0]
            responses = await asyncio.gather(*(transport.send(_request(url)) for _ in range(1000)))
        return [response.status for response in responses]

    statuses = asyncio.run(main())

    assert statuses == [204] * 1000
    assert slow_receiver.max_in_flight == 1000
    assert slow_receiver.connections == 1000


@pytest.mark.parametrize("slow_receiver", [{"hosts": 100}], indirect=True)
def test_the_pool_keeps_a_connection_to_every_host(
    transport_class: type[Any], slow_receiver: SlowReceiver, loopback_policy: NetworkPolicy
) -> None:
    """Three rounds over 100 hosts open 100 connections, not 300: no LRU of hosts smaller
    than the hosts in use closes and reopens them."""

    async def main() -> tuple[list[PooledHost], list[PooledHost]]:
        async with transport_class(policy=loopback_policy) as transport:
            for _ in range(3):
                for url in slow_receiver.urls:
                    assert (await transport.send(_request(url))).status == 204
            held = transport.pooled_hosts()
        return held, transport.pooled_hosts()

    held, after_close = asyncio.run(main())

    assert slow_receiver.requests == 300
    assert slow_receiver.connections == 100
    # pooled_hosts() says what the pool holds: one idle connection to each host, the host
    # sent to last first; nothing once closed.
    assert sorted(f"127.0.0.{i + 1}" for i in range(100)) == sorted(h.host for h in held)
    assert {("http", 1)} == {(h.scheme, h.idle_connections) for h in held}
    assert held[0].host == "127.0.0.100"
    assert after_close == []


@pytest.mark.parametrize("slow_receiver", [{"hold_until": 2, "patience": 30.0}], indirect=True)
def test_a_cancelled_send_closes_its_connection_and_the_pool_goes_on(
    transport_class: type[Any], slow_receiver: SlowReceiver, loopback_policy: NetworkPolicy
) -> None:
    """Cancelling a send in flight raises CancelledError in the caller and drops that
    connection; the next send works, on a new connection."""

    async def main() -> tuple[bool, int]:
        async with transport_class(policy=loopback_policy) as transport:
            url = slow_receiver.urls[0]
            task = asyncio.ensure_future(transport.send(_request(url)))
            while slow_receiver.in_flight < 1:
                await asyncio.sleep(0.01)
            task.cancel()
            cancelled = False
            try:
                await task
            except asyncio.CancelledError:
                cancelled = True
            slow_receiver.release()  # answer at once from now on
            response = await transport.send(_request(url))
            return cancelled, response.status

    assert asyncio.run(main()) == (True, 204)
    assert slow_receiver.connections == 2


def test_the_session_belongs_to_its_loop_until_closed(
    transport_class: type[Any], loopback_policy: NetworkPolicy
) -> None:
    """Sending from a second loop while the first loop's session is open is a
    ConfigurationError; after aclose() on the first loop, the transport sends from another."""
    receiver = SlowReceiver()
    transport = transport_class(policy=loopback_policy)
    request = _request(receiver.urls[0])
    first = asyncio.new_event_loop()
    thread = threading.Thread(target=first.run_forever, daemon=True)
    thread.start()

    def on_first(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, first).result(30)

    async def send_and_close() -> int:
        status = (await transport.send(request)).status
        await transport.aclose()
        return status

    try:
        assert on_first(transport.send(request)).status == 204
        with pytest.raises(ConfigurationError, match="another event loop"):
            asyncio.run(transport.send(request))
        on_first(transport.aclose())
        assert asyncio.run(send_and_close()) == 204
    finally:
        first.call_soon_threadsafe(first.stop)
        thread.join(10)
        first.close()
        receiver.close()


def test_tls_verification_cannot_be_turned_off(transport_class: type[Any]) -> None:
    """A context that skips certificate or host-name checks is refused when the transport is
    built, naming what is wrong; a private CA goes into a verifying context instead."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    with pytest.raises(ConfigurationError, match="ssl_context must verify"):
        transport_class(ssl_context=unverified)
    no_host_check = ssl.create_default_context()
    no_host_check.check_hostname = False
    with pytest.raises(ConfigurationError, match="check_hostname"):
        transport_class(ssl_context=no_host_check)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_connections", 0),
        ("max_connections", -1),
        ("max_connections", 2.5),
        ("max_connections", True),
        ("max_connections_per_host", "8"),
        ("keepalive", 0),
        ("keepalive", float("inf")),
        ("keepalive", float("nan")),
        ("keepalive", "15"),
        ("policy", "NetworkPolicy()"),
        ("resolver", 42),
        ("ssl_context", "verify"),
    ],
)
def test_bad_options_are_configuration_errors(
    transport_class: type[Any], option: str, value: object
) -> None:
    """Every option of the wrong type or out of range is a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=option):
        transport_class(**{option: value})


def test_the_transports_follow_their_protocols(transport_class: type[Any]) -> None:
    """AiohttpTransport and AsyncRecordingTransport are AsyncTransports, the sync ones are
    Transports, and neither kind passes for the other."""
    assert isinstance(transport_class(), AsyncTransport)
    assert isinstance(AsyncRecordingTransport(), AsyncTransport)
    assert isinstance(RecordingTransport(), Transport)
    assert not isinstance(RecordingTransport(), AsyncTransport)
    assert not isinstance(AsyncRecordingTransport(), Transport)


def test_aiohttp_log_records_lose_query_strings(
    aiohttp_transport: type[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Once an AiohttpTransport exists, aiohttp's client loggers mask the query string and
    the credentials of any URL they record, whether in the message or its arguments."""
    aiohttp_transport()
    caplog.set_level(logging.DEBUG)
    logger = logging.getLogger("aiohttp.client")
    logger.debug("POST %s failed", "https://alice:hunter2@h.example/hook?token=s3cret")
    logger.debug("request to https://h.example/hook?token=s3cret")
    assert [r.getMessage() for r in caplog.records if r.name == "aiohttp.client"] == [
        "POST https://***@h.example/hook?*** failed",
        "request to https://h.example/hook?***",
    ]


def test_async_recording_transport_holds_sends_in_flight() -> None:
    """An async handler can hold every send until many are in flight; the transport counts
    them and records every request."""
    gate = asyncio.Event()

    async def handler(request: Request) -> int:
        await gate.wait()
        return 202

    transport = AsyncRecordingTransport(handler)

    async def main() -> list[int]:
        sends = [
            asyncio.ensure_future(transport.send(_request("https://x.test/"))) for _ in range(50)
        ]
        while transport.in_flight < 50:
            await asyncio.sleep(0)
        gate.set()
        return [r.status for r in await asyncio.gather(*sends)]

    assert asyncio.run(main()) == [202] * 50
    assert (transport.max_in_flight, transport.in_flight, len(transport.requests)) == (50, 0, 50)


def test_a_slow_resolver_is_cut_off_by_the_connect_timeout(
    transport_class: type[Any], loopback_policy: NetworkPolicy
) -> None:
    """A resolver that takes 3 s to answer does not hold the attempt: it fails as ``timeout``
    at the connect timeout, while the loop stays free."""
    resolved = threading.Event()

    def slow(host: str, port: int) -> list[str]:
        resolved.wait(3)  # a DNS server that takes its time
        return ["127.0.0.1"]

    async def main() -> tuple[str, float]:
        async with transport_class(policy=loopback_policy, resolver=slow) as transport:
            started = asyncio.get_running_loop().time()
            request = Request(
                method="POST",
                url="http://slow-dns.example.test/hook",
                headers={},
                body=b"{}",
                timeouts=Timeouts(connect=0.3, total=10.0),
            )
            try:
                await transport.send(request)
            except TransportError as exc:
                return exc.kind, asyncio.get_running_loop().time() - started
            finally:
                resolved.set()
        raise AssertionError("the request went through")

    kind, took = asyncio.run(main())
    # Had the attempt waited for the resolver, it would have dialled port 80 after 3 s and
    # failed as "connection".
    assert kind == "timeout"
    assert took < 3.0


@pytest.mark.parametrize("option", ["max_connections", "max_connections_per_host"])
@pytest.mark.parametrize("slow_receiver", [{"hold_until": 3, "patience": 0.3}], indirect=True)
def test_a_connection_limit_holds_the_requests_in_flight(
    transport_class: type[Any],
    slow_receiver: SlowReceiver,
    loopback_policy: NetworkPolicy,
    option: str,
) -> None:
    """With a limit of 2 connections, 6 sends awaited at once reach the receiver at most two
    at a time, on two connections, and all succeed (the others wait for a free one)."""

    async def main() -> list[int]:
        async with transport_class(policy=loopback_policy, **{option: 2}) as transport:
            url = slow_receiver.urls[0]
            responses = await asyncio.gather(*(transport.send(_request(url)) for _ in range(6)))
        return [response.status for response in responses]

    assert asyncio.run(main()) == [204] * 6
    assert slow_receiver.max_in_flight == 2
    assert slow_receiver.connections == 2


def test_an_idle_connection_is_closed_after_keepalive(
    transport_class: type[Any], loopback_policy: NetworkPolicy
) -> None:
    """A connection idle for ``keepalive`` seconds leaves the pool (pooled_hosts() no longer
    lists its host) and the next send opens a new one."""
    receiver = SlowReceiver()

    async def main() -> tuple[int, int]:
        async with transport_class(policy=loopback_policy, keepalive=0.2) as transport:
            await transport.send(_request(receiver.urls[0]))
            pooled = len(transport.pooled_hosts())
            while transport.pooled_hosts():
                await asyncio.sleep(0.05)
            await transport.send(_request(receiver.urls[0]))
        return pooled, receiver.connections

    try:
        assert asyncio.run(main()) == (1, 2)
    finally:
        receiver.close()
