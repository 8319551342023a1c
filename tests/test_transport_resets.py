"""A receiver that resets the connection is a ``connection`` error, whenever it resets."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from raw_server import resetting
from resthooks import TransportError
from resthooks.testing import LOOPBACK_POLICY
from resthooks.transports import Request, Timeouts, Transport

# What the server sends before it resets the connection (after reading the whole request).
STAGES = {
    "before-answering": b"",
    "mid-status-line": b"HTTP/1.1 2",
    "after-headers": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
    "mid-body": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100,
}


@pytest.fixture(name="transport")
def _transport(make_transport: Callable[..., Transport]) -> Transport:
    # Once per transport: Urllib3Transport and AiohttpTransport classify resets alike.
    return make_transport(policy=LOOPBACK_POLICY)


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_reset_is_always_a_connection_error(transport: Transport, stage: str) -> None:
    """Twenty attempts at a receiver that resets after reading the request, at each stage of
    its answer: every one fails as ``connection``, none as ``protocol``."""
    server = resetting(STAGES[stage])
    kinds: list[str] = []
    try:
        for _ in range(20):
            request = Request(
                method="POST",
                url=server.url(),
                headers={"Content-Type": "application/json"},
                body=b'{"event":"party/created","payload":[]}',
                timeouts=Timeouts(connect=2.0, total=5.0),
                max_response_bytes=4096,
            )
            with pytest.raises(TransportError) as info:
                transport.send(request)
            kinds.append(info.value.kind)
    finally:
        server.close()
    assert len(server.requests) == 20
    assert kinds == ["connection"] * 20
