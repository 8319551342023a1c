"""A Flask app that emits events to its API clients' hooks: the example of testing.md.

Accounts are told apart by an ``X-Account`` header (a real app has authentication). Clients
subscribe through resthooks' subscription endpoints; creating a party stores it and emits
``party/created`` to the account's hooks in one transaction: the store lives in the app's
own SQLite file (``SQLiteStore(path, adopt=True)``), and the deliveries are written through
the connection that writes the party, so a party is never sent without being stored, nor
stored without being sent. The tests change neither the app nor its routes, only the
Dispatcher they pass in.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from flask import Flask, Request, Response, request

from resthooks import Dispatcher, ResthooksError
from resthooks.contrib.flask import Resthooks, subscription_blueprint
from resthooks.stores import SQLiteStore

hooks = Resthooks()


def current_owner(request: Request) -> str | None:
    # Stand-in for your authentication: whose account is making this request?
    return request.headers.get("X-Account")


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body), status, {"Content-Type": "application/json"})


def create_app(dispatcher: Dispatcher) -> Flask:
    """The app, storing its parties beside ``dispatcher``'s SQLite store."""
    if not isinstance(dispatcher.store, SQLiteStore):
        raise TypeError("the parties live in the store's SQLite file: give a SQLiteStore")
    database = dispatcher.store.path
    app = Flask(__name__)
    hooks.init_app(app, dispatcher)
    app.register_blueprint(subscription_blueprint(owner=current_owner))
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS parties (id INTEGER PRIMARY KEY, name TEXT)")

    @app.post("/api/v2/parties")
    def create_party() -> Response:
        owner = current_owner(request)
        if owner is None:
            return _json({"message": "Authentication required"}, 401)
        data = request.get_json(silent=True)
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return _json({"message": 'the body must be {"name": "..."}'}, 400)
        conn = sqlite3.connect(database, isolation_level=None, timeout=5)
        try:
            conn.execute("BEGIN IMMEDIATE")
            party_id = conn.execute(
                "INSERT INTO parties (name) VALUES (?)", (data["name"],)
            ).lastrowid
            party = {"id": party_id, **data}
            # Through the party's connection: the deliveries commit (or not) with the party.
            made = dispatcher.emit("party/created", party, owner=owner, connection=conn)
            conn.execute("COMMIT")
        except (ResthooksError, sqlite3.Error) as exc:
            conn.execute("ROLLBACK")  # neither the party nor its deliveries
            return _json({"message": f"party not created: {exc}"}, 422)
        finally:
            conn.close()
        dispatcher.committed(made)  # wake the workers (and the tests' synchronous mode)
        return _json(party, 201)

    return app
