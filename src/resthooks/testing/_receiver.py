"""A real HTTP server on loopback that plays the customer's endpoint in tests."""

from __future__ import annotations

import collections
import contextlib
import json
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Mapping
from datetime import datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from .._durations import seconds
from ..clock import Clock, SystemClock
from ..errors import ValidationError
from ..signing import parse_secret
from ..verification import VerificationError, verify

if TYPE_CHECKING:
    from ..batching import Batching
    from ..dispatcher import Dispatcher
    from ..model import Hook

__all__ = ["Answer", "HookReceiver", "ReceivedDelivery", "verify_signature"]

THREAD_NAME = "resthooks-hook-receiver"


def verify_signature(body: bytes, headers: Mapping[str, str], secret: str) -> bool:
    """Whether a request carries a valid Standard Webhooks v1 signature made with ``secret``.

    :func:`resthooks.verify` without its check of the timestamp's age: in tests the sender's
    time is usually a :class:`FakeClock`'s, months away from the wall clock. One matching
    ``v1`` token is enough (a sender rotating its secret sends several).

    Args:
        body: The raw request body.
        headers: The request headers, names in lower case.
        secret: The ``whsec_`` secret the receiver expects.

    Example:
        >>> from resthooks import sign
        >>> secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        >>> headers = {"webhook-id": "msg_1", "webhook-timestamp": "1614265330",
        ...            "webhook-signature": sign(secret, "msg_1", 1614265330, b"{}")}
        >>> verify_signature(b"{}", headers, secret)
        True
        >>> verify_signature(b'{"x":1}', headers, secret)
        False
    """
    timestamp = headers.get("webhook-timestamp", "")
    # The sender's "now" is the timestamp it signed, so the age check always passes; every
    # other check (headers, token format, constant-time comparison) is verify()'s.
    plausible = timestamp.isascii() and timestamp.isdigit() and len(timestamp) < 16
    now = int(timestamp) if plausible else 0
    try:
        verify(body, headers, secret, now=now)
    except VerificationError:
        return False
    return True


def _status(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise ValidationError(attribute.name, f"must be an HTTP status from 100 to 599: {value!r}")


def _delay(value: object) -> float:
    return seconds(value, "delay", config=False)


@attrs.frozen(kw_only=True)
class Answer:
    """How a :class:`HookReceiver` answers one request.

    Attributes:
        status: The HTTP status. ``410`` makes the Dispatcher remove the hook.
        delay: Seconds to wait before answering (to make an attempt time out).
        body: The response body.
        headers: Extra response headers.

    Example:
        >>> Answer(status=503, delay=0.5)
        Answer(status=503, delay=0.5, body=b'', headers={})
        >>> Answer(status=1000)
        Traceback (most recent call last):
        ...
        resthooks.errors.ValidationError: status: must be an HTTP status from 100 to 599: 1000
    """

    status: int = attrs.field(default=204, validator=_status)
    delay: float = attrs.field(default=0.0, converter=_delay)
    body: bytes = b""
    headers: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class ReceivedDelivery:
    """One request a :class:`HookReceiver` received, as the customer's endpoint saw it.

    Attributes:
        method: The HTTP method (``POST`` for deliveries).
        path: The request path, without the query string.
        query: The query string (without ``?``), ``""`` if none.
        headers: The request headers, names in lower case.
        body: The raw body.
        json: The body parsed as JSON, or ``None`` if it is not JSON.
        verified: ``True`` if the Standard Webhooks signature verified with the secret the
            receiver holds for this path, ``False`` if it did not (or was missing), ``None``
            if the receiver holds no secret for this path.
        answer: How the receiver answered it.
        received_at: When it arrived, on the receiver's clock.

    .. versionchanged:: 0.2.0
       ``received_at``.
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes = attrs.field(repr=False)
    json: Any = attrs.field(repr=False)
    verified: bool | None
    answer: Answer
    received_at: datetime | None = None

    @property
    def event(self) -> str | None:
        """The ``event`` of the delivery body, or ``None``."""
        value = self.json.get("event") if isinstance(self.json, dict) else None
        return value if isinstance(value, str) else None

    @property
    def payload(self) -> list[Any]:
        """The ``payload`` list of the delivery body (empty if there is none)."""
        value = self.json.get("payload") if isinstance(self.json, dict) else None
        return value if isinstance(value, list) else []

    @property
    def webhook_id(self) -> str | None:
        """The ``webhook-id`` header: the delivery's id, the same on every attempt."""
        return self.headers.get("webhook-id")

    def describe(self) -> str:
        """One line for assertion messages: method, path, event, id, status answered."""
        return (
            f"{self.method} {self.path} event={self.event!r} webhook-id={self.webhook_id!r} "
            f"verified={self.verified!r} -> {self.answer.status}"
        )


AnswerStep = int | Answer


def _as_answer(step: AnswerStep) -> Answer:
    if isinstance(step, Answer):
        return step
    return Answer(status=step)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        # HTTP/1.1 keeps the sender's connection open between requests (as real endpoints
        # do); HTTP/1.0, the default, answers each request on a connection of its own.
        if self.server.receiver.keep_alive:
            self.protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        receiver = self.server.receiver
        answer = receiver._received(self.command, self.path, self.headers, body)
        if not receiver._wait_at_gate():
            return
        if answer.delay and receiver._closing.wait(answer.delay):
            return
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except ConnectionError:
            # The sender gave up (its deadline passed during the delay): nothing to answer.
            pass

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET = _handle  # noqa: N815 - http.server's names

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: a test's output is not the place for an access log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], receiver: HookReceiver) -> None:
        self.receiver = receiver
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        with self.connections_lock:
            self.connections.add(conn)
        return conn, address

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        """End every open connection (a kept-alive one waits for its next request)."""
        with self.connections_lock:
            open_now = list(self.connections)
        for conn in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A broken connection from a client that gave up is not the test's business; keep
        # anything else for the test to see rather than print it.
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError) and exc is not None:
            self.receiver.errors.append(exc)


