"""Small pieces shared by the stores (not public)."""

from __future__ import annotations

import secrets
import urllib.parse

from ..model import DeliveryState

__all__ = ["FINAL_STATES", "NOT_FINAL_STATES", "new_delivery_id", "new_token", "target_host"]

FINAL_STATES = (DeliveryState.DELIVERED, DeliveryState.FAILED, DeliveryState.CANCELLED)
NOT_FINAL_STATES = (DeliveryState.PENDING, DeliveryState.IN_FLIGHT)


def new_delivery_id() -> str:
    """A fresh delivery id, in the ``msg_`` style of Standard Webhooks."""
    return "msg_" + secrets.token_hex(16)


def new_token() -> str:
    """A fresh fencing token for a claim."""
    return secrets.token_hex(12)


def target_host(url: str) -> str:
    """The host (and port, if any) deliveries to ``url`` are limited by: lower case."""
    parts = urllib.parse.urlsplit(url)
    return parts.netloc.rpartition("@")[2].lower()
