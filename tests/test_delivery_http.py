"""Deliveries over real HTTP, with each real transport, to servers on loopback.

pytest-httpserver plays a well-behaved receiver; small raw-socket servers play the badly
behaved ones (never answering, dripping bytes, answering with 10 MB). Every test runs twice:
through Urllib3Transport and through AiohttpTransport (see ``make_transport``).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

import resthooks
from resthooks import (
    Attempt,
    DeliveryState,
    Dispatcher,
    HookNotFound,
    HookState,
    NetworkPolicy,
    SystemClock,
    Timeouts,
)
from resthooks.stores import MemoryStore
from resthooks.transports import Transport

MakeDispatcher = Callable[..., Dispatcher]


@pytest.fixture(name="http_dispatcher")
def _http_dispatcher(
    make_transport: Callable[..., Transport], loopback_policy: NetworkPolicy
) -> Callable[..., Dispatcher]:
    """Dispatchers delivering over real HTTP, on the system clock, through the transport under
    test (this module's override of the shared fixture, run once per transport)."""

    def make(**options: Any) -> Dispatcher:
        options.setdefault("timeouts", Timeouts(connect=1.0, total=1.0))
        options.setdefault("lease", 30.0)
        options.setdefault("network_policy", loopback_policy)
        transport = make_transport(policy=loopback_policy)
        return Dispatcher(MemoryStore(), clock=SystemClock(), transport=transport, **options)

    return make


# The body Capsule documents for a new party (its REST hooks page, "party/created").
CAPSULE_PARTY_CREATED = """{
"event": "party/created",
"payload": [{
"id": 11587,
"type": "person",
"about": null,
"title": null,
"firstName": "Scott",
"lastName": "Spacey",
"jobTitle": "Creative Director",
"createdAt": "2015-09-15T10:43:23Z",
"updatedAt": "2015-09-15T10:43:23Z",
"organisation": null,
"lastContactedAt": null,
"addresses": [
{
"id": 12135,
"type": null,
"city": "Chicago",
"country": "United States",
"street": "847 North Rush Street",
"state": "IL",
"zip": "65629"
}
],
"phoneNumbers": [
{
"id": 12133,
"type": null,
"number": "773-338-7786"
}
],
"websites": [],
"emailAddresses": [
{
"id": 12134,
"type": "Work",
"address": "scott@homestyleshop.co"
}
],
"pictureURL": "https://capsulecrm.com/theme/default/images/person_avatar_70.png"
}]
}"""


def only_attempt(dispatcher: Dispatcher, delivery_id: str, owner: str = "acme") -> Attempt:
    [attempt] = dispatcher.attempts(delivery_id, owner=owner)
    return attempt


def test_the_receiver_gets_exactly_capsules_body(
    http_dispatcher: MakeDispatcher, httpserver: HTTPServer
) -> None:
    """A party/created emitted from Python values (datetimes included) reaches the receiver
    as exactly the body Capsule documents, with the documented headers."""
    httpserver.expect_request("/hook", method="POST").respond_with_data("", status=204)
    dispatcher = http_dispatcher()
    dispatcher.subscribe("party/created", httpserver.url_for("/hook"), owner="acme")
    entity = json.loads(CAPSULE_PARTY_CREATED)["payload"][0]
    created = datetime(2015, 9, 15, 10, 43, 23, tzinfo=timezone.utc)
    entity |= {"createdAt": created, "updatedAt": created}

    [delivery] = dispatcher.emit("party/created", entity, owner="acme")
    summary = dispatcher.deliver_due()

    assert summary.delivered == 1
    [(request, _)] = httpserver.log
    assert json.loads(request.get_data()) == json.loads(CAPSULE_PARTY_CREATED)
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"resthooks/{resthooks.__version__}"
    assert request.headers["webhook-id"] == delivery.id
    assert dispatcher.get_delivery(delivery.id, owner="acme").state is DeliveryState.DELIVERED
    assert only_attempt(dispatcher, delivery.id).status == 204


def test_410_over_http_deletes_the_hook(
    http_dispatcher: MakeDispatcher, httpserver: HTTPServer
) -> None:
    """A receiver answering 410 Gone gets its hook deleted and its other pending delivery
    cancelled."""
    httpserver.expect_ordered_request("/hook").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/hook").respond_with_data("gone", status=410)
    dispatcher = http_dispatcher()
    hook = dispatcher.subscribe("party/created", httpserver.url_for("/hook"), owner="acme")
    [waiting] = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    assert dispatcher.deliver_due().retried == 1  # due again in 5 s
    [gone] = dispatcher.emit("party/created", {"id": 2}, owner="acme")

    summary = dispatcher.deliver_due()

    assert (summary.gone, summary.cancelled) == (1, 1)
    with pytest.raises(HookNotFound):
        dispatcher.get_hook(hook.id, owner="acme")
    assert dispatcher.get_delivery(waiting.id, owner="acme").state is DeliveryState.CANCELLED
    assert dispatcher.get_delivery(gone.id, owner="acme").state is DeliveryState.CANCELLED
    assert only_attempt(dispatcher, gone.id).response_excerpt == "gone"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    http_dispatcher: MakeDispatcher, httpserver: HTTPServer, status: int
) -> None:
    """A 3xx answer is a failed attempt, and the Location it names is never requested."""
    target = httpserver.url_for("/elsewhere")
    httpserver.expect_request("/hook").respond_with_data(
        "moved", status=status, headers={"Location": target}
    )
    httpserver.expect_request("/elsewhere").respond_with_data("", status=204)
    dispatcher = http_dispatcher()
    hook = dispatcher.subscribe("party/created", httpserver.url_for("/hook"), owner="acme")
    [delivery] = dispatcher.emit("party/created", {"id": 1}, owner="acme")

    assert dispatcher.deliver_due().retried == 1

    assert [r.path for r, _ in httpserver.log] == ["/hook"]
    attempt = only_attempt(dispatcher, delivery.id)
    assert (attempt.status, attempt.error_kind) == (status, "http")
    assert dispatcher.get_delivery(delivery.id, owner="acme").state is DeliveryState.PENDING
    assert dispatcher.get_hook(hook.id, owner="acme").state is HookState.ACTIVE


