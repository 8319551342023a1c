"""One request and its response on a kept-alive connection, without urllib3's pool.

Per request, urllib3's ``HTTPConnectionPool.urlopen`` (its queue, its ``Timeout`` and
``Retry`` values, its error wrapping, its response object over http.client's) and its
connection's ``request`` cost more CPU than the rest of a delivery put together.
:class:`~resthooks.transports.Urllib3Transport` keeps urllib3's connections for what they
are for — the pinned dial (``_pinning``), TLS with certificate verification and the host-name
check, ``close`` — and does the rest here:

- :class:`HostConnections`: the idle connections to one host, the most recently used on top
  (as urllib3's pool queue keeps them), at most ``maxsize``;
- :func:`request_head`: the request head urllib3 writes (the same lines in the same order:
  request line, ``Host``, ``Accept-Encoding: identity``, ``Content-Length``, then the
  request's headers), every header name and value checked with http.client's own rules;
- :func:`exchange`: the head and body sent in one write, the response's head read by
  :class:`~resthooks.transports._headers.HeadersResponse` under the deadline watchdog, the
  body read in chunks against the deadline and capped. A connection goes back to its host's
  stack only when its response was read to its end and the server keeps it open; a capped,
  cut short, timed-out or failed exchange closes it.
"""

from __future__ import annotations

import errno
import http.client
import re
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from ..errors import TransportError
from ._deadline import cut_off, unwatch, watch
from ._headers import HeadersResponse, unfold
from ._protocol import Request, Response
from ._rules import CappedBody, Deadline, response_from

__all__ = ["HostConnections", "exchange", "read_capped", "request_head", "request_target"]

# Request bodies up to this size go out in the same write as the head (one system call, one
# segment on loopback); a larger body is its own write.
_ONE_WRITE_MAX = 64 * 1024
# What urllib3 sends when a request has no User-Agent of its own.
_URLLIB3_VERSION: str = urllib3.__version__  # type: ignore[attr-defined] # set, not in __all__
_DEFAULT_USER_AGENT = f"User-Agent: python-urllib3/{_URLLIB3_VERSION}".encode("ascii")
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 9110 token
# http.client's own checks (putrequest's and putheader's), applied to the same bytes.
_LEGAL_NAME: Callable[[bytes], object] = http.client._is_legal_header_name  # type: ignore[attr-defined]
_ILLEGAL_VALUE: Callable[[bytes], object] = http.client._is_illegal_header_value  # type: ignore[attr-defined]
_BAD_TARGET: re.Pattern[str] = http.client._contains_disallowed_url_pchar_re  # type: ignore[attr-defined]
# A write that fails like this may still have an answer to read (a server that answers
# early and closes): urllib3 reads it too.
_ANSWER_MAY_FOLLOW = (errno.EPIPE, errno.ECONNRESET, errno.EPROTOTYPE)


class HostConnections:
    """The idle keep-alive connections to one host, and when it was last sent to.

    ``take`` gives the most recently returned idle connection that the server has not closed
    meanwhile, or a new one (not yet connected); ``put`` keeps it for the next request,
    unless ``maxsize`` are idle already or the host was closed; ``close`` closes the idle
    ones and makes every later ``put`` close its connection.
    """

    __slots__ = (
        "__weakref__",
        "_idle",
        "_lock",
        "closed",
        "host_header",
        "key",
        "last_used",
        "maxsize",
        "new_connection",
        "tls",
    )

    def __init__(
        self,
        key: tuple[str, str, int],
        new_connection: Callable[[], HTTPConnection],
        *,
        maxsize: int,
        now: float,
    ) -> None:
        scheme, host, port = key
        self.key = key
        self.new_connection = new_connection
        self.maxsize = maxsize
        self.last_used = now
        self.closed = False
        self.tls = scheme == "https"
        self.host_header = _host_header(host, port, scheme)
        self._lock = threading.Lock()
        self._idle: list[HTTPConnection] = []
        # Dropped without close(): its sockets are closed, not left to the garbage collector.
        weakref.finalize(self, _close_all, self._idle)

    def take(self) -> HTTPConnection:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            return self.new_connection()
        if not conn.is_connected:
            # Closed by the server while idle (or it sent something unasked): the same
            # connection dials again, as urllib3 resets a dropped one.
            conn.close()
        return conn

    def put(self, conn: HTTPConnection) -> None:
        with self._lock:
            if not self.closed and len(self._idle) < self.maxsize:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            idle = self._idle[:]
            self._idle.clear()
        for conn in idle:
            conn.close()

    def idle_count(self) -> int:
        """Open connections waiting for the next request."""
        with self._lock:
            return sum(1 for conn in self._idle if conn.sock is not None)


