"""URLs of the subscription API: ``path("", include("resthooks.contrib.django.urls"))``.

That mounts Capsule's paths, ``api/v2/resthooks`` and ``api/v2/resthooks/<id>``, and the
owners' verbs under ``api/v2/resthooks/<id>/...``, and the webhooks' OpenAPI document at
``api/v2/resthooks/openapi.json``. For another
prefix, or to wrap the views (``csrf_exempt`` for token-authenticated API clients, your own
authentication), use :func:`api_urls`::

    from django.views.decorators.csrf import csrf_exempt
    from resthooks.contrib.django.urls import api_urls

    urlpatterns = [..., *api_urls("api/hooks", decorators=[csrf_exempt])]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.urls import URLPattern, path

from ...api import OPENAPI_PATH
from .views import hook_action_view, hook_view, hooks_view, openapi_view

__all__ = ["api_urls", "urlpatterns"]


def api_urls(
    prefix: str = "api/v2/resthooks", *, decorators: Sequence[Callable[[Any], Any]] = ()
) -> list[URLPattern]:
    """The URL patterns of the API under ``prefix`` (no leading or trailing slash), named
    ``resthooks-list``, ``resthooks-openapi`` (the OpenAPI document, ``openapi.json``),
    ``resthooks-detail`` and ``resthooks-action`` (the owners' verbs on one hook), each view
    wrapped in ``decorators`` (the first is the outermost).

    .. versionchanged:: 0.2.0
       ``resthooks-openapi`` and ``resthooks-action``.
    """
    prefix = prefix.strip("/")
    collection: Any = hooks_view
    detail: Any = hook_view
    action: Any = hook_action_view
    document: Any = openapi_view
    for decorator in reversed(decorators):
        collection, detail, action = decorator(collection), decorator(detail), decorator(action)
        document = decorator(document)
    return [
        path(prefix, collection, name="resthooks-list"),
        # Before <hook_id>, which would match it too.
        path(f"{prefix}/{OPENAPI_PATH}", document, name="resthooks-openapi"),
        path(f"{prefix}/<str:hook_id>", detail, name="resthooks-detail"),
        path(f"{prefix}/<str:hook_id>/<path:action>", action, name="resthooks-action"),
    ]


urlpatterns = api_urls()