def test_a_refused_connection_is_a_failed_attempt(http_dispatcher: MakeDispatcher) -> None:
    """Nothing listening on the port: a failed attempt of kind ``connection``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dispatcher = http_dispatcher()
    dispatcher.subscribe("party/created", f"http://127.0.0.1:{port}/hook", owner="acme")
    [delivery] = dispatcher.emit("party/created", {"id": 1}, owner="acme")

    assert dispatcher.deliver_due().retried == 1
    attempt = only_attempt(dispatcher, delivery.id)
    assert (attempt.status, attempt.error_kind) == (None, "connection")
    assert dispatcher.get_delivery(delivery.id, owner="acme").last_error == attempt.summary


# -- misbehaving servers -------------------------------------------------------------------


class RawServer:
    """A TCP server on loopback that hands every connection to ``handle`` in its own thread.

    ``handle(conn, server)`` should return when ``server.stopping`` is set.
    """

    def __init__(self, handle: Callable[[socket.socket, RawServer], None]) -> None:
        self.handle = handle
        self.stopping = threading.Event()
        self.connections = 0
        self.sent = 0
        self.closed_by_client = threading.Event()
        self.handlers: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self.handlers.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.handle(conn, self)
            except OSError:
                self.closed_by_client.set()

    def stop(self) -> None:
        self.stopping.set()
        self._thread.join(5)
        self._listener.close()
        for thread in self.handlers:
            thread.join(5)


@pytest.fixture(name="raw_server")
def _raw_server() -> Iterator[Callable[[Callable[[socket.socket, RawServer], None]], RawServer]]:
    servers: list[RawServer] = []

    def start(handle: Callable[[socket.socket, RawServer], None]) -> RawServer:
        servers.append(RawServer(handle))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def read_request(conn: socket.socket) -> bool:
    """Read one HTTP request (headers and a Content-Length body); False at end of stream."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


def drip(conn: socket.socket, server: RawServer, data: bytes, *, every: float = 0.2) -> None:
    """Send ``data`` one byte every ``every`` seconds, for at most 10 s."""
    for i in range(min(len(data), int(10 / every))):
        if server.stopping.wait(every):
            return
        conn.sendall(data[i : i + 1])
        server.sent += 1


