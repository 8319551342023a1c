"""Trace context for emits: how a tracer ties each delivery to the request that caused it.

:meth:`Dispatcher.emit <resthooks.Dispatcher.emit>` calls the Dispatcher's
:attr:`~resthooks.Dispatcher.emit_observer`, when one is set, around storing the new
deliveries. The observer (:func:`resthooks.otel.instrument` installs one) may open a span
for the emit and put its W3C ``traceparent`` in :attr:`EmitTrace.trace_context`: the store
keeps it with every delivery of that emit, and each
:class:`~resthooks.lifecycle.AttemptFinished` carries it back, so an attempt made minutes later
by another process can still be linked to the emit.

Nothing here imports a tracing library: the observer is any callable returning a context
manager.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager

import attrs

__all__ = ["EmitObserver", "EmitTrace", "valid_traceparent"]

_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


@attrs.define(kw_only=True)
class EmitTrace:
    """One emit, as its observer sees it.

    Attributes:
        event: The event emitted (validated).
        owner: Whose hooks receive it (validated).
        trace_context: Set by the observer: a W3C ``traceparent`` (version ``00``, 55
            characters) to store with each new delivery. Anything else is not stored.
        deliveries: Set by the Dispatcher once the store call returned: how many deliveries
            it created (``None`` if it raised).
    """

    event: str
    owner: str
    trace_context: str | None = None
    deliveries: int | None = None

    def store_arguments(self) -> dict[str, str]:
        """What the store's ``enqueue`` is given: ``trace_context`` when the observer set a
        valid one, nothing otherwise (a store of one's own without the argument then keeps
        working)."""
        context = valid_traceparent(self.trace_context)
        return {"trace_context": context} if context is not None else {}


EmitObserver = Callable[[EmitTrace], AbstractContextManager[object]]
"""An emit observer, called with the :class:`EmitTrace` of each emit; it returns a context
manager that the Dispatcher enters before storing the deliveries and exits after (with the
exception, if the store call raised)."""


def valid_traceparent(value: object) -> str | None:
    """``value`` if it is a W3C ``traceparent`` of version ``00`` with non-zero ids, else
    ``None``: what the stores keep.

    Example:
        >>> valid_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
        >>> valid_traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01") is None
        True
    """
    if isinstance(value, str) and len(value) == 55 and _TRACEPARENT.fullmatch(value):
        return value
    return None
