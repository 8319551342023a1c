"""The four subscription endpoints in a Flask application."""

from __future__ import annotations

from flask import Flask, Response, abort, request

from resthooks import Dispatcher
from resthooks.api import ApiResponse, SubscriptionAPI


def current_owner() -> str:
    # Stand-in for your authentication: whose account is making this request?
    return request.headers.get("X-Account") or abort(401)


def create_app(dispatcher: Dispatcher) -> Flask:
    app = Flask(__name__)
    api = SubscriptionAPI(dispatcher, base_path="/api/v2/resthooks")

    def reply(answer: ApiResponse) -> Response:
        return Response(answer.content, answer.status, dict(answer.headers))

    @app.post("/api/v2/resthooks")
    def create_hook() -> Response:
        return reply(api.create(request.get_data(), owner=current_owner()))

    @app.get("/api/v2/resthooks")
    def list_hooks() -> Response:
        return reply(api.list(owner=current_owner()))

    @app.get("/api/v2/resthooks/<hook_id>")
    def show_hook(hook_id: str) -> Response:
        return reply(api.show(hook_id, owner=current_owner()))

    @app.delete("/api/v2/resthooks/<hook_id>")
    def delete_hook(hook_id: str) -> Response:
        return reply(api.delete(hook_id, owner=current_owner()))

    return app
