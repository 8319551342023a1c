"""What every transport decides the same way, whichever HTTP client it drives.

The sync transport (urllib3) and the async one (aiohttp) differ in how they open sockets and
read bytes; they must not differ in what they refuse, how long they wait, how much they read,
what an error is called or what a message may say. Those decisions live here, once:

- :func:`parse_target`: the shape of a URL a transport accepts, and its scheme under the
  network policy, checked before anything is dialled;
- :func:`resolved_addresses`: resolve once, refuse if any answer is refused;
- :class:`Deadline` and :class:`CappedBody`: the total deadline, and how much of a body is read
  (the caller closes the connection when the body was capped or the deadline passed);
- :func:`classify` over an :data:`ErrorTable`: which ``TransportError`` kind a client's
  exception is, as one ordered table per client on a shared head and tail;
- :func:`transport_error`: the message, with nothing of the URL beyond scheme, host, port
  and path;
- :func:`mask_request_logs`: the same for the log records of the HTTP clients themselves.
"""

from __future__ import annotations

import functools
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Sequence

import attrs

from ..errors import ConfigurationError, TransportError, TransportErrorKind, ValidationError
from ..network import IPAddress, NetworkPolicy, ip_literal
from ..urls import parse_target_url, redact_text, redact_url
from ._protocol import Response

__all__ = [
    "BY_CAUSE",
    "CHUNK",
    "URLLIB3_LOGGERS",
    "CappedBody",
    "Deadline",
    "ErrorTable",
    "Target",
    "classify",
    "connection_limit",
    "default_context",
    "error_table",
    "literal_address",
    "mask_request_logs",
    "mask_text",
    "parse_target",
    "resolution_failed",
    "resolved_addresses",
    "response_from",
    "transport_error",
    "verified_context",
]

CHUNK = 64 * 1024
"""The most a transport asks for in one read of a response body."""


@attrs.frozen
class Target:
    """The parts of a target URL a transport dials and may name in a message."""

    scheme: str
    host: str  # as written, without brackets (an IP literal may be in any spelling)
    port: int
    path: str

    @property
    def safe(self) -> str:
        """``scheme://host:port/path``: the URL as messages and logs may show it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_target(url: str, policy: NetworkPolicy) -> Target:
    """Check ``url``'s shape, scheme and port before anything is dialled.

    The shape rules are subscribe time's (:func:`~resthooks.urls.parse_target_url`: read by
    urllib3's parser, and refused when ``urllib.parse`` would read it differently), applied
    again because a stored hook may predate them.

    Raises:
        TransportError: ``blocked`` for a scheme or a port the policy refuses; ``protocol``
            for a URL that breaks the shape rules (no host, port 0, a fragment, whitespace,
            control characters, a backslash, a percent-encoded host...).
    """
    policy.check_scheme(url)
    try:
        parts = parse_target_url(url)
    except ValidationError as exc:
        raise TransportError("protocol", f"invalid URL: it {exc.message}") from None
    policy.check_port(parts.port)
    return Target(scheme=parts.scheme, host=parts.host, port=parts.port, path=parts.path or "/")


def verified_context(context: object) -> ssl.SSLContext | None:
    """``context`` if it verifies certificates and host names (``None`` stays ``None``).

    TLS verification has no off switch: a private CA goes into a verifying context.

    Raises:
        ConfigurationError: Naming ``ssl_context``, for anything else.
    """
    if context is None:
        return None
    if not isinstance(context, ssl.SSLContext):
        raise ConfigurationError("ssl_context must be an ssl.SSLContext")
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        raise ConfigurationError(
            "ssl_context must verify certificates and host names (CERT_REQUIRED and "
            "check_hostname): TLS verification cannot be turned off; trust a private CA instead"
        )
    return context


@functools.cache
def default_context() -> ssl.SSLContext:
    """The TLS context of a transport given none: the system's CA store, verifying.

    Loading the CA store takes tens of milliseconds: once per process (a context is safe to
    share between connections, transports and threads).
    """
    return ssl.create_default_context()


def connection_limit(name: str, value: int | None) -> int:
    """A transport's limit on connections in use (``None``: none, returned as 0).

    Raises:
        ConfigurationError: Naming ``name``, for anything but a positive integer or ``None``.
    """
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive integer or None")
    return value


def literal_address(host: str, policy: NetworkPolicy) -> IPAddress | None:
    """The address an IP-literal ``host`` (in any spelling) denotes, if the policy allows it.

    Returns ``None`` for a host name.

    Raises:
        TransportError: ``blocked`` if the policy refuses the address.
    """
    address = ip_literal(host)
    if address is None:
        return None
    reason = policy.refusal(address)
    if reason is not None:
        raise TransportError("blocked", f"{host} is {address}, which is {reason}")
    return address


def resolved_addresses(policy: NetworkPolicy, host: str, answers: Iterable[str]) -> list[IPAddress]:
    """Every address of one resolution of ``host``, validated (see ``check_resolved``)."""
    return policy.check_resolved(host, answers)


def resolution_failed(host: str, exc: OSError) -> TransportError:
    """The error for a name that does not resolve."""
    return TransportError("connection", f"cannot resolve {host}: {exc}")


class Deadline:
    """The total deadline of one attempt, on the monotonic clock."""

    __slots__ = ("at", "total")

    PASSED = "the response did not finish before the deadline"
    """The message of the ``timeout`` error once the deadline has passed."""

    def __init__(self, total: float) -> None:
        self.total = total
        self.at = time.monotonic() + total

    def remaining(self) -> float:
        """Seconds left; raises ``TransportError`` ``timeout`` once none are."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise TransportError("timeout", self.PASSED)
        return left


