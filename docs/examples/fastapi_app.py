"""The four subscription endpoints in a FastAPI application."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response

from resthooks import Dispatcher
from resthooks.api import ApiResponse, SubscriptionAPI


def current_owner(x_account: str | None = Header(default=None)) -> str:
    # Stand-in for your authentication: whose account is making this request?
    if not x_account:
        raise HTTPException(401)
    return x_account


async def raw_body(request: Request) -> bytes:
    return await request.body()


def reply(answer: ApiResponse) -> Response:
    return Response(answer.content, answer.status, dict(answer.headers))


def create_app(dispatcher: Dispatcher) -> FastAPI:
    app = FastAPI()
    api = SubscriptionAPI(dispatcher, base_path="/api/v2/resthooks")

    # Plain `def` endpoints: FastAPI runs them in a thread, so a slow store never blocks
    # the event loop.
    @app.post("/api/v2/resthooks")
    def create_hook(
        body: bytes = Depends(raw_body), owner: str = Depends(current_owner)
    ) -> Response:
        return reply(api.create(body, owner=owner))

    @app.get("/api/v2/resthooks")
    def list_hooks(owner: str = Depends(current_owner)) -> Response:
        return reply(api.list(owner=owner))

    @app.get("/api/v2/resthooks/{hook_id}")
    def show_hook(hook_id: str, owner: str = Depends(current_owner)) -> Response:
        return reply(api.show(hook_id, owner=owner))

    @app.delete("/api/v2/resthooks/{hook_id}")
    def delete_hook(hook_id: str, owner: str = Depends(current_owner)) -> Response:
        return reply(api.delete(hook_id, owner=owner))

    return app