def _close_all(conns: list[HTTPConnection]) -> None:
    for conn in conns:
        conn.close()


def _host_header(host: str, port: int, scheme: str) -> bytes:
    """``Host`` as http.client writes it for urllib3's connection to ``host``: the name
    without a trailing dot, an IPv6 address in brackets, the port unless it is the scheme's
    default."""
    name = host.strip("[]").rstrip(".")
    try:
        encoded = name.encode("ascii")
    except UnicodeEncodeError:
        encoded = name.encode("idna")
    if ":" in name:
        encoded = b"[" + encoded + b"]"
    default = HTTPSConnection.default_port if scheme == "https" else HTTPConnection.default_port
    if port != default:
        encoded += b":%d" % port
    if _ILLEGAL_VALUE(encoded):
        raise TransportError("protocol", "invalid URL: the host cannot be sent as a Host header")
    return encoded


def request_target(path: str) -> bytes:
    """The request target (path and query, or a proxy's absolute URL) as http.client's
    ``putrequest`` accepts it: ASCII, no space or control character.

    Raises:
        TransportError: ``protocol``, naming the URL as invalid.
    """
    if _BAD_TARGET.search(path):
        raise TransportError("protocol", "invalid URL: a space or control character in it")
    try:
        return path.encode("ascii")
    except UnicodeEncodeError:
        raise TransportError("protocol", "invalid URL: a character that is not ASCII") from None


def request_head(
    method: str, target: bytes, host: bytes, headers: Mapping[str, str], body: bytes
) -> tuple[bytes, bool]:
    """The head urllib3's ``HTTPConnection.request`` writes, and whether the body goes out
    chunked (only when the request's own headers ask for ``Transfer-Encoding``).

    Raises:
        TransportError: ``protocol``, for a method that is not a token, or a header name or
            value http.client would refuse (the message names the header, never its value).
    """
    if not _METHOD.fullmatch(method):
        raise TransportError("protocol", f"invalid request method {method[:20]!r}")
    lines = [b"%s %s HTTP/1.1" % (method.encode("ascii"), target)]
    names = {name.lower() for name in headers}
    if "host" not in names:
        lines.append(b"Host: " + host)
    if "accept-encoding" not in names:
        lines.append(b"Accept-Encoding: identity")
    chunked = False
    if "content-length" not in names:
        if "transfer-encoding" in names:
            chunked = True
        else:
            lines.append(b"Content-Length: %d" % len(body))
    if "user-agent" not in names:
        lines.append(_DEFAULT_USER_AGENT)
    for name, value in headers.items():
        try:
            raw_name = name.encode("ascii")
        except (UnicodeEncodeError, AttributeError):
            raise TransportError("protocol", f"invalid header name {name!r}") from None
        if not _LEGAL_NAME(raw_name):
            raise TransportError("protocol", f"invalid header name {name!r}")
        try:
            raw_value = value.encode("latin-1")
        except (UnicodeEncodeError, AttributeError):
            raise TransportError("protocol", f"invalid value for the header {name!r}") from None
        if _ILLEGAL_VALUE(raw_value):
            raise TransportError("protocol", f"invalid value for the header {name!r}")
        lines.append(raw_name + b": " + raw_value)
    lines.append(b"\r\n")
    return b"\r\n".join(lines), chunked


