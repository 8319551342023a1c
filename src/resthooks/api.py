"""Framework-agnostic handlers for the four subscription endpoints, in Capsule's shapes.

The host application routes its own HTTP requests (Flask, FastAPI, Django, a plain WSGI
app...) to :class:`SubscriptionAPI` and turns each :class:`ApiResponse` back into its
framework's response. resthooks never imports a web framework and never opens a socket.

- ``POST {base_path}``: :meth:`SubscriptionAPI.create`
- ``GET {base_path}``: :meth:`SubscriptionAPI.list`
- ``GET {base_path}/{id}``: :meth:`SubscriptionAPI.show`
- ``DELETE {base_path}/{id}``: :meth:`SubscriptionAPI.delete`
- ``GET {base_path}/openapi.json``: :meth:`SubscriptionAPI.handle_openapi`, the webhooks as
  an OpenAPI 3.1 document (:mod:`resthooks.openapi`)
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from . import _validation, ed25519
from .dispatcher import Dispatcher
from .encoding import isoformat_z
from .errors import (
    ConfigurationError,
    HookLimitReached,
    InvalidStateError,
    NotFound,
    ResthooksError,
    StoreError,
    ValidationError,
)
from .model import Hook, HookState
from .openapi import openapi_document_of

__all__ = ["OPENAPI_PATH", "ApiResponse", "SubscriptionAPI", "hook_document"]

OPENAPI_PATH = "openapi.json"
"""Where, under ``base_path``, the framework integrations serve the OpenAPI document
(:meth:`SubscriptionAPI.handle_openapi`): ``GET /api/v2/resthooks/openapi.json`` by default.

.. versionadded:: 0.2.0
"""

RESOURCE = "restHook"
_WIRE_FIELDS = {
    "target_url": "targetUrl",
    "event": "event",
    "description": "description",
    "hook_secret": "hookSecret",
}
_SHAPE = 'the body must be a JSON object of the form {"restHook": {"targetUrl": ..., "event": ...}}'


def _frozen_headers(value: Mapping[str, str]) -> Mapping[str, str]:
    return types.MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class ApiResponse:
    """One answer of :class:`SubscriptionAPI`: what the host sends back to the client.

    Attributes:
        status: The HTTP status code.
        headers: Headers to send (read-only): ``Content-Type`` when there is a body,
            ``Location`` after a creation.
        body: The JSON document as a dict, or ``None`` (for ``204``).

    Example:
        >>> answer = ApiResponse(status=404, body={"message": "not found"},
        ...                      headers={"Content-Type": "application/json"})
        >>> answer.content
        b'{"message":"not found"}'
        >>> ApiResponse(status=204).content
        b''
    """

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_headers)
    body: dict[str, Any] | None = None

    @property
    def content(self) -> bytes:
        """The body serialised as compact UTF-8 JSON; empty when there is no body."""
        if self.body is None:
            return b""
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_JSON_HEADERS = {"Content-Type": "application/json"}


def _answer(status: int, body: dict[str, Any], **headers: str) -> ApiResponse:
    return ApiResponse(status=status, headers={**_JSON_HEADERS, **headers}, body=body)


def _bad_request(message: str) -> ApiResponse:
    return _answer(400, {"message": message})


def _unprocessable(errors: Sequence[tuple[str | None, str]]) -> ApiResponse:
    return _answer(
        422,
        {
            "message": "Validation failed",
            "errors": [
                {"message": message, "resource": RESOURCE, "field": field}
                for field, message in errors
            ],
        },
    )


def _not_found() -> ApiResponse:
    # The id is not echoed: it can be anything a client sent, of any length.
    return _answer(404, {"message": "Could not find resource: no such restHook"})


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _parse(body: object) -> tuple[object, str | None]:
    """The parsed document, or an explanation of why the raw body is not JSON."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return None, "the body is not valid UTF-8"
    if isinstance(body, str):
        try:
            return json.loads(body, parse_constant=_reject_constant), None
        except RecursionError:
            return None, "malformed JSON: nested too deeply"
        except ValueError as exc:  # JSONDecodeError, and over-long integers
            return None, f"malformed JSON: {str(exc)[:200]}"
    return body, None


