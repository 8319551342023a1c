"""The subscription API answers in Capsule's shapes and statuses."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from dead_hooks import run_out_of_retries
from resthooks import Dispatcher, Hook, StoreError, ValidationError
from resthooks.api import ApiResponse, SubscriptionAPI, hook_document
from resthooks.errors import ConfigurationError
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock, RecordingTransport

ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def _body(**fields: Any) -> dict[str, Any]:
    return {"restHook": fields}


GOOD = _body(
    targetUrl="https://example.com/hooks",
    event="party/created",
    description="An epic webhook that will change the world",
)


@pytest.fixture(name="api", params=["sync", "async"])
def _api(
    request: pytest.FixtureRequest, make_face: Callable[[str, Any], Any], dispatcher: Dispatcher
) -> SubscriptionAPI:
    """The contract tests run against both faces: SubscriptionAPI and AsyncSubscriptionAPI."""
    face: SubscriptionAPI = make_face(request.param, SubscriptionAPI(dispatcher))
    return face


def test_create_answers_201_with_capsules_document_and_location(
    api: SubscriptionAPI, clock: FakeClock
) -> None:
    """create stores the hook and answers 201, the restHook document and a Location."""
    clock.advance(1.5)

    answer = api.create(json.dumps(GOOD).encode(), owner="acme")

    assert answer.status == 201
    assert answer.body is not None
    doc = answer.body["restHook"]
    assert {
        "id",
        "event",
        "targetUrl",
        "description",
        "state",
        "createdAt",
        "updatedAt",
        "secret",
    } == set(doc)
    assert doc["event"] == "party/created"
    assert doc["targetUrl"] == "https://example.com/hooks"
    assert GOOD["restHook"]["description"] == doc["description"]
    assert doc["state"] == "active"
    assert "2026-01-01T00:00:01.500000Z" == doc["createdAt"] == doc["updatedAt"]
    assert doc["secret"].startswith("whsec_")
    assert f"/api/v2/resthooks/{doc['id']}" == answer.headers["Location"]
    assert answer.headers["Content-Type"] == "application/json"
    assert json.loads(answer.content) == answer.body


def test_create_accepts_str_and_parsed_bodies(api: SubscriptionAPI) -> None:
    """The body may be raw bytes, JSON text or an already-parsed dict."""
    text = json.dumps(_body(targetUrl="https://e.com/1", event="task/created"))
    raw = bytearray(json.dumps(_body(targetUrl="https://e.com/2", event="task/created")).encode())
    parsed = _body(targetUrl="https://e.com/3", event="task/created")

    statuses = [api.create(body, owner="a") for body in (text, raw, parsed)]

    assert [s.status for s in statuses] == [201, 201, 201]


def test_description_is_optional_and_null_means_empty(api: SubscriptionAPI) -> None:
    """A missing or null description is stored as the empty string."""
    one = api.create(_body(targetUrl="https://e.com/1", event="party/created"), owner="a")
    two = api.create(
        _body(targetUrl="https://e.com/2", event="party/created", description=None), owner="a"
    )

    assert one.body is not None
    assert two.body is not None
    assert [one.body["restHook"]["description"], two.body["restHook"]["description"]] == ["", ""]


def test_base_path_builds_location(dispatcher: Dispatcher) -> None:
    """Location is {base_path}/{id}, whatever trailing slash base_path has."""
    api = SubscriptionAPI(dispatcher, base_path="/hooks/")

    answer = api.create(GOOD, owner="acme")

    assert answer.body is not None
    assert "/hooks/" + answer.body["restHook"]["id"] == answer.headers["Location"]


def test_base_path_must_be_a_path(dispatcher: Dispatcher) -> None:
    """A base_path without a leading slash is a configuration error."""
    with pytest.raises(ConfigurationError):
        SubscriptionAPI(dispatcher, base_path="api/hooks")


def test_resubscribing_answers_200_with_existing_hook_and_no_secret(
    api: SubscriptionAPI, store: MemoryStore
) -> None:
    """The same (owner, event, targetUrl) again answers 200 with the existing hook, no secret."""
    first = api.create(GOOD, owner="acme")
    again = api.create(
        _body(targetUrl=GOOD["restHook"]["targetUrl"], event="party/created", description="x"),
        owner="acme",
    )

    assert (first.status, again.status) == (201, 200)
    assert first.body is not None
    assert again.body is not None
    assert first.body["restHook"]["id"] == again.body["restHook"]["id"]
    assert "secret" not in again.body["restHook"]
    assert "Location" not in again.headers
    assert GOOD["restHook"]["description"] == again.body["restHook"]["description"]
    assert len(store.list_hooks()) == 1


def test_list_and_show_never_include_the_secret(api: SubscriptionAPI) -> None:
    """list and show answer 200 with the owner's hooks, without their secrets."""
    created = api.create(GOOD, owner="acme")
    assert created.body is not None
    hook_id = created.body["restHook"]["id"]
    expected = {k: v for k, v in created.body["restHook"].items() if k != "secret"}

    listed = api.list(owner="acme")
    shown = api.show(hook_id, owner="acme")

    assert (200, {"restHooks": [expected]}) == (listed.status, listed.body)
    assert (200, {"restHook": expected}) == (shown.status, shown.body)


