"""Which connections the urllib3 transport keeps for the next request, and which it closes.

A connection goes back to its host's pool only when its response was read to its end and
the server keeps it open; a capped, cut short or timed-out answer closes it, as does a
server that says ``Connection: close``. A connection the server closed while it was idle is
noticed before the next request is written on it. Real sockets on loopback throughout.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from resthooks import TransportError
from resthooks.testing import LOOPBACK_POLICY
from resthooks.transports import Request, Timeouts, Transport, Urllib3Transport

OK = b"HTTP/1.1 204 No Content\r\n\r\n"


class Receiver:
    """A keep-alive HTTP/1.1 server on loopback that answers the n-th request (counted over
    all connections) with ``answer(n)``; it closes the connection after answers that say
    ``Connection: close`` and after the requests numbered in ``close_after``. It counts
    connections."""

    def __init__(self, answer: Callable[[int], bytes], close_after: frozenset[int]) -> None:
        self.answer = answer
        self.close_after = close_after
        self.connections = 0
        self.requests = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1].startswith(
                    b"{}"
                ):
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    data += chunk
                data = data.split(b"\r\n\r\n", 1)[1][2:]
                with self._lock:
                    n = self.requests
                    self.requests += 1
                answer = self.answer(n)
                try:
                    conn.sendall(answer)
                except OSError:
                    return
                if b"Connection: close" in answer or n in self.close_after:
                    return

    def drop_idle(self) -> None:
        """Close every connection from the server side (the client sees a FIN while idle)."""
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._open.clear()

    def close(self) -> None:
        self.drop_idle()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


MakeReceiver = Callable[..., Receiver]


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[MakeReceiver]:
    made: list[Receiver] = []

    def make(answer: Callable[[int], bytes], close_after: frozenset[int] = frozenset()) -> Receiver:
        made.append(Receiver(answer, close_after))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def _request(url: str, *, cap: int = 16, total: float = 5.0) -> Request:
    return Request(
        method="POST",
        url=url,
        headers={"Content-Type": "application/json"},
        body=b"{}",
        timeouts=Timeouts(connect=total, total=total),
        max_response_bytes=cap,
    )


# The first answer, and whether the connection it came on serves the second request.
KEPT: dict[str, tuple[bytes, bool]] = {
    "no-content": (OK, True),
    "body-read-to-its-end": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", True),
    "body-exactly-the-cap": (b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n" + b"x" * 16, True),
    "chunked-to-the-last-chunk": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        True,
    ),
    "body-over-the-cap": (b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n" + b"x" * 17, False),
    "chunked-over-the-cap": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n" + b"y" * 32 + b"\r\n"
        b"0\r\n\r\n",
        False,
    ),
    "connection-close": (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        False,
    ),
    "http-1.0-without-keep-alive": (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
    "switching-protocols": (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: other\r\nConnection: upgrade\r\n\r\n",
        False,
    ),
}


@pytest.mark.parametrize("case", list(KEPT))
def test_a_connection_serves_the_next_request_only_after_a_whole_answer(
    receiver: MakeReceiver, case: str
) -> None:
    """After an answer read to its end on a connection the server keeps open, the second
    request goes on the same connection; after a capped body, ``Connection: close`` or an
    HTTP/1.0 answer, or a 1xx (after a 101 the connection speaks something else), on a new
    one. Both requests get their answer either way."""
    first, kept = KEPT[case]
    server = receiver(lambda n: first if n == 0 else OK)
    with Urllib3Transport(policy=LOOPBACK_POLICY) as transport:
        transport.send(_request(server.url))
        idle = transport.pooled_hosts()[0].idle_connections
        assert transport.send(_request(server.url)).status == 204
    assert (1 if kept else 0) == idle
    assert (1 if kept else 2) == server.connections


def test_a_body_cut_short_closes_the_connection(receiver: MakeReceiver) -> None:
    """A server that closes before the body's Content-Length is in fails the attempt as
    ``protocol``, saying so; the next request opens a new connection and succeeds."""
    short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"
    server = receiver(lambda n: short if n == 0 else OK, close_after=frozenset({0}))
    with Urllib3Transport(policy=LOOPBACK_POLICY) as transport:
        with pytest.raises(TransportError) as info:
            transport.send(_request(server.url))
        assert info.value.kind == "protocol"
        assert "5 bytes short of its Content-Length" in info.value.message
        assert transport.pooled_hosts()[0].idle_connections == 0
        assert transport.send(_request(server.url)).status == 204
    assert server.connections == 2


def test_a_timed_out_answer_closes_the_connection(
    receiver: MakeReceiver,
) -> None:
    """A body that does not finish before the deadline is a ``timeout``, and its half-read
    connection is closed: the next request opens a new one."""
    server = receiver(
        lambda n: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nstart" if n == 0 else OK
    )
    with Urllib3Transport(policy=LOOPBACK_POLICY) as transport:
        with pytest.raises(TransportError) as info:
            transport.send(_request(server.url, total=0.3))
        assert info.value.kind == "timeout"
        assert transport.pooled_hosts()[0].idle_connections == 0
        assert transport.send(_request(server.url)).status == 204
    assert server.connections == 2


def test_a_connection_the_server_closed_while_idle_is_dialled_again(
    receiver: MakeReceiver,
    make_transport: Callable[..., Transport],
) -> None:
    """A kept-alive connection the server closed while it sat idle (its keep-alive timeout,
    say) is noticed before the next request is written on it: that request goes on a new
    connection and succeeds, instead of failing as a reset."""
    server = receiver(lambda n: OK)
    with make_transport(policy=LOOPBACK_POLICY) as transport:
        assert transport.send(_request(server.url)).status == 204
        server.drop_idle()
        time.sleep(0.05)  # for the FIN to cross loopback, not timing anything
        assert transport.send(_request(server.url)).status == 204
    assert server.connections == 2


def test_at_most_maxsize_idle_connections_are_kept_per_host(
    receiver: MakeReceiver,
) -> None:
    """Four requests to one host at once open four connections; with ``maxsize=2`` two are
    kept afterwards and two closed."""
    arrived = threading.Barrier(4)

    def answer(n: int) -> bytes:
        arrived.wait(10)  # every request is on its own connection before any is answered
        return OK

    server = receiver(answer)
    with Urllib3Transport(policy=LOOPBACK_POLICY, maxsize=2) as transport:
        errors: list[BaseException] = []

        def send() -> None:
            try:
                assert transport.send(_request(server.url)).status == 204
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=send) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert errors == []
        assert server.connections == 4
        assert transport.pooled_hosts()[0].idle_connections == 2
