"""The default transport, on urllib3."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from functools import partial
from types import TracebackType

import attrs
import urllib3
from urllib3._base_connection import ProxyConfig
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool, port_by_scheme
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    HTTPError,
    LocationParseError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import Url, parse_url

from .._durations import seconds
from ..errors import ConfigurationError, TransportError, TransportErrorKind
from ..network import NetworkPolicy, Resolver, system_resolver
from ._deadline import with_deadline
from ._exchange import HostConnections, exchange, read_capped, request_target
from ._pinning import pinned_connection_classes
from ._protocol import Request, Response, Timeouts
from ._proxy import Proxy, parse_proxy, proxy_unreachable, tunnel_refused
from ._rules import (
    BY_CAUSE,
    URLLIB3_LOGGERS,
    CappedBody,
    Deadline,
    error_table,
    literal_address,
    mask_request_logs,
    parse_target,
    response_from,
    transport_error,
    verified_context,
)

__all__ = ["PooledHost", "Urllib3Transport"]

# Split target URLs kept (one per hook URL in use); past this the cache starts afresh, which
# costs one parse per URL, never a connection.
_MAX_TARGETS = 8192


@attrs.frozen
class PooledHost:
    """One host the transport keeps a connection pool for (see
    :meth:`Urllib3Transport.pooled_hosts`).

    Attributes:
        scheme: ``http`` or ``https``.
        host: The host name (or address) as in the target URLs, lower case.
        port: The port.
        idle_connections: Open connections waiting in the pool for the next request.
        idle_for: Seconds since a request to this host last started.

    .. versionadded:: 0.2.0
    """

    scheme: str
    host: str
    port: int
    idle_connections: int
    idle_for: float


class _ProxiedHost:
    """A host reached through the egress proxy: urllib3's pool for it, and when it was last
    used (monotonic seconds)."""

    __slots__ = ("closed", "key", "last_used", "pool")

    def __init__(self, key: tuple[str, str, int], pool: HTTPConnectionPool, now: float) -> None:
        self.key = key
        self.pool = pool
        self.last_used = now
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.pool.close()

    def idle_count(self) -> int:
        return _idle(self.pool)


_Host = HostConnections | _ProxiedHost


class _Target:
    """A target URL split once: its host's connections, the request target (path and query,
    as bytes for a direct exchange; the whole URL for the proxy's http pool), and headers
    the proxy wants on the request itself, if any."""

    __slots__ = ("entry", "headers", "path", "target")

    def __init__(
        self,
        entry: _Host,
        path: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.entry = entry
        self.path = path
        self.target = request_target(path) if isinstance(entry, HostConnections) else b""
        self.headers = headers


class Urllib3Transport:
    """Sends deliveries over urllib3's connections, with a pool of keep-alive connections
    per host.

    Connections are kept alive and reused per host: the transport keeps a pool of idle
    connections (at most ``maxsize``) for every host it sent to in the last
    ``pool_idle_timeout`` seconds, however many hosts that is (a pool cache smaller than the
    hooks' hosts would close and reopen connections, a TLS handshake each, all the time), and
    closes the pools of hosts idle for longer. :meth:`pooled_hosts` says what it holds. Each
    target URL is split once. The connections are urllib3's (its TLS, with the pinned dial
    below); the request and its response go over them directly rather than through
    urllib3's ``HTTPConnectionPool.urlopen``: the same bytes on the wire at less than half
    the CPU per request. Through an egress ``proxy`` each host has a urllib3
    ``HTTPConnectionPool`` instead, bounded the same way.

    Redirects are never followed and nothing is retried. TLS certificates are verified. The
    total deadline of :class:`~resthooks.Timeouts` holds however slowly a server sends its
    body: the body is read in chunks against a monotonic deadline. A response body longer than
    the cap is not read past the cap, and its connection is closed instead of going back to
    the pool.

    Every connection (a new one, or a pooled one that reconnects) resolves the host once
    with ``resolver``, refuses the attempt with a ``blocked``
    :class:`~resthooks.errors.TransportError` if ANY address is refused by ``policy``, and
    connects to a validated address; ``Host``, SNI and the certificate check keep the host
    name. Error messages never carry the URL's credentials or query string, and neither do
    urllib3's own log records (a filter masks them). Before anything is sent, the URL must
    pass the shape rules of :func:`~resthooks.urls.parse_target_url` (the ones subscribe
    applies), or the attempt is ``blocked``; credentials in a URL are never sent.

    Args:
        maxsize: Idle connections kept per host (more are opened when more requests to one
            host run at once, and closed after use). The Dispatcher's
            ``max_in_flight_per_host`` (4) is what bounds them in a worker.
        pool_idle_timeout: Seconds after its last request before a host's pool and its
            connections are closed. Default 60 s.
        policy: The :class:`~resthooks.network.NetworkPolicy` to enforce. Default:
            ``NetworkPolicy()``, which refuses loopback and private addresses.
        resolver: ``(host, port) -> [address, ...]``. Default:
            :func:`~resthooks.network.system_resolver` (one ``getaddrinfo``).
        ssl_context: The TLS context (to trust a private CA, say). It must verify
            certificates and host names (``CERT_REQUIRED`` and ``check_hostname``).
        proxy: An egress proxy, ``http://[user:password@]host:port``: every request goes
            through it (``https`` targets through a ``CONNECT`` tunnel, TLS end to end with
            the receiver, whose certificate is the one verified; ``http`` targets in absolute
            form). The engine then dials only the proxy and resolves no receiver's name: the
            proxy resolves them, so checking their addresses (and pinning them against DNS
            rebinding) is the proxy's job; it must be an SSRF-safe proxy such as smokescreen.
            The shape, scheme and port rules and IP-literal hosts are still checked here
            under ``policy``. ``resolver`` is not used for targets. See "Security".

            .. versionadded:: 0.2.0

    Raises:
        ConfigurationError: For a ``maxsize`` below 1, a ``pool_idle_timeout`` that is not
            a positive number of seconds, an ``ssl_context`` that does not verify, or a
            ``proxy`` that is not an ``http://host:port`` URL (naming ``proxy``; the message
            never quotes its credentials).

    .. versionchanged:: 0.2.0
       A pool per active host, closed after ``pool_idle_timeout``, instead of a
       ``PoolManager`` keeping the 64 most recent hosts; ``num_pools`` is gone.

    Example:
        >>> from resthooks.transports import Urllib3Transport
        >>> with Urllib3Transport() as transport:
        ...     transport.pooled_hosts()
        []
    """

    def __init__(
        self,
        *,
        maxsize: int = 16,
        pool_idle_timeout: float = 60.0,
        policy: NetworkPolicy | None = None,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | Proxy | None = None,
    ) -> None:
        self.proxy: Proxy | None = parse_proxy(proxy) if proxy is not None else None
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ConfigurationError("maxsize must be an int >= 1")
        idle = seconds(pool_idle_timeout, "pool_idle_timeout", positive=True)
        self.policy = policy if policy is not None else NetworkPolicy()
        self.maxsize = maxsize
        self.pool_idle_timeout = idle
        self._timeouts: dict[Timeouts, urllib3.Timeout] = {}
        mask_request_logs(*URLLIB3_LOGGERS)
        resolve = resolver if resolver is not None else system_resolver
        self._connection_classes = pinned_connection_classes(self.policy, resolve)
        # Through a proxy the engine dials the proxy only (on a private address, often):
        # urllib3's pools of its own connections, which never resolve a receiver's name, with
        # the status line and headers held to the total deadline (with_deadline; the body is
        # read against it below).
        self._pool_classes = with_deadline(
            {"http": HTTPConnectionPool, "https": HTTPSConnectionPool}
        )
        self._ssl_context = verified_context(ssl_context)
        self._lock = threading.Lock()
        self._hosts: dict[tuple[str, str, int], _Host] = {}
        self._targets: dict[str, _Target] = {}
        # Idle pools are looked for at most this often (on a send), so a busy transport pays
        # for the sweep once in a while, not per request.
        self._sweep_every = min(self.pool_idle_timeout / 2, 10.0)
        self._next_sweep = time.monotonic() + self._sweep_every

    # -- pools ---------------------------------------------------------------------------------

    def _new_host(self, scheme: str, host: str, port: int, now: float) -> _Host:
        key = (scheme, host, port)
        if self.proxy is None:
            cls = self._connection_classes[scheme]
            # The host as urllib3's pool gives it to its connections: without brackets.
            name = host.strip("[]")
            if scheme == "https":
                assert issubclass(cls, HTTPSConnection)
                # What urllib3's HTTPSConnectionPool gives its connections with our settings.
                connect: Callable[[], HTTPConnection] = partial(
                    cls, name, port, cert_reqs="CERT_REQUIRED", ssl_context=self._ssl_context
                )
            else:
                connect = partial(cls, name, port)
            return HostConnections(key, connect, maxsize=self.maxsize, now=now)
        # What urllib3's PoolManager would build for this host with our settings.
        pool_kwargs: dict[str, object] = {
            "maxsize": self.maxsize,
            "block": False,
            "retries": False,
        }
        if scheme == "https":
            pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
            pool_kwargs["ssl_context"] = self._ssl_context
            # A CONNECT tunnel per connection; TLS inside it verifies the receiver (the
            # pool's context, SNI and host name check on ``host``), never the proxy.
            pool_kwargs["_proxy"] = Url(scheme="http", host=self.proxy.host, port=self.proxy.port)
            pool_kwargs["_proxy_headers"] = self._proxy_headers()
            pool_kwargs["_proxy_config"] = ProxyConfig(None, False, None, None)
        pool = self._pool_classes[scheme](host, port, **pool_kwargs)  # type: ignore[arg-type]
        return _ProxiedHost(key, pool, now)

    def _proxy_headers(self) -> dict[str, str]:
        auth = self.proxy.authorization if self.proxy is not None else None
        return {"Proxy-Authorization": auth} if auth is not None else {}

    def _target(self, url: str, now: float) -> _Target:
        """Split ``url`` and find (or make) its host's pool; cache the pair."""
        parse_target(url, self.policy)  # the shape every transport accepts, checked once per URL
        try:
            parts = parse_url(url)
        except LocationParseError as exc:
            raise TransportError("protocol", f"invalid URL: {exc}") from None
        scheme = (parts.scheme or "http").lower()
        if scheme not in self._connection_classes:
            raise TransportError("protocol", f"invalid URL: unknown scheme {scheme!r}")
        if not parts.host:
            raise TransportError("protocol", "invalid URL: no host")
        host = parts.host.lower()
        port = parts.port or port_by_scheme.get(scheme, 80)
        key = (scheme, host, port)
        path, headers = parts.request_uri, None
        if self.proxy is not None:
            # The pinned dialler checked IP literals as it dialled them; nothing here dials
            # the receiver, so they are checked now (names are the proxy's to resolve).
            literal_address(host.strip("[]"), self.policy)
            if scheme == "http":
                # Plain http goes to the proxy in absolute form, on one pool to the proxy.
                key = ("http", self.proxy.host, self.proxy.port)
                path = parts._replace(auth=None, fragment=None).url
                headers = self._proxy_headers() or None
        with self._lock:
            entry = self._hosts.get(key)
            if entry is None or entry.closed:
                entry = self._new_host(*key, now)
                self._hosts[key] = entry
            target = _Target(entry, path, headers)
            if len(self._targets) >= _MAX_TARGETS:
                self._targets = {}
            self._targets[url] = target
        return target

    def _sweep(self, now: float) -> None:
        """Close the pools of hosts idle for longer than ``pool_idle_timeout``."""
        cutoff = now - self.pool_idle_timeout
        with self._lock:
            self._next_sweep = now + self._sweep_every
            idle = [e for e in self._hosts.values() if e.last_used < cutoff]
            if not idle:
                return
            for entry in idle:
                entry.closed = True
                del self._hosts[entry.key]
            self._targets = {u: t for u, t in self._targets.items() if not t.entry.closed}
        for entry in idle:
            entry.close()

    def pooled_hosts(self) -> list[PooledHost]:
        """The hosts this transport keeps a pool of connections for, most recently used first.

        A host is held from its first request until ``pool_idle_timeout`` seconds pass
        without one; then its pool and connections are closed (looked at on the next send).

        .. versionadded:: 0.2.0
        """
        now = time.monotonic()
        with self._lock:
            entries = sorted(self._hosts.values(), key=lambda e: e.last_used, reverse=True)
        return [
            PooledHost(
                scheme=e.key[0],
                host=e.key[1],
                port=e.key[2],
                idle_connections=e.idle_count(),
                idle_for=max(0.0, now - e.last_used),
            )
            for e in entries
        ]

    # -- sending -------------------------------------------------------------------------------

    def send(self, request: Request) -> Response:
        """Send ``request`` once. See :class:`~resthooks.transports.Transport`."""
        deadline = Deadline(request.timeouts.total)
        now = time.monotonic()
        url = request.url
        self.policy.check_scheme(url)
        if now >= self._next_sweep:
            self._sweep(now)
        # Failures are raised outside the except blocks: urllib3's exceptions quote the URL
        # (some keep it as an attribute) and must not stay attached as __context__.
        failure: TransportError | None = None
        target: _Target | None = None
        try:
            target = self._targets.get(url)
            if target is None or target.entry.closed:
                target = self._target(url, now)
            entry = target.entry
            entry.last_used = now
            if isinstance(entry, HostConnections):
                # A host swept meanwhile still serves this request: its connection is
                # closed afterwards instead of being kept.
                return exchange(entry, target.target, request, deadline)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a typed TransportError
            failure = transport_error(exc, _ERRORS, url, partial(self._describe, url))
        if failure is not None:
            raise failure
        assert target is not None
        return self._send_proxied(target, request, deadline, now)

    def _send_proxied(
        self, target: _Target, request: Request, deadline: Deadline, now: float
    ) -> Response:
        """Send through urllib3's pool to the proxy (or its tunnel): urllib3's own path."""
        url = request.url
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
        failure: TransportError | None = None
        try:
            resp = self._urlopen(target, request, timeout)
        except ClosedPoolError:
            # Swept between the look-up and the request (nothing was sent): a fresh pool.
            try:
                resp = self._urlopen(self._target(url, now), request, timeout)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a TransportError
                failure = transport_error(exc, _ERRORS, url, partial(self._describe, url))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a typed TransportError
            failure = transport_error(exc, _ERRORS, url, partial(self._describe, url))
        if failure is not None:
            raise failure
        body = CappedBody(request.max_response_bytes)
        try:
            read_capped(resp.read1, _socket_of(resp), body, deadline)
        except Exception as exc:  # noqa: BLE001
            resp.close()
            resp.release_conn()
            failure = transport_error(exc, _ERRORS, url)
        if failure is not None:
            raise failure
        if body.truncated:
            resp.close()  # a half-read connection must not go back to the pool
        resp.release_conn()
        return response_from(resp.status, resp.headers.items(), body)

    def _describe(self, url: str, exc: BaseException) -> str:
        """What happened, in words; through a proxy, a failure to reach it or a refused
        tunnel says it was the proxy (an http target's pool is the proxy's own)."""
        if self.proxy is None or not isinstance(exc, (ProxyError, NewConnectionError)):
            return str(exc)
        cause = exc.args[1] if isinstance(exc, ProxyError) and len(exc.args) > 1 else exc
        refused = _TUNNEL_FAILED.search(str(cause))
        if refused is not None:
            target = parse_target(url, self.policy)
            host = f"[{target.host}]" if ":" in target.host else target.host
            return tunnel_refused(f"{host}:{target.port}", refused.group(1), refused.group(2))
        return proxy_unreachable(self.proxy, str(cause).rpartition(": ")[2] or str(cause))

    @staticmethod
    def _urlopen(
        target: _Target, request: Request, timeout: urllib3.Timeout
    ) -> urllib3.BaseHTTPResponse:
        assert isinstance(target.entry, _ProxiedHost)
        headers = dict(request.headers)
        if target.headers is not None:
            headers.update(target.headers)
        return target.entry.pool.urlopen(
            request.method,
            target.path,
            body=request.body,
            headers=headers,
            redirect=False,
            retries=False,
            assert_same_host=False,
            timeout=timeout,
            preload_content=False,
            decode_content=False,
            release_conn=False,
        )

    def close(self) -> None:
        """Close every pooled connection (the transport stays usable: pools reopen)."""
        with self._lock:
            entries = list(self._hosts.values())
            self._hosts = {}
            self._targets = {}
            for entry in entries:
                entry.closed = True
        for entry in entries:
            entry.close()

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
        if self.proxy is not None:
            return f"Urllib3Transport(proxy={self.proxy.safe!r})"
        return "Urllib3Transport()"