def test_list_is_empty_for_a_new_owner(api: SubscriptionAPI) -> None:
    """An owner without hooks gets an empty list, not a 404."""
    assert api.list(owner="nobody").body == {"restHooks": []}


def test_delete_answers_204_without_body_then_404(api: SubscriptionAPI) -> None:
    """delete removes the hook and answers 204 with no body; a second delete answers 404."""
    created = api.create(GOOD, owner="acme")
    assert created.body is not None
    hook_id = created.body["restHook"]["id"]

    deleted = api.delete(hook_id, owner="acme")
    again = api.delete(hook_id, owner="acme")

    assert (
        deleted.status,
        deleted.body,
        deleted.content,
        dict(deleted.headers),
    ) == (204, None, b"", {})
    assert again.status == 404
    assert api.show(hook_id, owner="acme").status == 404
    assert api.list(owner="acme").body == {"restHooks": []}


def test_other_owners_hooks_do_not_exist(api: SubscriptionAPI, store: MemoryStore) -> None:
    """show and delete of another owner's hook answer 404 and change nothing."""
    created = api.create(GOOD, owner="acme")
    assert created.body is not None
    hook_id = created.body["restHook"]["id"]

    shown = api.show(hook_id, owner="intruder")
    deleted = api.delete(hook_id, owner="intruder")

    assert (shown.status, deleted.status) == (404, 404)
    assert shown.body is not None
    assert hook_id not in shown.body["message"]
    assert api.list(owner="intruder").body == {"restHooks": []}
    assert [hook_id] == [h.id for h in store.list_hooks()]


