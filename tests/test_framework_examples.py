"""The Flask and FastAPI examples of docs/api.md serve the four endpoints as documented."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from resthooks import Dispatcher
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock

EXAMPLES = Path(__file__).parent.parent / "docs" / "examples"
BASE = "/api/v2/resthooks"
SUBSCRIBE = {
    "restHook": {
        "targetUrl": "https://example.com/hooks",
        "event": "party/created",
        "description": "An epic webhook that will change the world",
    }
}


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"resthooks_docs_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class _Answer:
    """What a framework's test client answered, in one shape for both frameworks."""

    status_code: int
    headers: Mapping[str, str]  # names in lower case
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class _Client:
    """The four requests, the same for either framework's test client."""

    def __init__(self, send: Callable[..., _Answer]) -> None:
        self.send = send

    def create(self, data: bytes | str, owner: str | None = "acme") -> _Answer:
        return self.send("POST", BASE, data, owner)

    def list(self, owner: str | None = "acme") -> _Answer:
        return self.send("GET", BASE, None, owner)

    def show(self, hook_id: str, owner: str | None = "acme") -> _Answer:
        return self.send("GET", f"{BASE}/{hook_id}", None, owner)

    def delete(self, hook_id: str, owner: str | None = "acme") -> _Answer:
        return self.send("DELETE", f"{BASE}/{hook_id}", None, owner)


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


def _headers(owner: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if owner is not None:
        headers["X-Account"] = owner
    return headers


def _flask(dispatcher: Dispatcher) -> _Client:
    app = _load("flask_app").create_app(dispatcher)
    client = app.test_client()

    def send(method: str, path: str, data: bytes | str | None, owner: str | None) -> _Answer:
        answer = client.open(path, method=method, data=data, headers=_headers(owner))
        return _Answer(answer.status_code, _lower(answer.headers.items()), answer.get_data())

    return _Client(send)


def _fastapi(dispatcher: Dispatcher, stack: contextlib.ExitStack) -> _Client:
    from fastapi.testclient import TestClient  # noqa: PLC0415 - only this test needs it

    # As a context manager, the client runs the app's lifespan (which installs the hooks).
    app = _load("fastapi_app").create_app(dispatcher, worker=False)
    client = stack.enter_context(TestClient(app))

    def send(method: str, path: str, data: bytes | str | None, owner: str | None) -> _Answer:
        answer = client.request(method, path, content=data, headers=_headers(owner))
        return _Answer(answer.status_code, _lower(answer.headers.items()), answer.content)

    return _Client(send)


@pytest.fixture(name="client", params=["flask", "fastapi"])
def _client(request: pytest.FixtureRequest) -> Iterator[_Client]:
    dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
    with contextlib.ExitStack() as stack:
        if request.param == "flask":
            yield _flask(dispatcher)
        else:
            yield _fastapi(dispatcher, stack)


def test_create_list_show_delete(client: _Client) -> None:
    """The whole life of a hook through the framework: 201, 200, 200, 204, then 404."""
    created = client.create(json.dumps(SUBSCRIBE))
    assert created.status_code == 201
    hook = created.json()["restHook"]
    assert created.headers["location"] == f"{BASE}/{hook['id']}"
    assert created.headers["content-type"] == "application/json"
    assert hook["secret"].startswith("whsec_")
    assert hook["createdAt"] == "2026-01-01T00:00:00Z"

    listed = client.list()
    assert listed.status_code == 200
    assert [h["id"] for h in listed.json()["restHooks"]] == [hook["id"]]
    assert "secret" not in listed.json()["restHooks"][0]

    shown = client.show(hook["id"])
    assert (shown.status_code, shown.json()["restHook"]["event"]) == (200, "party/created")

    deleted = client.delete(hook["id"])
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert client.show(hook["id"]).status_code == 404
    assert client.list().json() == {"restHooks": []}


def test_errors_keep_capsules_shapes(client: _Client) -> None:
    """Malformed JSON is 400, an invalid field 422 in Capsule's shape, another owner's id 404."""
    assert client.create(b"{not json").status_code == 400
    assert client.create(b"\xff").status_code == 400

    invalid = client.create(
        json.dumps({"restHook": {"targetUrl": "ftp://x", "event": "party/created"}})
    )
    assert invalid.status_code == 422
    assert invalid.json()["errors"] == [
        {"message": "must be an http or https URL", "resource": "restHook", "field": "targetUrl"}
    ]

    hook_id = client.create(json.dumps(SUBSCRIBE)).json()["restHook"]["id"]
    assert client.show(hook_id, owner="globex").status_code == 404
    assert client.delete(hook_id, owner="globex").status_code == 404
    assert client.show(hook_id).status_code == 200


def test_resubscribing_answers_200(client: _Client) -> None:
    """The same subscription posted twice answers 201 then 200 with the same id."""
    first = client.create(json.dumps(SUBSCRIBE))
    second = client.create(json.dumps(SUBSCRIBE))

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["restHook"]["id"] == second.json()["restHook"]["id"]


def test_requests_without_an_account_are_refused(client: _Client) -> None:
    """The examples' stand-in authentication answers 401 without an X-Account header."""
    assert client.list(owner=None).status_code == 401
    answer = client.list(owner=None)
    assert answer.headers["content-type"] == "application/json"


def test_no_client_input_gets_a_500(client: _Client) -> None:
    """An account header that is no owner (300 characters), a malformed body, a method the
    path lacks: each a 4xx in JSON naming the problem, never a 500 or an HTML page."""
    too_long = client.list(owner="a" * 300)
    assert (too_long.status_code, too_long.headers["content-type"]) == (400, "application/json")
    assert too_long.json() == {"message": "owner: must be at most 255 characters"}
    assert client.create(b"{not json", owner="a" * 300).status_code == 400
    malformed = client.create(b"[1, 2")
    assert (malformed.status_code, malformed.headers["content-type"]) == (400, "application/json")
    wrong = client.send("PUT", BASE, b"{}", "acme")
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET, POST")
    assert "message" in wrong.json()


def test_the_integrations_refuse_bad_options() -> None:
    """A blueprint or router without a callable owner, or with a prefix that is no path,
    raises ConfigurationError naming it, before any request."""
    from resthooks import ConfigurationError  # noqa: PLC0415
    from resthooks.contrib.fastapi import subscription_router  # noqa: PLC0415
    from resthooks.contrib.flask import Resthooks, subscription_blueprint  # noqa: PLC0415

    with pytest.raises(ConfigurationError, match="owner"):
        subscription_blueprint(owner="nobody")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="url_prefix"):
        subscription_blueprint(owner=lambda r: "acme", url_prefix=7)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="owner"):
        subscription_router(owner=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="prefix"):
        subscription_router(owner=lambda: "acme", prefix=b"/x")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="dispatcher"):
        Resthooks().init_app(object(), dispatcher=42)  # type: ignore[arg-type]
