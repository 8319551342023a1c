"""Property-based tests: no request body makes the subscription API raise or lie."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from resthooks import CAPSULE_EVENTS, Dispatcher
from resthooks.api import ApiResponse, SubscriptionAPI
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock, RecordingTransport

CREATE_STATUSES = {200, 201, 400, 422}

# Text with the characters that break naive code: controls, lone surrogates, whitespace.
nasty_text = st.text(
    st.characters(codec=None, exclude_categories=()) | st.sampled_from("\x00\n\t #/\ud800\udfff"),
    max_size=40,
)
huge_text = st.integers(min_value=2_000, max_value=200_000).map(lambda n: "a" * n)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | nasty_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(nasty_text, children, max_size=4)
    ),
    max_leaves=12,
)

# Few valid values, drawn often, so that creates succeed and repeat (201, then 200).
good_urls = st.sampled_from(["https://example.com/hooks", "http://example.com:8080/a?b=c"])
good_events = st.sampled_from(["party/created", "task/completed"])
urls = st.one_of(
    good_urls,
    good_urls,
    good_urls,
    st.sampled_from(
        [
            "https://example.com/hooks#frag",
            "ftp://example.com/",
            "https://",
            "https://exa mple.com/",
            "https://example.com/\x00",
            "https://example.com/\ud800",
            "http://[::1",
            "https://example.com:99999/",
        ]
    ),
    st.builds(lambda path: "https://example.com/" + path, nasty_text),
    st.builds(lambda n: "https://example.com/" + "p" * n, st.integers(2000, 2100)),
    huge_text,
    json_values,
)
events = st.one_of(
    good_events, good_events, st.sampled_from(sorted(CAPSULE_EVENTS)), nasty_text, json_values
)
descriptions = st.one_of(
    st.none(), nasty_text, st.builds(lambda n: "d" * n, st.integers(250, 260)), json_values
)


@st.composite
def hook_fields(draw: st.DrawFn) -> dict[Any, Any]:
    fields: dict[Any, Any] = {}
    for key, strategy in (("targetUrl", urls), ("event", events), ("description", descriptions)):
        if draw(st.booleans()) or (key != "description" and draw(st.integers(0, 9)) > 0):
            fields[key] = draw(strategy)
    fields.update(draw(st.dictionaries(nasty_text, json_values, max_size=2)))
    return fields


documents = st.one_of(
    hook_fields().map(lambda fields: {"restHook": fields}),
    hook_fields().map(lambda fields: {"restHook": fields}),
    json_values,
    st.builds(
        lambda fields, extra: {"restHook": fields, **extra},
        json_values,
        json_values.filter(lambda v: isinstance(v, dict)),
    ),
)


def _as_json_bytes(document: object) -> bytes:
    # ensure_ascii keeps lone surrogates as \ud800 escapes: valid JSON text, decoded back
    # into a surrogate by the parser.
    return json.dumps(document).encode("utf-8")


likely_good = st.fixed_dictionaries(
    {
        "restHook": st.fixed_dictionaries(
            {"targetUrl": good_urls, "event": good_events},
            optional={"description": st.none() | st.text(max_size=20) | nasty_text},
        )
    }
)
bodies = st.one_of(
    likely_good,
    likely_good.map(_as_json_bytes),
    documents,
    documents.map(json.dumps),
    documents.map(_as_json_bytes),
    st.binary(max_size=200),
    documents.map(_as_json_bytes).map(lambda b: b[: len(b) // 2] + b"\xff\xc3" + b[len(b) // 2 :]),
    st.builds(lambda n: b"[" * n, st.integers(1, 200_000)),
    st.builds(
        lambda n: b'{"restHook": {"targetUrl": "' + b"x" * n + b'"}}', st.integers(0, 500_000)
    ),
)


def _check_answer(answer: ApiResponse) -> None:
    assert isinstance(answer, ApiResponse)
    assert answer.status in CREATE_STATUSES
    assert answer.body is not None
    # Every answer is sendable: valid UTF-8 JSON that says what the body says.
    assert json.loads(answer.content.decode("utf-8")) == answer.body
    if answer.status == 400:
        assert isinstance(answer.body["message"], str)
    if answer.status == 422:
        assert answer.body["errors"]
        for error in answer.body["errors"]:
            assert error["resource"] == "restHook"
            assert error["field"] in ("targetUrl", "event", "description", None)
    if answer.status in (200, 201):
        assert set(answer.body) == {"restHook"}
        assert ("secret" in answer.body["restHook"]) == (answer.status == 201)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(bodies, min_size=1, max_size=8))
def test_create_answers_an_allowed_status_and_stores_exactly_the_201s(
    requests: list[object],
) -> None:
    """For any bodies, create answers 200/201/400/422 and the store holds exactly the 201s."""
    store = MemoryStore()
    api = SubscriptionAPI(
        Dispatcher(
            store, clock=FakeClock(), transport=RecordingTransport(), max_hooks_per_owner=None
        )
    )
    created: set[str] = set()

    for body in requests:
        answer = api.create(body, owner="acme")
        _check_answer(answer)
        event(f"status {answer.status}")
        assert answer.body is not None
        if answer.status == 201:
            created.add(answer.body["restHook"]["id"])
        elif answer.status == 200:
            assert answer.body["restHook"]["id"] in created

    assert {hook.id for hook in store.list_hooks()} == created
    listed = api.list(owner="acme")
    assert listed.body is not None
    assert {doc["id"] for doc in listed.body["restHooks"]} == created


@settings(max_examples=60, deadline=None)
@given(st.lists(hook_fields().map(lambda fields: {"restHook": fields}), max_size=12))
def test_the_cap_holds_for_any_sequence_of_creates(requests: list[object]) -> None:
    """With a cap of 3, no sequence of creates stores more than 3 hooks, and 422s store none."""
    store = MemoryStore()
    api = SubscriptionAPI(Dispatcher(store, clock=FakeClock(), max_hooks_per_owner=3))
    created: set[str] = set()

    for body in requests:
        answer = api.create(body, owner="acme")
        _check_answer(answer)
        assert answer.body is not None
        if answer.status == 201:
            created.add(answer.body["restHook"]["id"])

    assert {hook.id for hook in store.list_hooks()} == created
    assert len(created) <= 3


@settings(max_examples=200, deadline=None)
@given(hook_id=nasty_text | huge_text)
def test_show_and_delete_of_any_unknown_id_answer_404(hook_id: str) -> None:
    """show and delete answer 404 for any id string that is not one of the owner's hooks."""
    api = SubscriptionAPI(Dispatcher(MemoryStore(), clock=FakeClock()))

    assert api.show(hook_id, owner="acme").status == 404
    assert api.delete(hook_id, owner="acme").status == 404


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    method=st.one_of(st.sampled_from(["GET", "POST", "DELETE", "PUT", "get", "HEAD"]), nasty_text),
    hook_id=st.one_of(st.none(), nasty_text, huge_text, json_values),
    owner=st.one_of(st.none(), st.sampled_from(["acme", "a" * 300]), nasty_text, json_values),
    body=st.one_of(st.binary(max_size=60), nasty_text, json_values),
)
def test_handle_answers_every_request_in_json(
    method: str, hook_id: Any, owner: Any, body: Any
) -> None:
    """SubscriptionAPI.handle, what the framework integrations call, never raises and always
    answers JSON with a status the documentation lists, whatever the request and owner."""
    api = SubscriptionAPI(Dispatcher(MemoryStore(), clock=FakeClock()))
    answer = api.handle(method, hook_id, body=body, owner=owner)
    assert answer.status in {200, 201, 204, 400, 401, 404, 405, 422}
    if answer.status != 204:
        assert answer.headers["Content-Type"] == "application/json"
        assert isinstance(json.loads(answer.content), dict)
    if owner is None and answer.status != 405:
        assert answer.status == 401