_TUNNEL_FAILED = re.compile(r"Tunnel connection failed: (\d{3}) ?(.*)")


def _idle(pool: HTTPConnectionPool) -> int:
    """Open connections waiting in ``pool`` (its queue also holds None placeholders)."""
    queue = pool.pool
    if queue is None:
        return 0
    with queue.mutex:
        return sum(1 for conn in queue.queue if conn is not None and conn.sock is not None)


def _socket_of(resp: urllib3.BaseHTTPResponse) -> socket.socket | None:
    conn = getattr(resp, "connection", None)
    sock = getattr(conn, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


# urllib3's exceptions, by kind; the shared head and tail (timeouts, TLS, sockets) around them.
_ERRORS = error_table(
    # urllib3 derives NewConnectionError from ConnectTimeoutError: it comes first, or a refused
    # connection would be reported as a timeout.
    (NewConnectionError, TransportErrorKind.CONNECTION),
    ((ConnectTimeoutError, ReadTimeoutError), TransportErrorKind.TIMEOUT),
    (SSLError, TransportErrorKind.TLS),
    (LocationParseError, TransportErrorKind.PROTOCOL),
    # "Connection aborted" and friends wrap what really happened: a reset, a timeout, a bad
    # status line.
    ((ProtocolError, HTTPError), BY_CAUSE),
)
