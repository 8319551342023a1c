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
import re
import types
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from . import _validation, ed25519
from .dispatcher import MAX_REPLAY, Dispatcher
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
from .model import Attempt, Delivery, DeliveryState, Hook, HookState
from .openapi import openapi_document_of

__all__ = [
    "OPENAPI_PATH",
    "ApiResponse",
    "SubscriptionAPI",
    "attempt_document",
    "delivery_document",
    "hook_document",
]

OPENAPI_PATH = "openapi.json"
"""Where, under ``base_path``, the framework integrations serve the OpenAPI document
(:meth:`SubscriptionAPI.handle_openapi`): ``GET /api/v2/resthooks/openapi.json`` by default.

.. versionadded:: 0.2.0
"""

RESOURCE = "restHook"
_WIRE_FIELDS = {
    "target_url": "targetUrl",
    "event": "event",
    "events": "events",
    "description": "description",
    "hook_secret": "hookSecret",
    "secret": "secret",
    "since": "since",
    "until": "until",
    "limit": "limit",
    "state": "state",
}
# What PATCH may change, by wire name -> Dispatcher.update_hook's argument.
_UPDATABLE = {"targetUrl": "target_url", "event": "event", "description": "description"}
# Listings of one hook's deliveries and attempts: ?limit=, default and most.
_PAGE, _MAX_PAGE = 20, 100
_LIMIT_TEXT = re.compile(r"[0-9]{1,4}")
_UNSHOWABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
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
    (``whpk_...``; the secret key is never shown), for a batched hook its ``batching``
    (``{"maxWait": seconds, "maxEntities": n, "maxBytes": n}``: its receiver gets up to that
    many entities per POST; the host sets it, owners read it), and for a dead hook
    ``deadReason`` and ``deadAt``.

    .. versionchanged:: 0.2.0
       ``batching``.

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
    if hook.batching is not None:
        document["batching"] = {
            "maxWait": hook.batching.max_wait,
            "maxEntities": hook.batching.max_entities,
            "maxBytes": hook.batching.max_bytes,
        }
    if hook.state is HookState.UNCONFIRMED and hook.confirm_by is not None:
        document["confirmBy"] = isoformat_z(hook.confirm_by)
    if hook.state is HookState.DEAD:
        document["deadReason"] = hook.dead_reason
        document["deadAt"] = isoformat_z(hook.dead_at) if hook.dead_at is not None else None
    return document


def delivery_document(delivery: Delivery) -> dict[str, Any]:
    """The JSON document of a delivery, as the owners' endpoints show it.

    Keys: ``id`` (its ``webhook-id``), ``hookId``, ``event``, ``state``, ``attempts`` (in the
    current series), ``nextAttemptAt`` (``None`` once final), ``createdAt``, ``updatedAt``,
    ``lastError``.

    .. versionadded:: 0.2.0
    """
    return {
        "id": delivery.id,
        "hookId": delivery.hook_id,
        "event": delivery.event,
        "state": delivery.state.value,
        "attempts": delivery.attempts,
        "nextAttemptAt": _when(delivery.next_attempt_at),
        "createdAt": isoformat_z(delivery.created_at),
        "updatedAt": isoformat_z(delivery.updated_at),
        "lastError": delivery.last_error,
    }


def attempt_document(attempt: Attempt) -> dict[str, Any]:
    """The JSON document of one attempt (an entry of the attempt log, or a ping's answer).

    Keys: ``deliveryId``, ``number``, ``startedAt``, ``duration`` (seconds), ``status``
    (``None`` when no answer came), ``succeeded``, ``errorKind``, ``error``,
    ``responseExcerpt`` (at most the first 4 KiB of the answer's body).

    .. versionadded:: 0.2.0
    """
    return {
        "deliveryId": attempt.delivery_id,
        "number": attempt.number,
        "startedAt": isoformat_z(attempt.started_at),
        "duration": round(attempt.duration, 6),
        "status": attempt.status,
        "succeeded": attempt.succeeded,
        "errorKind": attempt.error_kind,
        "error": attempt.error,
        "responseExcerpt": attempt.response_excerpt,
    }


def _when(value: datetime | None) -> str | None:
    return None if value is None else isoformat_z(value)


