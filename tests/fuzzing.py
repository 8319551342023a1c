"""Fuzzing every public entry point: shared by the tests of each store (not a test module).

Each example calls one entry point of the Dispatcher or the subscription API with values
drawn from a mix of valid ones (ids and owners that exist) and the ones that break naive
code (lone surrogates, NUL, huge integers, non-finite floats, wrong types). A call may
succeed; if it fails, it must raise a resthooks error (the API: answer, never raise, except
for the host's own arguments), and a refused call must leave the store as it was.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from resthooks import Batching, Dispatcher, ResthooksError
from resthooks.api import SubscriptionAPI
from resthooks.stores import Store

OWNERS = ("acme", "globex")
EVENTS = ("party/created", "task/completed")

nasty_text = st.one_of(
    st.sampled_from(["", "\x00", "\udc80", "\ud800x", "a\x00b", "\xff", "hook_\udcff", " "]),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=12),
    st.integers(250, 300).map(lambda n: "x" * n),
)
nasty_numbers = st.one_of(
    st.sampled_from([2**63, -(2**63), 2**64, 10**30, -1, 0, 1e300, -1e300, math.inf, math.nan]),
    st.integers(),
    st.floats(),
    st.just(timedelta.max),
    st.just(timedelta.min),
)
wrong_types = st.sampled_from([None, b"bytes", ["list"], {"a": 1}, True, object()])
anything = st.one_of(nasty_text, nasty_numbers, wrong_types)
batchings = st.builds(
    Batching,
    max_wait=st.floats(0.01, 10),
    max_entities=st.integers(1, 50),
    max_bytes=st.integers(64, 300 * 1024),  # past limits.payload_bytes too
)


def snapshot(store: Store) -> tuple[Any, ...]:
    """What a refused call must not change."""
    stats = store.stats()
    return (
        stats.hooks,
        stats.deliveries,
        stats.oldest_pending_at,
        [
            (h.id, h.state, h.secret, h.previous_secret, h.description, h.updated_at)
            for h in store.list_hooks()
        ],
        [
            (d.id, d.state, d.attempts, d.next_attempt_at)
            for d in store.list_deliveries(limit=10**6)
        ],
    )


class Existing:
    """The ``index``-th existing hook or delivery, looked up when the call is made (the
    strategy must not depend on the store's state)."""

    def __init__(self, kind: str, index: int) -> None:
        self.kind = kind
        self.index = index

    def resolve(self, store: Store) -> str:
        if self.kind == "hook":
            ids = [h.id for h in store.list_hooks()] or ["hook_none"]
        else:
            ids = [d.id for d in store.list_deliveries(limit=50)] or ["msg_none"]
        return ids[self.index % len(ids)]

    def __repr__(self) -> str:
        return f"Existing({self.kind!r}, {self.index})"


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """One call: the entry point's name and its keyword arguments."""

    def either(good: st.SearchStrategy[Any]) -> Any:
        return draw(st.one_of(good, good, anything))

    owner = st.sampled_from(OWNERS)
    event = st.sampled_from(EVENTS)
    hook_id = st.builds(Existing, st.just("hook"), st.integers(0, 20))
    delivery_id = st.builds(Existing, st.just("delivery"), st.integers(0, 50))
    name = draw(
        st.sampled_from(
            [
                "subscribe",
                "unsubscribe",
                "get_hook",
                "hooks",
                "rotate_secret",
                "revive",
                "emit",
                "emit_many",
                "deliveries",
                "get_delivery",
                "attempts",
                "redeliver",
                "stats",
                "purge",
                "subscribe_many",
                "update_hook",
                "replay",
                "ping",
                "api.create",
                "api.list",
                "api.show",
                "api.delete",
                "api.update",
                "api.rotate_secret",
                "api.deliveries",
                "api.delivery",
                "api.attempts",
                "api.redeliver",
                "api.replay",
                "api.ping",
            ]
        )
    )
    args: dict[str, Any]
    if name == "subscribe":
        args = {
            "event": either(event),
            "target_url": either(st.sampled_from(["https://example.com/h", "https://a.example/"])),
            "owner": either(owner),
            "description": either(st.just("")),
        }
        if draw(st.booleans()):
            args["secret"] = draw(anything)
        if draw(st.booleans()):
            args["batching"] = either(batchings)
    elif name in ("unsubscribe", "get_hook", "rotate_secret", "revive"):
        args = {"hook_id": either(hook_id), "owner": either(owner)}
        if name == "rotate_secret" and draw(st.booleans()):
            args["secret"] = draw(anything)
    elif name == "hooks":
        args = {"owner": either(owner)}
        if draw(st.booleans()):
            args["event"] = either(event)
        if draw(st.booleans()):
            args["state"] = either(st.sampled_from(["active", "dead"]))
    elif name == "emit":
        args = {
            "event": either(event),
            "payload": either(st.just({"id": 1})),
            "owner": either(owner),
        }
        if draw(st.booleans()):
            args["ordering_key"] = either(st.sampled_from(["party:1", "party:2", None]))
    elif name == "emit_many":
        item = st.one_of(
            st.tuples(
                st.one_of(event, anything),
                st.one_of(st.just({"id": 1}), anything),
                st.one_of(owner, anything),
            ),
            st.tuples(event, st.just({"id": 2}), owner, st.one_of(st.just("party:1"), anything)),
            anything,
        )
        args = {"events": either(st.lists(item, max_size=4))}
    elif name == "deliveries":
        args = {"owner": either(owner)}
        for key, good in (
            ("hook_id", hook_id),
            ("state", st.sampled_from(["pending", "delivered"])),
            ("limit", st.integers(0, 100)),
        ):
            if draw(st.booleans()):
                args[key] = either(good)
    elif name in ("get_delivery", "attempts", "redeliver"):
        args = {"delivery_id": either(delivery_id), "owner": either(owner)}
    elif name == "stats":
        args = {"owner": either(owner)} if draw(st.booleans()) else {}
    elif name == "purge":
        args = {"older_than": either(st.floats(0, 1e6))}
    elif name == "api.create":
        args = {
            "body": {
                "restHook": {
                    "event": either(event),
                    "targetUrl": either(st.just("https://example.com/api")),
                    "description": either(st.just("d")),
                }
            },
            "owner": either(owner),
        }
    elif name == "subscribe_many":
        args = {
            "events": either(st.lists(st.sampled_from([*EVENTS, "party/*", "*"]), max_size=4)),
            "target_url": either(st.just("https://example.com/many")),
            "owner": either(owner),
        }
        if draw(st.booleans()):
            args["secret"] = draw(anything)
        if draw(st.booleans()):
            args["batching"] = either(batchings)
    elif name == "update_hook":
        args = {"hook_id": either(hook_id), "owner": either(owner)}
        for key, good in (
            ("event", event),
            ("target_url", st.sampled_from(["https://example.com/acme", "https://b.example/"])),
            ("description", st.just("changed")),
        ):
            if draw(st.booleans()):
                args[key] = either(good)
    elif name == "replay":
        args = {
            "hook_id": either(hook_id),
            "owner": either(owner),
            "since": either(st.just(datetime(2020, 1, 1, tzinfo=timezone.utc))),
        }
        if draw(st.booleans()):
            args["until"] = draw(anything)
        if draw(st.booleans()):
            args["limit"] = either(st.integers(1, 10))
    elif name == "ping":
        args = {"hook_id": either(hook_id), "owner": either(owner)}
    elif name in ("api.update", "api.rotate_secret", "api.replay", "api.ping"):
        fields = {
            "api.update": {"restHook": {"description": either(st.just("d"))}},
            "api.rotate_secret": {"secret": draw(anything)} if draw(st.booleans()) else {},
            "api.replay": {
                "since": either(st.just("2020-01-01T00:00:00Z")),
                "limit": draw(anything),
            },
            "api.ping": {},
        }[name]
        body = draw(st.one_of(st.just(fields), st.binary(max_size=30), nasty_text, wrong_types))
        args = {"hook_id": either(hook_id), "body": body, "owner": either(owner)}
    elif name in ("api.deliveries", "api.attempts"):
        args = {"hook_id": either(hook_id), "owner": either(owner)}
        if draw(st.booleans()):
            args["query"] = {
                draw(st.sampled_from(["limit", "state", "page"])): draw(
                    st.one_of(st.sampled_from(["5", "failed", "0"]), nasty_text)
                )
            }
    elif name in ("api.delivery", "api.redeliver"):
        args = {
            "hook_id": either(hook_id),
            "delivery_id": either(delivery_id),
            "owner": either(owner),
        }
    elif name == "api.list":
        args = {"owner": either(owner)}
    else:
        args = {"hook_id": either(hook_id), "owner": either(owner)}
    return name, args


def call(dispatcher: Dispatcher, name: str, args: dict[str, Any]) -> None:
    """Make the call; check what it may raise and that a refusal changed nothing."""
    args = {
        k: v.resolve(dispatcher.store) if isinstance(v, Existing) else v for k, v in args.items()
    }
    before = snapshot(dispatcher.store)
    api = SubscriptionAPI(dispatcher)
    target = getattr(api, name[4:]) if name.startswith("api.") else getattr(dispatcher, name)
    try:
        answer = target(**args)
    except ResthooksError:
        after = snapshot(dispatcher.store)
        assert before == after, f"{name}({args!r}) was refused but changed the store"
        return
    if name.startswith("api."):
        status = answer.status
        assert status < 500, f"{name}({args!r}) answered {status}"
        if status >= 400:
            assert before == snapshot(dispatcher.store), f"{name} answered {status} and wrote"


def seed(dispatcher: Dispatcher) -> None:
    """Some hooks and deliveries to aim at, in every state a call can meet."""
    for owner in OWNERS:
        for event in EVENTS:
            dispatcher.subscribe(event, f"https://example.com/{owner}", owner=owner)
            dispatcher.emit(event, {"id": 1}, owner=owner)
    # A batched hook, so that emits meet an open batch too.
    dispatcher.subscribe(
        EVENTS[0], "https://batched.example/h", owner=OWNERS[0], batching=Batching(max_wait=5)
    )
    dispatcher.emit(EVENTS[0], {"id": 2}, owner=OWNERS[0])


def call_async(dispatcher: Dispatcher, name: str, args: dict[str, Any]) -> None:
    """The same call through the asyncio face (AsyncDispatcher, AsyncSubscriptionAPI)."""
    import asyncio  # noqa: PLC0415

    from resthooks.aio import AsyncDispatcher, AsyncSubscriptionAPI  # noqa: PLC0415

    args = {
        k: v.resolve(dispatcher.store) if isinstance(v, Existing) else v for k, v in args.items()
    }
    before = snapshot(dispatcher.store)
    face = AsyncDispatcher(dispatcher)
    if name.startswith("api."):
        target = getattr(AsyncSubscriptionAPI(face), name[4:])
    else:
        target = getattr(face, name)
    try:
        answer = asyncio.run(target(**args))
    except ResthooksError:
        assert before == snapshot(dispatcher.store), f"async {name}({args!r}) refused but wrote"
        return
    if name.startswith("api."):
        assert answer.status < 500, f"async {name}({args!r}) answered {answer.status}"
        if answer.status >= 400:
            assert before == snapshot(dispatcher.store), f"async {name} answered and wrote"
