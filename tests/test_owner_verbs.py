"""Endpoints and the owners' verbs of the subscription API: one secret per (owner, URL), several
events or a pattern in one subscribe, PATCH, secret rotation, deliveries and attempts of a
hook, redeliver, replay since a time, ping; each owner-scoped, each refusing bad input with
a 4xx that changes nothing. Both faces (SubscriptionAPI and AsyncSubscriptionAPI)."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from fuzzing import snapshot
from resthooks import Dispatcher, HookState, SubscriptionExists, ValidationError
from resthooks.api import SubscriptionAPI
from resthooks.errors import TransportError
from resthooks.signing import generate_secret
from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import FakeClock, RecordingTransport
from resthooks.transports import Response
from resthooks.verification import verify

URL = "https://receiver.example.com/hooks"
OTHER_URL = "https://other.example.com/hooks"
BASE = "/api/v2/resthooks"


@pytest.fixture(name="api", params=["sync", "async"])
def _api(
    request: pytest.FixtureRequest,
    make_face: Callable[[str, Any], Any],
    dispatcher: Dispatcher,
) -> Any:
    return make_face(request.param, SubscriptionAPI(dispatcher))


def _verify(secret: str, request: Any) -> None:
    """Raise unless ``request`` carries a valid signature with ``secret`` (any age: the
    tests run on a fake clock)."""
    verify(request.body, request.headers, secret, tolerance=math.inf)


def _create(api: Any, owner: str = "acme", **fields: Any) -> Any:
    return api.create({"restHook": {"targetUrl": URL, **fields}}, owner=owner)


def _failed_delivery(
    dispatcher: Dispatcher, clock: FakeClock, transport: RecordingTransport, hook_id: str
) -> str:
    """Emit once and let every attempt fail: the hook dies; revive it; return the delivery."""
    transport.handler = lambda request: Response(status=500)
    (delivery,) = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    for _ in range(10):
        dispatcher.deliver_due()
        clock.advance(timedelta(minutes=20))
    assert dispatcher.get_delivery(delivery.id, owner="acme").state.value == "failed"
    dispatcher.revive(hook_id, owner="acme")
    transport.handler = None
    return delivery.id


# -- one secret per endpoint ----------------------------------------------------------------


def test_hooks_of_one_owner_to_one_url_share_the_secret(api: Any) -> None:
    """A second event subscribed to the same URL gets the endpoint's secret, not a new one;
    another URL, or another owner's hook to the same URL, gets its own."""
    first = _create(api, event="party/created").body["restHook"]
    second = _create(api, event="party/updated").body["restHook"]
    other_url = api.create(
        {"restHook": {"targetUrl": OTHER_URL, "event": "party/created"}}, owner="acme"
    ).body["restHook"]
    other_owner = _create(api, owner="globex", event="party/created").body["restHook"]

    assert first["secret"] == second["secret"]
    assert len({first["secret"], other_url["secret"], other_owner["secret"]}) == 3


def test_several_events_and_a_pattern_in_one_subscribe(api: Any) -> None:
    """events: a list and a pattern subscribe one hook each, sharing a secret; subscribing
    again answers 200 with the same hooks (the pattern is expanded each time)."""
    made = _create(api, events=["task/*", "party/created"], description="all tasks")

    assert made.status == 201
    hooks = made.body["restHooks"]
    assert [h["event"] for h in hooks] == [
        "task/created",
        "task/updated",
        "task/completed",
        "party/created",
    ]
    assert {h["description"] for h in hooks} == {"all tasks"}
    assert len({h["secret"] for h in hooks}) == 1
    again = _create(api, event="task/*")
    assert again.status == 200
    assert [h["id"] for h in again.body["restHooks"]] == [h["id"] for h in hooks[:3]]
    assert all("secret" not in h for h in again.body["restHooks"])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"events": []}, "events"),
        ({"events": "party/*", "event": "party/created"}, "events"),
        ({"events": ["*/created"]}, "events"),
        ({"events": ["party/*", 12]}, "events"),
        ({"events": {"party/created": True}}, "events"),
        ({"events": ["party/created"] * 101}, "events"),
        ({"event": "party/**"}, "event"),
        ({"event": "party/created", "secret": "not-base64!"}, "secret"),
        ({"event": "party/created", "secret": "whsec_" + "QUJD" * 4}, "secret"),  # 12 bytes
        ({"event": "party/created", "secret": "whsec_\udc80" + "A" * 40}, "secret"),
        ({"event": "party/created", "secret": 12}, "secret"),
        ({"events": ["party/*"], "secret": "whsec_" + "A" * 10_000}, "secret"),
    ],
)
def test_bad_events_or_secrets_are_422_naming_the_field_and_store_nothing(
    api: Any, store: MemoryStore, fields: dict[str, Any], field: str
) -> None:
    """Each bad events list, pattern or client secret answers 422 naming its field; nothing
    is stored."""
    answer = _create(api, **fields)

    assert answer.status == 422, answer.body
    assert [e["field"] for e in answer.body["errors"]] == [field]
    assert store.list_hooks() == []