class CappedBody:
    """Collects at most ``cap`` bytes of a body, and learns whether there was more.

    Read ``want()`` bytes at most (it asks for one byte past the cap, to know whether the
    body goes on), ``add()`` what came, until ``want()`` is 0 or the body ends. A capped body
    (``truncated``) leaves the connection half read: the transport must close it rather than
    pool it.
    """

    __slots__ = ("_chunks", "_size", "cap")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._chunks: list[bytes] = []
        self._size = 0

    def want(self) -> int:
        """How many bytes the next read may ask for; 0 once the cap is passed."""
        if self._size > self.cap:
            return 0
        return min(CHUNK, self.cap + 1 - self._size)

    def add(self, chunk: bytes) -> None:
        """Keep ``chunk``, the next bytes of the body."""
        self._chunks.append(chunk)
        self._size += len(chunk)

    @property
    def truncated(self) -> bool:
        """Whether the body was longer than the cap."""
        return self._size > self.cap

    @property
    def body(self) -> bytes:
        """What was read, at most ``cap`` bytes."""
        body = b"".join(self._chunks)
        return body[: self.cap] if self._size > self.cap else body


def response_from(status: int, headers: Iterable[tuple[str, str]], body: CappedBody) -> Response:
    """The :class:`~resthooks.transports.Response` of a read answer (header names lower case)."""
    return Response(
        status=status,
        headers={name.lower(): value for name, value in headers},
        body=body.body,
        truncated=body.truncated,
    )


BY_CAUSE = "by cause"
"""A kind in an :data:`ErrorTable` row: classify the exception's cause instead (a client's
wrapper such as urllib3's ``ProtocolError`` says little; the socket error it wraps says what
happened). Without a cause, the row means ``protocol``."""

ErrorRow = tuple[type[BaseException] | tuple[type[BaseException], ...], TransportErrorKind | str]
ErrorTable = Sequence[ErrorRow]
"""Rows of ``(exception types, kind)``: the first row an exception matches gives its kind."""

