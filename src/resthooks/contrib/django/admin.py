"""A read-only admin of the store: hooks, deliveries and their attempt logs.

Mount it before Django's admin, in the project's ``urls.py``::

    path("admin/resthooks/", include("resthooks.contrib.django.admin_urls")),
    path("admin/", admin.site.urls),

The admin's index lists them under "REST hooks" (**Hooks**, **Deliveries**), for superusers
(:func:`register_index_links`, called when the app loads with ``django.contrib.admin``
installed). The pages use the admin's look and login: anyone not logged in is sent to the
admin login, and only superusers see them (others get ``403``). They read through the store,
so they work wherever it lives (the project's database or elsewhere). The two actions, each a
POST with Django's CSRF check, go through the Dispatcher and its rules: **redeliver** a failed or
cancelled delivery, **revive** a dead hook (optionally queueing its failed deliveries again).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse

from ...errors import ResthooksError
from ...model import DeliveryState, HookState
from ...urls import mask_url
from ._store import get_dispatcher

__all__ = [
    "deliveries_page",
    "delivery_page",
    "hooks_page",
    "redeliver_action",
    "register_index_links",
    "revive_action",
]

_PAGE = 100


def _site() -> Any:
    # Imported on first request: django.contrib.admin needs the settings and the app
    # registry, and this module is imported by the admin's autodiscovery before both.
    from django.contrib import admin  # noqa: PLC0415

    return admin.site


def _superuser(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_superuser:
            raise PermissionDenied("only superusers may see the REST hooks admin")
        return view(request, *args, **kwargs)

    @wraps(view)
    def page(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # The admin's own gate first: not logged in (or not staff) goes to the admin login.
        response: HttpResponse = _site().admin_view(checked)(request, *args, **kwargs)
        return response

    return page


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {**_site().each_context(request), "title": title, **extra}


def _choice(value: str | None, enum: Any) -> Any:
    try:
        return enum(value) if value else None
    except ValueError:
        return None


def _hooks(request: HttpRequest) -> HttpResponse:
    dispatcher = get_dispatcher()
    state = _choice(request.GET.get("state"), HookState)
    owner = request.GET.get("owner") or None
    hooks = dispatcher.store.list_hooks(owner=owner, state=state)
    rows = [
        {
            "hook": hook,
            "target": mask_url(hook.target_url),
            "dead": hook.state is HookState.DEAD,
        }
        for hook in hooks
    ]
    return TemplateResponse(
        request,
        "resthooks/admin/hooks.html",
        _context(
            request,
            "REST hooks",
            rows=rows,
            stats=dispatcher.stats(),
            states=[s.value for s in HookState],
            state=state.value if state else "",
            owner=owner or "",
        ),
    )


def _deliveries(request: HttpRequest) -> HttpResponse:
    dispatcher = get_dispatcher()
    state = _choice(request.GET.get("state"), DeliveryState)
    hook_id = request.GET.get("hook") or None
    deliveries = dispatcher.store.list_deliveries(hook_id=hook_id, state=state, limit=_PAGE)
    return TemplateResponse(
        request,
        "resthooks/admin/deliveries.html",
        _context(
            request,
            "REST hook deliveries",
            deliveries=deliveries,
            states=[s.value for s in DeliveryState],
            state=state.value if state else "",
            hook_id=hook_id or "",
            page=_PAGE,
        ),
    )


def _delivery(request: HttpRequest, delivery_id: str) -> HttpResponse:
    dispatcher = get_dispatcher()
    delivery = dispatcher.store.get_delivery(delivery_id)
    if delivery is None:
        raise Http404("no such delivery")
    return TemplateResponse(
        request,
        "resthooks/admin/delivery.html",
        _context(
            request,
            f"Delivery {delivery.id}",
            delivery=delivery,
            attempts=dispatcher.store.attempts(delivery.id),
            can_redeliver=delivery.state in (DeliveryState.FAILED, DeliveryState.CANCELLED),
        ),
    )


def _redeliver(request: HttpRequest, delivery_id: str) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    dispatcher = get_dispatcher()
    delivery = dispatcher.store.get_delivery(delivery_id)
    if delivery is None:
        raise Http404("no such delivery")
    try:
        dispatcher.redeliver(delivery.id, owner=delivery.owner)
    except ResthooksError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Delivery {delivery.id} is queued again.")
    return HttpResponseRedirect(reverse("resthooks-admin-delivery", args=[delivery.id]))


def _revive(request: HttpRequest, hook_id: str) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    dispatcher = get_dispatcher()
    hook = dispatcher.store.get_hook(hook_id)
    if hook is None:
        raise Http404("no such hook")
    try:
        dispatcher.revive(
            hook.id, owner=hook.owner, redeliver_failed=request.POST.get("redeliver") == "1"
        )
    except ResthooksError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Hook {hook.id} is active again.")
    return HttpResponseRedirect(reverse("resthooks-admin-hooks"))


#: The hooks, with stats and filters (``?state=dead``, ``?owner=acme``).
hooks_page = _superuser(_hooks)
#: The newest deliveries (``?state=failed``, ``?hook=hook_...``).
deliveries_page = _superuser(_deliveries)
#: One delivery and its attempt log.
delivery_page = _superuser(_delivery)
#: POST: queue a failed or cancelled delivery again.
redeliver_action = _superuser(_redeliver)
#: POST: make a dead hook active again (``redeliver=1``: and queue its failed deliveries).
revive_action = _superuser(_revive)


def register_index_links(site: Any = None) -> None:
    """List the pages on the admin index (and its side bar), under "REST hooks": **Hooks**
    and **Deliveries**, for superusers, as the pages themselves.

    The index lists models, so each link is an unmanaged model of
    ``resthooks.contrib.django.models`` (no table) whose change list redirects to its
    page. Where the pages are not mounted (no ``include(...admin_urls)``), nothing is listed.
    Called by the app's ``ready()`` when ``django.contrib.admin`` is installed.

    Args:
        site: The admin site. Default: ``django.contrib.admin.site``.

    .. versionadded:: 0.2.0
    """
    from django.contrib.admin import ModelAdmin  # noqa: PLC0415 - needs the app registry

    from .models import DeliveriesPage, HooksPage  # noqa: PLC0415 - needs the app registry

    site = site if site is not None else _site()

    class _Link(ModelAdmin):  # type: ignore[misc] # Django ships no type hints
        page = ""  # the URL name of the page the link leads to

        def _url(self) -> str | None:
            try:
                return str(reverse(self.page))
            except NoReverseMatch:
                return None

        def has_module_permission(self, request: HttpRequest) -> bool:
            return bool(request.user.is_active and request.user.is_superuser) and bool(self._url())

        def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
            return self.has_module_permission(request)

        def has_add_permission(self, request: HttpRequest) -> bool:
            return False

        def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
            return False

        def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
            return False

        def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
            url = self._url()
            if url is None or not self.has_view_permission(request):
                raise PermissionDenied("only superusers may see the REST hooks admin")
            return HttpResponseRedirect(url)

    class _HooksLink(_Link):
        page = "resthooks-admin-hooks"

    class _DeliveriesLink(_Link):
        page = "resthooks-admin-deliveries"

    for model, link in ((HooksPage, _HooksLink), (DeliveriesPage, _DeliveriesLink)):
        if not site.is_registered(model):
            site.register(model, link)