class HookReceiver:
    """A customer's webhook endpoint for tests: a real HTTP server on loopback.

    It records every request it gets (body, parsed JSON, headers, whether the signature
    verified) and answers each with a status, after a delay if told to. Use it as a context
    manager (or call :meth:`start` and :meth:`close`); pytest users get it as the
    ``hook_receiver`` fixture. It needs no pytest.

    Args:
        host: The loopback address to listen on. Default ``127.0.0.1``.
        secret: A ``whsec_`` secret to verify every path with unless :meth:`set_secret` gave
            the path its own.
        clock: The clock that stamps each request's ``received_at``. Default: the system
            clock; give the sender's :class:`FakeClock` to read arrivals on its time.
        keep_alive: Answer in HTTP/1.1 and keep each sender's connection open between
            requests, as real endpoints do (for tests of throughput and of many workers).
            Default ``False``: HTTP/1.0, one connection per request. :meth:`close` ends the
            connections still open.

    .. versionchanged:: 0.2.0
       ``clock``, ``keep_alive``, and the gate: :meth:`hold` and :meth:`release`.

    A Dispatcher delivering to it must allow loopback targets: build it with
    ``Dispatcher(store, network_policy=LOOPBACK_POLICY)``.

    Example:
        >>> from resthooks import Dispatcher
        >>> from resthooks.stores import MemoryStore
        >>> from resthooks.testing import LOOPBACK_POLICY, FakeClock
        >>> dispatcher = Dispatcher(
        ...     MemoryStore(), clock=FakeClock(), network_policy=LOOPBACK_POLICY
        ... )
        >>> with HookReceiver() as receiver:
        ...     hook = receiver.subscribe(dispatcher, "party/created", owner="acme")
        ...     receiver.answer(500, 200, path="/acme/party/created")
        ...     _ = dispatcher.emit("party/created", {"id": 1}, owner="acme")
        ...     dispatcher.deliver_due()
        ...     received = receiver.wait_for(1)
        DeliverySummary(delivered=0, retried=1, failed=0, gone=0, cancelled=0, stale=0, late=0)
        >>> received[0].json, received[0].verified, received[0].answer.status
        ({'event': 'party/created', 'payload': [{'id': 1}]}, True, 500)
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        secret: str | None = None,
        clock: Clock | None = None,
        keep_alive: bool = False,
    ) -> None:
        if secret is not None:
            parse_secret(secret)
        if not isinstance(keep_alive, bool):
            raise ValidationError("keep_alive", f"must be True or False: {keep_alive!r}")
        self.keep_alive = keep_alive
        self.host = host
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.default_secret = secret
        self.errors: list[BaseException] = []
        self._secrets: dict[str, str] = {}
        self._scripts: dict[str | None, list[Answer]] = {}
        self._received_list: list[ReceivedDelivery] = []
        self._condition = threading.Condition()
        self._closing = threading.Event()
        self._gate_open = True
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> HookReceiver:
        """Start listening on a free port (idempotent); returns the receiver."""
        if self._server is None:
            self._closing.clear()
            self._server = _Server((self.host, 0), self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=THREAD_NAME,
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the server, cut short any delayed answer and wait for its threads."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._closing.set()
        server.shutdown()
        server.cut_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> HookReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        """The port it listens on.

        Raises:
            RuntimeError: If the receiver is not started.
        """
        if self._server is None:
            raise RuntimeError("the HookReceiver is not started: use it in a with block")
        return int(self._server.server_address[1])

    def url(self, path: str = "/hooks") -> str:
        """The absolute URL of ``path`` on this receiver, to subscribe a hook to."""
        if not path.startswith("/"):
            raise ValidationError("path", f"must start with '/': {path!r}")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    # -- set-up ------------------------------------------------------------------------------

    def set_secret(self, secret: str | None, *, path: str) -> None:
        """Verify requests to ``path`` with ``secret`` (``None``: no secret for this path)."""
        if secret is None:
            with self._condition:
                self._secrets.pop(path, None)
            return
        parse_secret(secret)
        with self._condition:
            self._secrets[path] = secret

    def answer(self, *steps: AnswerStep, path: str | None = None) -> None:
        """Script the answers to requests to ``path`` (to every other path if ``None``).

        Each step is a status or an :class:`Answer`; they are used in order and the last one
        repeats. With no step, the path goes back to the default answer (``204``).

        Example:
            >>> receiver = HookReceiver()
            >>> receiver.answer(503, Answer(status=200, delay=0.1), path="/slow")
            >>> receiver.answer(410, path="/gone")
        """
        answers = [_as_answer(step) for step in steps]
        with self._condition:
            if answers:
                self._scripts[path] = answers
            else:
                self._scripts.pop(path, None)

    def subscribe(
        self,
        dispatcher: Dispatcher,
        event: str,
        *,
        owner: str,
        path: str | None = None,
        description: str = "",
        batching: Batching | None = None,
    ) -> Hook:
        """Subscribe a hook of ``owner`` to ``event`` pointing here, and trust its secret.

        Args:
            dispatcher: The Dispatcher to subscribe with (it must allow loopback).
            event: The event.
            owner: The hook's owner.
            path: The path to receive on. Default ``/{owner}/{event}``.
            description: The hook's description.
            batching: The hook's :class:`~resthooks.Batching`, or ``None``.

        Returns:
            The hook.

        .. versionchanged:: 0.2.0
           ``batching``.
        """
        if path is None:
            path = "/" + urllib.parse.quote(owner, safe="") + "/" + event
        hook = dispatcher.subscribe(
            event, self.url(path), owner=owner, description=description, batching=batching
        )
        self.set_secret(hook.secret, path=path)
        return hook

    def hold(self) -> None:
        """Close the gate: from now on every request is recorded when it arrives (so
        :meth:`wait_for` sees it) and then waits, unanswered, until :meth:`release` (or
        :meth:`close`, which cuts it short without an answer).

        For tests of what happens while attempts are in flight: a worker stopping, a lease
        running out, a hook removed meanwhile.

        .. versionadded:: 0.2.0

        Example:
            >>> import threading, urllib.request
            >>> with HookReceiver() as receiver:
            ...     receiver.hold()
            ...     sender = threading.Thread(
            ...         target=urllib.request.urlopen, args=(receiver.url(), b"{}"))
            ...     sender.start()
            ...     arrived = receiver.wait_for(1)  # it arrived, and waits at the gate
            ...     receiver.release()
            ...     sender.join()
            >>> arrived[0].answer.status
            204
        """
        with self._condition:
            self._gate_open = False

    def release(self) -> None:
        """Open the gate: the requests held are answered, and later ones at once."""
        with self._condition:
            self._gate_open = True
            self._condition.notify_all()

    @property
    def held(self) -> bool:
        """Whether the gate is closed (see :meth:`hold`)."""
        return not self._gate_open

    def _wait_at_gate(self) -> bool:
        """Wait while the gate is closed; ``False`` if the receiver closed meanwhile."""
        with self._condition:
            while not self._gate_open and not self._closing.is_set():
                self._condition.wait(0.05)
        return not self._closing.is_set()

    # -- what arrived ------------------------------------------------------------------------

    @property
    def deliveries(self) -> list[ReceivedDelivery]:
        """Every request received so far, in order of arrival (a copy)."""
        with self._condition:
            return list(self._received_list)

    def clear(self) -> None:
        """Forget what was received (scripts and secrets stay)."""
        with self._condition:
            self._received_list.clear()

    def received(
        self, *, event: str | None = None, path: str | None = None
    ) -> list[ReceivedDelivery]:
        """The requests received so far, only of one ``event`` and/or ``path`` if given."""
        with self._condition:
            return [d for d in self._received_list if _matches(d, event, path)]

    def webhook_ids(self) -> collections.Counter[str]:
        """How many requests arrived with each ``webhook-id`` (requests without one are not
        counted): the check of at-least-once and of "sent once" after a crash or a scale-out.

        .. versionadded:: 0.2.0

        Example:
            >>> import urllib.request
            >>> with HookReceiver() as receiver:
            ...     for _ in range(2):
            ...         urllib.request.urlopen(urllib.request.Request(
            ...             receiver.url(), b"{}", headers={"webhook-id": "msg_1"})).close()
            ...     receiver.webhook_ids()
            Counter({'msg_1': 2})
        """
        with self._condition:
            return collections.Counter(
                d.webhook_id for d in self._received_list if d.webhook_id is not None
            )

    def payloads(self, event: str | None = None, *, path: str | None = None) -> list[Any]:
        """The entities received for ``event``, each delivery counted once.

        A delivery sent several times (retries) counts once, by its ``webhook-id``; the
        ``payload`` lists of the deliveries are joined in order of first arrival. This is what
        the customer behind this endpoint was told about.
        """
        seen: set[str | None] = set()
        entities: list[Any] = []
        for delivery in self.received(event=event, path=path):
            key = delivery.webhook_id
            if key is not None and key in seen:
                continue
            seen.add(key)
            entities.extend(delivery.payload)
        return entities

    def wait_for(
        self,
        count: int,
        *,
        timeout: float = 10.0,
        event: str | None = None,
        path: str | None = None,
    ) -> list[ReceivedDelivery]:
        """Wait until at least ``count`` requests (of ``event``/``path``) arrived.

        For deliveries sent by another thread or process (a worker); a synchronous
        ``deliver_due`` needs no waiting.

        Returns:
            The matching requests received, in order of arrival.

        Raises:
            AssertionError: If fewer arrived within ``timeout`` seconds; the message lists what
                did arrive.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                found = [d for d in self._received_list if _matches(d, event, path)]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    break
                self._condition.wait(remaining)
            everything = list(self._received_list)
        if len(found) >= count:
            return found
        what = " ".join(
            part
            for part in (
                f"of event {event!r}" if event else "",
                f"at {path!r}" if path else "",
            )
            if part
        )
        lines = "\n".join(f"  {d.describe()}" for d in everything) or "  (nothing)"
        raise AssertionError(
            f"expected {count} deliveries{' ' + what if what else ''} within {timeout} s, "
            f"{len(found)} arrived; everything received:\n{lines}"
        )

    # -- the server side ---------------------------------------------------------------------

    def _received(self, method: str, raw_path: str, headers: Message, body: bytes) -> Answer:
        path, _, query = raw_path.partition("?")
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = None
        with self._condition:
            secret = self._secrets.get(path, self.default_secret)
        verified = None if secret is None else verify_signature(body, lowered, secret)
        # The answer is taken from the script and the request recorded in one step, so the
        # n-th recorded request is the one that got the n-th scripted answer.
        with self._condition:
            script = self._scripts.get(path, self._scripts.get(None))
            answer = Answer()
            if script:
                answer = script.pop(0) if len(script) > 1 else script[0]
            self._received_list.append(
                ReceivedDelivery(
                    method=method,
                    path=path,
                    query=query,
                    headers=lowered,
                    body=body,
                    json=parsed,
                    verified=verified,
                    answer=answer,
                    received_at=self.clock.now(),
                )
            )
            self._condition.notify_all()
        return answer

    def __repr__(self) -> str:
        where = f"{self.host}:{self.port}" if self._server is not None else "not started"
        return f"<HookReceiver {where}, {len(self.deliveries)} received>"


def _matches(delivery: ReceivedDelivery, event: str | None, path: str | None) -> bool:
    return (event is None or delivery.event == event) and (path is None or delivery.path == path)
