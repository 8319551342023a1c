"""What ``resthooks worker`` and ``resthooks stats --watch`` show while they run. Not public.

On a terminal, a block of lines redrawn in place (:class:`Screen`); elsewhere (a pipe, a log
file, a service manager), plain lines. The worker's view is a lifecycle listener: it counts
what the Dispatcher reports, and reads the store's figures through the same cached, read-only
queries as the metrics (:class:`~resthooks.observability.OutboxMonitor`).
"""

from __future__ import annotations

import os
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import attrs

from .encoding import isoformat_z
from .errors import ResthooksError
from .lifecycle import AttemptFinished, LifecycleEvent
from .model import Attempt, OutcomeKind
from .observability import OutboxFigures, OutboxMonitor, attempt_outcome
from .outcomes import Verdict

__all__ = ["RATE_WINDOW", "Screen", "WorkerView", "figures_data", "figures_lines"]

RATE_WINDOW = 10.0
"""Seconds over which the live view's rate is counted: the current rate, not an average
since start."""
_LAST_ERRORS = 5
_PAINT_INTERVAL = 1.0

_KINDS = {
    OutcomeKind.DELIVERED: "delivered",
    OutcomeKind.RETRY: "retrying",
    OutcomeKind.FAILED: "failed",
    OutcomeKind.GONE: "gone",
}


class Screen:
    """A block of lines redrawn in place on a terminal: each draw moves the cursor back to
    the first line of the previous block, rewrites every line and clears what is left."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._height = 0

    def _width(self) -> int:
        try:
            columns = os.get_terminal_size(self.out.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 0
        return max(columns, 20) if columns else 120  # 0: a terminal that has no size set

    def draw(self, lines: Sequence[str]) -> None:
        """Replace the previous block with ``lines`` (each cut to the terminal's width, so
        that none wraps and the next draw finds the top again)."""
        width = self._width() - 1
        parts = [f"\x1b[{self._height}F"] if self._height else []
        parts.extend(line[:width] + "\x1b[K\n" for line in lines)
        parts.append("\x1b[J")
        self.out.write("".join(parts))
        self.out.flush()
        self._height = len(lines)


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def figures_lines(figures: OutboxFigures | None, problem: str | None = None) -> list[str]:
    """The store's figures, as the live views show them."""
    if figures is None:
        return [f"outbox      unknown: {problem or 'the store cannot be read'}"]
    oldest = f"{figures.oldest_due_age:.0f} s" if figures.oldest_due_at is not None else "-"
    hooks = "  ".join(f"{count} {state}" for state, count in figures.hooks.items())
    return [
        f"outbox      {_count(figures.due)} due  {figures.in_flight} in flight  "
        f"{_count(figures.retrying)} retrying  {figures.pending} pending  "
        f"oldest due waiting {oldest}",
        f"hooks       {hooks}",
    ]


def figures_data(figures: OutboxFigures) -> dict[str, Any]:
    """The store's figures as JSON: what ``stats`` adds under ``outbox``."""
    return {
        "depth": figures.depth,
        "due": figures.due,
        "in_flight": figures.in_flight,
        "retrying": figures.retrying,
        "pending": figures.pending,
        "oldest_due_at": (
            isoformat_z(figures.oldest_due_at) if figures.oldest_due_at is not None else None
        ),
        "oldest_due_age": round(figures.oldest_due_age, 3),
    }


@attrs.frozen
class _Error:
    at: str
    hook_id: str
    host: str
    attempt: int
    what: str
    then: str


def _what(attempt: Attempt) -> str:
    if attempt.status is not None:
        return f"HTTP {attempt.status}"
    # The Dispatcher redacted the message already (no credentials, no query string).
    return f"{attempt.error_kind}: {attempt.error}" if attempt.error else str(attempt.error_kind)


def _host(url: str) -> str:
    try:
        return urllib.parse.urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


