"""The async transport, on aiohttp (the ``async`` extra)."""

from __future__ import annotations

import asyncio
import builtins
import functools
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Mapping
from types import TracebackType

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from ..errors import ConfigurationError, TransportError, TransportErrorKind
from ..network import NetworkPolicy, Resolver, system_resolver
from ._protocol import Request, Response, Timeouts
from ._proxy import Proxy, parse_proxy, proxy_unreachable, tunnel_refused
from ._rules import (
    BY_CAUSE,
    CappedBody,
    Deadline,
    connection_limit,
    default_context,
    error_table,
    literal_address,
    mask_request_logs,
    parse_target,
    resolution_failed,
    resolved_addresses,
    response_from,
    transport_error,
    verified_context,
)
from ._urllib3 import PooledHost

__all__ = ["AiohttpTransport", "PolicyResolver"]

# http.client's limits, so that both transports accept the same answers.
_MAX_LINE = 65536
_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


# Checked target URLs kept (one per hook URL in use); past this the cache starts afresh, which
# costs one parse per URL, never a connection.
_MAX_TARGETS = 8192


class _Target:
    """A target URL checked once: what aiohttp is given, and a ``Host`` to keep, if any."""

    __slots__ = ("host_header", "url")

    def __init__(self, url: URL, host_header: str | None) -> None:
        self.url = url
        self.host_header = host_header


class PolicyResolver(AbstractResolver):
    """An aiohttp resolver that answers only with addresses the network policy allows.

    aiohttp asks its resolver for the addresses of every new connection to a host name (with
    the connector's DNS cache off), then dials one of the answers: resolving once here and
    validating every answer is what pins the connection to a validated address. ``Host``,
    SNI and the certificate check keep the URL's host name. IP literals in the URL never reach
    a resolver; :class:`AiohttpTransport` checks them before the request.

    Args:
        policy: The network policy.
        resolver: ``(host, port) -> [address, ...]``, called in the loop's default executor
            (resolving blocks). Default: :func:`~resthooks.network.system_resolver`.

    .. versionadded:: 0.2.0
    """

    def __init__(self, policy: NetworkPolicy, resolver: Resolver | None = None) -> None:
        self.policy = policy
        self.resolver: Resolver = resolver if resolver is not None else system_resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host`` once; raise ``TransportError`` ``blocked`` if any answer is refused."""
        literal = literal_address(host, self.policy)  # spellings aiohttp does not take for IPs
        if literal is not None:
            answers = [str(literal)]
        else:
            loop = asyncio.get_running_loop()
            try:
                answers = list(await loop.run_in_executor(None, self.resolver, host, port))
            except OSError as exc:
                raise resolution_failed(host, exc) from exc
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=0,
                flags=_NUMERIC,
            )
            for address in resolved_addresses(self.policy, host, answers)
        ]

    async def close(self) -> None:
        """Nothing to release."""


class _ProxyOnlyResolver(AbstractResolver):
    """With a proxy, the one name the engine resolves is the proxy's (with the system's
    resolver, and no policy: the host chose it, and it is often on a private network)."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self.proxy.host:
            # Unreachable through aiohttp's proxy support; a guard that the engine never dials
            # a receiver itself when a proxy is set.
            raise TransportError("blocked", f"with a proxy, {host} is not dialled directly")
        loop = asyncio.get_running_loop()
        try:
            answers = await loop.run_in_executor(None, system_resolver, host, port)
        except OSError as exc:
            raise TransportError("connection", proxy_unreachable(self.proxy, str(exc))) from exc
        results = []
        for answer in answers:
            address = ipaddress.ip_address(answer)
            results.append(
                ResolveResult(
                    hostname=host,
                    host=str(address),
                    port=port,
                    family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                    proto=0,
                    flags=_NUMERIC,
                )
            )
        return results

    async def close(self) -> None:
        """Nothing to release."""


