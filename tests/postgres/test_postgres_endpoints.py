"""PostgreSQL: one secret per endpoint, on the real server (the conformance suite checks the
store's rule; these check the Dispatcher's rotation and PATCH on it, and a database written
before endpoints)."""

from __future__ import annotations

import math

import pytest
from psycopg import sql
from support import make_dispatcher

from resthooks import SubscriptionExists, generate_secret
from resthooks.api import SubscriptionAPI
from resthooks.testing import FakeClock, RecordingTransport
from resthooks.verification import verify

URL = "https://receiver.example.com/hooks"


def test_hooks_stored_before_endpoints_keep_their_secrets_until_a_rotation(
    pg_store, pg_conninfo
) -> None:
    """Two hooks to one URL with two secrets (as 0.1 stored them) each sign with their own;
    one rotation gives both the new secret, each still signing with its old one."""
    import psycopg  # noqa: PLC0415 - the postgres extra, checked by conftest

    transport = RecordingTransport()
    dispatcher = make_dispatcher(pg_store, clock=FakeClock(), transport=transport)
    a = dispatcher.subscribe("party/created", URL, owner="acme")
    b = dispatcher.subscribe("party/updated", "https://elsewhere.example.com/", owner="acme")
    old_b = generate_secret()
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("UPDATE {}.hooks SET target_url = %s, secret = %s WHERE id = %s").format(
                sql.Identifier(pg_store.schema)
            ),
            (URL, old_b, b.id),
        )

    new = dispatcher.rotate_secret(b.id, owner="acme")

    for hook_id, old in ((a.id, a.secret), (b.id, old_b)):
        hook = dispatcher.get_hook(hook_id, owner="acme")
        assert (hook.secret, hook.previous_secret) == (new, old)
    dispatcher.emit("party/updated", {"id": 1}, owner="acme")
    dispatcher.deliver_due()
    request = transport.requests[-1]
    for secret in (new, old_b):
        verify(request.body, request.headers, secret, tolerance=math.inf)


def test_patch_over_http_shapes_on_postgres(pg_store) -> None:
    """A pattern shares one secret; PATCH into the endpoint takes it; PATCH onto a taken
    (event, URL) is 409 and SubscriptionExists, changing nothing."""
    dispatcher = make_dispatcher(pg_store, clock=FakeClock(), transport=RecordingTransport())
    api = SubscriptionAPI(dispatcher)
    made = api.create({"restHook": {"targetUrl": URL, "events": ["party/*"]}}, owner="acme")
    assert made.status == 201
    secret = made.body["restHooks"][0]["secret"]
    assert {h["secret"] for h in made.body["restHooks"]} == {secret}
    lone = dispatcher.subscribe("task/created", "https://b.example.com/", owner="acme")

    moved = api.update(lone.id, {"restHook": {"targetUrl": URL}}, owner="acme")

    assert moved.status == 200, moved.body
    assert dispatcher.get_hook(lone.id, owner="acme").secret == secret
    taken = api.update(lone.id, {"restHook": {"event": "party/created"}}, owner="acme")
    assert taken.status == 409
    with pytest.raises(SubscriptionExists):
        dispatcher.update_hook(lone.id, owner="acme", event="party/deleted")
    assert dispatcher.get_hook(lone.id, owner="acme").event == "task/created"
