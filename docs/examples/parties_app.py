"""A small Flask app that offers REST hooks to its API clients: the example of testing.md.

Accounts are told apart by an ``X-Account`` header (a real app has authentication). Creating
a party emits ``party/created`` to the account's hooks. In production the Dispatcher has a
durable store and a worker delivers; the tests below change neither the app nor the routes.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from resthooks import Dispatcher, ValidationError


def create_app(dispatcher: Dispatcher) -> Flask:
    """The app, delivering its events through ``dispatcher``."""
    app = Flask(__name__)
    parties: dict[int, dict[str, Any]] = {}

    @app.post("/api/resthooks")
    def subscribe() -> tuple[dict[str, Any], int]:
        spec = (request.get_json(silent=True) or {}).get("restHook", {})
        try:
            hook = dispatcher.subscribe(
                spec.get("event"), spec.get("targetUrl"), owner=request.headers["X-Account"]
            )
        except ValidationError as exc:
            return {"message": exc.message, "errors": [{"field": exc.field}]}, 422
        # The only time the client sees the secret it will verify deliveries with.
        return {"restHook": {"id": hook.id, "event": hook.event, "secret": hook.secret}}, 201

    @app.post("/api/parties")
    def create_party() -> tuple[dict[str, Any], int]:
        party = {"id": len(parties) + 1, **request.get_json()}
        parties[party["id"]] = party
        dispatcher.emit("party/created", party, owner=request.headers["X-Account"])
        return party, 201

    return app