def test_a_pattern_past_the_cap_stores_none_of_its_hooks(
    store: MemoryStore, clock: FakeClock
) -> None:
    """The cap is checked for all the hooks of a subscribe at once: 19 events on a cap of 5
    is a 422 with nothing stored."""
    api = SubscriptionAPI(Dispatcher(store, clock=clock, max_hooks_per_owner=5))

    answer = _create(api, events=["*"])

    assert answer.status == 422
    assert store.list_hooks() == []
    assert _create(api, events=["party/*"]).status == 201


def test_a_client_chosen_secret_signs_and_must_match_the_endpoint(
    api: Any, dispatcher: Dispatcher, transport: RecordingTransport
) -> None:
    """A valid whsec_ secret in the body is the endpoint's secret (deliveries verify with
    it); another hook to the same URL must give the same one or none."""
    secret = generate_secret()
    created = _create(api, event="party/created", secret=secret)
    assert (created.status, created.body["restHook"]["secret"]) == (201, secret)
    assert _create(api, event="party/updated").body["restHook"]["secret"] == secret
    assert _create(api, event="party/deleted", secret=secret).status == 201
    refused = _create(api, event="task/created", secret=generate_secret())
    assert (refused.status, refused.body["errors"][0]["field"]) == (422, "secret")

    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    dispatcher.deliver_due()
    (request,) = transport.requests
    _verify(secret, request)


def test_existing_hooks_of_one_url_keep_their_secrets_until_a_rotation(tmp_path: Path) -> None:
    """A database from before endpoints (two hooks to one URL, two secrets) keeps working:
    each hook signs with its own secret; rotating either gives both one new secret, each
    still signing with its old one for the grace period."""
    path = tmp_path / "old.db"
    clock = FakeClock()
    transport = RecordingTransport()
    with SQLiteStore(path) as store:
        dispatcher = Dispatcher(store, clock=clock, transport=transport)
        a = dispatcher.subscribe("party/created", URL, owner="acme")
        b = dispatcher.subscribe("party/updated", OTHER_URL, owner="acme")
    old_b = generate_secret()
    with sqlite3.connect(path) as conn:  # as 0.1 stored them: one secret per hook
        conn.execute(
            "UPDATE resthooks_hooks SET target_url = ?, secret = ? WHERE id = ?",
            (URL, old_b, b.id),
        )
    conn.close()
    with SQLiteStore(path) as store:
        dispatcher = Dispatcher(store, clock=clock, transport=transport)
        dispatcher.emit("party/updated", {"id": 1}, owner="acme")
        dispatcher.deliver_due()
        _verify(old_b, transport.requests[-1])

        new = dispatcher.rotate_secret(a.id, owner="acme")

        for hook_id, old in ((a.id, a.secret), (b.id, old_b)):
            hook = dispatcher.get_hook(hook_id, owner="acme")
            assert (hook.secret, hook.previous_secret) == (new, old)
        dispatcher.emit("party/updated", {"id": 2}, owner="acme")
        dispatcher.deliver_due()
        request = transport.requests[-1]
        assert len(request.headers["webhook-signature"].split()) == 2
        _verify(new, request)
        _verify(old_b, request)


# -- PATCH ----------------------------------------------------------------------------------


