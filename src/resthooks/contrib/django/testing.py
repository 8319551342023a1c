"""Test support for Django projects: deliver at once, in the test's own thread.

Django's test runner works as usual: the in-memory SQLite test database, ``TestCase`` (each
test in a transaction that is rolled back) and ``captureOnCommitCallbacks``. Inside
:func:`synchronous`, every emit is delivered as soon as it is committed (or at once outside a
transaction), before the code that emitted returns, so a test asserts what a real receiver
got right after::

    from django.test import TestCase, override_settings
    from resthooks.contrib.django.testing import synchronous
    from resthooks.testing import HookReceiver

    @override_settings(RESTHOOKS={..., "ALLOW_NETWORKS": ["127.0.0.0/8"]})
    class PartyHooks(TestCase):
        def test_created(self):
            with HookReceiver() as receiver, synchronous():
                ...  # subscribe receiver.url("/crm") through the API
                with self.captureOnCommitCallbacks(execute=True):
                    Party.objects.create(name="Zoë")
            assert receiver.payloads("party/created") == [...]

In a ``TestCase`` nothing commits, so ``captureOnCommitCallbacks(execute=True)`` is what
runs the commit callbacks, as Django's documentation says for any ``on_commit`` code.
"""

from __future__ import annotations

from contextlib import ContextDecorator
from typing import Any

from ...dispatcher import Dispatcher
from ...testing import DeliveryMode
from ...testing import synchronous as _synchronous
from . import _store

__all__ = ["synchronous"]


class synchronous(ContextDecorator):  # noqa: N801 - used like a function, as its twin
    """Deliver every committed emit at once, for the duration (a context manager or a
    decorator). The project's Dispatcher, and any rebuilt meanwhile (``override_settings``),
    is put in :func:`resthooks.testing.synchronous` mode; the mode is undone on exit."""

    def __init__(self) -> None:
        self._modes: list[DeliveryMode] = []

    def _apply(self, dispatcher: Dispatcher) -> None:
        self._modes.append(_synchronous(dispatcher))

    def __enter__(self) -> synchronous:
        _store.configure_hooks.append(self._apply)
        built = _store.built_dispatcher()
        if built is not None:
            self._apply(built)
        return self

    def __exit__(self, *exc: Any) -> None:
        _store.configure_hooks.remove(self._apply)
        for mode in reversed(self._modes):
            mode.restore()
        self._modes.clear()
