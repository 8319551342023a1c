"""resthooks in a FastAPI application: the API as an ``APIRouter`` on the async face, the
Dispatcher by dependency injection, and a lifespan that runs the worker.

::

    from fastapi import Depends, FastAPI
    from resthooks.aio import AsyncDispatcher
    from resthooks.contrib.fastapi import Hooks, lifespan, subscription_router

    hooks = AsyncDispatcher(Dispatcher(store))
    app = FastAPI(lifespan=lifespan(hooks))               # worker=True: deliver in-process
    app.include_router(subscription_router(owner=current_owner))

    @app.post("/api/v2/parties")
    async def create_party(party: Party, hooks: Hooks): # the app's AsyncDispatcher
        await hooks.emit("party/created", party.model_dump(), owner=...)

The router's endpoints await :class:`~resthooks.aio.AsyncSubscriptionAPI`, so a store that
blocks never blocks the event loop. Needs the ``fastapi`` extra.

.. versionadded:: 0.2.0
"""

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from ..aio import AsyncDispatcher, AsyncSubscriptionAPI, worker_lifespan
from ..api import OPENAPI_PATH, ApiResponse
from ..errors import ConfigurationError

__all__ = ["Hooks", "get_dispatcher", "lifespan", "subscription_router"]

_log = logging.getLogger("resthooks.contrib.fastapi")
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]  # the API answers the others 405
_STATE = "resthooks"


def get_dispatcher(request: Request) -> AsyncDispatcher:
    """The app's :class:`~resthooks.aio.AsyncDispatcher` (a FastAPI dependency).

    Raises:
        ConfigurationError: If the app's lifespan is not :func:`lifespan`.
    """
    dispatcher = getattr(request.app.state, _STATE, None)
    if not isinstance(dispatcher, AsyncDispatcher):
        raise ConfigurationError(
            "this FastAPI app has no resthooks dispatcher: give it "
            "FastAPI(lifespan=resthooks.contrib.fastapi.lifespan(dispatcher))"
        )
    return dispatcher


#: ``hooks: Hooks`` in an endpoint's parameters injects the app's AsyncDispatcher.
Hooks = Annotated[AsyncDispatcher, Depends(get_dispatcher)]


def lifespan(
    dispatcher: AsyncDispatcher,
    *,
    worker: bool = True,
    lifespan: Callable[[Any], AbstractAsyncContextManager[Any]] | None = None,
    **worker_options: Any,
) -> Callable[[FastAPI], AbstractAsyncContextManager[Any]]:
    """The app's ``lifespan``: makes ``dispatcher`` the app's (``app.state.resthooks``, what
    :data:`Hooks` injects) and, with ``worker``, runs an async worker on the app's loop
    (:func:`resthooks.aio.worker_lifespan`, which ``worker_options`` are passed to). At
    shutdown the worker stops and the dispatcher is closed.

    Args:
        dispatcher: The app's async face of the engine.
        worker: Deliver in the server processes (``False``: a separate ``resthooks worker``
            process does).
        lifespan: The app's own lifespan, run inside this one.
        worker_options: ``concurrency``, ``poll_interval``, ``grace``.

    .. versionadded:: 0.2.0
    """
    if not isinstance(dispatcher, AsyncDispatcher):
        raise ConfigurationError(
            f"dispatcher: must be an AsyncDispatcher, not {type(dispatcher).__name__}"
        )
    inner = worker_lifespan(dispatcher, lifespan=lifespan, **worker_options) if worker else lifespan

    @contextlib.asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[Any]:
        setattr(app.state, _STATE, dispatcher)
        try:
            if inner is None:
                yield None
            else:
                async with inner(app) as state:
                    yield state
        finally:
            await dispatcher.aclose()

    return run


def _reply(answer: ApiResponse) -> Response:
    return Response(answer.content, answer.status, dict(answer.headers))


def subscription_router(
    *, owner: Callable[..., Any], prefix: str = "/api/v2/resthooks"
) -> APIRouter:
    """The subscription endpoints under ``prefix``, as an ``APIRouter``: Capsule's four, the
    owners' (``PATCH``, ``rotate-secret``, ``deliveries``, ``attempts``, ``replay``, ``ping``,
    ``confirm``, ``keys``: see :meth:`resthooks.api.SubscriptionAPI.handle`), and the
    webhooks' OpenAPI document at ``{prefix}/openapi.json``
    (:meth:`~resthooks.api.SubscriptionAPI.handle_openapi`).

    Args:
        owner: A FastAPI dependency returning the request's owner (your authentication),
            or ``None`` for ``401``; it may raise ``HTTPException`` as your authentication
            does.
        prefix: Where the endpoints are mounted; ``Location`` headers follow it.

    Every answer is JSON: ``401`` without an owner, ``400`` for an owner that is not a valid
    owner (a 300-character account header) or a malformed body, ``405`` for other methods,
    ``500`` (logged) if anything unexpected fails.

    .. versionadded:: 0.2.0
    """
    if not callable(owner):
        raise ConfigurationError("owner: must be a FastAPI dependency (a callable)")
    if not isinstance(prefix, str):
        raise ConfigurationError(f"prefix: must be a path, not {type(prefix).__name__}")
    base = "/" + prefix.strip("/")
    router = APIRouter()

    async def answer(
        request: Request,
        hook_id: str | None,
        who: object,
        action: str | None = None,
        *,
        document: bool = False,
    ) -> Response:
        try:
            api = AsyncSubscriptionAPI(get_dispatcher(request), base_path=base)
            if document:
                return _reply(await api.handle_openapi(request.method, owner=who))
            body = await request.body()
            return _reply(
                await api.handle(
                    request.method,
                    hook_id,
                    body=body,
                    owner=who,
                    action=action,
                    query=request.query_params,
                )
            )
        except Exception:  # noqa: BLE001 - the client gets JSON whatever failed; it is logged
            _log.exception("the subscription API failed")
            return _reply(
                ApiResponse(
                    status=500,
                    headers={"Content-Type": "application/json"},
                    body={"message": "Internal error"},
                )
            )

    async def hooks(request: Request, who: Annotated[Any, Depends(owner)]) -> Response:
        return await answer(request, None, who)

    async def hook(request: Request, hook_id: str, who: Annotated[Any, Depends(owner)]) -> Response:
        return await answer(request, hook_id, who)

    async def hook_action(
        request: Request, hook_id: str, action: str, who: Annotated[Any, Depends(owner)]
    ) -> Response:
        return await answer(request, hook_id, who, action)

    async def openapi(request: Request, who: Annotated[Any, Depends(owner)]) -> Response:
        return await answer(request, None, who, document=True)

    router.add_api_route(base, hooks, methods=_METHODS, name="resthooks-list")
    # Before {hook_id}, which would match it too: Starlette takes the first route that matches.
    router.add_api_route(
        f"{base}/{OPENAPI_PATH}", openapi, methods=_METHODS, name="resthooks-openapi"
    )
    router.add_api_route(f"{base}/{{hook_id}}", hook, methods=_METHODS, name="resthooks-detail")
    router.add_api_route(
        f"{base}/{{hook_id}}/{{action:path}}",
        hook_action,
        methods=_METHODS,
        name="resthooks-action",
    )
    return router
