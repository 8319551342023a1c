"""The lean async transport: HTTP/1.1 on asyncio's own sockets, parsed by llhttp (httptools).

An aiohttp ``ClientSession`` is a general client: per request it builds a URL object, a
request object with multidicts of headers, a response object with a stream reader, timers
and traces. A webhook delivery needs none of that: one POST with a small body and a small
answer, over and over, to the same hosts. :class:`AsyncioTransport` writes each request as
one ``transport.write`` of bytes prepared per URL, feeds the answer to the C parser of
``httptools`` (llhttp, the parser of Node.js) from ``data_received``, and wakes the waiting
``send`` once, with one future and one timer per request. The measured difference is in
``docs/performance.md`` ("A lean HTTP/1.1 client for the async worker").
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from types import TracebackType

import httptools
from urllib3.util import parse_url

from ..errors import ConfigurationError, TransportError
from ..network import IPAddress, NetworkPolicy, Resolver, system_resolver
from ._protocol import Request, Response
from ._proxy import Proxy, parse_proxy, proxy_unreachable, tunnel_refused
from ._rules import (
    CappedBody,
    connection_limit,
    default_context,
    error_table,
    literal_address,
    parse_target,
    resolution_failed,
    response_from,
    transport_error,
    verified_context,
)
from ._urllib3 import PooledHost

__all__ = ["AsyncioTransport"]

# http.client's limits (a header line of at most 64 KiB, at most 100 headers), so that the
# transports accept the same answers; and a bound on the whole header block, which llhttp
# itself does not have (it would buffer a header line without end).
_MAX_LINE = 65536
_MAX_HEADERS = 100
_MAX_HEAD = 256 * 1024

# Checked target URLs kept (one per hook URL in use); past this the cache starts afresh,
# which costs one parse per URL, never a connection.
_MAX_TARGETS = 8192

# A header name is an RFC 9110 token; a value has no line break that is not a folding
# (what http.client refuses with ValueError, which both other transports call ``protocol``).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
_BAD_VALUE = re.compile(r"\n(?![ \t])|\r(?![ \t\n])").search

_DEFAULT_PORTS = {"http": 80, "https": 443}

# The sockets' own errors, classified by the shared head (timeouts) and tail (TLS, OSError).
_ERRORS = error_table()


class _Target:
    """A target URL checked once: where to dial, what to say, and the request's first lines."""

    __slots__ = ("address", "head", "host", "key", "port", "safe", "server_hostname", "tls")

    def __init__(
        self,
        *,
        host: str,
        port: int,
        tls: bool,
        address: IPAddress | None,
        head: str,
        safe: str,
    ) -> None:
        self.host = host  # as written, without brackets: resolved (a name) or dialled (a literal)
        self.port = port
        self.tls = tls
        self.address = address  # the (checked) address of an IP literal, else None
        # SNI and the certificate check use the host name; for a literal, its address.
        self.server_hostname = str(address) if address is not None else host
        self.key = ("https" if tls else "http", host, port)
        self.head = head  # " <target> HTTP/1.1\r\nHost: ...\r\n", after the method
        self.safe = safe


