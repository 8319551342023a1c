"""The event catalogue as an OpenAPI 3.1 document: what a receiver of the webhooks gets.

OpenAPI 3.1 describes requests an API *sends* in its ``webhooks`` section. The document has
one operation per event of the catalogue: the ``POST`` a receiver gets, its body
(``{"event": ..., "payload": [...]}``, the payload's items described by the event's JSON
Schema when the catalogue has one), the headers (Standard Webhooks' ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature``, and ``User-Agent``) and what each answer
means to resthooks (``2XX`` delivered, ``410`` unsubscribes, anything else is retried).

Serve it with :meth:`resthooks.api.SubscriptionAPI.openapi` (the framework integrations route
``GET {base_path}/openapi.json`` to it), print it with ``resthooks events --openapi``, or
build it here.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection
from typing import Any

from .dispatcher import Dispatcher, _user_agent
from .errors import ConfigurationError
from .events import CAPSULE_EVENTS, EventCatalogue

__all__ = ["INTENT_VERIFICATION", "OPENAPI_VERSION", "openapi_document", "openapi_document_of"]

OPENAPI_VERSION = "3.1.0"
"""The OpenAPI version of the documents built here."""

INTENT_VERIFICATION = "intent-verification"
"""The name, in ``webhooks``, of the handshake request sent to a new hook's URL when the
Dispatcher verifies intent (``verify_intent=True``)."""

_COMPONENT = re.compile(r"[^A-Za-z0-9._-]")
_SIGNATURE_TOKEN = {
    "v1": "v1,<base64 HMAC-SHA256>",
    "v1a": "v1a,<base64 ed25519 signature>",
}


def _headers(signature_versions: frozenset[str], *, user_agent: str) -> list[dict[str, Any]]:
    signed = bool(signature_versions)
    tokens = " ".join(_SIGNATURE_TOKEN[v] for v in sorted(signature_versions)) or "-"
    return [
        {
            "name": "webhook-id",
            "in": "header",
            "required": True,
            "description": "The delivery's id (Standard Webhooks): the same on every attempt of "
            "one delivery, so a receiver can drop repeats.",
            "schema": {"type": "string", "examples": ["msg_2b1f6a3c9d8e4f0a1b2c3d4e5f607182"]},
        },
        {
            "name": "webhook-timestamp",
            "in": "header",
            "required": True,
            "description": "When this attempt was signed, in Unix seconds (Standard Webhooks). "
            "Refuse a request whose timestamp is far from your clock (replays).",
            "schema": {"type": "string", "pattern": "^[0-9]+$", "examples": ["1614265330"]},
        },
        {
            "name": "webhook-signature",
            "in": "header",
            "required": signed,
            "description": (
                "Space-separated signatures of `{webhook-id}.{webhook-timestamp}.{body}` "
                f"(Standard Webhooks): {tokens}. Several during a secret rotation; accept the "
                "request if one of them verifies (resthooks.verify does)."
                if signed
                else "Sent only by hooks that have a signing secret (this API gives none to "
                "new hooks): space-separated Standard Webhooks signatures."
            ),
            "schema": {"type": "string"},
        },
        {
            "name": "User-Agent",
            "in": "header",
            "required": True,
            "description": "The sender, with resthooks' version.",
            "schema": {"type": "string", "examples": [user_agent]},
        },
    ]


_RESPONSES = {
    "2XX": {"description": "Delivered: no more attempts of this delivery."},
    "410": {
        "description": "Gone: the hook is removed at once and its pending deliveries are "
        "cancelled (Capsule's rule)."
    },
    "default": {
        "description": "Any other status (redirects are not followed), a timeout or a failed "
        "connection is a failed attempt: it is retried on the schedule, and when the retries "
        "run out the hook is marked dead."
    },
}


def _component_key(event: str, taken: set[str]) -> str:
    key = _COMPONENT.sub(".", event)
    candidate, n = key, 2
    while candidate in taken:
        candidate, n = f"{key}-{n}", n + 1
    taken.add(candidate)
    return candidate


def _rebased(schema: Any, prefix: str) -> Any:
    """``schema`` with its JSON-pointer references (``#/$defs/x``) pointing where it now sits
    in the document (``#/components/schemas/{key}/$defs/x``)."""
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#"):
                out[key] = prefix + value[1:]
            elif key in ("const", "enum", "examples", "default"):
                out[key] = copy.deepcopy(value)
            else:
                out[key] = _rebased(value, prefix)
        return out
    if isinstance(schema, list):
        return [_rebased(item, prefix) for item in schema]
    return schema


def openapi_document(
    events: EventCatalogue = CAPSULE_EVENTS,
    *,
    title: str = "Webhooks",
    version: str = "1.0.0",
    description: str | None = None,
    signature_versions: Collection[str] = ("v1",),
    intent_verification: bool = False,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``events``' webhooks, as a JSON-ready ``dict``.

    Args:
        events: The catalogue: one ``webhooks`` operation per event, in its order, with the
            event's description, schema (as ``components.schemas``, referenced by the items
            of ``payload``) and example.
        title: ``info.title``.
        version: ``info.version``: the version of your webhooks, not of resthooks.
        description: ``info.description``; a default one says how deliveries work.
        signature_versions: The Standard Webhooks signatures sent (``"v1"``, ``"v1a"``; none
            for a Dispatcher that does not sign).
        intent_verification: Describe the handshake request a new hook's URL gets
            (``Dispatcher(verify_intent=True)``), as the ``intent-verification`` webhook.

    Raises:
        ConfigurationError: For a title or version that is not a non-empty string, or an
            unknown signature version.

    Example:
        >>> from resthooks import EventCatalogue
        >>> document = openapi_document(EventCatalogue({"invoice": ["paid"]}))
        >>> document["openapi"], list(document["webhooks"])
        ('3.1.0', ['invoice/paid'])
        >>> body = document["webhooks"]["invoice/paid"]["post"]["requestBody"]
        >>> body["content"]["application/json"]["schema"]["properties"]["event"]
        {'const': 'invoice/paid'}
    """
    if not isinstance(events, EventCatalogue):
        raise ConfigurationError("events must be an EventCatalogue")
    for name, value in (("title", title), ("version", version)):
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(f"{name} must be a non-empty string")
    if description is not None and not isinstance(description, str):
        raise ConfigurationError("description must be a string or None")
    if isinstance(signature_versions, str) or not isinstance(signature_versions, Collection):
        raise ConfigurationError("signature_versions must be a collection such as ('v1',)")
    versions = frozenset(signature_versions)
    if not versions <= set(_SIGNATURE_TOKEN):
        raise ConfigurationError("signature_versions may hold 'v1' and 'v1a' only")
    headers = _headers(versions, user_agent=_user_agent())  # what the Dispatcher sends
    schemas: dict[str, Any] = {}
    taken: set[str] = set()
    webhooks: dict[str, Any] = {}
    for event in events:
        entity, _, action = event.partition("/")
        item: dict[str, Any] = {"type": "object"}
        schema = events.schema(event)
        if schema is not None:
            key = _component_key(event, taken)
            pointer = f"#/components/schemas/{key}"
            schemas[key] = schema if "$id" in schema else _rebased(schema, pointer)
            item = {"$ref": pointer}
        body_schema = {
            "type": "object",
            "required": ["event", "payload"],
            "properties": {
                "event": {"const": event},
                "payload": {
                    "type": "array",
                    "description": "The entities, in emit order: always a list.",
                    "items": item,
                },
            },
        }
        media: dict[str, Any] = {"schema": body_schema}
        example = events.example(event)
        if example is not None:
            media["example"] = {"event": event, "payload": [example]}
        operation: dict[str, Any] = {
            "operationId": event,
            "summary": f"{entity} {action}",
            "tags": [entity],
            "parameters": copy.deepcopy(headers),
            "requestBody": {"required": True, "content": {"application/json": media}},
            "responses": copy.deepcopy(_RESPONSES),
        }
        if events.description(event):
            operation["description"] = events.description(event)
        webhooks[event] = {"post": operation}
    if intent_verification:
        webhooks[INTENT_VERIFICATION] = {"post": _handshake(headers)}
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": description if description is not None else _DESCRIPTION,
        },
        "webhooks": webhooks,
    }
    if schemas:
        document["components"] = {"schemas": schemas}
    return document


def _handshake(headers: list[dict[str, Any]]) -> dict[str, Any]:
    secret = {
        "name": "X-Hook-Secret",
        "in": "header",
        "required": True,
        "description": "A one-time secret: echo it in an X-Hook-Secret header of a 2xx "
        "answer to confirm the hook, or hand it back through the subscription API later.",
        "schema": {"type": "string"},
    }
    return {
        "operationId": INTENT_VERIFICATION,
        "summary": "confirm a new hook (REST Hooks intent verification)",
        "description": "Sent once to a new hook's URL, with an empty body, before any "
        "delivery. The hook receives nothing until it is confirmed.",
        "parameters": [*copy.deepcopy(headers), secret],
        "responses": {
            "2XX": {
                "description": "Confirmed if the answer echoes the secret.",
                "headers": {"X-Hook-Secret": {"schema": {"type": "string"}}},
            },
            "default": {"description": "The hook stays unconfirmed."},
        },
    }


_DESCRIPTION = (
    "The webhooks this API delivers (REST hooks). Each is a POST of "
    '`{"event": ..., "payload": [...]}` to the URL a hook subscribed; `payload` is always a '
    "list of entities. A delivery is retried until it is answered with a 2xx; 410 Gone "
    "removes the hook."
)


def openapi_document_of(
    dispatcher: Dispatcher,
    *,
    title: str = "Webhooks",
    version: str = "1.0.0",
    description: str | None = None,
) -> dict[str, Any]:
    """:func:`openapi_document` for what ``dispatcher`` sends: its catalogue, its signatures
    (none when ``sign_deliveries`` is off) and its intent verification handshake.

    Example:
        >>> from resthooks import Dispatcher
        >>> from resthooks.stores import MemoryStore
        >>> document = openapi_document_of(Dispatcher(MemoryStore()), title="Acme CRM")
        >>> len(document["webhooks"]), document["info"]["title"]
        (19, 'Acme CRM')
    """
    return openapi_document(
        dispatcher.events,
        title=title,
        version=version,
        description=description,
        signature_versions=dispatcher.signature_versions if dispatcher.sign_deliveries else (),
        intent_verification=dispatcher.verify_intent,
    )