def _body_bytes(body: bytes, chunked: bool) -> bytes:
    if not chunked:
        return body
    # What urllib3 sends for a bytes body with Transfer-Encoding: one chunk, then the end.
    return (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"


def exchange(
    host: HostConnections, target: bytes, request: Request, deadline: Deadline
) -> Response:
    """Send ``request`` to ``host`` on a kept-alive connection and read the answer.

    Raises what the connection, the socket, TLS or http.client raise (the transport classifies
    them), or :class:`~resthooks.errors.TransportError`.
    """
    body = request.body
    head, chunked = request_head(request.method, target, host.host_header, request.headers, body)
    body = _body_bytes(body, chunked)
    conn = host.take()
    armed = watch(conn, deadline.at)
    try:
        if conn.sock is None:
            conn.timeout = request.timeouts.connect
            conn.connect()
            if host.tls and not conn.is_verified:
                raise TransportError("tls", f"the certificate of {conn.host} was not verified")
        sock: Any = conn.sock
        sock.settimeout(deadline.remaining())
        _send(conn, sock, head, body)
        response = HeadersResponse(sock, method=request.method)
        response.begin()
    except BaseException as exc:
        unwatch(armed)
        conn.close()
        if armed.fired or isinstance(exc, TimeoutError):
            raise TransportError("timeout", cut_off(request.timeouts.total)) from None
        raise
    unwatch(armed)
    if armed.fired:  # in the instant between the head's arrival and unwatch: it is shut down
        response.close()
        conn.close()
        raise TransportError("timeout", cut_off(request.timeouts.total))
    capped = CappedBody(request.max_response_bytes)
    try:
        read_capped(response.read1, sock, capped, deadline)
        if response.length and not capped.truncated:  # closed short of its Content-Length
            raise TransportError(
                "protocol",
                f"the response body ended {response.length} bytes short of its Content-Length",
            )
    except BaseException as exc:
        response.close()
        conn.close()
        if isinstance(exc, TimeoutError):
            raise TransportError("timeout", Deadline.PASSED) from None
        raise
    # Read to its end (a length left at 0, or the last chunk read, which closes it), a final
    # answer (after a 1xx such as 101 the connection may speak something else) and kept open
    # by the server: the connection serves the next request. Otherwise it is closed.
    ended = response.length == 0 or response.isclosed()
    response.close()
    if ended and not capped.truncated and not response.will_close and response.status >= 200:
        host.put(conn)
    else:
        conn.close()
    return response_from(
        response.status, ((name, unfold(value)) for name, value in response.headers.items()), capped
    )


def _send(conn: HTTPConnection, sock: socket.socket, head: bytes, body: bytes) -> None:
    writes = (head + body,) if len(body) <= _ONE_WRITE_MAX else (head, body)
    try:
        for data in writes:
            sys.audit("http.client.send", conn, data)  # what http.client's own send reports
            sock.sendall(data)
    except OSError as exc:
        if exc.errno not in _ANSWER_MAY_FOLLOW:
            raise


def read_capped(
    read1: Callable[[int], bytes], sock: socket.socket | None, body: CappedBody, deadline: Deadline
) -> None:
    """Read a response body into ``body`` until it ends, is capped, or ``deadline`` passes.

    ``read1`` is the response's (at most one socket read per call); ``sock`` the socket it
    reads from, whose timeout is set to what is left of the deadline before each read, so a
    server that drips one byte at a time cannot stretch the attempt past it.
    """
    while want := body.want():
        remaining = deadline.remaining()
        if sock is not None:
            sock.settimeout(remaining)
        chunk = read1(want)
        if not chunk:
            return
        body.add(chunk)
