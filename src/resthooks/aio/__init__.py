"""resthooks for asyncio hosts: the same engine, awaitable, and a worker on the event loop.

- :class:`AsyncDispatcher` wraps a :class:`~resthooks.Dispatcher`: every call awaits the
  Dispatcher's own, off the loop.
- :class:`AsyncSubscriptionAPI`: the subscription endpoints, awaitable.
- :class:`AsyncWorker`: delivers with thousands of attempts in flight on one loop, on an
  :class:`~resthooks.transports.AsyncTransport`.
- :func:`worker_lifespan`: runs an AsyncWorker in a FastAPI/Starlette app's own loop.

Importing this module imports no optional dependency. See :doc:`async`.

.. versionadded:: 0.2.0
"""

from ..transports import AsyncTransport
from ._api import AsyncSubscriptionAPI
from ._dispatcher import AsyncDispatcher
from ._lifespan import worker_lifespan
from ._worker import AsyncWorker

__all__ = [
    "AsyncDispatcher",
    "AsyncSubscriptionAPI",
    "AsyncTransport",
    "AsyncWorker",
    "worker_lifespan",
]