def hook_document(hook: Hook) -> dict[str, Any]:
    """The ``restHook`` JSON document of ``hook``, without its secret.

    Keys: ``id``, ``event``, ``targetUrl``, ``description``, ``state`` (``active`` or
    ``dead`` or ``unconfirmed``), ``createdAt``, ``updatedAt``, for an unconfirmed hook
    ``confirmBy``, for a hook with a ``v1a`` key its ``publicKey``
    (``whpk_...``; the secret key is never shown), and for a dead hook ``deadReason`` and
    ``deadAt``.

    Example:
        >>> from datetime import datetime, timezone
        >>> t = datetime(2015, 9, 15, 10, 43, 23, tzinfo=timezone.utc)
        >>> hook = Hook(id="hook_1", owner="acme", event="party/created",
        ...             target_url="https://example.com/h", created_at=t, updated_at=t)
        >>> hook_document(hook)  # doctest: +NORMALIZE_WHITESPACE
        {'id': 'hook_1', 'event': 'party/created', 'targetUrl': 'https://example.com/h',
         'description': '', 'state': 'active', 'createdAt': '2015-09-15T10:43:23Z',
         'updatedAt': '2015-09-15T10:43:23Z'}
    """
    document: dict[str, Any] = {
        "id": hook.id,
        "event": hook.event,
        "targetUrl": hook.target_url,
        "description": hook.description,
        "state": hook.state.value,
        "createdAt": isoformat_z(hook.created_at),
        "updatedAt": isoformat_z(hook.updated_at),
    }
    if hook.signing_key:
        document["publicKey"] = ed25519.public_key_of(hook.signing_key)
    if hook.state is HookState.UNCONFIRMED and hook.confirm_by is not None:
        document["confirmBy"] = isoformat_z(hook.confirm_by)
    if hook.state is HookState.DEAD:
        document["deadReason"] = hook.dead_reason
        document["deadAt"] = isoformat_z(hook.dead_at) if hook.dead_at is not None else None
    return document