class WorkerView:
    """A lifecycle listener showing what a worker does.

    Live (a terminal): every second, a block redrawn in place with the current rate (over
    the last :data:`RATE_WINDOW` seconds), the counts since start, the store's figures (due,
    in flight, retrying, pending, the oldest due delivery's wait, hooks by state) and the last
    errors. ``on_attempt`` is called with each attempt and its label (``delivered``,
    ``retrying``... ): where the command prints plain lines when not on a terminal.
    """

    def __init__(
        self,
        outbox: OutboxMonitor,
        out: TextIO,
        *,
        live: bool,
        on_attempt: Callable[[AttemptFinished, str], None] | None = None,
        title: str = "resthooks worker",
        monotonic: Callable[[], float] = time.monotonic,
        blocked_hint: str = "",
    ) -> None:
        self.outbox = outbox
        self.out = out
        self.live = live
        self.on_attempt = on_attempt
        self.title = title
        self.blocked_hint = blocked_hint
        self.counts = dict.fromkeys(
            ("attempts", "delivered", "retrying", "failed", "gone", "blocked"), 0
        )
        self._monotonic = monotonic
        self._started = monotonic()
        self._recent: deque[tuple[float, bool]] = deque()  # (when, delivered)
        self._errors: deque[_Error] = deque(maxlen=_LAST_ERRORS)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._painter: threading.Thread | None = None
        self._screen = Screen(out)

    # -- the listener ------------------------------------------------------------------------

    def __call__(self, event: LifecycleEvent, /) -> None:
        """Count one event (only :class:`~resthooks.lifecycle.AttemptFinished` matters)."""
        if not isinstance(event, AttemptFinished):
            return
        kind = _KINDS.get(event.outcome) if event.verdict is Verdict.APPLIED else None
        attempt = event.attempt
        with self._lock:
            self.counts["attempts"] += 1
            if kind is not None:
                self.counts[kind] += 1
            if attempt.error_kind == "blocked":
                self.counts["blocked"] += 1
            self._recent.append((self._monotonic(), kind == "delivered"))
            if not attempt.succeeded:
                self._errors.append(
                    _Error(
                        at=isoformat_z(attempt.started_at)[11:19],
                        hook_id=event.hook.id,
                        host=_host(event.hook.target_url),
                        attempt=attempt.number,
                        what=_what(attempt),
                        then=_then(event),
                    )
                )
        if self.on_attempt is not None:
            self.on_attempt(event, kind or _late(event))

    # -- the live block ----------------------------------------------------------------------

    def rates(self) -> tuple[float, float]:
        """Attempts and deliveries per second over the last :data:`RATE_WINDOW` seconds (or
        since start, when younger, but at least one second)."""
        now = self._monotonic()
        with self._lock:
            while self._recent and self._recent[0][0] < now - RATE_WINDOW:
                self._recent.popleft()
            attempts = len(self._recent)
            delivered = sum(1 for _, ok in self._recent if ok)
        # Over a second at least: one attempt in the first millisecond is not 1,000/s.
        span = min(max(now - self._started, 1.0), RATE_WINDOW)
        return attempts / span, delivered / span

    def lines(self) -> list[str]:
        """The block, as it is now."""
        attempts_rate, delivered_rate = self.rates()
        with self._lock:
            counts = dict(self.counts)
            errors = list(self._errors)
        up = int(self._monotonic() - self._started)
        problem = None
        try:
            figures: OutboxFigures | None = self.outbox.figures()
        except ResthooksError as exc:
            figures, problem = None, " ".join(str(exc).split())
        lines = [
            f"{self.title}, up {up // 3600}:{up // 60 % 60:02d}:{up % 60:02d}",
            f"rate        {attempts_rate:.1f} attempts/s  {delivered_rate:.1f} delivered/s  "
            f"(last {RATE_WINDOW:.0f} s)",
            f"since start {counts['delivered']} delivered  {counts['retrying']} retried  "
            f"{counts['failed']} failed  {counts['gone']} gone  ({counts['attempts']} attempts)",
            *figures_lines(figures, problem),
        ]
        if counts["blocked"]:
            hint = f": {self.blocked_hint}" if self.blocked_hint else ""
            lines.append(
                f"blocked     {counts['blocked']} attempts refused by the network policy{hint}"
            )
        if not errors:
            return [*lines, "last errors none"]
        lines.append("last errors")
        lines.extend(
            f"  {e.at}  {e.hook_id}  {e.host}  attempt {e.attempt}  {e.what}  {e.then}"
            for e in reversed(errors)
        )
        return lines

    def paint(self) -> None:
        """Redraw the block."""
        self._screen.draw(self.lines())

    def _paint_loop(self) -> None:
        while not self._done.wait(_PAINT_INTERVAL):
            self.paint()

    def start(self) -> None:
        """Start redrawing every second (when live)."""
        if self.live:
            self.paint()
            self._painter = threading.Thread(
                target=self._paint_loop, name="resthooks-live", daemon=True
            )
            self._painter.start()

    def stop(self) -> None:
        """Stop redrawing, leaving the last block on the screen."""
        self._done.set()
        if self._painter is not None:
            self._painter.join()
            self._painter = None
            self.paint()

    def __repr__(self) -> str:
        return f"<WorkerView live={self.live}>"


def _late(event: AttemptFinished) -> str:
    if attempt_outcome(event) == "late":
        return "logged, delivery was cancelled in flight"
    return event.outcome.value


def _then(event: AttemptFinished) -> str:
    if event.verdict is Verdict.LATE:
        return "(its delivery was cancelled meanwhile)"
    if event.outcome is OutcomeKind.RETRY and event.next_attempt_at is not None:
        return f"retry at {isoformat_z(event.next_attempt_at)[11:19]}"
    if event.outcome is OutcomeKind.FAILED:
        return "failed for good, hook dead"
    if event.outcome is OutcomeKind.GONE:
        return "410 Gone, hook removed"
    return ""
