"""The catalogue as an OpenAPI 3.1 document: valid by an independent validator
(openapi-spec-validator), true to what a receiver gets, served beside the subscription API
and printed by ``resthooks events --openapi``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from resthooks import CAPSULE_EVENTS, ConfigurationError, Dispatcher, EventCatalogue
from resthooks.aio import AsyncDispatcher, AsyncSubscriptionAPI
from resthooks.api import SubscriptionAPI
from resthooks.openapi import openapi_document, openapi_document_of
from resthooks.stores import MemoryStore
from resthooks.testing import LOOPBACK_POLICY, FakeClock, HookReceiver

ADDRESS = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}
PARTY = {
    "type": "object",
    "required": ["id", "name"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
    },
    "$defs": {"address": ADDRESS},
}
CATALOGUE = EventCatalogue(
    # "a.b/c" and "a/b.c" would share a component name if it were only the event's characters.
    {"party": ["created", "deleted"], "a.b": ["c"], "a": ["b.c"]},
    schemas={"party/created": PARTY, "a.b/c": {"type": "object"}, "a/b.c": {"type": "array"}},
    descriptions={"party/created": "A party was added."},
    examples={"party/created": {"id": 11587, "name": "Scott Spacey", "address": {"city": "X"}}},
)


def _body_schema(document: dict[str, Any], event: str) -> dict[str, Any]:
    media = document["webhooks"][event]["post"]["requestBody"]["content"]["application/json"]
    schema: dict[str, Any] = media["schema"]
    return schema


def _document_validator(document: dict[str, Any], event: str) -> Any:
    """A JSON Schema validator for ``event``'s body schema that resolves its ``$ref`` inside
    the whole document, as a receiver's tooling does."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:doc", Resource.from_contents(document, default_specification=DRAFT202012)
    )
    pointer = f"/webhooks/{event.replace('/', '~1')}/post/requestBody/content/application~1json"
    return jsonschema.Draft202012Validator({"$ref": f"urn:doc#{pointer}/schema"}, registry=registry)


@pytest.mark.parametrize(
    "document",
    [
        openapi_document(),
        openapi_document(CATALOGUE, signature_versions=("v1", "v1a"), intent_verification=True),
        openapi_document(CATALOGUE, signature_versions=(), title="Acme", version="2026-01"),
        openapi_document_of(Dispatcher(MemoryStore(), verify_intent=True, sign_deliveries=False)),
    ],
    ids=["capsule", "documented-v1a-intent", "unsigned", "of-a-dispatcher"],
)
def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    """openapi-spec-validator (an independent implementation of the OpenAPI 3.1 schema and its
    JSON Schema dialect) accepts every shape of the document; it is JSON-serialisable."""
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert json.loads(json.dumps(document)) == document


def test_the_validator_is_not_a_rubber_stamp() -> None:
    """The same validator refuses the document with a header in the wrong place or an answer
    without its description (so the passing test above means something). It does not resolve
    the ``$ref`` of body schemas: test_what_a_real_receiver_gets_matches_the_document does."""
    wrong_place = openapi_document(CATALOGUE)
    wrong_place["webhooks"]["party/created"]["post"]["parameters"][0]["in"] = "body"
    with pytest.raises(OpenAPIValidationError, match="'body' is not one of"):
        validate(wrong_place)
    undescribed = openapi_document(CATALOGUE)
    del undescribed["webhooks"]["party/created"]["post"]["responses"]["410"]["description"]
    with pytest.raises(OpenAPIValidationError, match="'description' is a required property"):
        validate(undescribed)


