"""A receiver that resets the connection is a ``connection`` error, whenever it resets."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable

import pytest

from resthooks import TransportError
from resthooks.testing import LOOPBACK_POLICY
from resthooks.transports import Request, Timeouts, Transport

# What the server sends before it resets the connection (after reading the whole request).
STAGES = {
    "before-answering": b"",
    "mid-status-line": b"HTTP/1.1 2",
    "after-headers": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
    "mid-body": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100,
}


class ResettingServer:
    """A TCP server on loopback: reads each request in full, sends ``prefix``, then resets
    the connection (SO_LINGER 0: the close sends RST, not FIN)."""

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.requests = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                self.requests += 1
                if self.prefix:
                    conn.sendall(self.prefix)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture(name="transport")
def _transport(make_transport: Callable[..., Transport]) -> Transport:
    # Once per transport: Urllib3Transport and AiohttpTransport classify resets alike.
    return make_transport(policy=LOOPBACK_POLICY)


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_reset_is_always_a_connection_error(transport: Transport, stage: str) -> None:
    """Twenty attempts at a receiver that resets after reading the request, at each stage of
    its answer: every one fails as ``connection``, none as ``protocol``."""
    server = ResettingServer(STAGES[stage])
    kinds: list[str] = []
    try:
        for _ in range(20):
            request = Request(
                method="POST",
                url=server.url,
                headers={"Content-Type": "application/json"},
                body=b'{"event":"party/created","payload":[]}',
                timeouts=Timeouts(connect=2.0, total=5.0),
                max_response_bytes=4096,
            )
            with pytest.raises(TransportError) as info:
                transport.send(request)
            kinds.append(info.value.kind)
    finally:
        server.close()
    assert server.requests == 20
    assert kinds == ["connection"] * 20
