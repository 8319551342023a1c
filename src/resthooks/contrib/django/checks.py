"""System checks: ``manage.py check`` names every key of ``RESTHOOKS`` that is wrong."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core import checks

from . import conf

__all__ = ["check_settings"]


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``resthooks.E001``...: one error per problem in ``settings.RESTHOOKS``.

    Also checks that every model ``MODEL_EVENTS`` names exists (``resthooks.E011``) and that
    the store can live in ``DATABASE`` (SQLite, or PostgreSQL on psycopg 3: ``E015``, ``E016``).
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
    if settings.store is None:
        from django.db import connections  # noqa: PLC0415

        alias = settings.database or "default"
        vendor = connections[alias].vendor
        if vendor not in ("sqlite", "postgresql"):
            found.append(
                checks.Error(
                    f"RESTHOOKS['DATABASE']: {alias!r} is a {vendor} database; the store can "
                    "live in a SQLite or PostgreSQL database only",
                    hint="Set RESTHOOKS['STORE'] to a callable returning a Store elsewhere.",
                    id="resthooks.E015",
                )
            )
        elif vendor == "postgresql":
            from ._store import is_psycopg3  # noqa: PLC0415

            if not is_psycopg3(connections[alias]):
                found.append(
                    checks.Error(
                        f"RESTHOOKS['DATABASE']: {alias!r} uses psycopg2; the store shares a "
                        "PostgreSQL database through psycopg 3",
                        hint="pip install 'psycopg[binary]' (Django 4.2+ then uses it), or "
                        "set RESTHOOKS['STORE'].",
                        id="resthooks.E016",
                    )
                )
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
