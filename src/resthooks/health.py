"""Health checks a load balancer or a Kubernetes probe can call.

:func:`check_health` answers three questions, each a :class:`HealthCheck`:

- ``store``: can the store be read? (one read-only query);
- ``backlog``: has the oldest due delivery been waiting less than ``max_due_age``? A worker
  that is alive but cannot keep up, or no worker at all, shows here first;
- ``worker``: is the worker loop going round? From a :class:`~resthooks.worker.Worker` in
  this process (its :attr:`~resthooks.worker.Worker.heartbeat`), or from the heartbeat file
  that ``resthooks worker --heartbeat-file`` keeps (:func:`read_heartbeat_file`). Without
  either, it is not checked.

The same checks run from the command line: ``resthooks health`` exits 0 when healthy, 1 when
not (see :doc:`observability`).

Example:
    >>> from resthooks import Dispatcher
    >>> from resthooks.stores import MemoryStore
    >>> from resthooks.testing import FakeClock
    >>> clock = FakeClock()
    >>> dispatcher = Dispatcher(MemoryStore(), clock=clock)
    >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    >>> _ = dispatcher.emit("party/created", {"id": 1}, owner="acme")
    >>> check_health(dispatcher, max_due_age=60).ok
    True
    >>> clock.advance(120)
    >>> health = check_health(dispatcher, max_due_age=60)
    >>> health.ok, [c.name for c in health.checks if not c.ok]
    (False, ['backlog'])

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from .encoding import isoformat_z
from .errors import ResthooksError, ValidationError
from .observability import read_outbox

if TYPE_CHECKING:
    from .dispatcher import Dispatcher

__all__ = [
    "DEFAULT_MAX_DUE_AGE",
    "DEFAULT_MAX_HEARTBEAT_AGE",
    "Health",
    "HealthCheck",
    "Heartbeat",
    "check_health",
    "read_heartbeat_file",
    "write_heartbeat_file",
]

DEFAULT_MAX_DUE_AGE = 300.0
"""How long (in seconds, 5 minutes) the oldest due delivery may wait before the backlog is
unhealthy."""
DEFAULT_MAX_HEARTBEAT_AGE = 60.0
"""How old (in seconds) a worker's heartbeat may be. The loop goes round every
``poll_interval`` (5 s by default) or after each attempt (15 s at most)."""


class Heartbeat(Protocol):
    """Anything with a ``heartbeat``: a :class:`~resthooks.worker.Worker`, or another worker
    that keeps one (``None`` while it is not running)."""

    @property
    def heartbeat(self) -> datetime | None:
        """When the loop last went round, or ``None``."""
        ...


@attrs.frozen
class HealthCheck:
    """One check's verdict.

    Attributes:
        name: ``store``, ``backlog`` or ``worker``.
        ok: Whether it passed.
        detail: One line for a human.
        value: The figure checked, when there is one (seconds of age).
    """

    name: str
    ok: bool
    detail: str
    value: float | None = None


@attrs.frozen
class Health:
    """The verdict of :func:`check_health`.

    Attributes:
        checks: Every check made.
        at: When (the Dispatcher's clock).
    """

    checks: tuple[HealthCheck, ...]
    at: datetime

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form: ``{"ok": ..., "at": ..., "checks": {name: {...}}}``."""
        return {
            "ok": self.ok,
            "at": isoformat_z(self.at),
            "checks": {
                c.name: {"ok": c.ok, "detail": c.detail, "value": c.value} for c in self.checks
            },
        }


def _seconds(value: object, field: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValidationError(field, "must be a finite number of seconds > 0 (or a timedelta)")
    return float(value)


def check_health(
    dispatcher: Dispatcher,
    *,
    worker: Heartbeat | None = None,
    heartbeat_file: str | os.PathLike[str] | None = None,
    max_due_age: float | timedelta = DEFAULT_MAX_DUE_AGE,
    max_heartbeat_age: float | timedelta = DEFAULT_MAX_HEARTBEAT_AGE,
) -> Health:
    """Check the store, the backlog and (if told how) the worker.

    Args:
        dispatcher: Whose store and clock to use.
        worker: A worker of this process: its :attr:`~Heartbeat.heartbeat` is checked.
        heartbeat_file: The heartbeat file of a worker in another process
            (:func:`write_heartbeat_file`); ``worker`` wins if both are given. A missing or
            unreadable file fails the check.
        max_due_age: The longest the oldest due delivery may have been due. Default 5 min.
        max_heartbeat_age: The oldest the heartbeat may be. Default 60 s.

    Returns:
        The :class:`Health`; nothing raises for an unhealthy store.

    Raises:
        ValidationError: Naming ``max_due_age`` or ``max_heartbeat_age`` if not a positive
            number of seconds.
    """
    due_limit = _seconds(max_due_age, "max_due_age")
    beat_limit = _seconds(max_heartbeat_age, "max_heartbeat_age")
    now = dispatcher.clock.now()
    checks: list[HealthCheck] = []
    try:
        figures = read_outbox(dispatcher.store, now=now)
    except ResthooksError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        checks.append(HealthCheck("store", False, f"cannot be read: {reason}"))
        checks.append(HealthCheck("backlog", False, "unknown: the store cannot be read"))
    else:
        checks.append(HealthCheck("store", True, "readable"))
        age = figures.oldest_due_age
        if figures.oldest_due_at is None:
            detail = "nothing due"
        else:
            detail = f"the oldest due delivery has waited {age:.1f} s (limit {due_limit:g} s)"
        checks.append(HealthCheck("backlog", age <= due_limit, detail, age))
    if worker is not None or heartbeat_file is not None:
        problem = "not running"
        beat = None
        if worker is not None:
            beat = worker.heartbeat
        elif heartbeat_file is not None:
            try:
                beat = read_heartbeat_file(heartbeat_file)
            except ValidationError as exc:
                problem = exc.message
        if beat is None:
            checks.append(HealthCheck("worker", False, problem))
        else:
            age = max((now - beat).total_seconds(), 0.0)
            checks.append(
                HealthCheck(
                    "worker",
                    age <= beat_limit,
                    f"last heartbeat {age:.1f} s ago (limit {beat_limit:g} s)",
                    age,
                )
            )
    return Health(tuple(checks), now)


def write_heartbeat_file(path: str | os.PathLike[str], heartbeat: datetime | None) -> None:
    """Write ``heartbeat`` to ``path`` atomically (a JSON object with the time and this
    process's id); ``None`` writes a stopped worker. What ``resthooks worker
    --heartbeat-file`` does every second.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "beat.json"
        >>> at = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> write_heartbeat_file(path, at)
        >>> read_heartbeat_file(path) == at
        True
    """
    target = Path(path)
    data = {"heartbeat": isoformat_z(heartbeat) if heartbeat else None, "pid": os.getpid()}
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data) + "\n", encoding="utf-8")
    temporary.replace(target)


def read_heartbeat_file(path: str | os.PathLike[str]) -> datetime | None:
    """The heartbeat in ``path`` (:func:`write_heartbeat_file`), or ``None`` when the worker
    stopped.

    Raises:
        ValidationError: Naming ``heartbeat_file`` if it is missing or unreadable.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        value = data["heartbeat"]
        if value is None:
            return None
        beat = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except FileNotFoundError:
        raise ValidationError(
            "heartbeat_file", f"{str(path)!r} does not exist (is the worker running?)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValidationError(
            "heartbeat_file", f"{str(path)!r} is not a heartbeat file ({type(exc).__name__})"
        ) from None
    return beat if beat.tzinfo is not None else beat.replace(tzinfo=timezone.utc)