def test_patch_changes_what_it_names_and_keeps_the_rest(api: Any) -> None:
    """PATCH targetUrl/event/description answers the hook changed, its id and secret kept."""
    hook = _create(api, event="party/created", description="one").body["restHook"]

    answer = api.update(
        hook["id"], {"restHook": {"targetUrl": OTHER_URL, "event": "party/deleted"}}, owner="acme"
    )

    assert answer.status == 200, answer.body
    changed = answer.body["restHook"]
    assert (changed["id"], changed["targetUrl"], changed["event"], changed["description"]) == (
        hook["id"],
        OTHER_URL,
        "party/deleted",
        "one",
    )
    assert api.dispatcher.get_hook(hook["id"], owner="acme").secret == hook["secret"]


def test_patch_into_an_endpoint_takes_its_secret_and_a_taken_subscription_is_409(
    api: Any, dispatcher: Dispatcher
) -> None:
    """Moving a hook to a URL the owner has hooks to gives it that endpoint's secret; moving
    it onto another hook's event and URL is 409 and changes nothing."""
    there = _create(api, event="party/created").body["restHook"]
    mover = api.create(
        {"restHook": {"targetUrl": OTHER_URL, "event": "party/updated"}}, owner="acme"
    ).body["restHook"]

    moved = api.update(mover["id"], {"restHook": {"targetUrl": URL}}, owner="acme")
    assert moved.status == 200
    assert dispatcher.get_hook(mover["id"], owner="acme").secret == there["secret"]

    taken = api.update(mover["id"], {"restHook": {"event": "party/created"}}, owner="acme")
    assert taken.status == 409
    assert there["id"] in taken.body["message"]
    assert dispatcher.get_hook(mover["id"], owner="acme").event == "party/updated"
    with pytest.raises(SubscriptionExists):
        dispatcher.update_hook(mover["id"], owner="acme", event="party/created")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{nope", 400, None),
        (b"[]", 400, None),
        (b'{"restHook": []}', 400, None),
        (b'{"restHook": {}}', 422, None),
        (b'{"restHook": {"colour": "red"}}', 422, "colour"),
        (b'{"restHook": {"id": "hook_x"}}', 422, "id"),
        (b'{"restHook": {"description": null}}', 422, "description"),
        (b'{"restHook": {"description": "\\ud800"}}', 422, "description"),
        (b'{"restHook": {"description": "a\\u0000"}}', 422, "description"),
        (b'{"restHook": {"description": 7}}', 422, "description"),
        (b'{"restHook": {"event": "party/exploded"}}', 422, "event"),
        (b'{"restHook": {"event": "party/*"}}', 422, "event"),
        (b'{"restHook": {"targetUrl": "http://127.0.0.1/x"}}', 422, "targetUrl"),
        (b'{"restHook": {"targetUrl": "ftp://x"}}', 422, "targetUrl"),
        (b'{"restHook": {"targetUrl": 1e400}}', 422, "targetUrl"),
        (b'{"restHook": {}, "extra": 1}', 422, "extra"),
        (b"\xff", 400, None),
    ],
)
def test_bad_patches_are_4xx_and_change_nothing(
    api: Any, store: MemoryStore, body: bytes, status: int, field: str | None
) -> None:
    """Every malformed or invalid PATCH answers its 4xx (naming the field for a 422) and
    leaves the store as it was."""
    hook = _create(api, event="party/created").body["restHook"]
    before = snapshot(store)

    answer = api.update(hook["id"], body, owner="acme")

    assert answer.status == status, answer.body
    if status == 422:
        assert [e["field"] for e in answer.body["errors"]] == [field]
    assert snapshot(store) == before


@pytest.mark.parametrize("name", ["\udc80", "a\x00b", 1, "x" * 500])
def test_an_unknown_field_is_named_safely(api: Any, name: Any) -> None:
    """A field name with a lone surrogate, NUL, not a string or huge is named escaped and
    cut, and the answer is valid UTF-8 JSON."""
    hook = _create(api, event="party/created").body["restHook"]

    answer = api.update(hook["id"], {"restHook": {name: 1}}, owner="acme")

    assert answer.status == 422
    (error,) = json.loads(answer.content.decode("utf-8"))["errors"]
    assert len(error["field"]) <= 67
    assert "\x00" not in error["field"]


