"""A total deadline for the part of an attempt the HTTP client reads on its own.

A socket's timeout applies to each read. Until the headers are in, http.client does the
reading (and for a new HTTPS connection, the TLS handshake), so a server that sends its
status line or headers one byte at a time would hold an attempt for as long as it likes.
:func:`watch` arms a watchdog for one request: if the headers have not arrived by the
deadline, the watchdog shuts the connection's socket down, which ends the blocked read at
once, and the request fails as a timeout. The body is read by the transport itself, against
the same deadline. The transport's own exchange (``_exchange``) arms it directly; the pools
of :func:`with_deadline` (the egress proxy's path, through urllib3's pool) arm it around
urllib3's request.
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

__all__ = ["Watch", "cut_off", "unwatch", "watch", "with_deadline"]


class Watch:
    """One request being watched; ``fired`` once the watchdog cut it off."""

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
        self._watches: set[Watch] = set()
        self._wake_at: float | None = None
        self._thread: threading.Thread | None = None

    def arm(self, conn: object, deadline: float) -> Watch:
        watch = Watch(conn, deadline)
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

    def disarm(self, watch: Watch) -> None:
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


def watch(conn: object, deadline: float) -> Watch:
    """Shut ``conn``'s socket down at ``deadline`` (monotonic seconds) unless
    :func:`unwatch` comes first."""
    return _WATCHDOG.arm(conn, deadline)


def unwatch(watch: Watch) -> None:
    """Stop watching ``watch``; once this returns the watchdog no longer touches its
    connection, which may go back to a pool and serve another request."""
    _WATCHDOG.disarm(watch)


def cut_off(total: float) -> str:
    """What a request the watchdog cut off failed with."""
    return f"no complete answer within the deadline of {total} s"


def _with_deadline(base: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    class DeadlinePool(base):  # type: ignore[valid-type,misc] # a subclass of whichever pool class is given
        def _make_request(self, conn: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            total = getattr(kwargs.get("timeout"), "total", None)
            if not isinstance(total, (int, float)):
                return super()._make_request(conn, method, url, *args, **kwargs)
            armed = watch(conn, time.monotonic() + total)
            try:
                return super()._make_request(conn, method, url, *args, **kwargs)
            except Exception:
                if armed.fired:
                    raise ReadTimeoutError(self, url, cut_off(total)) from None
                raise
            finally:
                unwatch(armed)

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
