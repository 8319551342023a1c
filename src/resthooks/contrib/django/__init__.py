"""resthooks in a Django project: settings, transactional emit, model events, views, admin.

Add ``"resthooks.contrib.django"`` to ``INSTALLED_APPS`` (its app label is ``resthooks``),
configure ``RESTHOOKS`` in the settings (see :mod:`resthooks.contrib.django.conf`), run
``manage.py migrate``, include ``resthooks.contrib.django.urls``, and call :func:`emit` where
your code changes something your API clients subscribe to. Needs the ``django`` extra.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._store import emit, get_dispatcher, reset_dispatcher

__all__ = ["emit", "get_dispatcher", "reset_dispatcher"]


def __getattr__(name: str) -> Any:
    # INSTALLED_APPS imports this package before Django's apps are ready: touch nothing of
    # Django's database layer until one of these is asked for.
    if name in __all__:
        from . import _store  # noqa: PLC0415

        return getattr(_store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
