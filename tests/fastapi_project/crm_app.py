"""A FastAPI CRM: the subscription router, the worker in the app's lifespan, and a party
endpoint that stores the party and emits party/created in one SQLite transaction."""

import os
import sqlite3

from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse

from resthooks import Dispatcher, ResthooksError, Timeouts
from resthooks.aio import AsyncDispatcher
from resthooks.contrib.fastapi import Hooks, lifespan, subscription_router
from resthooks.stores import SQLiteStore
from resthooks.testing import LOOPBACK_POLICY

DATABASE = os.environ["CRM_DB"]
store = SQLiteStore(DATABASE, adopt=True)
hooks = AsyncDispatcher(
    Dispatcher(store, network_policy=LOOPBACK_POLICY, timeouts=Timeouts(connect=2, total=5))
)
with sqlite3.connect(DATABASE) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS parties (id INTEGER PRIMARY KEY, name TEXT)")


def current_owner(x_account: str | None = Header(default=None)) -> str | None:
    return x_account


app = FastAPI(lifespan=lifespan(hooks, poll_interval=0.2))
app.include_router(subscription_router(owner=current_owner))


@app.post("/api/v2/parties")
async def create_party(body: dict, hooks: Hooks, x_account: str | None = Header(default=None)):
    if x_account is None:
        return JSONResponse({"message": "Authentication required"}, 401)
    conn = sqlite3.connect(DATABASE, isolation_level=None, timeout=5, check_same_thread=False)
    try:
        conn.execute("BEGIN IMMEDIATE")
        party_id = conn.execute(
            "INSERT INTO parties (name) VALUES (?)", (body.get("name"),)
        ).lastrowid
        made = await hooks.emit(
            "party/created", {"id": party_id, **body}, owner=x_account, connection=conn
        )
        if body.get("refuse"):  # a business rule fails after the emit: all rolled back
            raise ResthooksError("refused")
        conn.execute("COMMIT")
    except ResthooksError as exc:
        conn.execute("ROLLBACK")
        return JSONResponse({"message": str(exc)}, 409)
    finally:
        conn.close()
    hooks.dispatcher.committed(made)
    return JSONResponse({"id": party_id, **body}, 201)
