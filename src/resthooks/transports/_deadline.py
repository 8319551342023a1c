"""A total deadline for the part of an attempt urllib3 runs on its own.

urllib3's read timeout applies to each socket read. Until the headers are in, urllib3 and
http.client do the reading, so a server that sends its status line or headers one byte at a
time would hold an attempt for as long as it likes. The pools made here arm a watchdog for
every request: if the headers have not arrived by the deadline, the watchdog shuts the
connection's socket down, which ends the blocked read at once, and the request fails with a
read timeout. The body is read by the transport itself, against the same deadline.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from urllib3 import HTTPConnectionPool
from urllib3.exceptions import ReadTimeoutError

__all__ = ["with_deadline"]


class _Watch:
    __slots__ = ("conn", "deadline", "fired")

    def __init__(self, conn: object, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.fired = False


class _Watchdog:
    """One daemon thread that shuts down the sockets of requests past their deadline.

    It sleeps until the earliest deadline of the requests being watched (a handful: one per
    thread sending), so an idle or healthy transport costs it no wake-ups.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watches: set[_Watch] = set()
        self._wake_at: float | None = None
        self._thread: threading.Thread | None = None

    def arm(self, conn: object, deadline: float) -> _Watch:
        watch = _Watch(conn, deadline)
        with self._cond:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="resthooks-deadline", daemon=True
                )
                self._thread.start()
            if self._wake_at is None or deadline < self._wake_at:
                self._cond.notify()
        return watch

    def disarm(self, watch: _Watch) -> None:
        # Under the lock: once this returns the watchdog can no longer touch the connection,
        # which goes back to the pool and may serve another request.
        with self._cond:
            self._watches.discard(watch)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for watch in [w for w in self._watches if w.deadline <= now]:
                    watch.fired = True
                    if _shut_down(watch.conn):
                        self._watches.discard(watch)
                    else:
                        # Still connecting (bounded by the connect timeout): look again soon,
                        # so a server that then drips its answer is still cut off.
                        watch.deadline = now + 0.05
                self._wake_at = min((w.deadline for w in self._watches), default=None)
                self._cond.wait(None if self._wake_at is None else self._wake_at - now)


def _shut_down(conn: object) -> bool:
    """Shut the connection's socket down; False if it has no socket yet."""
    sock = getattr(conn, "sock", None)
    if not isinstance(sock, socket.socket):
        return False
    # The plain socket's shutdown, even for TLS: it ends a read blocked in another thread
    # without touching the TLS object that thread is using. OSError: already closed.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    return True


_WATCHDOG = _Watchdog()


def _with_deadline(base: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    class DeadlinePool(base):  # type: ignore[valid-type,misc] # a subclass of whichever pool class is given
        def _make_request(self, conn: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            total = getattr(kwargs.get("timeout"), "total", None)
            if not isinstance(total, (int, float)):
                return super()._make_request(conn, method, url, *args, **kwargs)
            watch = _WATCHDOG.arm(conn, time.monotonic() + total)
            try:
                return super()._make_request(conn, method, url, *args, **kwargs)
            except Exception:
                if watch.fired:
                    raise ReadTimeoutError(
                        self, url, f"no complete answer within the deadline of {total} s"
                    ) from None
                raise
            finally:
                _WATCHDOG.disarm(watch)

    DeadlinePool.__name__ = DeadlinePool.__qualname__ = f"Deadline{base.__name__}"
    return DeadlinePool


def with_deadline(
    classes: Mapping[str, type[HTTPConnectionPool]],
) -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes (by scheme) like ``classes`` whose requests stop at ``Timeout.total``.

    The deadline covers sending the request and receiving the status line and headers; the
    caller reads the body against the same deadline.
    """
    return {scheme: _with_deadline(cls) for scheme, cls in classes.items()}
