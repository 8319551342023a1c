"""Raw-socket servers on loopback for the transport tests: they answer well or badly on
purpose, byte by byte, where an HTTP server library would refuse to.

Used by test_transport_parity, test_transport_resets and test_url_safety.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable

__all__ = ["RawServer", "answering", "reset", "resetting"]

Handle = Callable[[socket.socket], None]


class RawServer:
    """A TCP server on loopback; every connection is handed to ``handle`` in a thread.

    ``requests`` keeps the raw head (request line and headers) of every request read with
    :meth:`read_request`; ``connections`` counts the connections accepted.
    """

    def __init__(self, handle: Handle) -> None:
        self.handle = handle
        self.requests: list[bytes] = []
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.handle(conn)

    def read_request(self, conn: socket.socket) -> bool:
        """Read one request (head and Content-Length body); False at the end of the stream."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        self.requests.append(head)
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

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone does not on Linux.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for thread in self._threads:
            thread.join(5)


def reset(conn: socket.socket) -> None:
    """Make the close of ``conn`` a TCP reset rather than a FIN (SO_LINGER, zero timeout)."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def answering(answer: bytes) -> RawServer:
    """A server that reads a request, sends ``answer`` and closes the connection."""
    box: list[RawServer] = []

    def handle(conn: socket.socket) -> None:
        if box[0].read_request(conn):
            conn.sendall(answer)

    box.append(RawServer(handle))
    return box[0]


def resetting(prefix: bytes) -> RawServer:
    """A server that reads a request in full, sends ``prefix``, then resets the connection."""
    box: list[RawServer] = []

    def handle(conn: socket.socket) -> None:
        if box[0].read_request(conn):
            if prefix:
                conn.sendall(prefix)
            reset(conn)

    box.append(RawServer(handle))
    return box[0]