# Checked before a client's own rows: the standard library's timeout (which asyncio's and
# socket's timeouts are) means the same whatever wrapped it.
_HEAD: tuple[ErrorRow, ...] = ((TimeoutError, TransportErrorKind.TIMEOUT),)
# Checked after a client's own rows.
_TAIL: tuple[ErrorRow, ...] = (
    ((ssl.SSLError, ssl.CertificateError), TransportErrorKind.TLS),
    # A reset, or the server closing the connection without answering, after the request
    # was sent: the connection failed, whoever reports it.
    (ConnectionError, TransportErrorKind.CONNECTION),
    (OSError, TransportErrorKind.CONNECTION),
)


def error_table(*rows: ErrorRow) -> tuple[ErrorRow, ...]:
    """A client's table: the shared head, the client's own ``rows``, the shared tail."""
    return (*_HEAD, *rows, *_TAIL)


def classify(exc: BaseException, table: ErrorTable) -> TransportErrorKind:
    """The ``TransportError`` kind of ``exc``: the first row of ``table`` it matches.

    An exception no row matches is ``protocol``.
    """
    if isinstance(exc, TransportError):
        return exc.kind
    for types, kind in table:
        if isinstance(exc, types):
            if kind != BY_CAUSE:
                return TransportErrorKind(kind)
            cause = _cause(exc)
            return classify(cause, table) if cause is not None else TransportErrorKind.PROTOCOL
    return TransportErrorKind.PROTOCOL


def _cause(exc: BaseException) -> BaseException | None:
    for candidate in (*exc.args, exc.__cause__, exc.__context__):
        if isinstance(candidate, BaseException) and candidate is not exc:
            return candidate
    return None


def transport_error(
    exc: BaseException,
    table: ErrorTable,
    url: str,
    describe: Callable[[BaseException], str] = str,
) -> TransportError:
    """``exc`` as a :class:`~resthooks.errors.TransportError` whose message is safe to show.

    ``describe`` says what happened in words (a client's ``str()`` may quote the whole URL);
    whatever it says, the URL's credentials and query string are masked.
    """
    if isinstance(exc, TransportError):
        message = exc.message
    else:
        message = describe(exc) or type(exc).__name__
    return TransportError(classify(exc, table), mask_text(redact_url(message, url)))


class _QueryMask(logging.Filter):
    """Masks every URL and query string in the records of an HTTP client's loggers.

    urllib3 quotes request targets at DEBUG (``"POST /h?k=v HTTP/1.1"``) and whole URLs in
    warnings (``Failed to parse headers (url=...)`` when a server answers a malformed header
    line). The filter renders the message, masks it with :func:`mask_text`, and keeps the
    result (and the masked traceback, if any) as the record's text; it drops nothing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logging's to report, not ours
            return True
        record.msg, record.args = mask_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text(_FORMATTER.formatException(record.exc_info))
        return True


def mask_text(text: str) -> str:
    """``text`` with the query strings and credentials of the URLs it quotes masked
    (:func:`~resthooks.urls.redact_text`).

    Example:
        >>> mask_text("POST /hook?token=s3cret HTTP/1.1 to https://u:pw@h/x?k=v")
        'POST /hook?*** HTTP/1.1 to https://***@h/x?***'
    """
    return redact_text(text)


_FORMATTER = logging.Formatter()
_QUERY_MASK = _QueryMask()

URLLIB3_LOGGERS = (
    "urllib3",
    "urllib3.connection",
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "urllib3.http2.connection",
    "urllib3.contrib.pyopenssl",
)
"""Every logger urllib3 2.x logs through (a logger's filters see only its own records)."""


def mask_request_logs(*logger_names: str) -> None:
    """Mask URLs and query strings in what the named loggers record (idempotent).

    Target URLs may carry tokens in their query string; HTTP clients log request targets at
    DEBUG, and some quote whole URLs in warnings. The filter only rewrites the text; it drops
    nothing.
    """
    for name in logger_names:
        logger = logging.getLogger(name)
        if _QUERY_MASK not in logger.filters:
            logger.addFilter(_QUERY_MASK)
