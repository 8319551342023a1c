"""The transport protocol: send one HTTP request, once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import attrs

from .._durations import seconds
from ..errors import ConfigurationError
from ..urls import mask_url

__all__ = ["AsyncTransport", "Request", "Response", "Timeouts", "Transport"]

# Headers whose values are credentials: shown as *** in a Request's repr.
_SECRET_HEADERS = frozenset(
    {"webhook-signature", "authorization", "proxy-authorization", "x-hook-secret"}
)


def _url_repr(url: str) -> str:
    return repr(mask_url(url))


def _headers_repr(headers: Mapping[str, str]) -> str:
    return repr(
        {
            name: "***" if isinstance(name, str) and name.lower() in _SECRET_HEADERS else value
            for name, value in headers.items()
        }
    )


def _connect(value: object) -> float:
    return seconds(value, "connect", positive=True)


def _total(value: object) -> float:
    return seconds(value, "total", positive=True)


@attrs.frozen
class Timeouts:
    """How long one attempt may take, in seconds.

    Args:
        connect: To open the TCP (and TLS) connection. Default 5 s.
        total: The whole attempt, from the first byte sent to the last byte read, however
            slowly the server answers. Default 15 s. At least ``connect``.

    Raises:
        ConfigurationError: Naming the field, for a value that is not a finite number of
            seconds > 0, or a connect timeout longer than the total.

    Example:
        >>> Timeouts()
        Timeouts(connect=5.0, total=15.0)
    """

    connect: float = attrs.field(default=5.0, converter=_connect)
    total: float = attrs.field(default=15.0, converter=_total)

    def __attrs_post_init__(self) -> None:
        if self.connect > self.total:
            raise ConfigurationError(
                "connect: the connect timeout cannot be longer than the total deadline"
            )


@attrs.frozen(kw_only=True)
class Request:
    """One request to send.

    The ``repr`` masks the URL's query string and credentials and the value of
    ``webhook-signature`` (and ``Authorization``): a transport that quotes its request in an
    error message leaks neither into the attempt log.

    Attributes:
        method: Always ``POST`` for deliveries.
        url: The target URL.
        headers: Every header to send, already built by the Dispatcher.
        body: The exact bytes to send.
        timeouts: The limits of this attempt.
        max_response_bytes: Read at most this many bytes of the response body.
    """

    method: str
    url: str = attrs.field(repr=_url_repr)
    headers: Mapping[str, str] = attrs.field(repr=_headers_repr)
    body: bytes = attrs.field(repr=False)
    timeouts: Timeouts = Timeouts()
    max_response_bytes: int = 4096


@attrs.frozen(kw_only=True)
class Response:
    """What came back.

    Attributes:
        status: The HTTP status code.
        headers: Response headers; names lower case.
        body: At most ``max_response_bytes`` of the body.
        truncated: Whether the body was longer than that (the rest was not read).
    """

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""
    truncated: bool = False


@runtime_checkable
class Transport(Protocol):
    """Sends one request and reports what came back.

    Contract: a transport sends exactly once — it never retries and never follows a
    redirect (a 3xx is returned like any other status). It reads at most
    ``request.max_response_bytes`` of the body and stops the attempt at
    ``request.timeouts.total``. When no status is available it raises
    :class:`resthooks.errors.TransportError` with a ``kind`` (``timeout``, ``connection``,
    ``tls``, ``blocked``, ``protocol``); it raises nothing else. It is safe to call from several
    threads at once.
    """

    def send(self, request: Request) -> Response:
        """Send ``request`` once and return the response."""
        ...

    def close(self) -> None:
        """Release pooled connections."""
        ...


@runtime_checkable
class AsyncTransport(Protocol):
    """The asyncio twin of :class:`Transport`: the same contract, awaited.

    It takes the same :class:`Request`, returns the same :class:`Response` and raises only
    :class:`resthooks.errors.TransportError`, with the same ``kind`` a :class:`Transport`
    would give for the same server behaviour. It sends exactly once, never follows a
    redirect, reads at most ``request.max_response_bytes`` of the body and stops at
    ``request.timeouts.total``. It never blocks the event loop, and many :meth:`send` calls
    may be in flight at once on one loop. Cancelling a :meth:`send` abandons its request (its
    connection is closed, never pooled) and raises :class:`asyncio.CancelledError` as usual.

    .. versionadded:: 0.2.0
    """

    async def send(self, request: Request) -> Response:
        """Send ``request`` once and return the response."""
        ...

    async def aclose(self) -> None:
        """Release pooled connections."""
        ...
