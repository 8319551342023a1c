"""Running the async worker inside an ASGI application's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from ..errors import ConfigurationError
from ._dispatcher import AsyncDispatcher
from ._worker import DEFAULT_CONCURRENCY

__all__ = ["worker_lifespan"]

logger = logging.getLogger("resthooks")

Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


def worker_lifespan(
    dispatcher: AsyncDispatcher,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    poll_interval: float = 5.0,
    grace: float | None = None,
    lifespan: Lifespan | None = None,
) -> Lifespan:
    """A FastAPI/Starlette ``lifespan`` that runs an :class:`AsyncWorker` beside the app.

    On startup it starts ``dispatcher.worker(...).run()`` as a task of the app's own loop;
    on shutdown it stops it (attempts in flight get ``grace``, every unfinished claim is
    released: nothing stays in flight) before the app's loop closes. ``lifespan``, your own,
    runs inside it (its state, if any, is passed on).

    Several server processes (``uvicorn --workers N``, several machines) each running one is
    safe: deliveries are claimed under leases with fencing tokens in the shared store, so
    each is sent by one worker at a time; with SQLite, every process must be on one machine.

    Args:
        dispatcher: The engine's async face; its ``transport`` sends.
        concurrency: Attempts in flight at once (default 256).
        poll_interval: Seconds between looks at the store for other processes' work.
        grace: Seconds attempts in flight may take to finish at shutdown.
        lifespan: The app's own lifespan, to run inside this one.

    Returns:
        The ``lifespan`` to give ``FastAPI(lifespan=...)`` or ``Starlette(lifespan=...)``.

    .. versionadded:: 0.2.0

    Example:
        >>> import asyncio
        >>> from resthooks import Dispatcher
        >>> from resthooks.stores import MemoryStore
        >>> from resthooks.testing import AsyncRecordingTransport, FakeClock
        >>> hooks = AsyncDispatcher(
        ...     Dispatcher(MemoryStore(), clock=FakeClock()), transport=AsyncRecordingTransport()
        ... )
        >>> lifespan = worker_lifespan(hooks, concurrency=512)
        >>> # FastAPI(lifespan=lifespan); here, what the ASGI server does:
        >>> async def serve():
        ...     async with lifespan(None):
        ...         await asyncio.sleep(0)
        >>> asyncio.run(serve())
    """
    # Checked now, at import time of the app, rather than when the server starts.
    worker = dispatcher.worker(concurrency=concurrency, poll_interval=poll_interval, grace=grace)
    if lifespan is not None and not callable(lifespan):
        raise ConfigurationError("lifespan must be callable (an app's lifespan)")

    @contextlib.asynccontextmanager
    async def run_worker(app: Any) -> AsyncIterator[Any]:
        task = asyncio.get_running_loop().create_task(worker.run(), name="resthooks-worker")
        task.add_done_callback(_log_end)
        try:
            if lifespan is None:
                yield None
            else:
                async with lifespan(app) as state:
                    yield state
        finally:
            worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return run_worker


def _log_end(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the resthooks worker stopped on an error", exc_info=task.exception())
