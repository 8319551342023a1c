"""The two entries of the admin index that lead to the REST hooks admin pages.

``Hooks`` and ``Deliveries`` under "REST hooks" on the admin's index page (and in its side
bar), for superusers: the index lists models, and the admin pages are views on the store,
not models (see :mod:`resthooks.contrib.django.admin`). So these two are unmanaged models
that have no table, are never queried, and whose change list redirects to the page. The
store's own tables are the store's and no model maps them.

Django imports this module when its apps load; it needs the settings, so nothing else
imports it.
"""

from __future__ import annotations

from django.db import models

__all__ = ["DeliveriesPage", "HooksPage"]


class HooksPage(models.Model):  # type: ignore[misc] # Django ships no type hints
    """The admin index's link to the hooks page (``resthooks-admin-hooks``)."""

    class Meta:
        managed = False  # no table: nothing reads or writes one
        db_table = "resthooks_admin_link_hooks"  # beside the store's resthooks_* tables
        default_permissions = ()  # superusers only, as the pages
        verbose_name = "hook"
        verbose_name_plural = "hooks"


class DeliveriesPage(models.Model):  # type: ignore[misc] # Django ships no type hints
    """The admin index's link to the deliveries page (``resthooks-admin-deliveries``)."""

    class Meta:
        managed = False
        db_table = "resthooks_admin_link_deliveries"
        default_permissions = ()
        verbose_name = "delivery"
        verbose_name_plural = "deliveries"