def test_one_operation_per_event_with_the_body_and_headers_a_receiver_gets() -> None:
    """webhooks has every event in catalogue order; each a POST whose body is
    {"event": <const>, "payload": [items]}, whose headers are the Standard Webhooks ones
    and User-Agent, with 2XX, 410 and default answers."""
    document = openapi_document(CATALOGUE)
    assert list(document["webhooks"]) == list(CATALOGUE)
    operation = document["webhooks"]["party/created"]["post"]
    assert operation["description"] == "A party was added."
    assert operation["tags"] == ["party"]
    headers = {p["name"]: p for p in operation["parameters"]}
    assert list(headers) == ["webhook-id", "webhook-timestamp", "webhook-signature", "User-Agent"]
    assert all(p["in"] == "header" and p["required"] for p in headers.values())
    assert set(operation["responses"]) == {"2XX", "410", "default"}
    body = _body_schema(document, "party/created")
    assert body["required"] == ["event", "payload"]
    assert body["properties"]["event"] == {"const": "party/created"}
    assert body["properties"]["payload"]["type"] == "array"
    assert body["properties"]["payload"]["items"] == {"$ref": "#/components/schemas/party.created"}
    untyped = _body_schema(document, "party/deleted")["properties"]["payload"]["items"]
    assert untyped == {"type": "object"}
    assert sorted(document["components"]["schemas"]) == ["a.b.c", "a.b.c-2", "party.created"]


def test_unsigned_dispatchers_say_the_signature_may_be_missing() -> None:
    """sign_deliveries=False: webhook-signature is not required; intent verification adds
    the handshake operation with its X-Hook-Secret header."""
    document = openapi_document_of(
        Dispatcher(MemoryStore(), sign_deliveries=False, verify_intent=True)
    )
    operation = document["webhooks"]["party/created"]["post"]
    signature = next(p for p in operation["parameters"] if p["name"] == "webhook-signature")
    assert signature["required"] is False
    handshake = document["webhooks"]["intent-verification"]["post"]
    assert "X-Hook-Secret" in [p["name"] for p in handshake["parameters"]]


def test_what_a_real_receiver_gets_matches_the_document() -> None:
    """A delivery to a real receiver on loopback: its body validates against the document's
    body schema (refs resolved in the document), its headers are the documented ones; the
    document's example validates too, and a wrong body does not."""
    dispatcher = Dispatcher(
        MemoryStore(), events=CATALOGUE, clock=FakeClock(), network_policy=LOOPBACK_POLICY
    )
    document = openapi_document_of(dispatcher)
    checker = _document_validator(document, "party/created")
    with HookReceiver() as receiver:
        receiver.subscribe(dispatcher, "party/created", owner="acme")
        entity = {"id": 7, "name": "Ada", "address": {"city": "Leeds"}}
        dispatcher.emit("party/created", entity, owner="acme")
        assert dispatcher.deliver_due().delivered == 1
        (got,) = receiver.deliveries
    checker.validate(got.json)
    operation = document["webhooks"]["party/created"]["post"]
    for parameter in operation["parameters"]:
        value = got.headers[parameter["name"].lower()]
        jsonschema.Draft202012Validator(parameter["schema"]).validate(value)
    # And the other way: a header of resthooks' own that the document does not describe
    # fails here, so that whoever adds one describes it.
    documented = {p["name"].lower() for p in operation["parameters"]}
    ours = {name for name in got.headers if name.startswith(("webhook-", "x-", "resthooks"))}
    assert ours <= documented
    assert got.headers["content-type"] == "application/json"  # the requestBody's media type
    media = operation["requestBody"]["content"]["application/json"]
    checker.validate(media["example"])
    assert not checker.is_valid({"event": "party/created", "payload": [{"id": "7"}]})
    assert not checker.is_valid({"event": "party/deleted", "payload": []})


