"""The four subscription endpoints in a FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI, Header

from resthooks import Dispatcher
from resthooks.aio import AsyncDispatcher
from resthooks.contrib.fastapi import lifespan, subscription_router


def current_owner(x_account: str | None = Header(default=None)) -> str | None:
    # Stand-in for your authentication: whose account is making this request? None: 401.
    return x_account


def create_app(dispatcher: Dispatcher, *, worker: bool = True) -> FastAPI:
    hooks = AsyncDispatcher(dispatcher)  # every call off the event loop
    # The lifespan makes `hooks` the app's (the `Hooks` dependency) and, with worker=True,
    # delivers on the app's own loop while it serves.
    app = FastAPI(lifespan=lifespan(hooks, worker=worker))
    app.include_router(subscription_router(owner=current_owner))
    return app
