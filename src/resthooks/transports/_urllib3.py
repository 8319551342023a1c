"""The default transport, on urllib3."""

from __future__ import annotations

import socket
import ssl
import time
from types import TracebackType

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationParseError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from ..errors import TransportError, ValidationError
from ..network import NetworkPolicy, Resolver, system_resolver
from ..urls import parse_target_url, redact_url
from ._deadline import with_deadline
from ._pinning import mask_urllib3_logs, pinned_pool_classes
from ._protocol import Request, Response, Timeouts

__all__ = ["Urllib3Transport"]

_CHUNK = 64 * 1024


class Urllib3Transport:
    """Sends deliveries with one shared :class:`urllib3.PoolManager`.

    Connections are kept alive and reused per host. Redirects are never followed and nothing
    is retried. TLS certificates are verified. The total deadline of
    :class:`~resthooks.Timeouts` holds however slowly a server sends its body: the
    body is read in chunks against a monotonic deadline. A response body longer than the cap
    is not read past the cap, and its connection is closed instead of going back to the pool.

    Every connection (a new one, or a pooled one that reconnects) resolves the host once
    with ``resolver``, refuses the attempt with a ``blocked``
    :class:`~resthooks.errors.TransportError` if ANY address is refused by ``policy``, and
    connects to a validated address; ``Host``, SNI and the certificate check keep the host
    name. Error messages never carry the URL's credentials or query string, and neither do
    urllib3's own log records (a filter masks them). Before anything is sent, the URL must
    pass the shape rules of :func:`~resthooks.urls.parse_target_url` (the ones subscribe
    applies), or the attempt is ``blocked``; credentials in a URL are never sent.

    Args:
        num_pools: How many hosts keep a pool of connections.
        maxsize: Connections kept per host (set it to the worker's thread count).
        policy: The :class:`~resthooks.network.NetworkPolicy` to enforce. Default:
            ``NetworkPolicy()``, which refuses loopback and private addresses.
        resolver: ``(host, port) -> [address, ...]``. Default:
            :func:`~resthooks.network.system_resolver` (one ``getaddrinfo``).
        ssl_context: The TLS context (to trust a private CA, say). Certificates and host
            names are verified whatever it says.

    Example:
        >>> from resthooks.transports import Urllib3Transport
        >>> with Urllib3Transport() as transport:
        ...     pass
    """

    def __init__(
        self,
        *,
        num_pools: int = 64,
        maxsize: int = 16,
        policy: NetworkPolicy | None = None,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy if policy is not None else NetworkPolicy()
        self._timeouts: dict[Timeouts, urllib3.Timeout] = {}
        mask_urllib3_logs()
        self._pool = urllib3.PoolManager(
            num_pools=num_pools,
            maxsize=maxsize,
            block=False,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ssl_context=ssl_context,
        )
        resolve = resolver if resolver is not None else system_resolver
        # urllib3's timeouts are per socket read; with_deadline holds the status line and
        # headers to the total deadline too (the body is read against it below).
        self._pool.pool_classes_by_scheme = with_deadline(pinned_pool_classes(self.policy, resolve))

    def send(self, request: Request) -> Response:
        """Send ``request`` once. See :class:`~resthooks.transports.Transport`."""
        deadline = time.monotonic() + request.timeouts.total
        timeout = self._timeouts.get(request.timeouts)
        if timeout is None:
            # urllib3 clones the Timeout it is given, so one per Timeouts value serves every
            # request; building and validating it anew cost a few microseconds each.
            timeout = urllib3.Timeout(
                connect=request.timeouts.connect,
                read=request.timeouts.total,
                total=request.timeouts.total,
            )
            if len(self._timeouts) < 64:
                self._timeouts[request.timeouts] = timeout
        try:
            # The shape rules of subscribe time, again: the hook may predate them.
            parse_target_url(request.url)
        except ValidationError as exc:
            raise TransportError("blocked", f"the target URL {exc.message}") from None
        self.policy.check_scheme(request.url)
        try:
            resp = self._pool.urlopen(
                request.method,
                request.url,
                body=request.body,
                headers=dict(request.headers),
                redirect=False,
                retries=False,
                timeout=timeout,
                preload_content=False,
                decode_content=False,
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes a typed TransportError
            failure: TransportError | None = _masked(_translate(exc), request.url)
        else:
            failure = None
        if failure is not None:
            # Raised outside the except block: urllib3's exception, which quotes the URL, is
            # not kept as the __context__ of ours.
            raise failure
        try:
            body, truncated = _read_capped(resp, request.max_response_bytes, deadline)
        except Exception as exc:  # noqa: BLE001
            resp.close()
            resp.release_conn()
            failure = _masked(_translate(exc), request.url)
        if failure is not None:
            raise failure
        if truncated:
            resp.close()  # a half-read connection must not go back to the pool
        resp.release_conn()
        headers = {k.lower(): v for k, v in resp.headers.items()}
        return Response(status=resp.status, headers=headers, body=body, truncated=truncated)

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.clear()

    def __enter__(self) -> Urllib3Transport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Urllib3Transport()"


def _read_capped(resp: urllib3.BaseHTTPResponse, cap: int, deadline: float) -> tuple[bytes, bool]:
    """Read at most ``cap`` bytes (plus one, to know there is more) before ``deadline``."""
    sock = _socket_of(resp)
    chunks: list[bytes] = []
    size = 0
    while size <= cap:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransportError("timeout", "the response did not finish before the deadline")
        if sock is not None:
            # Each read waits at most for what is left of the deadline: a server that drips
            # one byte at a time cannot stretch the attempt past it.
            sock.settimeout(remaining)
        chunk = resp.read1(min(_CHUNK, cap + 1 - size))
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    return body[:cap], True


def _socket_of(resp: urllib3.BaseHTTPResponse) -> socket.socket | None:
    conn = getattr(resp, "connection", None)
    sock = getattr(conn, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _masked(error: TransportError, url: str) -> TransportError:
    return TransportError(error.kind, redact_url(error.message, url))


def _translate(exc: BaseException) -> TransportError:
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, NewConnectionError):
        # urllib3 derives NewConnectionError from ConnectTimeoutError: test it first, or a
        # refused connection would be reported as a timeout.
        return TransportError("connection", str(exc))
    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError, socket.timeout, TimeoutError)):
        return TransportError("timeout", str(exc) or "timed out")
    if isinstance(exc, SSLError):
        return TransportError("tls", str(exc))
    if isinstance(exc, (NewConnectionError, ConnectionError)):
        return TransportError("connection", str(exc))
    if isinstance(exc, LocationParseError):
        return TransportError("protocol", f"invalid URL: {exc}")
    if isinstance(exc, (ProtocolError, HTTPError)):
        cause = exc.__context__ or exc.__cause__
        if isinstance(cause, (socket.timeout, TimeoutError)):
            return TransportError("timeout", str(exc))
        return TransportError("protocol", str(exc))
    if isinstance(exc, OSError):
        return TransportError("connection", str(exc))
    return TransportError("protocol", f"{type(exc).__name__}: {exc}")
