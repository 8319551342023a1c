"""URLs of the REST hooks admin: ``path("admin/resthooks/", include(...admin_urls))``."""

from __future__ import annotations

from django.urls import path

from .admin import deliveries_page, delivery_page, hooks_page, redeliver_action, revive_action

__all__ = ["urlpatterns"]

urlpatterns = [
    path("", hooks_page, name="resthooks-admin-hooks"),
    path("hooks/<str:hook_id>/revive", revive_action, name="resthooks-admin-revive"),
    path("deliveries/", deliveries_page, name="resthooks-admin-deliveries"),
    path("deliveries/<str:delivery_id>/", delivery_page, name="resthooks-admin-delivery"),
    path(
        "deliveries/<str:delivery_id>/redeliver",
        redeliver_action,
        name="resthooks-admin-redeliver",
    ),
]