def test_a_server_that_never_answers_is_cut_off_at_the_deadline(
    http_dispatcher: MakeDispatcher, raw_server: Callable[..., RawServer]
) -> None:
    """A server that accepts the request and never answers: a ``timeout`` attempt that ends
    near the total deadline, not later."""

    def silent(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        server.stopping.wait(30)

    server = raw_server(silent)
    dispatcher = http_dispatcher()
    dispatcher.subscribe("party/created", server.url, owner="acme")
    [delivery] = dispatcher.emit("party/created", {"id": 1}, owner="acme")

    assert dispatcher.deliver_due().retried == 1
    attempt = only_attempt(dispatcher, delivery.id)
    assert (attempt.status, attempt.error_kind) == (None, "timeout")
    assert attempt.duration < 5 * dispatcher.timeouts.total


@pytest.mark.parametrize(
    ("at_once", "dripped"),
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", b"x" * 1000, id="body"),
        pytest.param(b"HTTP/1.1 200 OK\r\n", b"X-Slow: " + b"y" * 1000, id="headers"),
        pytest.param(b"HTTP/1.1 200 OK", b" " * 1000, id="status-line"),
    ],
)
def test_a_server_that_drips_bytes_is_cut_off_at_the_deadline(
    http_dispatcher: MakeDispatcher,
    raw_server: Callable[..., RawServer],
    at_once: bytes,
    dripped: bytes,
) -> None:
    """A server that sends one byte every 0.2 s (in the body, the headers or the status line)
    never trips a per-read timeout, yet the attempt is a ``timeout`` ended near the total
    deadline."""

    def dripping(conn: socket.socket, server: RawServer) -> None:
        read_request(conn)
        conn.sendall(at_once)
        drip(conn, server, dripped)

    server = raw_server(dripping)
    dispatcher = http_dispatcher()
    dispatcher.subscribe("party/created", server.url, owner="acme")
    [delivery] = dispatcher.emit("party/created", {"id": 1}, owner="acme")

    assert dispatcher.deliver_due().retried == 1
    attempt = only_attempt(dispatcher, delivery.id)
    assert (attempt.status, attempt.error_kind) == (None, "timeout")
    assert attempt.duration < 5 * dispatcher.timeouts.total
    assert server.sent > 0  # the server did get to drip


def test_a_huge_response_is_not_read_past_the_cap(
    http_dispatcher: MakeDispatcher, raw_server: Callable[..., RawServer]
) -> None:
    """A 10 MB answer: the excerpt is capped, the client closes the connection instead of
    reading on (the server manages to send well under 1 MB of it), and the next delivery
    opens a new connection, while small answers keep theirs alive."""
    huge = 10 * 1024 * 1024

    def receiver(conn: socket.socket, server: RawServer) -> None:
        # A small send buffer, so what the server "sent" is close to what the client took.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        while read_request(conn):
            if server.connections == 1 and server.sent == 0:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                server.sent = -1  # the next request gets the huge answer
                continue
            if server.sent == -1:
                server.sent = 0
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % huge)
                chunk = b"z" * 65536
                while server.sent < huge:
                    conn.sendall(chunk)
                    server.sent += len(chunk)
                return
            conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    server = raw_server(receiver)
    dispatcher = http_dispatcher()
    dispatcher.subscribe("party/created", server.url, owner="acme")
    small = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    assert dispatcher.deliver_due().delivered == 1
    [big] = dispatcher.emit("party/created", {"id": 2}, owner="acme")
    assert dispatcher.deliver_due().delivered == 1
    dispatcher.emit("party/created", {"id": 3}, owner="acme")
    assert dispatcher.deliver_due().delivered == 1

    assert server.closed_by_client.wait(10)
    assert small
    assert 0 < server.sent < 1024 * 1024
    assert only_attempt(dispatcher, big.id).response_excerpt == "z" * 4096
    # Delivery 1 and 2 shared a connection; the capped one was closed, so 3 needed a new one.
    assert server.connections == 2
