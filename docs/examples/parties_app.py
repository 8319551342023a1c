"""A Flask app that emits events to its API clients' hooks: the example of testing.md.

Accounts are told apart by an ``X-Account`` header (a real app has authentication). Clients
subscribe through resthooks' subscription endpoint; creating a party emits ``party/created``
to the account's hooks. In production the Dispatcher has a durable store and a worker
delivers; the tests change neither the app nor its routes, only the Dispatcher they pass in.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, abort, request

from resthooks import Dispatcher
from resthooks.api import SubscriptionAPI


def current_owner() -> str:
    # Stand-in for your authentication: whose account is making this request?
    return request.headers.get("X-Account") or abort(401)


def create_app(dispatcher: Dispatcher) -> Flask:
    """The app, delivering its events through ``dispatcher``."""
    app = Flask(__name__)
    api = SubscriptionAPI(dispatcher, base_path="/api/v2/resthooks")
    parties: dict[int, dict[str, Any]] = {}

    @app.post("/api/v2/resthooks")
    def create_hook() -> Response:
        answer = api.create(request.get_data(), owner=current_owner())
        return Response(answer.content, answer.status, dict(answer.headers))

    @app.post("/api/v2/parties")
    def create_party() -> tuple[dict[str, Any], int]:
        party = {"id": len(parties) + 1, **request.get_json()}
        parties[party["id"]] = party
        dispatcher.emit("party/created", party, owner=current_owner())
        return party, 201

    return app