class SubscriptionAPI:
    """The subscription endpoints (create, list, show, delete) of one Dispatcher.

    Every method takes the ``owner`` the host authenticated (the account, tenant or API
    client making the request) and returns an :class:`ApiResponse`; none raises for anything
    a client can send. The statuses:

    - ``create``: ``201`` with ``{"restHook": {...}}`` (including the hook's signing
      ``secret``, shown this once) and a ``Location`` header; ``200`` with the existing hook
      (no ``secret``) when the owner already has this ``(event, targetUrl)`` subscription
      (a dead one is made active again); ``400`` for a body that is not UTF-8, not JSON, or
      not ``{"restHook": {...}}``; ``422`` for invalid fields and when the owner has reached
      the Dispatcher's cap.
    - ``list``: ``200`` with ``{"restHooks": [...]}``, oldest first, dead hooks included.
    - ``show``: ``200`` with ``{"restHook": {...}}``; ``404`` for an unknown id or another
      owner's.
    - ``delete``: ``204`` without a body; ``404`` as for ``show``.
    - ``confirm`` (intent verification) and ``public_keys`` (``v1a`` keys as JWKS): see each.
    - Any method: ``503`` if the store fails (:class:`~resthooks.errors.StoreError`),
      ``500`` for any other :class:`~resthooks.errors.ResthooksError`.

    Args:
        dispatcher: The engine whose hooks these endpoints manage.
        base_path: The path the endpoints are mounted at; ``Location`` headers are
            ``{base_path}/{id}``. Default ``/api/v2/resthooks``, as Capsule.

    Raises:
        ConfigurationError: If ``base_path`` does not start with ``/``.

    Example:
        >>> from resthooks import Dispatcher
        >>> from resthooks.stores import MemoryStore
        >>> from resthooks.testing import FakeClock
        >>> api = SubscriptionAPI(Dispatcher(MemoryStore(), clock=FakeClock()))
        >>> created = api.create(
        ...     b'{"restHook": {"targetUrl": "https://example.com/h", "event": "party/created"}}',
        ...     owner="acme",
        ... )
        >>> created.status, created.headers["Location"] == "/api/v2/resthooks/" + created.body[
        ...     "restHook"]["id"]
        (201, True)
        >>> api.list(owner="acme").body["restHooks"][0]["createdAt"]
        '2026-01-01T00:00:00Z'
        >>> api.create({"restHook": {"targetUrl": "ftp://x", "event": "party/created"}},
        ...            owner="acme").body
        {'message': 'Validation failed', 'errors': [{'message': 'must be an http or https URL',
         'resource': 'restHook', 'field': 'targetUrl'}]}
        >>> api.show("hook_nope", owner="acme").status
        404
    """

    def __init__(self, dispatcher: Dispatcher, *, base_path: str = "/api/v2/resthooks") -> None:
        if not isinstance(base_path, str) or not base_path.startswith("/"):
            raise ConfigurationError("base_path must be a path starting with '/'")
        self.dispatcher = dispatcher
        self.base_path = base_path.rstrip("/")

    def __repr__(self) -> str:
        return f"<SubscriptionAPI base_path={self.base_path!r} dispatcher={self.dispatcher!r}>"

    def create(self, body: object, *, owner: str) -> ApiResponse:
        """Subscribe: ``POST {base_path}``.

        Args:
            body: The request body: raw ``bytes`` (decoded as UTF-8), a ``str`` (JSON text),
                or an already-parsed JSON value (a ``dict``...).
            owner: Who is subscribing.

        Returns:
            ``201`` (created), ``200`` (the same subscription already existed), ``400``,
            ``422`` (or ``503``/``500``, see the class).

        Raises:
            ValidationError: Only for a bad ``owner``: the host's mistake, not the client's.
        """
        owner = _validation.owner(owner)
        document, problem = _parse(body)
        if problem is not None:
            return _bad_request(problem)
        if not isinstance(document, dict) or not isinstance(document.get(RESOURCE), dict):
            return _bad_request(_SHAPE)
        fields = document[RESOURCE]
        missing = [
            (wire, "is required") for wire in ("targetUrl", "event") if fields.get(wire) is None
        ]
        if missing:
            return _unprocessable(missing)
        description = fields.get("description")
        try:
            # Whether the hook is new (201) or existed (200).
            hook, created = self.dispatcher.subscribe_or_get(
                fields["event"],
                fields["targetUrl"],
                owner=owner,
                description="" if description is None else description,
            )
        except ResthooksError as exc:
            return self._failure(exc)
        if not created:
            return _answer(200, {RESOURCE: hook_document(hook)})
        shown = hook_document(hook)
        if hook.secret is not None:
            shown["secret"] = hook.secret
        return _answer(201, {RESOURCE: shown}, Location=f"{self.base_path}/{hook.id}")

    def list(self, *, owner: str) -> ApiResponse:
        """List the owner's hooks: ``GET {base_path}``, ``200``.

        Raises:
            ValidationError: Only for a bad ``owner``.
        """
        owner = _validation.owner(owner)
        try:
            hooks = self.dispatcher.hooks(owner=owner)
        except ResthooksError as exc:
            return self._failure(exc)
        return _answer(200, {"restHooks": [hook_document(hook) for hook in hooks]})

    def show(self, hook_id: str, *, owner: str) -> ApiResponse:
        """Show one hook: ``GET {base_path}/{hook_id}``, ``200`` or ``404``.

        Raises:
            ValidationError: Only for a bad ``owner``, or a ``hook_id`` that is not a str.
        """
        owner = _validation.owner(owner)
        hook_id = _validation.string(hook_id, "hook_id")
        try:
            hook = self.dispatcher.get_hook(hook_id, owner=owner)
        except ResthooksError as exc:
            return self._failure(exc)
        return _answer(200, {RESOURCE: hook_document(hook)})

    def delete(self, hook_id: str, *, owner: str) -> ApiResponse:
        """Unsubscribe: ``DELETE {base_path}/{hook_id}``, ``204`` or ``404``.

        Pending deliveries of the hook are cancelled.

        Raises:
            ValidationError: Only for a bad ``owner``, or a ``hook_id`` that is not a str.
        """
        owner = _validation.owner(owner)
        hook_id = _validation.string(hook_id, "hook_id")
        try:
            self.dispatcher.unsubscribe(hook_id, owner=owner)
        except ResthooksError as exc:
            return self._failure(exc)
        return ApiResponse(status=204)

    def confirm(self, hook_id: str, body: object, *, owner: str) -> ApiResponse:
        """Confirm an unconfirmed hook (intent verification, done later):
        ``POST {base_path}/{hook_id}/confirm`` with ``{"hookSecret": "..."}``, the
        ``X-Hook-Secret`` the target was sent.

        Returns:
            ``200`` with the hook, now active; ``400`` for a body that is not
            ``{"hookSecret": "..."}``; ``404`` for an unknown hook; ``409`` if the hook is not
            unconfirmed or its time to confirm has passed (it is removed then); ``422``
            naming ``hookSecret`` if the secret is not the one sent.

        Raises:
            ValidationError: Only for a bad ``owner``, or a ``hook_id`` that is not a str.

        .. versionadded:: 0.2.0
        """
        owner = _validation.owner(owner)
        hook_id = _validation.string(hook_id, "hook_id")
        document, problem = _parse(body)
        if problem is not None:
            return _bad_request(problem)
        if not isinstance(document, dict) or not isinstance(document.get("hookSecret"), str):
            return _bad_request('the body must be a JSON object {"hookSecret": "..."}')
        try:
            hook = self.dispatcher.confirm_hook(hook_id, document["hookSecret"], owner=owner)
        except InvalidStateError as exc:
            return _answer(409, {"message": str(exc)})
        except ResthooksError as exc:
            return self._failure(exc)
        return _answer(200, {RESOURCE: hook_document(hook)})

    def public_keys(self, *, owner: str) -> ApiResponse:
        """The owner's ``v1a`` public keys as a JWKS document: ``200 {"keys": [...]}``.

        Serve it where the owner's receivers can fetch it (say
        ``GET {base_path}/keys``): each key's ``kid`` is its hook's id. See
        :func:`resthooks.ed25519.jwks`; receivers read it back with
        :func:`resthooks.ed25519.public_keys_from_jwks`.

        Raises:
            ValidationError: Only for a bad ``owner``.

        .. versionadded:: 0.2.0
        """
        owner = _validation.owner(owner)
        try:
            keys = self.dispatcher.public_keys(owner=owner)
        except ResthooksError as exc:
            return self._failure(exc)
        return _answer(200, ed25519.jwks(keys))

    def handle(
        self, method: str, hook_id: str | None = None, *, body: object = b"", owner: object
    ) -> ApiResponse:
        """Answer one request to the endpoints, whatever it is: what framework integrations call.

        Routes ``method`` (and ``hook_id``, ``None`` for the collection) to :meth:`create`,
        :meth:`list`, :meth:`show` or :meth:`delete`, and answers in JSON what those leave
        to the host:

        - ``owner`` is ``None`` (the request is not authenticated): ``401``;
        - ``owner`` is not a valid owner (not a string, empty, over 255 characters, control
          characters: an authentication scheme that lets a client choose it, like the
          examples' ``X-Account`` header): ``400`` naming ``owner``;
        - a method the path does not have: ``405`` with an ``Allow`` header.

        .. versionadded:: 0.2.0

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> api = SubscriptionAPI(Dispatcher(MemoryStore()))
            >>> api.handle("GET", owner=None).status
            401
            >>> api.handle("GET", owner="x" * 300).body
            {'message': 'owner: must be at most 255 characters'}
            >>> answer = api.handle("PUT", "hook_1", owner="acme")
            >>> answer.status, answer.headers["Allow"]
            (405, 'GET, DELETE')
            >>> api.handle("GET", owner="acme").body
            {'restHooks': []}
        """
        allowed = "GET, POST" if hook_id is None else "GET, DELETE"
        verb = method.upper() if isinstance(method, str) else ""
        if verb not in allowed.split(", ") and verb != "HEAD":
            return _answer(405, {"message": f"Method not allowed: use {allowed}"}, Allow=allowed)
        if owner is None:
            return _answer(401, {"message": "Authentication required"})
        try:
            owner = _validation.owner(owner)
        except ValidationError as exc:
            return _bad_request(str(exc))
        if hook_id is None:
            return self.create(body, owner=owner) if verb == "POST" else self.list(owner=owner)
        if not isinstance(hook_id, str):
            return _not_found()
        return (
            self.delete(hook_id, owner=owner)
            if verb == "DELETE"
            else self.show(hook_id, owner=owner)
        )

    # -- the webhooks as a document -------------------------------------------------------

    def openapi(self, *, title: str = "Webhooks", version: str = "1.0.0") -> ApiResponse:
        """The Dispatcher's webhooks as an OpenAPI 3.1 document: ``200`` with the document.

        The same for every owner (see :func:`resthooks.openapi.openapi_document_of`): serve
        it openly from a route of your own with this, or authenticated with
        :meth:`handle_openapi`, as the framework integrations do.

        .. versionadded:: 0.2.0
        """
        return _answer(200, openapi_document_of(self.dispatcher, title=title, version=version))

    def handle_openapi(self, method: str, *, owner: object) -> ApiResponse:
        """Answer a request to ``{base_path}/openapi.json`` (:data:`OPENAPI_PATH`): what the
        framework integrations route there.

        ``GET`` (or ``HEAD``) gets :meth:`openapi`; the document is behind the same
        authentication as the endpoints it sits beside: ``401`` when ``owner`` is ``None``,
        ``400`` for an invalid owner, ``405`` with ``Allow: GET`` for another method.

        .. versionadded:: 0.2.0

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> api = SubscriptionAPI(Dispatcher(MemoryStore()))
            >>> answer = api.handle_openapi("GET", owner="acme")
            >>> answer.status, answer.body["openapi"], len(answer.body["webhooks"])
            (200, '3.1.0', 19)
            >>> api.handle_openapi("GET", owner=None).status
            401
            >>> api.handle_openapi("POST", owner="acme").headers["Allow"]
            'GET'
        """
        verb = method.upper() if isinstance(method, str) else ""
        if verb not in ("GET", "HEAD"):
            return _answer(405, {"message": "Method not allowed: use GET"}, Allow="GET")
        if owner is None:
            return _answer(401, {"message": "Authentication required"})
        try:
            _validation.owner(owner)
        except ValidationError as exc:
            return _bad_request(str(exc))
        return self.openapi()

    @staticmethod
    def _failure(exc: ResthooksError) -> ApiResponse:
        if isinstance(exc, NotFound):
            return _not_found()
        if isinstance(exc, HookLimitReached):
            return _unprocessable([(None, exc.message)])
        if isinstance(exc, ValidationError):
            if exc.field is not None and exc.field not in _WIRE_FIELDS:
                # owner, hook_id...: values the host passed, not the client.
                raise exc
            wire = _WIRE_FIELDS.get(exc.field) if exc.field is not None else None
            return _unprocessable([(wire, exc.message)])
        if isinstance(exc, StoreError):
            return _answer(503, {"message": "The hook store is unavailable; try again later"})
        return _answer(500, {"message": "Internal error"})