def test_unknown_id_of_any_size_answers_404(api: SubscriptionAPI) -> None:
    """An unknown id answers 404 with a short message that does not echo the id."""
    answer = api.show("x" * 100_000, owner="acme")

    assert answer.status == 404
    assert len(answer.content) < 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "malformed JSON"),
        (b"", "malformed JSON"),
        ("not json", "malformed JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"restHook": {"targetUrl": "https://e.com/\xc3"}}', "not valid UTF-8"),
        (b'{"restHook": NaN}', "malformed JSON"),
        (b"[" * 100_000, "malformed JSON"),
        (b"1" * 5000, "malformed JSON"),
        (b"[]", "restHook"),
        (b"null", "restHook"),
        (b'"restHook"', "restHook"),
        ({"restHook": []}, "restHook"),
        ({"restHooks": {}}, "restHook"),
        ({"targetUrl": "https://e.com/", "event": "party/created"}, "restHook"),
        (None, "restHook"),
        (42, "restHook"),
        ([GOOD], "restHook"),
    ],
)
def test_malformed_bodies_answer_400(
    api: SubscriptionAPI, store: MemoryStore, body: object, fragment: str
) -> None:
    """A body that is not UTF-8, not JSON, or not {"restHook": {...}} answers 400 with a message."""
    answer = api.create(body, owner="acme")

    assert answer.status == 400
    assert answer.body is not None
    assert fragment in answer.body["message"]
    assert store.list_hooks() == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"event": "party/created"}, "targetUrl"),
        ({"targetUrl": None, "event": "party/created"}, "targetUrl"),
        ({"targetUrl": "https://e.com/"}, "event"),
        ({"targetUrl": "ftp://e.com/", "event": "party/created"}, "targetUrl"),
        ({"targetUrl": "https://e.com/#top", "event": "party/created"}, "targetUrl"),
        ({"targetUrl": 12, "event": "party/created"}, "targetUrl"),
        ({"targetUrl": "https://e.com/" + "a" * 2048, "event": "party/created"}, "targetUrl"),
        ({"targetUrl": "http://127.0.0.1:8000/", "event": "party/created"}, "targetUrl"),
        ({"targetUrl": "http://[::ffff:169.254.169.254]/", "event": "party/created"}, "targetUrl"),
        ({"targetUrl": "https://e.com/", "event": "party/exploded"}, "event"),
        ({"targetUrl": "https://e.com/", "event": ["party/created"]}, "event"),
        (
            {"targetUrl": "https://e.com/", "event": "party/created", "description": 3},
            "description",
        ),
        (
            {"targetUrl": "https://e.com/", "event": "party/created", "description": "d" * 256},
            "description",
        ),
    ],
)
def test_invalid_fields_answer_422_naming_the_wire_field(
    api: SubscriptionAPI, store: MemoryStore, fields: dict[str, Any], field: str
) -> None:
    """An invalid field answers 422 in Capsule's error shape, with the wire field name."""
    answer = api.create({"restHook": fields}, owner="acme")

    assert answer.status == 422
    assert answer.body is not None
    assert answer.body["message"] == "Validation failed"
    [error] = answer.body["errors"]
    assert {"message", "resource", "field"} == set(error)
    assert ("restHook", field) == (error["resource"], error["field"])
    assert error["message"]
    assert store.list_hooks() == []


def test_missing_fields_are_all_reported(api: SubscriptionAPI) -> None:
    """An empty restHook reports both required fields."""
    answer = api.create({"restHook": {}}, owner="acme")

    assert answer.body is not None
    assert [(e["field"], e["message"]) for e in answer.body["errors"]] == [
        ("targetUrl", "is required"),
        ("event", "is required"),
    ]


def test_unknown_event_lists_known_actions(api: SubscriptionAPI) -> None:
    """The 422 for an unknown event tells the client which actions the entity has."""
    answer = api.create(_body(targetUrl="https://e.com/", event="task/deleted"), owner="acme")

    assert answer.body is not None
    assert "created, updated, completed" in answer.body["errors"][0]["message"]


def test_over_the_cap_answers_422(store: MemoryStore, clock: FakeClock) -> None:
    """Past the Dispatcher's per-owner cap, create answers 422 and stores nothing more."""
    api = SubscriptionAPI(Dispatcher(store, clock=clock, max_hooks_per_owner=2))
    answers = [
        api.create(_body(targetUrl=f"https://e.com/{i}", event="party/created"), owner="acme")
        for i in range(3)
    ]

    assert [a.status for a in answers] == [201, 201, 422]
    assert answers[2].body is not None
    [error] = answers[2].body["errors"]
    assert (error["resource"], error["field"]) == ("restHook", None)
    assert "at most 2 hooks" in error["message"]
    assert len(store.list_hooks(owner="acme")) == 2
    assert api.create(GOOD, owner="other").status == 201


