from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType

from ..transports import Request, Response

__all__ = ["AsyncRecordingTransport", "RecordingTransport"]

Step = int | Response | BaseException
Handler = Callable[[Request], Step]
AsyncHandler = Callable[[Request], Step | Awaitable[Step]]


class _Script:
    """What both recording transports share: the record of requests and where answers come
    from (a handler, else the script, else the default)."""

    def __init__(self, script: Iterable[Step] | None, default: int) -> None:
        self._script: list[Step] = list(script) if script is not None else []
        self.default = default
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def _next_step(self) -> Step:
        if not self._script:
            return self.default
        if len(self._script) == 1:
            return self._script[0]
        return self._script.pop(0)


def _answer(step: Step) -> Response:
    if isinstance(step, BaseException):
        raise step
    if isinstance(step, Response):
        return step
    return Response(status=step)


class RecordingTransport(_Script):
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
        super().__init__(script, default)
        self.handler = handler

    def send(self, request: Request) -> Response:
        """Record ``request`` and answer it."""
        with self._lock:
            self.requests.append(request)
            step = self.handler(request) if self.handler is not None else self._next_step()
        return _answer(step)

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


class AsyncRecordingTransport(_Script):
    """The asyncio twin of :class:`RecordingTransport`: an
    :class:`~resthooks.transports.AsyncTransport` that records every request and answers
    without any network.

    Answers come from ``handler`` (a function of the request, or a coroutine function: it may
    await, to hold a request in flight), else from ``script``, else ``default``, as for
    :class:`RecordingTransport`. ``delay`` makes every answer take that many seconds of real
    time first (``asyncio.sleep``). ``in_flight`` and ``max_in_flight`` count the sends
    awaited at once, now and at most so far.

    Example:
        >>> import asyncio
        >>> from resthooks.transports import Request
        >>> transport = AsyncRecordingTransport(script=[503, 200], delay=0.01)
        >>> request = Request(method="POST", url="https://example.com/", headers={}, body=b"{}")
        >>> async def main() -> list[int]:
        ...     responses = await asyncio.gather(*(transport.send(request) for _ in range(3)))
        ...     return [response.status for response in responses]
        >>> asyncio.run(main())
        [503, 200, 200]
        >>> transport.max_in_flight
        3

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        handler: AsyncHandler | None = None,
        *,
        script: Iterable[Step] | None = None,
        default: int = 204,
        delay: float = 0.0,
    ) -> None:
        super().__init__(script, default)
        self.handler = handler
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False

    async def send(self, request: Request) -> Response:
        """Record ``request`` and answer it."""
        with self._lock:
            self.requests.append(request)
            step = None if self.handler is not None else self._next_step()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.handler is not None:
                answer = self.handler(request)
                step = await answer if inspect.isawaitable(answer) else answer
            assert step is not None
            return _answer(step)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def aclose(self) -> None:
        """Nothing to release (``closed`` becomes true, for tests that check a clean stop)."""
        self.closed = True

    async def __aenter__(self) -> AsyncRecordingTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
