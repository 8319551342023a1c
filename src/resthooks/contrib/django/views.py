"""The subscription API (Capsule's four endpoints) as Django views; JSON answers only.

Whose hooks a request sees is what ``RESTHOOKS["OWNER_RESOLVER"]`` (``request -> owner``)
returns; without it, the primary key of the authenticated ``request.user``. ``None`` answers
``401``. Authentication, permissions and CSRF are the host's: these views add none and
exempt none (see :func:`resthooks.contrib.django.urls.api_urls`).
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse

from ...api import ApiResponse, SubscriptionAPI
from . import conf
from ._store import get_dispatcher

__all__ = ["hook_action_view", "hook_view", "hooks_view", "openapi_view", "owner_of"]

_log = logging.getLogger("resthooks.contrib.django")


def owner_of(request: HttpRequest) -> object:
    """The owner of the request: ``OWNER_RESOLVER(request)``, else ``str(request.user.pk)``
    for an authenticated user, else ``None``."""
    resolver = conf.load().owner_resolver
    if resolver is not None:
        return resolver(request)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return str(user.pk)
    return None


def _reply(answer: ApiResponse) -> HttpResponse:
    response = HttpResponse(answer.content, status=answer.status)
    for name, value in answer.headers.items():
        response[name] = value
    if answer.body is None:
        del response["Content-Type"]
    return response


def _handle(
    request: HttpRequest,
    hook_id: str | None,
    action: str | None = None,
    *,
    document: bool = False,
) -> HttpResponse:
    owner = owner_of(request)
    # Location headers follow wherever the host mounted the collection.
    base = request.path if hook_id is None and not document else request.path.rsplit("/", 1)[0]
    if action is not None:
        base = request.path[: -len(action) - 1].rsplit("/", 1)[0]
    try:
        api = SubscriptionAPI(get_dispatcher(), base_path=base or "/")
        if document:
            return _reply(api.handle_openapi(request.method or "", owner=owner))
        return _reply(
            api.handle(
                request.method or "",
                hook_id,
                body=request.body,
                owner=owner,
                action=action,
                query=request.GET,
            )
        )
    except Exception:  # noqa: BLE001 - the client gets JSON whatever failed; it is logged
        # A bug or a broken store the API could not map: still JSON, never an HTML page.
        _log.exception("the subscription API failed")
        return _reply(
            ApiResponse(
                status=500,
                headers={"Content-Type": "application/json"},
                body={"message": "Internal error"},
            )
        )


def hooks_view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """``GET`` (list) and ``POST`` (subscribe) on the collection."""
    return _handle(request, None)


def hook_view(request: HttpRequest, hook_id: str, **kwargs: Any) -> HttpResponse:
    """``GET`` (show), ``PATCH`` (update) and ``DELETE`` (unsubscribe) on one hook, and
    ``GET keys`` (the owner's public keys)."""
    return _handle(request, hook_id)


def hook_action_view(
    request: HttpRequest, hook_id: str, action: str, **kwargs: Any
) -> HttpResponse:
    """The owners' verbs on one hook (``rotate-secret``, ``ping``, ``replay``,
    ``deliveries``...: see :meth:`resthooks.api.SubscriptionAPI.handle`).

    .. versionadded:: 0.2.0
    """
    return _handle(request, hook_id, action)


def openapi_view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """``GET``: the webhooks as an OpenAPI 3.1 document
    (:meth:`~resthooks.api.SubscriptionAPI.handle_openapi`).

    .. versionadded:: 0.2.0
    """
    return _handle(request, None, document=True)