def test_dead_hooks_show_state_and_reason(
    api: SubscriptionAPI, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """A hook whose retries ran out is listed as dead, with the reason and when it died."""
    transport = dispatcher.transport
    assert isinstance(transport, RecordingTransport)
    created = api.create(GOOD, owner="acme")
    assert created.body is not None
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    transport.default = 500
    for _ in range(dispatcher.retry.max_attempts):
        dispatcher.deliver_due()
        clock.advance(3600)

    doc = api.list(owner="acme").body
    assert doc is not None
    [hook] = doc["restHooks"]
    assert hook["state"] == "dead"
    assert "HTTP 500" in hook["deadReason"]
    assert ISO_Z.fullmatch(hook["deadAt"])


def test_resubscribing_a_dead_hook_revives_it(
    api: SubscriptionAPI, dispatcher: Dispatcher, store: MemoryStore
) -> None:
    """Subscribing a dead hook's (event, targetUrl) again answers 200 with it active again."""
    created = api.create(GOOD, owner="acme")
    assert created.body is not None
    hook = store.get_hook(created.body["restHook"]["id"])
    assert hook is not None
    run_out_of_retries(dispatcher, hook)

    again = api.create(GOOD, owner="acme")

    assert again.body is not None
    assert (again.status, again.body["restHook"]["state"]) == (200, "active")
    assert "deadReason" not in again.body["restHook"]


def test_a_bad_owner_is_the_hosts_error(api: SubscriptionAPI) -> None:
    """An owner that is not a non-empty string raises instead of answering 4xx."""
    for call in (
        lambda: api.create(GOOD, owner=None),  # type: ignore[arg-type]
        lambda: api.create(b"{", owner=""),
        lambda: api.list(owner=7),  # type: ignore[arg-type]
        lambda: api.show("hook_1", owner=""),
        lambda: api.delete("hook_1", owner=b"acme"),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValidationError) as info:
            call()
        assert info.value.field == "owner"


def test_a_hook_id_that_is_not_a_string_is_the_hosts_error(api: SubscriptionAPI) -> None:
    """show and delete raise for a hook_id that is not a str (a routing mistake)."""
    with pytest.raises(ValidationError, match="hook_id"):
        api.show(12, owner="acme")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="hook_id"):
        api.delete(None, owner="acme")  # type: ignore[arg-type]


class _BrokenStore(MemoryStore):
    def list_hooks(self, **kwargs: Any) -> list[Hook]:
        raise StoreError("database is locked")


class _Misconfigured(MemoryStore):
    def get_hook(self, hook_id: str) -> Hook | None:
        from resthooks import InvalidStateError  # noqa: PLC0415 - local to this double

        raise InvalidStateError("unexpected")


def test_store_errors_answer_503_and_other_errors_500(clock: FakeClock) -> None:
    """A StoreError answers 503, any other ResthooksError 500: never an exception."""
    broken = SubscriptionAPI(Dispatcher(_BrokenStore(), clock=clock))
    odd = SubscriptionAPI(Dispatcher(_Misconfigured(), clock=clock))

    assert broken.list(owner="acme").status == 503
    assert odd.show("hook_1", owner="acme").status == 500
    assert odd.delete("hook_1", owner="acme").status == 500


def test_timestamps_are_utc_with_z(dispatcher: Dispatcher) -> None:
    """createdAt and updatedAt are ISO 8601 in UTC with a Z, whatever the clock's zone."""
    from datetime import datetime, timedelta, timezone  # noqa: PLC0415

    clock = FakeClock(datetime(2015, 9, 15, 12, 43, 23, tzinfo=timezone(timedelta(hours=2))))
    api = SubscriptionAPI(Dispatcher(MemoryStore(), clock=clock))

    doc = api.create(GOOD, owner="acme").body
    assert doc is not None
    assert doc["restHook"]["createdAt"] == "2015-09-15T10:43:23Z"


def test_api_response_is_immutable() -> None:
    """An ApiResponse cannot be changed after it is made, headers included."""
    answer = ApiResponse(status=200, headers={"A": "b"}, body={})

    with pytest.raises(AttributeError):
        answer.status = 500  # type: ignore[misc]
    with pytest.raises(TypeError):
        answer.headers["A"] = "c"  # type: ignore[index]


def test_hook_document_of_a_dead_hook() -> None:
    """hook_document adds deadReason and deadAt only for a dead hook."""
    from datetime import datetime, timezone  # noqa: PLC0415

    from resthooks import HookState  # noqa: PLC0415

    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    hook = Hook(
        id="hook_1",
        owner="a",
        event="party/created",
        target_url="https://e.com/",
        created_at=t,
        updated_at=t,
        state=HookState.DEAD,
        dead_reason="6 attempts failed",
        dead_at=t,
        secret="whsec_x",
    )

    doc = hook_document(hook)

    assert (doc["deadReason"], doc["deadAt"]) == ("6 attempts failed", "2026-01-01T00:00:00Z")
    assert "secret" not in doc