def test_patch_of_the_target_under_intent_verification_is_409(
    store: MemoryStore, clock: FakeClock
) -> None:
    """With verify_intent a new target must confirm: a PATCH moving a hook is 409."""
    dispatcher = Dispatcher(store, clock=clock, transport=RecordingTransport(), verify_intent=True)
    api = SubscriptionAPI(dispatcher)
    hook = _create(api, event="party/created").body["restHook"]

    assert (
        api.update(hook["id"], {"restHook": {"targetUrl": OTHER_URL}}, owner="acme").status == 409
    )
    assert api.update(hook["id"], {"restHook": {"description": "ok"}}, owner="acme").status == 200


# -- rotation -------------------------------------------------------------------------------


def test_rotating_one_hook_rotates_its_endpoint_with_a_grace_period(
    api: Any, dispatcher: Dispatcher, clock: FakeClock, transport: RecordingTransport
) -> None:
    """rotate-secret gives every hook of the endpoint the new secret, shows it once, and
    both secrets sign until the grace period ends; then only the new one."""
    made = _create(api, events=["party/created", "party/updated"]).body["restHooks"]
    old = made[0]["secret"]

    answer = api.rotate_secret(made[1]["id"], b"", owner="acme")

    assert answer.status == 200, answer.body
    shown = answer.body["restHook"]
    new = shown["secret"]
    assert new != old
    assert sorted(shown["endpointHookIds"]) == sorted(h["id"] for h in made)
    assert shown["previousSecretExpiresAt"] == "2026-01-02T00:00:00Z"
    for hook in made:
        assert dispatcher.get_hook(hook["id"], owner="acme").secret == new
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    dispatcher.deliver_due()
    request = transport.requests[-1]
    _verify(new, request)
    _verify(old, request)
    clock.advance(timedelta(hours=24, seconds=1))
    dispatcher.emit("party/created", {"id": 2}, owner="acme")
    dispatcher.deliver_due()
    assert len(transport.requests[-1].headers["webhook-signature"].split()) == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{nope", 400),
        (b"[1]", 400),
        (b'{"secret": "short"}', 422),
        (b'{"secret": null, "other": 1}', 422),
        (b'{"secret": 5}', 422),
        (b'{"secret": "whsec_\\u0000AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}', 422),
    ],
)
def test_bad_rotations_are_4xx_and_change_nothing(
    api: Any, store: MemoryStore, body: bytes, status: int
) -> None:
    """A rotation body that is not {} or {"secret": "whsec_..."} changes no secret."""
    hook = _create(api, event="party/created").body["restHook"]
    before = snapshot(store)

    assert api.rotate_secret(hook["id"], body, owner="acme").status == status
    assert snapshot(store) == before


def test_rotation_to_a_client_secret(api: Any, dispatcher: Dispatcher) -> None:
    """{"secret": "whsec_..."} rotates to that secret."""
    hook = _create(api, event="party/created").body["restHook"]
    mine = generate_secret()

    answer = api.rotate_secret(hook["id"], json.dumps({"secret": mine}), owner="acme")

    assert (answer.status, answer.body["restHook"]["secret"]) == (200, mine)
    assert dispatcher.get_hook(hook["id"], owner="acme").secret == mine


# -- deliveries, attempts, redeliver, replay -----------------------------------------------------


def test_deliveries_and_attempts_of_a_hook(
    api: Any, dispatcher: Dispatcher, clock: FakeClock, transport: RecordingTransport
) -> None:
    """A hook's deliveries list newest first, filter by state, show one with its attempt log;
    the attempts listing is the hook's attempt log, newest first."""
    hook = _create(api, event="party/created").body["restHook"]
    failed = _failed_delivery(dispatcher, clock, transport, hook["id"])
    (delivered,) = dispatcher.emit("party/created", {"id": 2}, owner="acme")
    dispatcher.deliver_due()

    listed = api.deliveries(hook["id"], owner="acme")
    assert listed.status == 200
    assert [d["id"] for d in listed.body["deliveries"]] == [delivered.id, failed]
    only_failed = api.deliveries(hook["id"], owner="acme", query={"state": "failed", "limit": "1"})
    assert [d["state"] for d in only_failed.body["deliveries"]] == ["failed"]
    shown = api.delivery(hook["id"], failed, owner="acme")
    assert shown.status == 200
    log = shown.body["delivery"]["attemptLog"]
    assert [a["number"] for a in log] == [1, 2, 3, 4, 5, 6]
    assert {a["status"] for a in log} == {500}
    attempts = api.attempts(hook["id"], owner="acme", query={"limit": "3"}).body["attempts"]
    assert [(a["deliveryId"], a["status"]) for a in attempts] == [
        (delivered.id, 204),
        (failed, 500),
        (failed, 500),
    ]


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "-1"},
        {"limit": "1e3"},
        {"limit": "٣"},
        {"state": "lost"},
        {"page": "2"},
        {"limit": "9" * 5000},
    ],
)
def test_bad_listing_queries_are_400(api: Any, query: dict[str, str]) -> None:
    """A limit outside 1..100, an unknown state or an unknown parameter answers 400."""
    hook = _create(api, event="party/created").body["restHook"]

    assert api.deliveries(hook["id"], owner="acme", query=query).status == 400