def test_bad_options_are_refused() -> None:
    """A title or version that is not a non-empty str, an unknown signature version, or a
    catalogue that is not one: ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match="title"):
        openapi_document(title="")
    with pytest.raises(ConfigurationError, match="version"):
        openapi_document(version=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="signature_versions"):
        openapi_document(signature_versions=("v2",))
    with pytest.raises(ConfigurationError, match="signature_versions"):
        openapi_document(signature_versions="v1")
    with pytest.raises(ConfigurationError, match="events"):
        openapi_document({"party": ["created"]})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="description"):
        openapi_document(description=b"x")  # type: ignore[arg-type]


# -- served --------------------------------------------------------------------------------------


def test_the_api_serves_it_behind_its_authentication() -> None:
    """handle_openapi: 200 with the document for an owner, 401 without, 400 for an invalid
    owner, 405 for other methods; the async API answers the same."""
    api = SubscriptionAPI(Dispatcher(MemoryStore(), events=CATALOGUE))
    answer = api.handle_openapi("GET", owner="acme")
    assert (answer.status, answer.headers["Content-Type"]) == (200, "application/json")
    validate(json.loads(answer.content))
    assert api.handle_openapi("GET", owner=None).status == 401
    assert api.handle_openapi("GET", owner="x" * 300).status == 400
    assert api.handle_openapi("DELETE", owner="acme").status == 405
    assert api.handle_openapi(None, owner="acme").status == 405  # type: ignore[arg-type]
    assert api.openapi().body == answer.body

    async_api = AsyncSubscriptionAPI(AsyncDispatcher(Dispatcher(MemoryStore(), events=CATALOGUE)))
    awaited = asyncio.run(async_api.handle_openapi("GET", owner="acme"))
    assert awaited.body == answer.body


@pytest.fixture(name="served", params=["flask", "fastapi"])
def _served(request: pytest.FixtureRequest) -> Iterator[Any]:
    """``GET path, owner -> (status, headers, body)`` through a framework's test client
    (the docs' example apps)."""
    from test_framework_examples import _fastapi, _flask  # noqa: PLC0415 - the apps' loaders

    dispatcher = Dispatcher(MemoryStore(), events=CATALOGUE, clock=FakeClock())
    with contextlib.ExitStack() as stack:
        client = _flask(dispatcher) if request.param == "flask" else _fastapi(dispatcher, stack)
        yield client


def test_the_framework_routers_serve_it_before_the_hook_route(served: Any) -> None:
    """Flask's Blueprint and FastAPI's router answer GET {base}/openapi.json with the
    document (not with a 404 for a hook named openapi.json); 401 without an account."""
    answer = served.send("GET", "/api/v2/resthooks/openapi.json", None, "acme")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    document = answer.json()
    validate(document)
    assert list(document["webhooks"]) == list(CATALOGUE)
    assert served.send("GET", "/api/v2/resthooks/openapi.json", None, None).status_code == 401
    refused = served.send("POST", "/api/v2/resthooks/openapi.json", b"{}", "acme")
    assert (refused.status_code, refused.headers["allow"]) == (405, "GET")
    assert served.send("GET", "/api/v2/resthooks/hook_nope", None, "acme").status_code == 404


# -- the command line ----------------------------------------------------------------------------


def _resthooks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resthooks", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_resthooks_events_openapi_prints_the_document() -> None:
    """resthooks events --openapi prints the default Dispatcher's document (no database is
    opened or created), valid OpenAPI 3.1; --title and --version set info."""
    done = _resthooks("events", "--openapi", "--title", "Acme CRM", "--version", "7")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    validate(document)
    assert document == openapi_document_of(Dispatcher(MemoryStore()), title="Acme CRM", version="7")
    assert list(document["webhooks"]) == list(CAPSULE_EVENTS)


def test_resthooks_events_lists_the_catalogue() -> None:
    """resthooks events: one row per event; --json: the events with their documentation."""
    text = _resthooks("events")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[1].split() == ["party/created", "-", "-"]
    as_json = _resthooks("events", "--json")
    rows = json.loads(as_json.stdout)
    assert [r["event"] for r in rows] == list(CAPSULE_EVENTS)
    assert rows[0] == {"event": "party/created", "description": "", "schema": None, "example": None}


def test_resthooks_events_refuses_an_empty_title() -> None:
    """A bad --title is bad input: exit 2 and one line on stderr."""
    done = _resthooks("events", "--openapi", "--title", " ")
    assert done.returncode == 2
    assert done.stderr.startswith("resthooks: error: --title, --version: title must be")
    assert done.stdout == ""


def test_resthooks_events_on_the_apps_dispatcher() -> None:
    """With an app (what manage.py resthooks and flask resthooks run), the document is the
    app's own catalogue's."""
    from resthooks import cli  # noqa: PLC0415

    dispatcher = Dispatcher(MemoryStore(), events=CATALOGUE)
    out = _Capture()
    assert cli.main(["events", "--openapi"], app=lambda: dispatcher, stdout=out) == 0
    document = json.loads(out.text)
    assert list(document["webhooks"]) == list(CATALOGUE)
    assert "components" in document


class _Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass
