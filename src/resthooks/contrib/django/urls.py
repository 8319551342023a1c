"""URLs of the subscription API: ``path("", include("resthooks.contrib.django.urls"))``.

That mounts Capsule's paths, ``api/v2/resthooks`` and ``api/v2/resthooks/<id>``. For another
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

from .views import hook_view, hooks_view

__all__ = ["api_urls", "urlpatterns"]


def api_urls(
    prefix: str = "api/v2/resthooks", *, decorators: Sequence[Callable[[Any], Any]] = ()
) -> list[URLPattern]:
    """The two URL patterns of the API under ``prefix`` (no leading or trailing slash),
    named ``resthooks-list`` and ``resthooks-detail``, each view wrapped in ``decorators``
    (the first is the outermost)."""
    prefix = prefix.strip("/")
    collection: Any = hooks_view
    detail: Any = hook_view
    for decorator in reversed(decorators):
        collection, detail = decorator(collection), decorator(detail)
    return [
        path(prefix, collection, name="resthooks-list"),
        path(f"{prefix}/<str:hook_id>", detail, name="resthooks-detail"),
    ]


urlpatterns = api_urls()