def test_redeliver_one_delivery_of_a_hook(
    api: Any, dispatcher: Dispatcher, clock: FakeClock, transport: RecordingTransport
) -> None:
    """redeliver queues a failed delivery again (202, pending, same id); a delivered one is
    409; another hook's delivery under this hook's path is 404."""
    hook = _create(api, event="party/created").body["restHook"]
    other = _create(api, event="party/updated").body["restHook"]
    failed = _failed_delivery(dispatcher, clock, transport, hook["id"])

    assert api.redeliver(other["id"], failed, owner="acme").status == 404
    answer = api.redeliver(hook["id"], failed, owner="acme")
    assert (answer.status, answer.body["delivery"]["state"]) == (202, "pending")
    assert answer.body["delivery"]["id"] == failed
    assert api.redeliver(hook["id"], failed, owner="acme").status == 409
    dispatcher.deliver_due()
    assert dispatcher.get_delivery(failed, owner="acme").state.value == "delivered"


def test_replay_since_requeues_failed_and_cancelled_in_the_window_only(
    api: Any, dispatcher: Dispatcher, clock: FakeClock, transport: RecordingTransport
) -> None:
    """replay since T queues again the failed deliveries emitted from T on, oldest first,
    at most limit of them; earlier ones and delivered ones are left alone."""
    hook = _create(api, event="party/created").body["restHook"]
    early = _failed_delivery(dispatcher, clock, transport, hook["id"])
    since = clock.now()
    late = [_failed_delivery(dispatcher, clock, transport, hook["id"]) for _ in range(2)]
    (delivered,) = dispatcher.emit("party/created", {"id": 9}, owner="acme")
    dispatcher.deliver_due()

    first = api.replay(hook["id"], {"since": since.isoformat(), "limit": 1}, owner="acme")
    assert first.status == 202, first.body
    assert (first.body["replayed"], first.body["more"], first.body["deliveryIds"]) == (
        1,
        True,
        late[:1],
    )
    rest = api.replay(hook["id"], {"since": since.isoformat().replace("+00:00", "Z")}, owner="acme")
    assert (rest.body["replayed"], rest.body["deliveryIds"], rest.body["more"]) == (
        1,
        late[1:],
        False,
    )
    state = {d: dispatcher.get_delivery(d, owner="acme").state.value for d in [early, delivered.id]}
    assert state == {early: "failed", delivered.id: "delivered"}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"", 400, None),
        (b"{nope", 400, None),
        (b"{}", 422, "since"),
        (b'{"since": "yesterday"}', 422, "since"),
        (b'{"since": "2026-01-01T00:00:00"}', 422, "since"),
        (b'{"since": "2026-13-01T00:00:00Z"}', 422, "since"),
        (b'{"since": "2026-01-01T00:00:00\\u0000Z"}', 422, "since"),
        (b'{"since": 1700000000}', 422, "since"),
        (b'{"since": "2026-01-01T00:00:00Z", "until": "2025-01-01T00:00:00Z"}', 422, "until"),
        (b'{"since": "2026-01-01T00:00:00Z", "limit": 0}', 422, "limit"),
        (b'{"since": "2026-01-01T00:00:00Z", "limit": 100000000000000000000}', 422, "limit"),
        (b'{"since": "2026-01-01T00:00:00Z", "limit": true}', 422, "limit"),
        (b'{"since": "2026-01-01T00:00:00Z", "from": 1}', 422, "from"),
        (b'{"since": "0001-01-01T00:00:00+23:59"}', 422, "since"),
    ],
)
def test_bad_replays_are_4xx_and_change_nothing(
    api: Any,
    store: MemoryStore,
    dispatcher: Dispatcher,
    clock: FakeClock,
    transport: RecordingTransport,
    body: bytes,
    status: int,
    field: str | None,
) -> None:
    """Every bad replay body answers its 4xx (naming the field) and queues nothing."""
    hook = _create(api, event="party/created").body["restHook"]
    _failed_delivery(dispatcher, clock, transport, hook["id"])
    before = snapshot(store)

    answer = api.replay(hook["id"], body, owner="acme")

    assert answer.status == status, answer.body
    if field is not None:
        assert [e["field"] for e in answer.body["errors"]] == [field]
    assert snapshot(store) == before