class _Connection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection, answering one request at a time.

    ``begin`` arms it for a request; ``data_received`` feeds the parser; the request's
    future is resolved (once) when the answer is complete, capped, broken or cut off.
    """

    __slots__ = (
        "body",
        "closed",
        "future",
        "generation",
        "head_size",
        "headers",
        "headers_done",
        "idle_since",
        "informational",
        "key",
        "parser",
        "received",
        "reusable",
        "status",
        "transport",
    )

    def __init__(self, key: tuple[str, str, int], generation: int) -> None:
        self.key = key
        self.generation = generation  # the pool's, when it was opened
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.future: asyncio.Future[None] | None = None
        self.closed = False
        self.reusable = False
        self.idle_since = 0.0
        self.body = CappedBody(0)
        self.headers: list[tuple[str, str]] = []
        self.status = 0
        self.head_size = 0
        self.received = False
        self.headers_done = False
        self.informational = False

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # a stream transport

    def data_received(self, data: bytes) -> None:
        if self.future is None or self.future.done():
            # Bytes nobody asked for (on an idle connection, or past a finished answer): the
            # connection's framing can no longer be trusted.
            self.abort()
            return
        self.received = True
        if not self.headers_done:
            self.head_size += len(data)
            if self.head_size > _MAX_HEAD:
                self._fail(
                    TransportError("protocol", "invalid response: the header block is too long")
                )
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(TransportError("protocol", "invalid response: an upgrade was not asked for"))
            return
        except httptools.HttpParserError as exc:
            if self.future.done():
                return  # a complaint past the end of a finished answer: abort() already ran
            cause = exc.__context__
            if isinstance(cause, TransportError):
                self._fail(cause)
            else:
                self._fail(TransportError("protocol", f"invalid response: {_parser_message(exc)}"))
            return
        if self.body.truncated and not self.future.done():
            self.reusable = False
            self.future.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        future = self.future
        if future is None or future.done():
            return
        if exc is not None:
            error = transport_error(exc, _ERRORS, "", _os_message)
            future.set_exception(error)
        elif self.headers_done and not self.informational and self._until_close():
            future.set_result(None)  # a body delimited by the end of the connection
        elif not self.received:
            future.set_exception(
                TransportError(
                    "connection", "the server closed the connection without a complete answer"
                )
            )
        else:
            future.set_exception(
                TransportError("protocol", "invalid response: the connection closed mid-answer")
            )

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.future is not None and self.future.done():
            # A second answer behind the first in the same bytes: nothing was asked for it.
            self.reusable = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.future is None or self.future.done():
            return  # past the end of the answer (see on_message_begin)
        if len(name) + len(value) + 2 > _MAX_LINE:
            raise TransportError("protocol", "invalid response: a header line is too long")
        if len(self.headers) >= _MAX_HEADERS:
            raise TransportError("protocol", f"invalid response: more than {_MAX_HEADERS} headers")
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if self.future is None or self.future.done():
            return
        self.status = self.parser.get_status_code()
        self.informational = 100 <= self.status < 200 and self.status != 101
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if self.future is None or self.future.done():
            return
        want = self.body.want()
        if want:
            self.body.add(body if len(body) <= want else body[:want])

    def on_message_complete(self) -> None:
        future = self.future
        if future is None or future.done():
            return
        if self.informational:
            # A 100 Continue (or another 1xx) before the answer: skipped, as http.client does.
            self.headers = []
            self.headers_done = self.informational = False
            self.head_size = 0
            return
        self.reusable = self.parser.should_keep_alive() and self.status != 101
        future.set_result(None)

    # -- the transport's side ----------------------------------------------------------------

    def begin(self, future: asyncio.Future[None], cap: int) -> None:
        self.future = future
        self.body = CappedBody(cap)
        self.headers = []
        self.status = 0
        self.head_size = 0
        self.received = self.headers_done = self.informational = False
        self.reusable = False

    def _until_close(self) -> bool:
        names = {name.lower() for name, _ in self.headers}
        return "content-length" not in names and "transfer-encoding" not in names

    def _fail(self, error: TransportError) -> None:
        future = self.future
        if future is not None and not future.done():
            future.set_exception(error)
        self.abort()

    def abort(self) -> None:
        self.reusable = False
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _parser_message(exc: Exception) -> str:
    text = str(exc)
    return text or type(exc).__name__


def _os_message(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionResetError):
        return "the connection was reset by the server"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


class AsyncioTransport:
    """Sends deliveries from an asyncio event loop with a lean HTTP/1.1 client of its own.

    It keeps every promise of :class:`AiohttpTransport` at about half the CPU per request
    (see "Performance"): each new connection resolves its host once (``resolver`` in the
    loop's default executor), is refused (``blocked``) if ANY answer is refused by ``policy``,
    and dials a validated address; ``Host``, SNI and the certificate check use the host name;
    an IP literal in the URL, in any spelling, is checked before anything is dialled.
    Redirects are never followed, nothing is retried (not even on a kept-alive connection the
    server closed), TLS is always verified, the total deadline holds however slowly the status
    line, headers or body come, at most ``max_response_bytes`` of the body is read (a capped,
    timed-out or cancelled request's connection is closed, not pooled), and cookies are never
    kept. Bodies framed by ``Content-Length``, by chunks, or by the end of the connection are
    read alike. Errors are the same :class:`~resthooks.errors.TransportError` kinds as the
    other transports' for the same server behaviour, and name nothing of the URL but its
    scheme, host, port and path. Responses are parsed by llhttp (``httptools``).

    The pool keeps the idle keep-alive connections of every (scheme, host, port) it talks
    to, however many hosts there are, each for ``keepalive`` seconds of idleness;
    :meth:`pooled_hosts` says what it holds. Connections in use are bounded by the requests
    in flight, unless ``max_connections`` or ``max_connections_per_host`` say less; a request
    waiting for a free connection spends its connect timeout doing so.

    The transport belongs to the event loop of its first :meth:`send`; after :meth:`aclose`,
    the next :meth:`send` may come from another loop.

    With a ``proxy``, it dials only the proxy (resolved with the system's resolver, without
    the policy: the host chose it): ``https`` targets go through a ``CONNECT`` tunnel inside
    which TLS runs end to end with the receiver (whose certificate is the one checked),
    ``http`` targets are sent to the proxy in absolute form; IP-literal targets are still
    checked against ``policy`` first, and checking the receivers' addresses is the proxy's
    job (see "Security"). ``resolver`` is not used for targets then.

    Args:
        policy: The :class:`~resthooks.network.NetworkPolicy` to enforce. Default:
            ``NetworkPolicy()``, which refuses loopback and private addresses.
        resolver: ``(host, port) -> [address, ...]``, run in the loop's default executor.
            Default: :func:`~resthooks.network.system_resolver` (one ``getaddrinfo``).
        ssl_context: The TLS context (to trust a private CA, say). It must verify
            certificates and host names (``CERT_REQUIRED`` and ``check_hostname``).
        max_connections: At most this many connections in use at once; ``None``: no limit
            besides the requests in flight.
        max_connections_per_host: The same, per (scheme, host, port).
        keepalive: Seconds an idle connection stays in the pool.
        proxy: An egress proxy, ``http://[user:password@]host:port``, as for
            :class:`~resthooks.transports.Urllib3Transport` (see above).

    Raises:
        ConfigurationError: If ``ssl_context`` does not verify, a limit is not a positive
            number, or ``proxy`` is not an ``http://host:port`` URL.

    Example:
        >>> import asyncio
        >>> from resthooks.transports import AsyncioTransport
        >>> async def main() -> None:
        ...     async with AsyncioTransport() as transport:
        ...         pass
        >>> asyncio.run(main())

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        *,
        policy: NetworkPolicy | None = None,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int | None = None,
        max_connections_per_host: int | None = None,
        keepalive: float = 15.0,
        proxy: str | Proxy | None = None,
    ) -> None:
        self.proxy: Proxy | None = parse_proxy(proxy) if proxy is not None else None
        if policy is not None and not isinstance(policy, NetworkPolicy):
            raise ConfigurationError("policy must be a NetworkPolicy")
        self.policy = policy if policy is not None else NetworkPolicy()
        if resolver is not None and not callable(resolver):
            raise ConfigurationError("resolver must be a function (host, port) -> addresses")
        self._resolver: Resolver = resolver if resolver is not None else system_resolver
        checked = verified_context(ssl_context)
        self._ssl = checked if checked is not None else default_context()
        self._limit = connection_limit("max_connections", max_connections)
        self._limit_per_host = connection_limit(
            "max_connections_per_host", max_connections_per_host
        )
        if (
            isinstance(keepalive, bool)
            or not isinstance(keepalive, (int, float))
            or not 0 < keepalive < float("inf")
        ):
            raise ConfigurationError("keepalive must be a positive number of seconds")
        self._keepalive = float(keepalive)
        self._targets: dict[str, _Target] = {}
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._in_use = 0
        self._in_use_per_host: dict[tuple[str, str, int], int] = {}
        self._waiting: list[asyncio.Future[None]] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0  # bumped by aclose(): connections of an older one are not pooled

    # -- targets -----------------------------------------------------------------------------

    def _target(self, url: str) -> _Target:
        """Check ``url`` (shape, scheme, port, an IP literal's address) and prepare its request
        line and ``Host``; kept per URL (the answer depends only on it and the policy)."""
        target = parse_target(url, self.policy)
        address = literal_address(target.host, self.policy)
        parts = parse_url(url)
        request_target = parts.request_uri  # path and query as written, as urllib3 sends them
        host = f"[{target.host}]" if ":" in target.host else target.host
        authority = (
            host if target.port == _DEFAULT_PORTS[target.scheme] else f"{host}:{target.port}"
        )
        if _BAD_VALUE(request_target) or " " in request_target:
            raise TransportError("protocol", "invalid URL")  # unreachable past parse_target
        head = f" {request_target} HTTP/1.1\r\nHost: {authority}\r\n"
        proxy = self.proxy
        if proxy is not None and target.scheme == "http":
            # To the proxy, in absolute form, with the proxy's credentials (which it strips);
            # an https target's go on the CONNECT only.
            head = f" http://{authority}{request_target} HTTP/1.1\r\nHost: {authority}\r\n"
            if proxy.authorization is not None:
                head += f"Proxy-Authorization: {proxy.authorization}\r\n"
        prepared = _Target(
            host=target.host,
            port=target.port,
            tls=target.scheme == "https",
            address=address,
            head=head,
            safe=target.safe,
        )
        if len(self._targets) >= _MAX_TARGETS:
            self._targets = {}
        self._targets[url] = prepared
        return prepared

    # -- sending -----------------------------------------------------------------------------

    async def send(self, request: Request) -> Response:
        """Send ``request`` once. See :class:`~resthooks.transports.AsyncTransport`."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._bind(loop)
        deadline = loop.time() + request.timeouts.total
        try:
            target = self._targets.get(request.url) or self._target(request.url)
            data = _request_bytes(request, target)
        except TransportError:
            raise
        except Exception as exc:  # noqa: BLE001 - a URL or header the wire cannot carry
            raise transport_error(exc, _ERRORS, request.url, _invalid) from None
        conn = await self._acquire(loop, target, request, deadline)
        if conn.closed:
            # Between the handshake and now (a new connection's opening is awaited), the
            # server closed it or spoke unasked: nothing was sent.
            self._release(conn)
            raise TransportError(
                "connection", "the server closed the connection before the request was sent"
            )
        future: asyncio.Future[None] = loop.create_future()
        conn.begin(future, request.max_response_bytes)
        timer = loop.call_at(deadline, _time_out, conn, future, request.timeouts.total)
        try:
            assert conn.transport is not None
            conn.transport.write(data)
            await future
        except BaseException as exc:
            conn.abort()  # half read, timed out or cancelled: never pooled
            self._release(conn)
            if isinstance(exc, TransportError):
                raise transport_error(exc, _ERRORS, request.url) from None
            raise
        finally:
            timer.cancel()
        response = response_from(conn.status, conn.headers, conn.body)
        if conn.reusable and not conn.closed:
            self._pool(loop, conn)
        else:
            conn.abort()
        self._release(conn)
        return response

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not None and not self._loop.is_closed():
            raise ConfigurationError(
                "this AsyncioTransport belongs to another event loop: aclose() it there "
                "first, or make one transport per loop"
            )
        self._idle.clear()
        self._in_use = 0
        self._in_use_per_host.clear()
        self._waiting.clear()
        self._sweeper = None
        self._loop = loop

    async def _acquire(
        self,
        loop: asyncio.AbstractEventLoop,
        target: _Target,
        request: Request,
        deadline: float,
    ) -> _Connection:
        """A connection to ``target``: an idle pooled one, else a new one, within the
        connect timeout (waiting for room under the limits included)."""
        key = target.key
        if self._limit or self._limit_per_host:
            await self._room(loop, key, request, deadline)
        self._in_use += 1
        if self._limit_per_host:
            self._in_use_per_host[key] = self._in_use_per_host.get(key, 0) + 1
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not idle:
                del self._idle[key]
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                if loop.time() - conn.idle_since < self._keepalive:
                    return conn
                conn.abort()
            idle = self._idle.get(key)
        timeout = min(request.timeouts.connect, deadline - loop.time())
        try:
            if timeout <= 0:
                raise asyncio.TimeoutError
            return await asyncio.wait_for(self._open(loop, target), timeout)
        except asyncio.TimeoutError:
            self._release_slot(key)
            raise TransportError(
                "timeout", "the connection did not open within the connect timeout"
            ) from None
        except BaseException as exc:
            self._release_slot(key)
            if isinstance(exc, Exception):
                raise transport_error(exc, _ERRORS, request.url, _os_message) from None
            raise

    async def _room(
        self,
        loop: asyncio.AbstractEventLoop,
        key: tuple[str, str, int],
        request: Request,
        deadline: float,
    ) -> None:
        """Wait until a connection to ``key`` may be in use, within the connect timeout."""
        until = loop.time() + min(request.timeouts.connect, deadline - loop.time())
        while not self._has_room(key):
            left = until - loop.time()
            if left <= 0:
                raise TransportError(
                    "timeout",
                    "no connection became free within the connect timeout "
                    "(max_connections or max_connections_per_host)",
                )
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiting.append(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except asyncio.TimeoutError:
                pass
            finally:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)

    def _has_room(self, key: tuple[str, str, int]) -> bool:
        if self._limit and self._in_use >= self._limit:
            return False
        return not (
            self._limit_per_host and self._in_use_per_host.get(key, 0) >= self._limit_per_host
        )

    async def _open(self, loop: asyncio.AbstractEventLoop, target: _Target) -> _Connection:
        """Resolve once, validate every answer, connect to a validated address (or to the
        proxy, through a tunnel for TLS)."""
        if self.proxy is not None:
            sock = await self._dial_proxy(loop, self.proxy)
            if target.tls:
                try:
                    await _tunnel(loop, sock, target, self.proxy)
                except BaseException:
                    sock.close()
                    raise
        else:
            if target.address is not None:
                addresses = [target.address]
            else:
                try:
                    answers = await loop.run_in_executor(
                        None, self._resolver, target.host, target.port
                    )
                except OSError as exc:
                    raise resolution_failed(target.host, exc) from None
                addresses = self.policy.check_resolved(target.host, answers)
            try:
                sock = await _dial(loop, addresses, target.port)
            except OSError as exc:
                host = f"[{target.host}]" if ":" in target.host else target.host
                raise TransportError(
                    "connection", f"cannot connect to {host}:{target.port}: {_reason(exc)}"
                ) from None
        conn = _Connection(target.key, self._generation)
        try:
            await loop.create_connection(
                lambda: conn,
                sock=sock,
                ssl=self._ssl if target.tls else None,
                server_hostname=target.server_hostname if target.tls else None,
            )
        except BaseException:
            sock.close()
            raise
        return conn

    async def _dial_proxy(self, loop: asyncio.AbstractEventLoop, proxy: Proxy) -> socket.socket:
        """A socket connected to the proxy (the system's resolver, no policy)."""
        try:
            answers = await loop.run_in_executor(None, system_resolver, proxy.host, proxy.port)
            return await _dial(loop, [ipaddress.ip_address(a) for a in answers], proxy.port)
        except OSError as exc:
            raise TransportError("connection", proxy_unreachable(proxy, _reason(exc))) from None

    def _pool(self, loop: asyncio.AbstractEventLoop, conn: _Connection) -> None:
        if conn.generation != self._generation:
            conn.abort()  # opened before an aclose(): not this pool's
            return
        conn.future = None
        conn.idle_since = loop.time()
        self._idle.setdefault(conn.key, []).append(conn)
        if self._sweeper is None:
            self._sweeper = loop.call_at(conn.idle_since + self._keepalive, self._sweep)

    def _sweep(self) -> None:
        """Close the connections idle for ``keepalive`` seconds; come back for the next."""
        self._sweeper = None
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        earliest = None
        for key in list(self._idle):
            kept = []
            for conn in self._idle[key]:
                if conn.closed or now - conn.idle_since >= self._keepalive:
                    conn.abort()
                else:
                    kept.append(conn)
                    earliest = (
                        conn.idle_since if earliest is None else min(earliest, conn.idle_since)
                    )
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]
        if earliest is not None:
            self._sweeper = loop.call_at(earliest + self._keepalive, self._sweep)

    def _release(self, conn: _Connection) -> None:
        self._release_slot(conn.key)

    def _release_slot(self, key: tuple[str, str, int]) -> None:
        self._in_use -= 1
        if self._limit_per_host:
            left = self._in_use_per_host.get(key, 1) - 1
            if left:
                self._in_use_per_host[key] = left
            else:
                self._in_use_per_host.pop(key, None)
        if self._waiting:
            for waiter in self._waiting:
                if not waiter.done():
                    waiter.set_result(None)
            self._waiting.clear()

    # -- the pool, seen from outside -----------------------------------------------------------

    def pooled_hosts(self) -> list[PooledHost]:
        """The hosts the pool holds idle keep-alive connections to, most recently used first.

        ``idle_for`` counts from when a connection to the host last went back to the pool. A
        host whose connections are all in use is not listed.

        .. versionadded:: 0.2.0
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            return []
        now = loop.time()
        held = []
        for (scheme, host, port), connections in self._idle.items():
            alive = [c.idle_since for c in connections if not c.closed]
            if alive:
                held.append(
                    PooledHost(
                        scheme=scheme,
                        host=host,
                        port=port,
                        idle_connections=len(alive),
                        idle_for=max(0.0, now - max(alive)),
                    )
                )
        return sorted(held, key=lambda host: host.idle_for)

    async def aclose(self) -> None:
        """Close every pooled connection (the transport can send again afterwards)."""
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for conn in connections:
                # abort(), not close(): nothing is left to write on an idle connection, and a
                # TLS close() would wait for the server's close_notify past the loop's end.
                conn.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._generation += 1
        if self._in_use <= 0:
            self._loop = None
        await asyncio.sleep(0)  # let the transports' close callbacks run

    async def __aenter__(self) -> AsyncioTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        if self.proxy is not None:
            return f"AsyncioTransport(proxy={self.proxy.safe!r})"
        return "AsyncioTransport()"


def _time_out(conn: _Connection, future: asyncio.Future[None], total: float) -> None:
    if not future.done():  # else the answer came first, and send() is about to cancel this
        future.set_exception(
            TransportError("timeout", f"no complete answer within the deadline of {total} s")
        )
        conn.abort()


async def _dial(
    loop: asyncio.AbstractEventLoop, addresses: list[IPAddress], port: int
) -> socket.socket:
    """A socket connected to the first of ``addresses`` that accepts, in order.

    Raises:
        OSError: The last address's error, when none accepts.
    """
    last: OSError = OSError("no address to connect to")
    for address in addresses:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, (str(address), port))
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise last


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


async def _tunnel(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, target: _Target, proxy: Proxy
) -> None:
    """Ask the proxy on ``sock`` for a tunnel to ``target`` (``CONNECT``); raise unless it
    answers 2xx. The receiver's TLS handshake then runs inside it."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    authority = f"{host}:{target.port}"
    head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
    if proxy.authorization is not None:
        head += f"Proxy-Authorization: {proxy.authorization}\r\n"
    try:
        await loop.sock_sendall(sock, (head + "\r\n").encode("ascii"))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                raise ConnectionError("the proxy closed the connection before answering")
            answer += chunk
            if len(answer) > _MAX_HEAD:
                raise ConnectionError("the proxy's answer to CONNECT is too long")
    except OSError as exc:
        raise TransportError("connection", proxy_unreachable(proxy, _reason(exc))) from None
    head_bytes, _, rest = answer.partition(b"\r\n\r\n")
    version, _, status_reason = head_bytes.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
    status, _, reason = status_reason.partition(" ")
    if not version.startswith("HTTP/1.") or not status.isdigit():
        raise TransportError("protocol", "invalid response from the proxy to CONNECT")
    if not 200 <= int(status) < 300:
        raise TransportError("connection", tunnel_refused(authority, int(status), reason))
    if rest:
        # Bytes before the receiver's TLS handshake: the tunnel's framing is not to be trusted.
        raise TransportError("protocol", "the proxy sent bytes after its CONNECT answer")


def _request_bytes(request: Request, target: _Target) -> bytes:
    """The request's head and body, as one buffer for one write."""
    if not _TOKEN(request.method):
        raise TransportError("protocol", "invalid method")
    lines = [request.method, target.head]
    has_length = has_encoding = False
    for name, value in request.headers.items():
        if not _TOKEN(name):
            raise TransportError("protocol", f"invalid header name {name[:40]!r}")
        if _BAD_VALUE(value):
            raise TransportError("protocol", f"invalid value for the header {name}")
        lower = name.lower()
        if lower == "host":
            continue  # the URL's, already written (a Host header may not come twice)
        if lower == "content-length":
            has_length = True
        elif lower == "accept-encoding":
            has_encoding = True
        lines.append(f"{name}: {value}\r\n")
    if not has_encoding:
        lines.append("Accept-Encoding: identity\r\n")  # what http.client says, so urllib3 too
    if not has_length:
        lines.append(f"Content-Length: {len(request.body)}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1") + request.body


def _invalid(exc: BaseException) -> str:
    if isinstance(exc, UnicodeEncodeError):
        return "a header value is not Latin-1 text"
    return "invalid URL"