class AiohttpTransport:
    """Sends deliveries from an asyncio event loop, with one :class:`aiohttp.ClientSession`.

    It keeps every promise of :class:`~resthooks.transports.Urllib3Transport`, awaited:
    every new connection resolves its host once, is refused (``blocked``) if ANY answer is
    refused by ``policy``, and dials a validated address (its resolver does that), with
    ``Host``, SNI and the certificate check on the host name; an IP literal in the URL, in any
    spelling, is checked before anything is dialled. Redirects are never followed, nothing is
    retried (not even a request on a kept-alive connection the server closed), TLS is always
    verified, the total deadline holds however slowly the status line, headers or body come,
    at most ``max_response_bytes`` of the body is read (a capped response's connection is
    closed, not pooled), and cookies are never kept. Errors are the same
    :class:`~resthooks.errors.TransportError` kinds as the sync transport's for the same
    server behaviour, and name nothing of the URL but its scheme, host, port and path.

    The pool keeps the idle keep-alive connections of every (host, port, TLS) it talks to,
    however many hosts there are (no LRU of hosts to thrash), each for ``keepalive`` seconds
    of idleness; :meth:`pooled_hosts` says what it holds. Connections in use are bounded by
    the number of requests in flight (the worker's concurrency), unless ``max_connections``
    or ``max_connections_per_host`` say less; a request waiting for a free connection spends
    its connect timeout doing so.

    The session is made on the event loop of the first :meth:`send` and belongs to it; after
    :meth:`aclose`, the next :meth:`send` makes a new one (on the loop then running).

    Args:
        policy: The :class:`~resthooks.network.NetworkPolicy` to enforce. Default:
            ``NetworkPolicy()``, which refuses loopback and private addresses.
        resolver: ``(host, port) -> [address, ...]``, run in the loop's default executor.
            Default: :func:`~resthooks.network.system_resolver` (one ``getaddrinfo``).
        ssl_context: The TLS context (to trust a private CA, say). It must verify
            certificates and host names (``CERT_REQUIRED`` and ``check_hostname``).
        max_connections: At most this many connections in use at once; ``None``: no limit
            besides the requests in flight.
        max_connections_per_host: The same, per host.
        keepalive: Seconds an idle connection stays in the pool.
        proxy: An egress proxy, ``http://[user:password@]host:port``, as for
            :class:`~resthooks.transports.Urllib3Transport`: ``https`` targets through a
            ``CONNECT`` tunnel with TLS end to end to the receiver, ``http`` targets in
            absolute form; the engine dials only the proxy, and checking the receivers'
            addresses is the proxy's job (see "Security"). ``resolver`` is not used for
            targets.

            .. versionadded:: 0.2.0

    Raises:
        ConfigurationError: If ``ssl_context`` does not verify, a limit is not a positive
            number, or ``proxy`` is not an ``http://host:port`` URL.

    Example:
        >>> import asyncio
        >>> from resthooks.transports import AiohttpTransport
        >>> async def main() -> None:
        ...     async with AiohttpTransport() as transport:
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
        self._proxy_url = (
            None
            if self.proxy is None
            else URL.build(scheme="http", host=self.proxy.host, port=self.proxy.port)
        )
        self._proxy_headers = (
            {"Proxy-Authorization": self.proxy.authorization}
            if self.proxy is not None and self.proxy.authorization is not None
            else None
        )
        if policy is not None and not isinstance(policy, NetworkPolicy):
            raise ConfigurationError("policy must be a NetworkPolicy")
        self.policy = policy if policy is not None else NetworkPolicy()
        if resolver is not None and not callable(resolver):
            raise ConfigurationError("resolver must be a function (host, port) -> addresses")
        self._resolver = resolver
        self._ssl = _verified_context(ssl_context)
        # 0 is aiohttp's "no limit", as connection_limit says for None.
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
        self._session: aiohttp.ClientSession | None = None
        self._targets: dict[str, _Target] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        mask_request_logs("aiohttp.client", "aiohttp.internal")

    def _session_here(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and not self._session.closed:
            if self._loop is not loop:
                raise ConfigurationError(
                    "this AiohttpTransport belongs to another event loop: aclose() it there "
                    "first, or make one transport per loop"
                )
            return self._session
        resolver: AbstractResolver = (
            PolicyResolver(self.policy, self._resolver)
            if self.proxy is None
            else _ProxyOnlyResolver(self.proxy)
        )
        connector = aiohttp.TCPConnector(
            resolver=resolver,
            use_dns_cache=False,  # every new connection resolves, and is validated, again
            ssl=self._ssl,
            limit=self._limit,
            limit_per_host=self._limit_per_host,
            keepalive_timeout=self._keepalive,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            # No skip_auto_headers: it costs aiohttp a header copy per request. The Dispatcher
            # sets User-Agent and Content-Type, send() sets Accept-Encoding; what aiohttp adds
            # on its own is "Accept: */*".
            max_line_size=_MAX_LINE,
            max_field_size=_MAX_LINE,
        )
        if hasattr(session, "_retry_connection"):
            # aiohttp resends an idempotent request once when a kept-alive connection turns
            # out closed; a transport sends exactly once.
            session._retry_connection = False
        self._session, self._loop = session, loop
        return session

    def _target(self, url: str) -> _Target:
        """Check ``url`` (shape, scheme, an IP literal's address) and build what aiohttp takes.

        The answer depends only on the URL and the policy (a value), so it is kept per URL.
        """
        target = parse_target(url, self.policy)
        literal = literal_address(target.host, self.policy)
        try:
            # As given (no re-quoting), and without credentials: urllib3 sends none either.
            parsed = URL(url, encoded=True).with_user(None)
            host_header = None
            if literal is not None and literal.version == 4 and target.host != str(literal):
                # An IPv4 literal in a legacy spelling (2130706433, 127.1): dial the address
                # it denotes (already checked), and keep the spelling in Host, as urllib3 does.
                host_header = parsed.raw_authority
                parsed = parsed.with_host(str(literal))
        except (TypeError, ValueError) as exc:
            raise transport_error(exc, _ERRORS, url, _invalid_url) from None
        prepared = _Target(parsed, host_header)
        if len(self._targets) >= _MAX_TARGETS:
            self._targets = {}
        self._targets[url] = prepared
        return prepared

    async def send(self, request: Request) -> Response:
        """Send ``request`` once. See :class:`~resthooks.transports.AsyncTransport`."""
        deadline = Deadline(request.timeouts.total)
        target = self._targets.get(request.url) or self._target(request.url)
        session = self._session_here()
        headers = dict(request.headers)
        if not any(name.lower() == "accept-encoding" for name in headers):
            headers["Accept-Encoding"] = "identity"  # what http.client says, so urllib3 too
        if target.host_header is not None:
            headers.setdefault("Host", target.host_header)
        url = target.url
        if self._proxy_headers is not None and url.scheme == "http":
            # aiohttp sends proxy_headers on a CONNECT only: a request the proxy forwards
            # carries its Proxy-Authorization itself (the proxy strips it).
            headers.update(self._proxy_headers)
        try:
            resp = await session.request(
                request.method,
                url,
                data=request.body,
                headers=headers,
                allow_redirects=False,
                timeout=_client_timeout(request.timeouts),
                proxy=self._proxy_url,
                proxy_headers=self._proxy_headers,
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes a typed TransportError
            describe = functools.partial(_describe, deadline, self.proxy, url)
            raise transport_error(exc, _ERRORS, request.url, describe) from None
        body = CappedBody(request.max_response_bytes)
        try:
            while want := body.want():
                deadline.remaining()
                chunk = await resp.content.read(want)
                if not chunk:
                    break
                body.add(chunk)
        except BaseException as exc:
            resp.close()  # half read: the connection must not go back to the pool
            if not isinstance(exc, Exception):
                raise  # cancelled
            describe = functools.partial(_describe, deadline, self.proxy, url)
            raise transport_error(_lost_connection(exc), _ERRORS, request.url, describe) from None
        if body.truncated:
            resp.close()
        else:
            resp.release()
        return response_from(resp.status, resp.headers.items(), body)

    def pooled_hosts(self) -> list[PooledHost]:
        """The hosts the pool holds idle keep-alive connections to, most recently used first.

        ``idle_for`` counts from when a connection to the host last went back to the pool.
        A host whose connections are all in use is not listed. This reads the state of
        aiohttp's connector, which aiohttp does not publish: with an aiohttp that keeps it
        otherwise, the list is empty rather than wrong.

        .. versionadded:: 0.2.0
        """
        session = self._session
        idle = getattr(session.connector, "_conns", None) if session is not None else None
        if session is None or session.closed or not isinstance(idle, Mapping):
            return []
        now = time.monotonic()  # what aiohttp stamps released connections with
        held = []
        for key, connections in list(idle.items()):
            released = [at for protocol, at in connections if protocol.is_connected()]
            if released:
                held.append(
                    PooledHost(
                        scheme="https" if key.is_ssl else "http",
                        host=key.host,
                        port=key.port,
                        idle_connections=len(released),
                        idle_for=max(0.0, now - max(released)),
                    )
                )
        return sorted(held, key=lambda host: host.idle_for)

    async def aclose(self) -> None:
        """Close every pooled connection (the transport can send again afterwards)."""
        session, self._session, self._loop = self._session, None, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> AiohttpTransport:
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
            return f"AiohttpTransport(proxy={self.proxy.safe!r})"
        return "AiohttpTransport()"


def _verified_context(context: ssl.SSLContext | None) -> ssl.SSLContext:
    checked = verified_context(context)
    return checked if checked is not None else default_context()


@functools.lru_cache(maxsize=64)
def _client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    # aiohttp's total holds the status line, the headers and every body read to the deadline;
    # its connect covers the TCP and TLS handshakes, like urllib3's.
    return aiohttp.ClientTimeout(total=timeouts.total, connect=timeouts.connect)


# aiohttp's exceptions, by kind; the shared head (timeouts) and tail (TLS, sockets) around them.
_ERRORS = error_table(
    (
        (
            aiohttp.ClientConnectorCertificateError,
            aiohttp.ClientConnectorSSLError,
            aiohttp.ClientSSLError,
            aiohttp.ServerFingerprintMismatch,
        ),
        TransportErrorKind.TLS,
    ),
    # Refused, reset, or closed by the server without an answer; a proxy that refused the
    # tunnel (an answer of the proxy's, not of the receiver: urllib3 says the same).
    ((aiohttp.ClientConnectionError, aiohttp.ClientHttpProxyError), TransportErrorKind.CONNECTION),
    # A body cut short says so; a reset under it is a connection error, as with urllib3.
    (aiohttp.ClientPayloadError, BY_CAUSE),
    ((aiohttp.ClientResponseError, aiohttp.InvalidURL), TransportErrorKind.PROTOCOL),
)


_LOST = re.compile(r"\. ([A-Za-z]+Error)\(")


def _lost_connection(exc: Exception) -> Exception:
    """The socket error under a body cut short by it, else ``exc``.

    When the connection is lost uncleanly in the middle of a body (a reset), aiohttp raises a
    ``ClientPayloadError`` whose cause is the parser's complaint; only its message names the
    socket error, after the parser's. urllib3 reports the same event as the socket error, so
    this digs it out: a ``ClientPayloadError`` naming a built-in ``OSError`` subclass becomes
    that error (with aiohttp's message), which the shared table calls ``connection``.
    """
    if isinstance(exc, aiohttp.ClientPayloadError):
        match = _LOST.search(str(exc))
        error_type = getattr(builtins, match.group(1), None) if match else None
        if isinstance(error_type, type) and issubclass(error_type, OSError):
            return error_type(str(exc))
    return exc


def _invalid_url(exc: BaseException) -> str:
    return "invalid URL"


def _describe(deadline: Deadline, proxy: Proxy | None, url: URL, exc: BaseException) -> str:
    """What happened, in words that quote no URL (aiohttp's messages may quote all of it)."""
    if proxy is not None and isinstance(exc, aiohttp.ClientHttpProxyError):
        host = f"[{url.host}]" if url.host and ":" in url.host else url.host
        return tunnel_refused(f"{host}:{url.port}", exc.status, exc.message)
    if proxy is not None and isinstance(exc, aiohttp.ClientProxyConnectionError):
        return proxy_unreachable(proxy, exc.os_error.strerror or str(exc.os_error))
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "the connection did not open within the connect timeout"
    if isinstance(exc, TimeoutError):
        return f"no complete answer within the deadline of {deadline.total} s"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"certificate verification failed: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without a complete answer"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"invalid response: {exc.message}"
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid URL"
    return f"{type(exc).__name__}: {exc}"