def test_replay_of_a_dead_hook_is_409(api: Any, store: MemoryStore, clock: FakeClock) -> None:
    """A dead hook's deliveries are not replayed: 409 until it is revived."""
    hook = _create(api, event="party/created").body["restHook"]
    store.mark_dead(hook["id"], reason="test", now=clock.now())

    answer = api.replay(hook["id"], {"since": "2025-01-01T00:00:00Z"}, owner="acme")

    assert answer.status == 409


# -- ping -------------------------------------------------------------------------------------


def test_ping_sends_a_signed_test_event_and_stores_nothing(
    api: Any, store: MemoryStore, transport: RecordingTransport
) -> None:
    """ping POSTs {"event": "ping", ...} signed with the endpoint's secret and answers how it
    went; no delivery or attempt is stored."""
    hook = _create(api, event="party/created").body["restHook"]
    before = snapshot(store)

    answer = api.ping(hook["id"], b"", owner="acme")

    assert answer.status == 200
    assert (answer.body["ping"]["succeeded"], answer.body["ping"]["status"]) == (True, 204)
    (request,) = transport.requests
    assert json.loads(request.body) == {
        "event": "ping",
        "payload": [{"hookId": hook["id"], "event": "party/created"}],
    }
    assert request.headers["webhook-id"] == answer.body["ping"]["deliveryId"]
    _verify(hook["secret"], request)
    assert snapshot(store) == before


def test_a_failed_ping_is_still_200_and_says_why(store: MemoryStore, clock: FakeClock) -> None:
    """A ping the target refuses (or that gets no answer) answers 200 with succeeded false,
    the status or the error kind; a dead hook can be pinged; an unconfirmed one cannot."""
    transport = RecordingTransport(script=[503, TransportError("timeout", "read timed out")])
    api = SubscriptionAPI(Dispatcher(store, clock=clock, transport=transport))
    hook = _create(api, event="party/created").body["restHook"]
    store.mark_dead(hook["id"], reason="test", now=clock.now())

    refused = api.ping(hook["id"], owner="acme").body["ping"]
    silent = api.ping(hook["id"], owner="acme").body["ping"]

    assert (refused["succeeded"], refused["status"]) == (False, 503)
    assert (silent["succeeded"], silent["status"], silent["errorKind"]) == (False, None, "timeout")
    assert api.ping(hook["id"], b'{"x": 1}', owner="acme").status == 422
    unconfirmed = SubscriptionAPI(
        Dispatcher(
            MemoryStore(),
            clock=clock,
            transport=RecordingTransport(script=[404]),
            verify_intent=True,
        )
    )
    waiting = _create(unconfirmed, event="party/created").body["restHook"]
    assert waiting["state"] == HookState.UNCONFIRMED.value
    assert unconfirmed.ping(waiting["id"], owner="acme").status == 409


# -- owner scoping and routing ------------------------------------------------------------------


