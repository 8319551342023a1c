"""System checks: ``manage.py check`` names every key of ``RESTHOOKS`` that is wrong."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core import checks

from . import conf

__all__ = ["check_settings"]


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``resthooks.E001``...: one error per problem in ``settings.RESTHOOKS``.

    Also checks that every model ``MODEL_EVENTS`` names exists (``resthooks.E011``).
    """
    found = [
        checks.Error(
            f"RESTHOOKS[{p.key!r}]: {p.message}" if p.key != "RESTHOOKS" else p.message,
            id=f"resthooks.E{p.id:03d}",
        )
        for p in conf.problems()
    ]
    if found:
        return found
    settings = conf.load()
    for event, (label, _action) in settings.model_events.items():
        try:
            apps.get_model(label)
        except (LookupError, ValueError):
            found.append(
                checks.Error(
                    f"RESTHOOKS['MODEL_EVENTS'][{event!r}]: no model {label!r} is installed",
                    id="resthooks.E011",
                )
            )
    return found
