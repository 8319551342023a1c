"""The Django application of resthooks (label ``resthooks``)."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class ResthooksConfig(AppConfig):  # type: ignore[misc] # Django ships no type hints
    """Registers the system checks, the model-event receivers and (with Django's admin) the
    admin index's links, and rebuilds the Dispatcher when the settings change
    (``override_settings`` in tests)."""

    name = "resthooks.contrib.django"
    label = "resthooks"
    verbose_name = "REST hooks"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from django.apps import apps  # noqa: PLC0415
        from django.core import checks  # noqa: PLC0415
        from django.core.signals import setting_changed  # noqa: PLC0415

        from . import checks as resthooks_checks  # noqa: PLC0415
        from . import events  # noqa: PLC0415

        checks.register(resthooks_checks.check_settings, "resthooks")
        events.connect()
        if apps.is_installed("django.contrib.admin"):
            from .admin import register_index_links  # noqa: PLC0415

            register_index_links()
        setting_changed.connect(_settings_changed, dispatch_uid="resthooks-settings")


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("RESTHOOKS", "DATABASES"):
        from . import conf  # noqa: PLC0415
        from ._store import reset_dispatcher  # noqa: PLC0415

        conf.forget()
        reset_dispatcher()
