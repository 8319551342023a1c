"""Transports: how a delivery's HTTP request is sent."""

from ._protocol import Request, Response, Timeouts, Transport
from ._urllib3 import PooledHost, Urllib3Transport

__all__ = ["PooledHost", "Request", "Response", "Timeouts", "Transport", "Urllib3Transport"]
