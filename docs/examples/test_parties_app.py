"""Tests of the example app: what its customers receive, over real HTTP, on a fake clock."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from parties_app import create_app

from resthooks import Dispatcher, HookState
from resthooks.stores import SQLiteStore
from resthooks.testing import LOOPBACK_POLICY, FakeClock, HookReceiver, run_schedule, synchronous

ACME = {"X-Account": "acme"}


@pytest.fixture(name="dispatcher")
def _dispatcher(resthooks_clock: FakeClock, tmp_path: Path) -> Iterator[Dispatcher]:
    """The app's Dispatcher in test settings: the app's file in a temporary directory, fake
    time, and every committed emit delivered at once."""
    store = SQLiteStore(tmp_path / "crm.db", adopt=True)
    dispatcher = Dispatcher(store, clock=resthooks_clock, network_policy=LOOPBACK_POLICY)
    synchronous(dispatcher)
    yield dispatcher
    store.close()


@pytest.fixture(name="client")
def _client(dispatcher: Dispatcher) -> FlaskClient:
    return create_app(dispatcher).test_client()


def subscribe(client: FlaskClient, receiver: HookReceiver, path: str, account: str) -> str:
    """Subscribe ``path`` of the receiver the way a customer would: through the app's API."""
    response = client.post(
        "/api/v2/resthooks",
        json={"restHook": {"event": "party/created", "targetUrl": receiver.url(path)}},
        headers={"X-Account": account},
    )
    assert response.status_code == 201
    hook = response.get_json()["restHook"]
    receiver.set_secret(hook["secret"], path=path)
    return str(hook["id"])


def test_customer_receives_a_signed_party_created(
    client: FlaskClient, hook_receiver: HookReceiver
) -> None:
    """Creating a party sends the customer the party, signed with its hook's secret."""
    subscribe(client, hook_receiver, "/crm", "acme")

    client.post("/api/v2/parties", json={"name": "Zoë"}, headers=ACME)

    (delivery,) = hook_receiver.deliveries
    assert delivery.verified
    assert delivery.json == {"event": "party/created", "payload": [{"id": 1, "name": "Zoë"}]}
    assert hook_receiver.payloads("party/created") == [{"id": 1, "name": "Zoë"}]


def test_other_accounts_receive_nothing(client: FlaskClient, hook_receiver: HookReceiver) -> None:
    """A party created by one account is not sent to another account's hooks."""
    subscribe(client, hook_receiver, "/globex", "globex")

    client.post("/api/v2/parties", json={"name": "Zoë"}, headers=ACME)

    assert hook_receiver.deliveries == []


def test_a_failing_endpoint_gets_every_retry_then_the_hook_dies(
    client: FlaskClient, dispatcher: Dispatcher, hook_receiver: HookReceiver
) -> None:
    """An endpoint that always answers 503 gets 6 attempts over 36 minutes, then is dropped."""
    hook_id = subscribe(client, hook_receiver, "/crm", "acme")
    hook_receiver.answer(503, path="/crm")

    client.post("/api/v2/parties", json={"name": "Zoë"}, headers=ACME)  # the first attempt
    summary = run_schedule(dispatcher)  # the five retries, 36 min 5 s of fake time

    assert (summary.retried, summary.failed) == (4, 1)
    assert len(hook_receiver.deliveries) == 6
    assert len({d.webhook_id for d in hook_receiver.deliveries}) == 1, "one delivery, 6 attempts"
    assert dispatcher.get_hook(hook_id, owner="acme").state is HookState.DEAD


def test_an_endpoint_that_recovers_gets_the_delivery(
    client: FlaskClient, dispatcher: Dispatcher, hook_receiver: HookReceiver
) -> None:
    """Two failures, then a 200: the retries deliver the party once."""
    subscribe(client, hook_receiver, "/crm", "acme")
    hook_receiver.answer(500, 502, 200, path="/crm")

    client.post("/api/v2/parties", json={"name": "Zoë"}, headers=ACME)
    assert run_schedule(dispatcher).delivered == 1

    assert [d.answer.status for d in hook_receiver.deliveries] == [500, 502, 200]
    assert hook_receiver.payloads("party/created") == [{"id": 1, "name": "Zoë"}]


def test_an_endpoint_that_answers_410_is_unsubscribed(
    client: FlaskClient, dispatcher: Dispatcher, hook_receiver: HookReceiver
) -> None:
    """410 Gone removes the hook: the next party is not sent."""
    subscribe(client, hook_receiver, "/crm", "acme")
    hook_receiver.answer(410, path="/crm")

    client.post("/api/v2/parties", json={"name": "Zoë"}, headers=ACME)
    client.post("/api/v2/parties", json={"name": "Ada"}, headers=ACME)

    assert len(hook_receiver.deliveries) == 1
    assert dispatcher.hooks(owner="acme") == []


def test_a_subscription_to_an_unknown_event_is_refused(client: FlaskClient) -> None:
    """An unknown event is answered 422, naming the field, and nothing is subscribed."""
    response = client.post(
        "/api/v2/resthooks",
        json={"restHook": {"event": "party/exploded", "targetUrl": "https://example.com/"}},
        headers=ACME,
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["event"]


def test_a_party_that_cannot_be_sent_is_not_stored(
    client: FlaskClient, dispatcher: Dispatcher
) -> None:
    """A party too large to emit is refused, and neither it nor a delivery is stored."""
    subscribe_url = "https://example.com/hooks"
    dispatcher.subscribe("party/created", subscribe_url, owner="acme")
    too_big = {"name": "x" * (dispatcher.max_payload_bytes + 1)}

    refused = client.post("/api/v2/parties", json=too_big, headers=ACME)

    assert refused.status_code == 422
    assert dispatcher.stats().deliveries["pending"] == 0
    with sqlite3.connect(dispatcher.store.path) as conn:
        assert conn.execute("SELECT count(*) FROM parties").fetchone() == (0,)


def test_an_account_header_that_is_no_owner_is_a_json_400(client: FlaskClient) -> None:
    """A 300-character X-Account is answered 400 in JSON, not a 500 page."""
    answer = client.get("/api/v2/resthooks", headers={"X-Account": "a" * 300})
    assert (answer.status_code, answer.get_json()["message"]) == (
        400,
        "owner: must be at most 255 characters",
    )