ACTIONS = st.one_of(
    st.sampled_from(
        [
            "confirm",
            "rotate-secret",
            "ping",
            "replay",
            "deliveries",
            "attempts",
            "deliveries/msg_x",
            "deliveries/msg_x/redeliver",
            "/deliveries/",
        ]
    ),
    nasty_text,
    st.none(),
    json_values,
)
OWNER_STATUSES = {200, 201, 202, 204, 400, 401, 404, 405, 409, 422}


def _seeded_api() -> tuple[SubscriptionAPI, MemoryStore, str]:
    store = MemoryStore()
    dispatcher = Dispatcher(store, clock=FakeClock(), transport=RecordingTransport())
    api = SubscriptionAPI(dispatcher)
    hook = dispatcher.subscribe("party/created", "https://example.com/hooks", owner="acme")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    return api, store, hook.id


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    method=st.one_of(
        st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD"]), nasty_text
    ),
    known=st.booleans(),
    hook_id=st.one_of(nasty_text, huge_text, st.just("keys")),
    action=ACTIONS,
    body=st.one_of(
        st.binary(max_size=60),
        nasty_text,
        json_values,
        st.fixed_dictionaries({"restHook": st.dictionaries(nasty_text, json_values, max_size=3)}),
        st.fixed_dictionaries({"since": nasty_text | json_values}),
        st.fixed_dictionaries({"secret": nasty_text | json_values}),
    ),
    query=st.one_of(st.none(), st.dictionaries(nasty_text, nasty_text, max_size=3)),
)
def test_the_owners_verbs_answer_every_request_in_json(
    method: str, known: bool, hook_id: str, action: Any, body: Any, query: Any
) -> None:
    """handle() with the owners' paths (any action, body, query, on a real hook or not)
    never raises, answers JSON with a documented status, and a 4xx changes nothing."""
    api, store, real = _seeded_api()
    before = _state(store)

    answer = api.handle(
        method, real if known else hook_id, body=body, owner="acme", action=action, query=query
    )

    event(f"status {answer.status}")
    assert answer.status in OWNER_STATUSES, answer.body
    if answer.status != 204:
        assert answer.headers["Content-Type"] == "application/json"
        assert isinstance(json.loads(answer.content), dict)
    if answer.status >= 400:
        assert _state(store) == before


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
    action=ACTIONS,
    body=st.one_of(
        st.just(b""),
        st.just({"restHook": {"description": "mine now"}}),
        st.just({"since": "2020-01-01T00:00:00Z"}),
        json_values,
    ),
)
def test_another_owner_never_reaches_a_hook(method: str, action: Any, body: Any) -> None:
    """Whatever globex sends to acme's hook, on any path, it learns nothing (never a 2xx;
    a malformed body is refused before any lookup, as for an unknown id) and changes nothing;
    no request is sent (no ping)."""
    api, store, real = _seeded_api()
    before = _state(store)

    answer = api.handle(method, real, body=body, owner="globex", action=action)

    assert answer.status in {400, 404, 405, 422}, answer.body
    assert _state(store) == before
    assert api.dispatcher.transport.requests == []  # type: ignore[attr-defined]


def _state(store: MemoryStore) -> object:
    return (
        [
            (h.id, h.event, h.target_url, h.description, h.secret, h.updated_at)
            for h in store.list_hooks()
        ],
        [(d.id, d.state, d.attempts) for d in store.list_deliveries(limit=100)],
    )


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    verb=st.sampled_from(["update", "rotate_secret", "replay", "ping"]),
    fields=st.dictionaries(nasty_text | huge_text, json_values, max_size=4),
    wrapped=st.booleans(),
)
def test_any_json_object_to_the_owners_verbs_answers_json(
    verb: str, fields: dict[str, Any], wrapped: bool
) -> None:
    """Any object (any keys: NUL, lone surrogates, huge; any values) sent to PATCH,
    rotate-secret, replay or ping answers valid UTF-8 JSON with a documented status; a 4xx
    changes nothing."""
    api, store, real = _seeded_api()
    before = _state(store)
    body = {"restHook": fields} if wrapped else fields

    answer = getattr(api, verb)(real, body, owner="acme")

    assert answer.status in OWNER_STATUSES, answer.body
    assert isinstance(json.loads(answer.content.decode("utf-8")), dict)
    if answer.status >= 400:
        assert _state(store) == before
