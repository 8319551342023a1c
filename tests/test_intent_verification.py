"""REST Hooks intent verification: a hook receives nothing until its target confirms it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from resthooks import (
    ConfigurationError,
    Dispatcher,
    HookNotFound,
    HookState,
    InvalidStateError,
    TransportError,
    ValidationError,
    verify,
)
from resthooks.api import SubscriptionAPI
from resthooks.stores import MemoryStore, SQLiteStore, Store
from resthooks.testing import FakeClock, RecordingTransport
from resthooks.transports import Request, Response

URL = "https://hooks.example.com/in"


def _echo(request: Request) -> Response:
    """A target that confirms: 200, echoing X-Hook-Secret."""
    if "X-Hook-Secret" in request.headers:
        return Response(status=200, headers={"x-hook-secret": request.headers["X-Hook-Secret"]})
    return Response(status=204)


@pytest.fixture(name="store", params=["memory", "sqlite"])
def _store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    store: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "h.db")
    yield store
    store.close()


def _dispatcher(store: Store, transport: RecordingTransport, **options: object) -> Dispatcher:
    return Dispatcher(store, clock=FakeClock(), transport=transport, verify_intent=True, **options)  # type: ignore[arg-type]


def test_off_by_default_no_handshake_is_sent() -> None:
    """Without verify_intent a hook is active at once and its target hears nothing."""
    transport = RecordingTransport()
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=transport)
    hook = dispatcher.subscribe("party/created", URL, owner="acme")
    assert hook.state is HookState.ACTIVE
    assert transport.requests == []


def test_a_target_that_echoes_is_confirmed_at_once(store: Store) -> None:
    """The handshake is a signed POST with an empty body and X-Hook-Secret; echoing it in a
    2xx answer makes the hook active before subscribe returns."""
    transport = RecordingTransport(_echo)
    dispatcher = _dispatcher(store, transport)
    hook = dispatcher.subscribe("party/created", URL, owner="acme")
    assert hook.state is HookState.ACTIVE
    assert (hook.confirm_secret, hook.confirm_by) == (None, None)
    (handshake,) = transport.requests
    assert (handshake.method, handshake.url, handshake.body) == ("POST", URL, b"")
    assert len(handshake.headers["X-Hook-Secret"]) >= 32
    assert hook.secret is not None
    verify(b"", handshake.headers, hook.secret, now=dispatcher.clock.now())
    assert handshake.headers["X-Hook-Secret"] not in repr(handshake)
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    assert dispatcher.deliver_due().delivered == 1


@pytest.mark.parametrize(
    "answer",
    [
        Response(status=404),
        Response(status=200),
        Response(status=200, headers={"x-hook-secret": "something else"}),
        Response(status=500, headers={"x-hook-secret": "echoed but failing"}),
        TransportError("timeout", "no answer"),
        RuntimeError("a broken custom transport"),
    ],
    ids=["404", "no echo", "wrong echo", "500", "timeout", "crash"],
)
def test_without_an_echo_the_hook_waits_and_receives_nothing(
    store: Store, answer: Response | BaseException
) -> None:
    """Anything but a 2xx echoing the secret leaves the hook unconfirmed: listed as such, with
    confirmBy, and emits do not reach it."""
    transport = RecordingTransport(script=[answer])
    dispatcher = _dispatcher(store, transport)
    api = SubscriptionAPI(dispatcher)
    created = api.create({"restHook": {"targetUrl": URL, "event": "party/created"}}, owner="a")
    assert created.status == 201
    assert created.body is not None
    document = created.body["restHook"]
    assert document["state"] == "unconfirmed"
    assert document["confirmBy"] == "2026-01-02T00:00:00Z"  # FakeClock's start + 24 h
    assert "X-Hook-Secret" not in created.content.decode()
    assert transport.requests[0].headers["X-Hook-Secret"] not in created.content.decode()
    assert dispatcher.emit("party/created", {"id": 1}, owner="a") == []
    assert dispatcher.stats(owner="a").hooks["unconfirmed"] == 1


def test_confirming_later_with_the_secret(store: Store) -> None:
    """The target passes the secret back through the API: the hook turns active, and
    deliveries flow; a wrong secret is a 422 on hookSecret that changes nothing."""
    transport = RecordingTransport(script=[202, 204])
    dispatcher = _dispatcher(store, transport)
    api = SubscriptionAPI(dispatcher)
    hook = dispatcher.subscribe("party/created", URL, owner="acme")
    secret = transport.requests[0].headers["X-Hook-Secret"]
    wrong = api.confirm(hook.id, {"hookSecret": secret + "x"}, owner="acme")
    assert wrong.status == 422
    assert wrong.body is not None
    assert [e["field"] for e in wrong.body["errors"]] == ["hookSecret"]
    assert dispatcher.get_hook(hook.id, owner="acme").state is HookState.UNCONFIRMED
    assert api.confirm(hook.id, b"not json", owner="acme").status == 400
    assert api.confirm(hook.id, {"hookSecret": 1}, owner="acme").status == 400
    assert api.confirm(hook.id, {"hookSecret": secret}, owner="other").status == 404
    confirmed = api.confirm(hook.id, {"hookSecret": secret}, owner="acme")
    assert confirmed.status == 200
    assert confirmed.body is not None
    assert confirmed.body["restHook"]["state"] == "active"
    assert "confirmBy" not in confirmed.body["restHook"]
    again = api.confirm(hook.id, {"hookSecret": secret}, owner="acme")
    assert again.status == 409
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    assert dispatcher.deliver_due().delivered == 1


def test_unconfirmed_hooks_expire(store: Store) -> None:
    """Past confirm_within, confirming fails (409) and removes the hook; expire_unconfirmed and
    purge remove the others."""
    transport = RecordingTransport(script=[404])
    dispatcher = _dispatcher(store, transport, confirm_within=timedelta(minutes=10))
    clock = dispatcher.clock
    assert isinstance(clock, FakeClock)
    late = dispatcher.subscribe("party/created", URL, owner="acme")
    other = dispatcher.subscribe("party/created", URL + "/2", owner="acme")
    third = dispatcher.subscribe("party/created", URL + "/3", owner="acme")
    secret = transport.requests[0].headers["X-Hook-Secret"]
    clock.advance(timedelta(minutes=9))
    assert dispatcher.expire_unconfirmed() == 0
    clock.advance(timedelta(minutes=1))
    answer = SubscriptionAPI(dispatcher).confirm(late.id, {"hookSecret": secret}, owner="acme")
    assert answer.status == 409
    with pytest.raises(HookNotFound):
        dispatcher.get_hook(late.id, owner="acme")
    assert dispatcher.expire_unconfirmed() == 2
    assert dispatcher.hooks(owner="acme") == []
    fresh = dispatcher.subscribe("party/created", URL, owner="acme")
    clock.advance(timedelta(hours=1))
    dispatcher.purge()
    with pytest.raises(HookNotFound):
        dispatcher.get_hook(fresh.id, owner="acme")
    assert {other.id, third.id}.isdisjoint(h.id for h in dispatcher.hooks(owner="acme"))


def test_subscribing_again_resends_the_handshake(store: Store) -> None:
    """An unconfirmed hook subscribed again gets the handshake again (same secret), and an
    echo then confirms it; the owner's cap counts unconfirmed hooks."""
    transport = RecordingTransport(script=[Response(status=503)])
    dispatcher = _dispatcher(store, transport, max_hooks_per_owner=1)
    first = dispatcher.subscribe("party/created", URL, owner="acme")
    assert first.state is HookState.UNCONFIRMED
    with pytest.raises(ValidationError):  # HookLimitReached: the unconfirmed hook counts
        dispatcher.subscribe("party/created", URL + "/other", owner="acme")
    transport.handler = _echo
    again = dispatcher.subscribe("party/created", URL, owner="acme")
    assert again.id == first.id
    assert again.state is HookState.ACTIVE
    sent = [r.headers["X-Hook-Secret"] for r in transport.requests if "X-Hook-Secret" in r.headers]
    assert len(sent) == 2
    assert sent[0] == sent[1]


