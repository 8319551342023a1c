"""Transports: how a delivery's HTTP request is sent."""

from ._protocol import AsyncTransport, Request, Response, Timeouts, Transport
from ._urllib3 import Urllib3Transport

__all__ = ["AsyncTransport", "Request", "Response", "Timeouts", "Transport", "Urllib3Transport"]
