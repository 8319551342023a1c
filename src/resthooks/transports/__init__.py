"""Transports: how a delivery's HTTP request is sent."""

from ._protocol import AsyncTransport, Request, Response, Timeouts, Transport
from ._urllib3 import PooledHost, Urllib3Transport

__all__ = [
    "AsyncTransport",
    "PooledHost",
    "Request",
    "Response",
    "Timeouts",
    "Transport",
    "Urllib3Transport",
]
