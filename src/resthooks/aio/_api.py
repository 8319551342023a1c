"""AsyncSubscriptionAPI: the subscription endpoints for asyncio web frameworks."""

from __future__ import annotations

from collections.abc import Mapping

from ..api import ApiResponse, SubscriptionAPI
from ..errors import ConfigurationError
from ._dispatcher import AsyncDispatcher

__all__ = ["AsyncSubscriptionAPI"]


class AsyncSubscriptionAPI:
    """:class:`~resthooks.api.SubscriptionAPI`, awaitable: for FastAPI, Starlette, aiohttp...

    Each handler runs the sync API's handler of the same name off the loop (on the
    :class:`AsyncDispatcher`'s executor), so the parsing, validation, statuses and documents
    are exactly the sync API's, and a store that blocks never blocks the loop.

    Args:
        dispatcher: The async face of the engine whose hooks these endpoints manage.
        base_path: As for :class:`~resthooks.api.SubscriptionAPI`.

    Raises:
        ConfigurationError: For a bad ``base_path`` or dispatcher.

    .. versionadded:: 0.2.0

    Example:
        >>> import asyncio
        >>> from resthooks import Dispatcher
        >>> from resthooks.aio import AsyncDispatcher
        >>> from resthooks.stores import MemoryStore
        >>> from resthooks.testing import FakeClock
        >>> hooks = AsyncDispatcher(Dispatcher(MemoryStore(), clock=FakeClock()))
        >>> api = AsyncSubscriptionAPI(hooks)
        >>> body = b'{"restHook": {"targetUrl": "https://example.com/h", "event": "party/created"}}'
        >>> async def main():
        ...     created = await api.create(body, owner="acme")
        ...     listed = await api.list(owner="acme")
        ...     return created.status, len(listed.body["restHooks"])
        >>> asyncio.run(main())
        (201, 1)
    """

    def __init__(
        self, dispatcher: AsyncDispatcher, *, base_path: str = "/api/v2/resthooks"
    ) -> None:
        if not isinstance(dispatcher, AsyncDispatcher):
            raise ConfigurationError(
                "dispatcher must be an AsyncDispatcher (wrap your Dispatcher in one), not "
                f"{type(dispatcher).__name__}"
            )
        self.async_dispatcher = dispatcher
        self.api = SubscriptionAPI(dispatcher.dispatcher, base_path=base_path)

    @property
    def base_path(self) -> str:
        """Where the endpoints are mounted."""
        return self.api.base_path

    def __repr__(self) -> str:
        return f"<AsyncSubscriptionAPI base_path={self.base_path!r}>"

    async def create(self, body: object, *, owner: str) -> ApiResponse:
        """:meth:`SubscriptionAPI.create <resthooks.api.SubscriptionAPI.create>`, awaitable."""
        return await self.async_dispatcher._call(self.api.create, body, owner=owner)

    async def list(self, *, owner: str) -> ApiResponse:
        """:meth:`SubscriptionAPI.list <resthooks.api.SubscriptionAPI.list>`, awaitable."""
        return await self.async_dispatcher._call(self.api.list, owner=owner)

    async def show(self, hook_id: str, *, owner: str) -> ApiResponse:
        """:meth:`SubscriptionAPI.show <resthooks.api.SubscriptionAPI.show>`, awaitable."""
        return await self.async_dispatcher._call(self.api.show, hook_id, owner=owner)

    async def delete(self, hook_id: str, *, owner: str) -> ApiResponse:
        """:meth:`SubscriptionAPI.delete <resthooks.api.SubscriptionAPI.delete>`, awaitable."""
        return await self.async_dispatcher._call(self.api.delete, hook_id, owner=owner)

    async def confirm(self, hook_id: str, body: object, *, owner: str) -> ApiResponse:
        """:meth:`SubscriptionAPI.confirm <resthooks.api.SubscriptionAPI.confirm>`, awaitable.

        .. versionadded:: 0.2.0
        """
        return await self.async_dispatcher._call(self.api.confirm, hook_id, body, owner=owner)

    async def public_keys(self, *, owner: str) -> ApiResponse:
        """:meth:`SubscriptionAPI.public_keys <resthooks.api.SubscriptionAPI.public_keys>`,
        awaitable.

        .. versionadded:: 0.2.0
        """
        return await self.async_dispatcher._call(self.api.public_keys, owner=owner)

    async def update(self, hook_id: str, body: object, *, owner: str) -> ApiResponse:
        """:meth:`SubscriptionAPI.update <resthooks.api.SubscriptionAPI.update>`, awaitable.

        .. versionadded:: 0.2.0
        """
        return await self.async_dispatcher._call(self.api.update, hook_id, body, owner=owner)

    async def rotate_secret(self, hook_id: str, body: object = b"", *, owner: str) -> ApiResponse:
        """:meth:`SubscriptionAPI.rotate_secret <resthooks.api.SubscriptionAPI.rotate_secret>`,
        awaitable.

        .. versionadded:: 0.2.0
        """
        return await self.async_dispatcher._call(self.api.rotate_secret, hook_id, body, owner=owner)

    async def deliveries(
        self, hook_id: str, *, owner: str, query: Mapping[str, object] | None = None
    ) -> ApiResponse:
        """:meth:`SubscriptionAPI.deliveries <resthooks.api.SubscriptionAPI.deliveries>`,
        awaitable.

        .. versionadded:: 0.2.0
        """
        return await self.async_dispatcher._call(
            self.api.deliveries, hook_id, owner=owner, query=query
        )

    async def delivery(self, hook_id: str, delivery_id: str, *, owner: str) -> ApiResponse:
        """:meth:`SubscriptionAPI.delivery <resthooks.api.SubscriptionAPI.delivery>`, awaitable.

        .. versionadded:: 0.2.0
        """
        return await self.async_dispatcher._call(
            self.api.delivery, hook_id, delivery_id, owner=owner
        )

    async def attempts(
        self, hook_id: str, *, owner: str, query: Mapping[str, object] | None = None
    ) -> ApiResponse:
        """:meth:`SubscriptionAPI.attempts <resthooks.api.SubscriptionAPI.attempts>`, awaitable.

        .. versionadded:: 0.2.0
        """
        return await self.async_dispatcher._call(
            self.api.attempts, hook_id, owner=owner, query=query
        )

    async def redeliver(self, hook_id: str, delivery_id: str, *, owner: str) -> ApiResponse:
        """:meth:`SubscriptionAPI.redeliver <resthooks.api.SubscriptionAPI.redeliver>`,
        awaitable.

        .. versionadded:: 0.2.0
        """
        return await self.async_dispatcher._call(
            self.api.redeliver, hook_id, delivery_id, owner=owner
        )

    async def replay(self, hook_id: str, body: object, *, owner: str) -> ApiResponse:
        """:meth:`SubscriptionAPI.replay <resthooks.api.SubscriptionAPI.replay>`, awaitable.

        .. versionadded:: 0.2.0
        """
        return await self.async_dispatcher._call(self.api.replay, hook_id, body, owner=owner)

    async def ping(self, hook_id: str, body: object = b"", *, owner: str) -> ApiResponse:
        """:meth:`SubscriptionAPI.ping <resthooks.api.SubscriptionAPI.ping>`, awaitable (the
        ping's request is sent off the loop, by the executor).

        .. versionadded:: 0.2.0
        """
        return await self.async_dispatcher._call(self.api.ping, hook_id, body, owner=owner)

    async def handle_openapi(self, method: str, *, owner: object) -> ApiResponse:
        """:meth:`SubscriptionAPI.handle_openapi
        <resthooks.api.SubscriptionAPI.handle_openapi>`, awaitable (it reads no store: it
        answers on the loop).

        .. versionadded:: 0.2.0
        """
        return self.api.handle_openapi(method, owner=owner)

    async def handle(
        self,
        method: str,
        hook_id: str | None = None,
        *,
        body: object = b"",
        owner: object,
        action: str | None = None,
        query: Mapping[str, object] | None = None,
    ) -> ApiResponse:
        """:meth:`SubscriptionAPI.handle <resthooks.api.SubscriptionAPI.handle>`, awaitable:
        one call per request, every answer JSON (what the FastAPI integration calls).

        .. versionadded:: 0.2.0
        """
        return await self.async_dispatcher._call(
            self.api.handle, method, hook_id, body=body, owner=owner, action=action, query=query
        )
