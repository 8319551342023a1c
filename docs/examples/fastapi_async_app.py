"""An asyncio FastAPI application: the subscription endpoints awaited, the worker in its loop."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response

from resthooks.aio import AsyncDispatcher, AsyncSubscriptionAPI, worker_lifespan
from resthooks.api import ApiResponse


def current_owner(x_account: str | None = Header(default=None)) -> str:
    # Stand-in for your authentication: whose account is making this request?
    if not x_account:
        raise HTTPException(401)
    return x_account


def reply(answer: ApiResponse) -> Response:
    return Response(answer.content, answer.status, dict(answer.headers))


def create_app(hooks: AsyncDispatcher, *, concurrency: int = 256) -> FastAPI:
    # The delivery worker runs in the app's own event loop, started and stopped with it.
    # Several server processes (uvicorn --workers N) each running one is safe: leases.
    app = FastAPI(lifespan=worker_lifespan(hooks, concurrency=concurrency))
    api = AsyncSubscriptionAPI(hooks, base_path="/api/v2/resthooks")

    # `async def` endpoints: the store calls run off the loop, inside resthooks.aio.
    @app.post("/api/v2/resthooks")
    async def create_hook(request: Request, owner: str = Depends(current_owner)) -> Response:
        return reply(await api.create(await request.body(), owner=owner))

    @app.get("/api/v2/resthooks")
    async def list_hooks(owner: str = Depends(current_owner)) -> Response:
        return reply(await api.list(owner=owner))

    @app.get("/api/v2/resthooks/{hook_id}")
    async def show_hook(hook_id: str, owner: str = Depends(current_owner)) -> Response:
        return reply(await api.show(hook_id, owner=owner))

    @app.delete("/api/v2/resthooks/{hook_id}")
    async def delete_hook(hook_id: str, owner: str = Depends(current_owner)) -> Response:
        return reply(await api.delete(hook_id, owner=owner))

    # The host's own business endpoint: it emits, the worker delivers.
    @app.post("/parties", status_code=201)
    async def create_party(request: Request, owner: str = Depends(current_owner)) -> dict:
        party = await request.json()
        await hooks.emit("party/created", party, owner=owner)
        return party

    return app
