"""Transports: how a delivery's HTTP request is sent.

:class:`Transport` is the protocol of the sync engine (:class:`Urllib3Transport` by default),
:class:`AsyncTransport` its asyncio twin (:class:`AsyncioTransport`, the async worker's default,
and :class:`AiohttpTransport`, both with the ``async`` extra; ``import resthooks.transports``
imports neither httptools nor aiohttp until one of them is asked for).
"""

from typing import TYPE_CHECKING

from ._protocol import AsyncTransport, Request, Response, Timeouts, Transport
from ._proxy import Proxy
from ._urllib3 import PooledHost, Urllib3Transport

if TYPE_CHECKING:
    from ._aiohttp import AiohttpTransport
    from ._asyncio import AsyncioTransport

__all__ = [
    "AiohttpTransport",
    "AsyncTransport",
    "AsyncioTransport",
    "PooledHost",
    "Proxy",
    "Request",
    "Response",
    "Timeouts",
    "Transport",
    "Urllib3Transport",
]


def __getattr__(name: str) -> object:
    # AiohttpTransport needs aiohttp (the `async` extra): import it only when asked for, so
    # `import resthooks.transports` never imports aiohttp.
    if name == "AiohttpTransport":
        try:
            from ._aiohttp import AiohttpTransport  # noqa: PLC0415 - lazy on purpose, see above
        except ImportError as exc:
            raise ImportError(
                "AiohttpTransport needs aiohttp: install the extra, pip install 'resthooks[async]'"
            ) from exc
        return AiohttpTransport
    if name == "AsyncioTransport":
        try:
            from ._asyncio import AsyncioTransport  # noqa: PLC0415 - lazy on purpose, see above
        except ImportError as exc:
            raise ImportError(
                "AsyncioTransport needs httptools: install the extra, "
                "pip install 'resthooks[async]'"
            ) from exc
        return AsyncioTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