def _fields_of(body: object, *, required: bool) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON object of a request body (``{}`` for an empty one unless ``required``)."""
    if body is None or (isinstance(body, (bytes, bytearray, memoryview, str)) and not body):
        return ({}, None) if not required else (None, "the body must be a JSON object")
    document, problem = _parse(body)
    if problem is not None:
        return None, problem
    if not isinstance(document, dict):
        return None, "the body must be a JSON object"
    return document, None


def _unknown(fields: Mapping[str, Any], allowed: Sequence[str]) -> ApiResponse | None:
    """``422`` naming the first field that is not one of ``allowed``, or ``None``."""
    for name in fields:
        if name not in allowed:
            text = name if isinstance(name, str) else repr(name)
            if _UNSHOWABLE.search(text):  # NUL, lone surrogates: escaped, never echoed raw
                text = json.dumps(text)[1:-1]
            shown = text if len(text) <= 64 else text[:64] + "..."
            return _unprocessable(
                [(shown, f"is not a field here; the fields are {', '.join(allowed)}")]
            )
    return None


def _page(query: Mapping[str, object] | None, allowed: Sequence[str]) -> int | ApiResponse:
    """``?limit=`` (1 to 100, default 20) of a listing, or the ``400`` for a bad query."""
    query = query or {}
    for name in query:
        if name not in allowed:
            shown = str(name)[:64]
            return _bad_request(
                f"unknown query parameter {shown!r}; this listing takes {', '.join(allowed)}"
            )
    text = query.get("limit")
    if text is None:
        return _PAGE
    if (
        not isinstance(text, str)
        or not _LIMIT_TEXT.fullmatch(text)
        or not 1 <= int(text) <= _MAX_PAGE
    ):
        return _bad_request(f"limit: must be a whole number from 1 to {_MAX_PAGE}")
    return int(text)


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
        events = fields.get("events")
        event = fields.get("event")
        if events is not None and event is not None:
            return _unprocessable([("events", "give event or events, not both")])
        missing = [("targetUrl", "is required")] if fields.get("targetUrl") is None else []
        if events is None and event is None:
            missing.append(("event", "is required"))
        if missing:
            return _unprocessable(missing)
        description = fields.get("description")
        description = "" if description is None else description
        secret = fields.get("secret")
        if events is not None or (isinstance(event, str) and "*" in event):
            return self._create_many(
                event if events is None else events,
                fields["targetUrl"],
                owner=owner,
                description=description,
                secret=secret,
            )
        try:
            # Whether the hook is new (201) or existed (200).
            hook, created = self.dispatcher.subscribe_or_get(
                event, fields["targetUrl"], owner=owner, description=description, secret=secret
            )
        except ResthooksError as exc:
            return self._failure(exc)
        if not created:
            return _answer(200, {RESOURCE: hook_document(hook)})
        shown = hook_document(hook)
        if hook.secret is not None:
            shown["secret"] = hook.secret
        return _answer(201, {RESOURCE: shown}, Location=f"{self.base_path}/{hook.id}")

    def _create_many(
        self,
        events: object,
        target_url: object,
        *,
        owner: str,
        description: object,
        secret: object,
    ) -> ApiResponse:
        """``create`` of several events or a pattern: ``{"restHooks": [...]}``."""
        try:
            made = self.dispatcher.subscribe_many(
                events,  # type: ignore[arg-type] # the Dispatcher checks what the client sent
                target_url,  # type: ignore[arg-type]
                owner=owner,
                description=description,  # type: ignore[arg-type]
                secret=secret,  # type: ignore[arg-type]
            )
        except ResthooksError as exc:
            return self._failure(exc, conflict=True)
        documents = []
        for hook, created in made:
            shown = hook_document(hook)
            if created and hook.secret is not None:
                shown["secret"] = hook.secret
            documents.append(shown)
        status = 201 if any(created for _, created in made) else 200
        return _answer(status, {"restHooks": documents})

    def update(self, hook_id: str, body: object, *, owner: str) -> ApiResponse:
        """Change a hook: ``PATCH {base_path}/{hook_id}`` with
        ``{"restHook": {"targetUrl"?, "event"?, "description"?}}`` (what is left out stays).

        Returns:
            ``200`` with the hook; ``400`` for a body that is not such an object; ``404``;
            ``409`` if another of the owner's hooks has that event and target URL (or, with
            intent verification, for a new target URL); ``422`` naming the field at fault
            (an unknown field too, or a ``null``).

        Raises:
            ValidationError: Only for a bad ``owner``, or a ``hook_id`` that is not a str.

        .. versionadded:: 0.2.0
        """
        owner = _validation.owner(owner)
        hook_id = _validation.string(hook_id, "hook_id")
        document, problem = _fields_of(body, required=True)
        if problem is not None or document is None or not isinstance(document.get(RESOURCE), dict):
            return _bad_request(problem or 'the body must be a JSON object {"restHook": {...}}')
        if len(document) > 1:
            return _unknown(document, [RESOURCE]) or _bad_request("malformed body")
        fields = document[RESOURCE]
        refused = _unknown(fields, list(_UPDATABLE))
        if refused is not None:
            return refused
        if not fields:
            return _unprocessable([(None, "give at least one of targetUrl, event, description")])
        nulls = [(name, "cannot be null") for name, value in fields.items() if value is None]
        if nulls:
            return _unprocessable(nulls)
        try:
            hook = self.dispatcher.update_hook(
                hook_id, owner=owner, **{_UPDATABLE[name]: value for name, value in fields.items()}
            )
        except ResthooksError as exc:
            return self._failure(exc, conflict=True)
        return _answer(200, {RESOURCE: hook_document(hook)})

    def rotate_secret(self, hook_id: str, body: object = b"", *, owner: str) -> ApiResponse:
        """Give a hook's endpoint a new signing secret:
        ``POST {base_path}/{hook_id}/rotate-secret``, with an empty body (a new secret is
        generated) or ``{"secret": "whsec_..."}`` (the client's own).

        Every hook of the owner to the same target URL gets the new secret (one secret per
        endpoint). For the Dispatcher's ``secret_grace`` (24 hours unless configured)
        requests carry a signature with the old secret beside the new one, so the receiver
        can switch at its own pace.

        Returns:
            ``200`` with the hook, its new ``secret`` (shown this once),
            ``previousSecretExpiresAt`` (when the old one stops signing; ``null`` without a
            grace period) and ``endpointHookIds`` (the hooks that share it); ``400``,
            ``404``, ``422`` naming ``secret``.

        Raises:
            ValidationError: Only for a bad ``owner``, or a ``hook_id`` that is not a str.

        .. versionadded:: 0.2.0
        """
        owner = _validation.owner(owner)
        hook_id = _validation.string(hook_id, "hook_id")
        fields, problem = _fields_of(body, required=False)
        if problem is not None or fields is None:
            return _bad_request(problem or "malformed body")
        refused = _unknown(fields, ["secret"])
        if refused is not None:
            return refused
        try:
            self.dispatcher.rotate_secret(hook_id, owner=owner, secret=fields.get("secret"))
            hook = self.dispatcher.get_hook(hook_id, owner=owner)
            endpoint = [
                h.id for h in self.dispatcher.hooks(owner=owner) if h.target_url == hook.target_url
            ]
        except ResthooksError as exc:
            return self._failure(exc, conflict=True)
        shown = hook_document(hook)
        shown["secret"] = hook.secret
        shown["previousSecretExpiresAt"] = (
            _when(hook.previous_secret_until) if hook.previous_secret else None
        )
        shown["endpointHookIds"] = endpoint
        return _answer(200, {RESOURCE: shown})

    def deliveries(
        self, hook_id: str, *, owner: str, query: Mapping[str, object] | None = None
    ) -> ApiResponse:
        """The hook's deliveries, newest first: ``GET {base_path}/{hook_id}/deliveries``,
        ``?state=`` (``pending``, ``in_flight``, ``delivered``, ``failed``, ``cancelled``)
        and ``?limit=`` (1 to 100, default 20).

        Returns:
            ``200 {"deliveries": [...]}`` (see :func:`delivery_document`); ``400`` for a bad
            query; ``404``.

        Raises:
            ValidationError: Only for a bad ``owner``, or a ``hook_id`` that is not a str.

        .. versionadded:: 0.2.0
        """
        owner = _validation.owner(owner)
        hook_id = _validation.string(hook_id, "hook_id")
        limit = _page(query, ["state", "limit"])
        if isinstance(limit, ApiResponse):
            return limit
        state = (query or {}).get("state")
        if state is not None and state not in {s.value for s in DeliveryState}:
            return _bad_request(
                f"state: must be one of {', '.join(s.value for s in DeliveryState)}"
            )
        try:
            hook = self.dispatcher.get_hook(hook_id, owner=owner)
            found = self.dispatcher.deliveries(
                owner=owner,
                hook_id=hook.id,
                state=state,
                limit=limit,
            )
        except ResthooksError as exc:
            return self._failure(exc, conflict=True)
        return _answer(200, {"deliveries": [delivery_document(d) for d in found]})

    def delivery(self, hook_id: str, delivery_id: str, *, owner: str) -> ApiResponse:
        """One delivery of the hook with its attempt log:
        ``GET {base_path}/{hook_id}/deliveries/{delivery_id}``.

        Returns:
            ``200 {"delivery": {..., "attemptLog": [...]}}`` (oldest attempt first, see
            :func:`attempt_document`); ``404`` for an unknown hook or delivery, or a delivery
            of another hook.

        Raises:
            ValidationError: Only for a bad ``owner``, or ids that are not str.

        .. versionadded:: 0.2.0
        """
        owner = _validation.owner(owner)
        try:
            delivery = self._delivery_of(hook_id, delivery_id, owner)
            log = self.dispatcher.attempts(delivery.id, owner=owner)
        except ResthooksError as exc:
            return self._failure(exc, conflict=True)
        shown = delivery_document(delivery)
        shown["attemptLog"] = [attempt_document(a) for a in log]
        return _answer(200, {"delivery": shown})

    def attempts(
        self, hook_id: str, *, owner: str, query: Mapping[str, object] | None = None
    ) -> ApiResponse:
        """The attempt log of a hook: ``GET {base_path}/{hook_id}/attempts?limit=N``, the
        attempts of its ``N`` most recent deliveries (1 to 100, default 20), newest first,
        at most ``N`` of them.

        Returns:
            ``200 {"attempts": [...]}`` (see :func:`attempt_document`); ``400``; ``404``.

        Raises:
            ValidationError: Only for a bad ``owner``, or a ``hook_id`` that is not a str.

        .. versionadded:: 0.2.0
        """
        owner = _validation.owner(owner)
        hook_id = _validation.string(hook_id, "hook_id")
        limit = _page(query, ["limit"])
        if isinstance(limit, ApiResponse):
            return limit
        try:
            hook = self.dispatcher.get_hook(hook_id, owner=owner)
            log = [
                attempt
                for delivery in self.dispatcher.deliveries(
                    owner=owner, hook_id=hook.id, limit=limit
                )
                for attempt in self.dispatcher.attempts(delivery.id, owner=owner)
            ]
        except ResthooksError as exc:
            return self._failure(exc, conflict=True)
        log.sort(key=lambda a: (a.started_at, a.number), reverse=True)
        return _answer(200, {"attempts": [attempt_document(a) for a in log[:limit]]})

    def redeliver(self, hook_id: str, delivery_id: str, *, owner: str) -> ApiResponse:
        """Queue a failed or cancelled delivery of the hook again:
        ``POST {base_path}/{hook_id}/deliveries/{delivery_id}/redeliver``.

        It keeps its id (receivers deduplicate on ``webhook-id``) and starts a new series of
        attempts, due now.

        Returns:
            ``202 {"delivery": {...}}``, pending; ``404``; ``409`` if it is not failed or
            cancelled, or the hook is not active.

        Raises:
            ValidationError: Only for a bad ``owner``, or ids that are not str.

        .. versionadded:: 0.2.0
        """
        owner = _validation.owner(owner)
        try:
            delivery = self._delivery_of(hook_id, delivery_id, owner)
            queued = self.dispatcher.redeliver(delivery.id, owner=owner)
        except ResthooksError as exc:
            return self._failure(exc, conflict=True)
        return _answer(202, {"delivery": delivery_document(queued)})

    def replay(self, hook_id: str, body: object, *, owner: str) -> ApiResponse:
        """Queue again the hook's failed and cancelled deliveries emitted in a window:
        ``POST {base_path}/{hook_id}/replay`` with ``{"since": "2026-01-01T00:00:00Z"}``,
        optionally ``"until"`` (default now) and ``"limit"`` (1 to 10,000, default 1,000).

        Delivered, pending and in-flight deliveries are left alone; the oldest are queued
        first. See :meth:`Dispatcher.replay() <resthooks.Dispatcher.replay>`.

        Returns:
            ``202 {"replayed": n, "more": bool, "deliveryIds": [...]}`` (``more``: others in
            the window were left: post again); ``400``; ``404``; ``409`` if the hook is not
            active; ``422`` naming ``since``, ``until`` or ``limit``.

        Raises:
            ValidationError: Only for a bad ``owner``, or a ``hook_id`` that is not a str.

        .. versionadded:: 0.2.0
        """
        owner = _validation.owner(owner)
        hook_id = _validation.string(hook_id, "hook_id")
        fields, problem = _fields_of(body, required=True)
        if problem is not None or fields is None:
            return _bad_request(problem or "malformed body")
        refused = _unknown(fields, ["since", "until", "limit"])
        if refused is not None:
            return refused
        if fields.get("since") is None:
            return _unprocessable([("since", "is required")])
        limit = fields.get("limit", 1000)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_REPLAY:
            return _unprocessable([("limit", f"must be a whole number from 1 to {MAX_REPLAY}")])
        try:
            since = _validation.iso_datetime(fields["since"], "since")
            until = fields.get("until")
            queued, more = self.dispatcher.replay(
                hook_id,
                owner=owner,
                since=since,
                until=None if until is None else _validation.iso_datetime(until, "until"),
                limit=limit,
            )
        except ResthooksError as exc:
            return self._failure(exc, conflict=True)
        return _answer(
            202, {"replayed": len(queued), "more": more, "deliveryIds": [d.id for d in queued]}
        )

    def ping(self, hook_id: str, body: object = b"", *, owner: str) -> ApiResponse:
        """Send the hook's target a test event now: ``POST {base_path}/{hook_id}/ping``
        (empty body, or ``{}``).

        The request is signed as deliveries are, with the body ``{"event": "ping",
        "payload": [{"hookId": ..., "event": ...}]}``; the answer waits for it (up to the
        Dispatcher's ``timeouts.total``). Nothing is stored. See
        :meth:`Dispatcher.ping() <resthooks.Dispatcher.ping>`.

        Returns:
            ``200 {"ping": {...}}`` whatever the target answered (see
            :func:`attempt_document`: ``succeeded``, ``status``, ``error``...); ``400``;
            ``404``; ``409`` for an unconfirmed hook.

        Raises:
            ValidationError: Only for a bad ``owner``, or a ``hook_id`` that is not a str.

        .. versionadded:: 0.2.0
        """
        owner = _validation.owner(owner)
        hook_id = _validation.string(hook_id, "hook_id")
        fields, problem = _fields_of(body, required=False)
        if problem is not None or fields is None:
            return _bad_request(problem or "malformed body")
        refused = _unknown(fields, [])
        if refused is not None:
            return refused
        try:
            attempt = self.dispatcher.ping(hook_id, owner=owner)
        except ResthooksError as exc:
            return self._failure(exc, conflict=True)
        return _answer(200, {"ping": attempt_document(attempt)})

    def _delivery_of(self, hook_id: object, delivery_id: object, owner: str) -> Delivery:
        """The owner's delivery, if it belongs to this hook of theirs (else NotFound)."""
        hook = self.dispatcher.get_hook(_validation.string(hook_id, "hook_id"), owner=owner)
        delivery = self.dispatcher.get_delivery(
            _validation.string(delivery_id, "delivery_id"), owner=owner
        )
        if delivery.hook_id != hook.id:
            raise NotFound(delivery.id)
        return delivery

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
        self,
        method: str,
        hook_id: str | None = None,
        *,
        body: object = b"",
        owner: object,
        action: str | None = None,
        query: Mapping[str, object] | None = None,
    ) -> ApiResponse:
        """Answer one request to the endpoints, whatever it is: what framework integrations call.

        Routes ``method``, ``hook_id`` (``None`` for the collection) and ``action`` (the
        rest of the path after the hook's id, ``None`` for the hook itself) to a handler:

        - ``GET`` / ``POST {base_path}``: :meth:`list` / :meth:`create`;
        - ``GET {base_path}/keys``: :meth:`public_keys`;
        - ``GET`` / ``PATCH`` / ``DELETE {base_path}/{id}``: :meth:`show` / :meth:`update` /
          :meth:`delete`;
        - ``POST {base_path}/{id}/confirm``: :meth:`confirm`;
        - ``POST {base_path}/{id}/rotate-secret``: :meth:`rotate_secret`;
        - ``POST {base_path}/{id}/ping``: :meth:`ping`;
        - ``POST {base_path}/{id}/replay``: :meth:`replay`;
        - ``GET {base_path}/{id}/deliveries``: :meth:`deliveries`;
        - ``GET {base_path}/{id}/deliveries/{delivery}``: :meth:`delivery`;
        - ``POST {base_path}/{id}/deliveries/{delivery}/redeliver``: :meth:`redeliver`;
        - ``GET {base_path}/{id}/attempts``: :meth:`attempts`.

        ``query`` is the request's query string as a mapping (``?state=``, ``?limit=`` of
        the listings). It answers in JSON what those handlers leave to the host:

        - a path that is none of these: ``404``;
        - a method the path does not have: ``405`` with an ``Allow`` header;
        - ``owner`` is ``None`` (the request is not authenticated): ``401``;
        - ``owner`` is not a valid owner (not a string, empty, over 255 characters, control
          characters: an authentication scheme that lets a client choose it, like the
          examples' ``X-Account`` header): ``400`` naming ``owner``.

        .. versionadded:: 0.2.0

        .. versionchanged:: 0.2.0
           ``action`` and ``query``: the owners' endpoints, ``confirm`` and ``keys``.

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
            (405, 'GET, PATCH, DELETE')
            >>> api.handle("GET", owner="acme").body
            {'restHooks': []}
            >>> api.handle("POST", "hook_1", owner="acme", action="ping").status
            404
        """
        routes = self._routes(hook_id, action, body, query)
        if routes is None:
            return _answer(404, {"message": "Not found: no such endpoint"})
        verb = method.upper() if isinstance(method, str) else ""
        if verb == "HEAD" and "GET" in routes:
            verb = "GET"
        if verb not in routes:
            allowed = ", ".join(routes)
            return _answer(405, {"message": f"Method not allowed: use {allowed}"}, Allow=allowed)
        if owner is None:
            return _answer(401, {"message": "Authentication required"})
        try:
            owner = _validation.owner(owner)
        except ValidationError as exc:
            return _bad_request(str(exc))
        if hook_id is not None and not isinstance(hook_id, str):
            return _not_found()
        return routes[verb](owner)

    def _routes(
        self,
        hook_id: object,
        action: object,
        body: object,
        query: Mapping[str, object] | None,
    ) -> dict[str, Callable[[str], ApiResponse]] | None:
        """The handlers of one path by method (``None``: no such path)."""
        if hook_id is None:
            if action is not None:
                return None
            return {
                "GET": lambda owner: self.list(owner=owner),
                "POST": lambda owner: self.create(body, owner=owner),
            }
        if action is None:
            if hook_id == "keys":  # hook ids start with "hook_": never "keys"
                return {"GET": lambda owner: self.public_keys(owner=owner)}
            hid = hook_id
            return {
                "GET": lambda owner: self.show(hid, owner=owner),  # type: ignore[arg-type]
                "PATCH": lambda owner: self.update(hid, body, owner=owner),  # type: ignore[arg-type]
                "DELETE": lambda owner: self.delete(hid, owner=owner),  # type: ignore[arg-type]
            }
        if not isinstance(action, str) or not isinstance(hook_id, str):
            return None
        parts = action.strip("/").split("/")
        hid = hook_id
        if parts == ["confirm"]:
            return {"POST": lambda owner: self.confirm(hid, body, owner=owner)}
        if parts == ["rotate-secret"]:
            return {"POST": lambda owner: self.rotate_secret(hid, body, owner=owner)}
        if parts == ["ping"]:
            return {"POST": lambda owner: self.ping(hid, body, owner=owner)}
        if parts == ["replay"]:
            return {"POST": lambda owner: self.replay(hid, body, owner=owner)}
        if parts == ["deliveries"]:
            return {"GET": lambda owner: self.deliveries(hid, owner=owner, query=query)}
        if parts == ["attempts"]:
            return {"GET": lambda owner: self.attempts(hid, owner=owner, query=query)}
        if len(parts) == 2 and parts[0] == "deliveries":
            did = parts[1]
            return {"GET": lambda owner: self.delivery(hid, did, owner=owner)}
        if len(parts) == 3 and parts[0] == "deliveries" and parts[2] == "redeliver":
            did = parts[1]
            return {"POST": lambda owner: self.redeliver(hid, did, owner=owner)}
        return None

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
    def _failure(exc: ResthooksError, *, conflict: bool = False) -> ApiResponse:
        # ``conflict``: the owners' verbs answer an object in the wrong state (a delivery
        # still pending, a dead hook, an event and URL taken) with 409; the Capsule four
        # never raise it, so there it stays an internal error.
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
        if conflict and isinstance(exc, InvalidStateError):
            return _answer(409, {"message": str(exc)})
        if isinstance(exc, StoreError):
            return _answer(503, {"message": "The hook store is unavailable; try again later"})
        return _answer(500, {"message": "Internal error"})