def test_another_owners_hook_is_404_on_every_verb_and_changes_nothing(
    api: Any,
    store: MemoryStore,
    dispatcher: Dispatcher,
    clock: FakeClock,
    transport: RecordingTransport,
) -> None:
    """globex gets 404 for acme's hook on every owners' verb, and nothing changes (no ping is
    sent)."""
    hook = _create(api, event="party/created").body["restHook"]
    failed = _failed_delivery(dispatcher, clock, transport, hook["id"])
    sent = len(transport.requests)
    before = snapshot(store)
    hid = hook["id"]

    answers = [
        api.update(hid, {"restHook": {"description": "mine"}}, owner="globex"),
        api.rotate_secret(hid, b"", owner="globex"),
        api.deliveries(hid, owner="globex"),
        api.delivery(hid, failed, owner="globex"),
        api.attempts(hid, owner="globex"),
        api.redeliver(hid, failed, owner="globex"),
        api.replay(hid, {"since": "2020-01-01T00:00:00Z"}, owner="globex"),
        api.ping(hid, owner="globex"),
    ]

    assert [a.status for a in answers] == [404] * len(answers)
    assert snapshot(store) == before
    assert len(transport.requests) == sent


@pytest.mark.parametrize(
    ("method", "action", "status", "allow"),
    [
        ("POST", "ping", 200, None),
        ("GET", "ping", 405, "POST"),
        ("POST", "rotate-secret", 200, None),
        ("GET", "deliveries", 200, None),
        ("GET", "/deliveries/", 200, None),
        ("DELETE", "deliveries", 405, "GET"),
        ("GET", "attempts", 200, None),
        ("GET", "deliveries/msg_nope", 404, None),
        ("POST", "deliveries/msg_nope/redeliver", 404, None),
        ("POST", "replay", 400, None),
        ("GET", "nothing", 404, None),
        ("GET", "deliveries/a/b/c", 404, None),
        ("PATCH", None, 400, None),
    ],
)
def test_handle_routes_the_owners_verbs(
    api: Any, method: str, action: str | None, status: int, allow: str | None
) -> None:
    """handle() routes each path and method; unknown paths are 404, wrong methods 405."""
    hook = _create(api, event="party/created").body["restHook"]

    answer = api.handle(method, hook["id"], owner="acme", action=action, body=b"")

    assert answer.status == status, answer.body
    assert answer.headers.get("Allow") == allow
    assert answer.headers["Content-Type"] == "application/json"


def test_handle_routes_keys_and_confirm(store: MemoryStore, clock: FakeClock) -> None:
    """GET {base}/keys serves the v1a keys; POST {base}/{id}/confirm confirms (409 when the
    hook is not unconfirmed): both were handlers without a route."""
    dispatcher = Dispatcher(
        store,
        clock=clock,
        transport=RecordingTransport(script=[404]),
        verify_intent=True,
        signature_versions={"v1", "v1a"},
    )
    api = SubscriptionAPI(dispatcher)
    hook = _create(api, event="party/created").body["restHook"]
    (handshake,) = dispatcher.transport.requests  # type: ignore[attr-defined]

    keys = api.handle("GET", "keys", owner="acme")
    confirmed = api.handle(
        "POST",
        hook["id"],
        owner="acme",
        action="confirm",
        body=json.dumps({"hookSecret": handshake.headers["X-Hook-Secret"]}),
    )
    again = api.handle(
        "POST", hook["id"], owner="acme", action="confirm", body=b'{"hookSecret": "x"}'
    )

    assert [k["kid"] for k in keys.body["keys"]] == [hook["id"]]
    assert (confirmed.status, confirmed.body["restHook"]["state"]) == (200, "active")
    assert again.status == 409
    assert api.handle("DELETE", "keys", owner="acme").headers["Allow"] == "GET"


def test_dispatcher_refuses_bad_arguments_naming_them(dispatcher: Dispatcher) -> None:
    """The Python entry points name the argument at fault for wrong types."""
    hook = dispatcher.subscribe("party/created", URL, owner="acme")
    with pytest.raises(ValidationError, match="since"):
        dispatcher.replay(hook.id, owner="acme", since="2026-01-01")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="since"):
        dispatcher.replay(hook.id, owner="acme", since=dispatcher.clock.now().replace(tzinfo=None))
    with pytest.raises(ValidationError, match="limit"):
        dispatcher.replay(
            hook.id, owner="acme", since=dispatcher.clock.now() - timedelta(days=1), limit=10**6
        )
    with pytest.raises(ValidationError, match="events"):
        dispatcher.subscribe_many(("party/created",) * 0, URL, owner="acme")
    with pytest.raises(ValidationError, match="description"):
        dispatcher.update_hook(hook.id, owner="acme", description="\x00")
