from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from types import TracebackType

from ..transports import Request, Response

__all__ = ["RecordingTransport"]

Handler = Callable[[Request], Response]
Step = int | Response | BaseException


class RecordingTransport:
    """A transport that records every request and answers without any network.

    Answers come from ``handler`` (a function of the request), else from ``script`` (a list
    of statuses, :class:`~resthooks.transports.Response` objects or exceptions, used in order;
    the last one repeats), else ``default`` (a status, 204 unless told).

    An exception in the script is raised as is, so put
    :class:`~resthooks.errors.TransportError` instances there to simulate timeouts and refused
    connections.

    Example:
        >>> from resthooks.transports import Request
        >>> transport = RecordingTransport(script=[500, 200])
        >>> request = Request(method="POST", url="https://example.com/", headers={}, body=b"{}")
        >>> [transport.send(request).status for _ in range(3)]
        [500, 200, 200]
        >>> len(transport.requests)
        3
    """

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        script: Iterable[Step] | None = None,
        default: int = 204,
    ) -> None:
        self.handler = handler
        self._script: list[Step] = list(script) if script is not None else []
        self.default = default
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def send(self, request: Request) -> Response:
        """Record ``request`` and answer it."""
        with self._lock:
            self.requests.append(request)
            if self.handler is not None:
                step: Step = self.handler(request)
            else:
                step = self._next_step()
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, Response):
            return step
        return Response(status=step)

    def _next_step(self) -> Step:
        if not self._script:
            return self.default
        if len(self._script) == 1:
            return self._script[0]
        return self._script.pop(0)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> RecordingTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
