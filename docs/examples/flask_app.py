"""The four subscription endpoints in a Flask application."""

from __future__ import annotations

from flask import Flask, Request

from resthooks import Dispatcher
from resthooks.contrib.flask import Resthooks, subscription_blueprint

hooks = Resthooks()


def current_owner(request: Request) -> str | None:
    # Stand-in for your authentication: whose account is making this request? None: 401.
    return request.headers.get("X-Account")


def create_app(dispatcher: Dispatcher) -> Flask:
    app = Flask(__name__)
    hooks.init_app(app, dispatcher)  # also adds `flask resthooks worker` and the rest
    app.register_blueprint(subscription_blueprint(owner=current_owner))
    return app