def test_errors_of_confirm_hook(store: Store) -> None:
    """confirm_hook names what is wrong and changes nothing."""
    transport = RecordingTransport(_echo)
    dispatcher = _dispatcher(store, transport)
    active = dispatcher.subscribe("party/created", URL, owner="acme")
    with pytest.raises(InvalidStateError):
        dispatcher.confirm_hook(active.id, "whatever", owner="acme")
    with pytest.raises(HookNotFound):
        dispatcher.confirm_hook("hook_nope", "whatever", owner="acme")
    transport.handler = None
    waiting = dispatcher.subscribe("party/created", URL + "/w", owner="acme")
    with pytest.raises(ValidationError) as info:
        dispatcher.confirm_hook(waiting.id, None, owner="acme")  # type: ignore[arg-type]
    assert info.value.field == "hook_secret"
    with pytest.raises(ValidationError):
        dispatcher.confirm_hook(waiting.id, "\ud800", owner="acme")
    assert dispatcher.get_hook(waiting.id, owner="acme").state is HookState.UNCONFIRMED


@pytest.mark.parametrize(
    "options",
    [{"verify_intent": "yes"}, {"confirm_within": 0}, {"confirm_within": float("inf")},
     {"confirm_within": "1h"}, {"confirm_within": timedelta(seconds=-1)}],
)  # fmt: skip
def test_bad_options_are_configuration_errors(options: dict[str, object]) -> None:
    """verify_intent is a bool; confirm_within a positive, finite duration."""
    with pytest.raises(ConfigurationError):
        Dispatcher(MemoryStore(), **options)  # type: ignore[arg-type]


def test_the_async_face_confirms_and_publishes_keys() -> None:
    """AsyncDispatcher and AsyncSubscriptionAPI offer confirm, expire and public keys too."""
    import asyncio  # noqa: PLC0415

    from resthooks.aio import AsyncDispatcher, AsyncSubscriptionAPI  # noqa: PLC0415

    transport = RecordingTransport(script=[404])
    dispatcher = Dispatcher(
        MemoryStore(),
        clock=FakeClock(),
        transport=transport,
        verify_intent=True,
        signature_versions={"v1", "v1a"},
    )

    async def main() -> None:
        face = AsyncDispatcher(dispatcher)
        api = AsyncSubscriptionAPI(face)
        hook = await face.subscribe("party/created", URL, owner="acme")
        assert hook.state is HookState.UNCONFIRMED
        secret = transport.requests[0].headers["X-Hook-Secret"]
        answer = await api.confirm(hook.id, {"hookSecret": secret}, owner="acme")
        assert answer.status == 200
        assert await face.expire_unconfirmed() == 0
        assert list(await face.public_keys(owner="acme")) == [hook.id]
        keys = await api.public_keys(owner="acme")
        assert keys.body is not None
        assert [k["kid"] for k in keys.body["keys"]] == [hook.id]
        other = await face.subscribe("party/created", URL + "/2", owner="acme")
        second = transport.requests[-1].headers["X-Hook-Secret"]
        confirmed = await face.confirm_hook(other.id, second, owner="acme")
        assert confirmed.state is HookState.ACTIVE

    asyncio.run(main())
