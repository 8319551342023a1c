"""The Dispatcher: the engine a host application holds."""

from __future__ import annotations

import enum
import hmac
import json
import logging
import math
import re
import secrets
import threading
from collections.abc import Callable, Collection, Generator, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cache
from importlib.metadata import version
from typing import Protocol

import attrs

from . import _validation, ed25519, lifecycle
from ._durations import to_timedelta
from ._log import LogListener
from .batching import Batching
from .clock import Clock, SystemClock
from .encoding import encode_body
from .errors import (
    ConfigurationError,
    DeliveryNotFound,
    HookLimitReached,
    HookNotFound,
    InvalidStateError,
    PayloadError,
    TransportError,
    ValidationError,
)
from .events import CAPSULE_EVENTS, EventCatalogue
from .lifecycle import LifecycleListener
from .limits import Limits
from .model import (
    Attempt,
    Claim,
    Delivery,
    DeliveryState,
    Hook,
    HookState,
    Outcome,
    OutcomeKind,
    QuarantinedDelivery,
    Stats,
)
from .network import NetworkPolicy
from .outcomes import DeliverySummary, summarize
from .retry import RetryPolicy
from .signing import generate_secret, parse_secret, sign
from .stores import Store
from .tracing import EmitObserver, EmitTrace
from .transports import Request, Response, Timeouts, Transport, Urllib3Transport
from .urls import redact_url, validate_target_url
from .worker import Worker

__all__ = [
    "DEFAULT_RETENTION",
    "MAX_EVENTS_PER_CALL",
    "MAX_REPLAY",
    "DeliverySummary",
    "Dispatcher",
]

_MAX_PURGE_BATCH = 100_000

MAX_EVENTS_PER_CALL = 100
"""The most events (or patterns) one :meth:`resthooks.Dispatcher.subscribe_many` call may name."""
MAX_REPLAY = 10_000
"""The most deliveries one :meth:`resthooks.Dispatcher.replay` call may queue again."""

logger = logging.getLogger("resthooks")

DEFAULT_RETENTION = timedelta(days=30)
"""How long :meth:`Dispatcher.purge` keeps final deliveries unless told otherwise: 30 days."""

_DESCRIPTION_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
MAX_REQUEST_HEADER_BYTES = 8192


@cache
def user_agent() -> str:
    """The ``User-Agent`` of every request the Dispatcher sends (and the OpenAPI document
    shows): ``resthooks/<version>``."""
    return f"resthooks/{version('resthooks')}"


class _Unset(enum.Enum):
    UNSET = enum.auto()


# The old max_* options of the Dispatcher: unset unless given (None means "no limit").
_UNSET = _Unset.UNSET


class Waker(Protocol):
    """What :meth:`Dispatcher.add_waker <resthooks.Dispatcher.add_waker>` takes: anything
    with a ``set()`` method.

    .. versionadded:: 0.2.0
    """

    def set(self) -> None:
        """Wake the worker sleeping on it."""
        ...


class Dispatcher:
    """The engine: subscriptions, emitting events, and delivering them.

    Args:
        store: Where hooks and deliveries live (:class:`~resthooks.stores.MemoryStore`,
            :class:`~resthooks.stores.SQLiteStore`, or your own :class:`~resthooks.stores.Store`).
        events: The event catalogue. Default: Capsule's 19 events.
        clock: Where time comes from. Default: :class:`~resthooks.clock.SystemClock`.
        transport: How requests are sent. Default: a new
            :class:`~resthooks.transports.Urllib3Transport` enforcing ``network_policy``. A
            transport you pass enforces its own policy (give it the same one).
        retry: Every retry rule (:class:`~resthooks.RetryPolicy`): the schedule, jitter, the
            timeout penalty, ``Retry-After``. Default: Capsule's schedule (5 s, 1 min, 5 min,
            15 min, 15 min), 60 s after a timeout, ``Retry-After`` obeyed up to 1 hour.
        timeouts: Connect timeout and total deadline of one attempt (default 5 s and 15 s).
        lease: How long a claim lasts before another worker may take the delivery over. Must
            be longer than ``timeouts.total``. Default 60 s.
        limits: Every limit (:class:`~resthooks.Limits`): payload and response sizes, the
            description's length, hooks per owner, deliveries in flight per host. Default:
            ``Limits()`` (256 KiB, 4 KiB, 255 characters, 20 hooks, 4 in flight).
        max_hooks_per_owner: The same as ``limits=Limits(hooks_per_owner=...)``, kept for
            compatibility (as are the four below); not together with ``limits``.
        max_description_length: ``Limits.description_length``.
        max_payload_bytes: ``Limits.payload_bytes``.
        max_response_bytes: ``Limits.response_bytes``.
        max_in_flight_per_host: ``Limits.in_flight_per_host``.
        sign_deliveries: Give every new hook a signing secret (Standard Webhooks). Default on.
        signature_versions: Which Standard Webhooks signatures new hooks get: ``"v1"``
            (HMAC-SHA256 under a shared ``whsec_`` secret, the default), ``"v1a"`` (ed25519
            under a per-hook key pair: receivers hold only the public key; needs the
            ``resthooks[ed25519]`` extra), or both, sent side by side.
        network_policy: Which targets are allowed (:class:`~resthooks.network.NetworkPolicy`),
            checked at subscribe time on the URL and, by the default transport, on every
            address dialled. Default: ``NetworkPolicy()``, which refuses loopback and private
            networks; tests that deliver to a local server allow-list it.
        secret_grace: After :meth:`rotate_secret`, how long the old secret keeps signing too
            (seconds or a timedelta). Default 24 hours.
        verify_intent: REST Hooks intent verification (the handshake of resthooks.org): a new
            hook starts ``unconfirmed`` and receives nothing until its target proves it wants
            the deliveries, by echoing the ``X-Hook-Secret`` header subscribe sends it (see
            :meth:`subscribe` and :meth:`confirm_hook`). Default off, as Capsule.
        confirm_within: With ``verify_intent``, how long an unconfirmed hook waits for its
            confirmation before it is removed (seconds or a timedelta). Default 24 hours.
        validate_payloads: Check every emitted payload against its event's JSON Schema in
            ``events`` (see :class:`~resthooks.EventCatalogue`), as the receiver would get it
            (after encoding: a datetime is its ISO string), and refuse it with a
            :class:`~resthooks.errors.PayloadError` naming the JSON path that failed. Events
            without a schema are not checked. Default off.

            .. versionadded:: 0.2.0

    Raises:
        ConfigurationError: If the options cannot work together.

    Example:
        >>> from resthooks import Dispatcher
        >>> from resthooks.stores import MemoryStore
        >>> from resthooks.testing import FakeClock, RecordingTransport
        >>> transport = RecordingTransport()
        >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=transport)
        >>> hook = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
        >>> [d.state.value for d in dispatcher.emit("party/created", {"id": 1}, owner="acme")]
        ['pending']
        >>> dispatcher.deliver_due().delivered
        1
        >>> transport.requests[0].body
        b'{"event":"party/created","payload":[{"id":1}]}'
    """

    #: Called with the new deliveries after every :meth:`emit` that stored some (and was not
    #: given a ``connection``: those exist only once the host commits). ``None`` by default.
    #: A hook point for test settings: :func:`resthooks.testing.synchronous` sets it.
    after_emit: Callable[[Sequence[Delivery]], object] | None = None

    #: Called around storing the deliveries of every :meth:`emit` (see
    #: :mod:`resthooks.tracing`): a tracer's hook to open a span for the emit and hand back
    #: its trace context. ``None`` by default; :func:`resthooks.otel.instrument` sets it.
    #:
    #: .. versionadded:: 0.2.0
    emit_observer: EmitObserver | None = None

    #: The listener that writes the Dispatcher's log lines
    #: (:class:`~resthooks.observability.LogListener`), the first of its lifecycle listeners
    #: from the start. :meth:`remove_listener` it to silence resthooks' outcome lines.
    #:
    #: .. versionadded:: 0.2.0
    log_listener: LogListener

    def __init__(
        self,
        store: Store,
        *,
        events: EventCatalogue = CAPSULE_EVENTS,
        clock: Clock | None = None,
        transport: Transport | None = None,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        lease: float | timedelta = 60.0,
        limits: Limits | None = None,
        max_hooks_per_owner: int | _Unset | None = _UNSET,
        max_description_length: int | _Unset = _UNSET,
        max_payload_bytes: int | _Unset = _UNSET,
        max_response_bytes: int | _Unset = _UNSET,
        max_in_flight_per_host: int | _Unset | None = _UNSET,
        sign_deliveries: bool = True,
        signature_versions: Collection[str] = ("v1",),
        network_policy: NetworkPolicy | None = None,
        secret_grace: float | timedelta = timedelta(hours=24),
        verify_intent: bool = False,
        confirm_within: float | timedelta = timedelta(hours=24),
        validate_payloads: bool = False,
    ) -> None:
        if not isinstance(events, EventCatalogue):
            raise ConfigurationError("events must be an EventCatalogue")
        if not isinstance(validate_payloads, bool):
            raise ConfigurationError("validate_payloads must be True or False")
        if validate_payloads and not events.has_schemas:
            raise ConfigurationError(
                "validate_payloads: the event catalogue has no schemas to validate against "
                "(give EventCatalogue(..., schemas={...}))"
            )
        self.validate_payloads = validate_payloads
        if network_policy is not None and not isinstance(network_policy, NetworkPolicy):
            raise ConfigurationError("network_policy must be a NetworkPolicy")
        self.network_policy = network_policy if network_policy is not None else NetworkPolicy()
        self.secret_grace = to_timedelta(secret_grace, "secret_grace")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError("retry must be a RetryPolicy")
        if timeouts is not None and not isinstance(timeouts, Timeouts):
            raise ConfigurationError("timeouts must be a Timeouts")
        if not isinstance(verify_intent, bool):
            raise ConfigurationError("verify_intent must be True or False")
        self.verify_intent = verify_intent
        self.confirm_within = _confirm_window(confirm_within)
        self.store = store
        self.events = events
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.transport: Transport = (
            transport if transport is not None else Urllib3Transport(policy=self.network_policy)
        )
        self.retry = retry if retry is not None else RetryPolicy()
        self.timeouts = timeouts if timeouts is not None else Timeouts()
        self.lease = to_timedelta(lease, "lease", positive=True)
        if self.lease.total_seconds() <= self.timeouts.total:
            raise ConfigurationError(
                f"the lease ({self.lease.total_seconds()} s) must be longer than the total "
                f"deadline of an attempt ({self.timeouts.total} s), or a slow attempt's "
                "delivery would be claimed twice"
            )
        self.limits = _limits(
            limits,
            hooks_per_owner=max_hooks_per_owner,
            description_length=max_description_length,
            payload_bytes=max_payload_bytes,
            response_bytes=max_response_bytes,
            in_flight_per_host=max_in_flight_per_host,
        )
        self.sign_deliveries = sign_deliveries
        if isinstance(signature_versions, str) or not isinstance(signature_versions, Collection):
            raise ConfigurationError("signature_versions must be a collection such as ('v1',)")
        versions = frozenset(signature_versions)
        if not versions or not versions <= {"v1", "v1a"}:
            raise ConfigurationError(
                "signature_versions must hold 'v1', 'v1a' or both, not "
                f"{sorted(map(repr, versions))}"
            )
        if "v1a" in versions:
            ed25519.generate_key_pair()  # fails now, not at the first subscribe, without the extra
        self.signature_versions = versions
        self.log_listener = LogListener()
        self._listeners = lifecycle.Listeners((self.log_listener,))
        self._listeners_lock = threading.Lock()
        # What the running workers of this process sleep on (a threading.Event, or the
        # asyncio worker's thread-safe waker): emit sets them all.
        self._wakers: set[Waker] = set()

    # The limits' old names, read-only (the value is :attr:`limits`).

    @property
    def max_hooks_per_owner(self) -> int | None:
        """``limits.hooks_per_owner`` (the old name)."""
        return self.limits.hooks_per_owner

    @property
    def max_description_length(self) -> int:
        """``limits.description_length`` (the old name)."""
        return self.limits.description_length

    @property
    def max_payload_bytes(self) -> int:
        """``limits.payload_bytes`` (the old name)."""
        return self.limits.payload_bytes

    @property
    def max_response_bytes(self) -> int:
        """``limits.response_bytes`` (the old name)."""
        return self.limits.response_bytes

    @property
    def max_in_flight_per_host(self) -> int | None:
        """``limits.in_flight_per_host`` (the old name)."""
        return self.limits.in_flight_per_host

    # -- hooks -------------------------------------------------------------------------------

    def subscribe(
        self,
        event: str,
        target_url: str,
        *,
        owner: str,
        description: str = "",
        secret: str | None = None,
        signing_key: str | None = None,
        batching: Batching | None = None,
    ) -> Hook:
        """Subscribe ``target_url`` to ``event`` for ``owner``.

        Subscribing the same ``(owner, event, target_url)`` again returns the existing hook
        (made active again if it was dead) instead of creating a second one.

        With ``verify_intent``, the new hook is ``unconfirmed`` and subscribe sends its target
        the handshake before it returns: a ``POST`` with an empty body and an
        ``X-Hook-Secret`` header (signed like a delivery). A ``2xx`` answer echoing the same
        ``X-Hook-Secret`` confirms the hook at once (it is returned active); any other answer
        leaves it unconfirmed until :meth:`confirm_hook` is called with that secret, or until
        ``confirm_within`` passes and it is removed. Subscribing an unconfirmed hook again
        sends the handshake again.

        Args:
            event: An event of the catalogue.
            target_url: An absolute ``http``/``https`` URL allowed by the network policy.
            owner: The account the hook belongs to.
            description: Free text, at most ``limits.description_length`` characters.
            secret: A ``whsec_`` signing secret to use instead of a generated one. Hooks of
                one owner to one URL share one secret (the endpoint's: a new hook to a URL
                the owner already has hooks to takes theirs), so for such a URL it must be
                that secret, or ``ValidationError`` naming ``secret``.
            signing_key: A ``whsk_`` ed25519 secret key (``v1a``) to use instead of a
                generated one (only generated when ``signature_versions`` has ``v1a``).
            batching: Batch the hook's deliveries (a :class:`~resthooks.Batching`): the
                emits of its event within the window go as one POST whose ``payload`` holds
                their entities in emit order (see :doc:`delivery`). ``None`` (the default):
                one POST per emit. Its ``max_bytes`` must be at most
                ``limits.payload_bytes``. A subscription that exists already keeps its own.

        Returns:
            The new (or existing) hook. Its ``secret`` is the only time the caller sees it
            through the API layer; its ``signing_key`` is never shown, only its public key.

        .. versionchanged:: 0.2.0
            ``signing_key``, ``batching``; one secret per endpoint.

        Raises:
            ValidationError: Naming the field at fault; nothing is stored.
            HookLimitReached: If the owner already has ``limits.hooks_per_owner`` hooks.
            ConfigurationError: For ``batching`` on a store that does not batch.

        Example:
            >>> from resthooks import Batching, Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock
            >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
            >>> hook = dispatcher.subscribe("task/created", "https://a.example/h", owner="acme",
            ...                             batching=Batching(max_wait=2, max_entities=50))
            >>> first = dispatcher.emit("task/created", {"id": 1}, owner="acme")
            >>> second = dispatcher.emit("task/created", {"id": 2}, owner="acme")
            >>> first[0].id == second[0].id  # one delivery: the batch
            True
        """
        hook, _ = self.subscribe_or_get(
            event,
            target_url,
            owner=owner,
            description=description,
            secret=secret,
            signing_key=signing_key,
            batching=batching,
        )
        return hook

    def subscribe_or_get(
        self,
        event: str,
        target_url: str,
        *,
        owner: str,
        description: str = "",
        secret: str | None = None,
        signing_key: str | None = None,
        batching: Batching | None = None,
    ) -> tuple[Hook, bool]:
        """:meth:`subscribe`, also saying whether the hook is new.

        What an API answering ``201 Created`` or ``200 OK`` needs (and shows a new hook's
        secret only): the subscription API and the CLI use it.

        Returns:
            ``(hook, created)``: ``created`` is ``False`` when the owner already had this
            subscription (the existing hook is returned, made active again if it was dead).

        Raises:
            ValidationError: As :meth:`subscribe`.
            HookLimitReached: As :meth:`subscribe`.
            ConfigurationError: As :meth:`subscribe`.

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock
            >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
            >>> _, created = dispatcher.subscribe_or_get("party/created", "https://a.example/h",
            ...                                          owner="acme")
            >>> again, created_again = dispatcher.subscribe_or_get(
            ...     "party/created", "https://a.example/h", owner="acme")
            >>> created, created_again
            (True, False)

        .. versionadded:: 0.2.0
        """
        owner = _validation.owner(owner)
        event = self.events.validate(event)
        target_url, description = self._target_and_description(target_url, description)
        batching = self._batching(batching)
        secret, signing_key = self._endpoint_keys(owner, target_url, secret, signing_key)
        return self._add_hook(
            owner,
            event,
            target_url=target_url,
            description=description,
            secret=secret,
            signing_key=signing_key,
            batching=batching,
        )

    def subscribe_many(
        self,
        events: str | Sequence[str],
        target_url: str,
        *,
        owner: str,
        description: str = "",
        secret: str | None = None,
        batching: Batching | None = None,
    ) -> list[tuple[Hook, bool]]:
        """Subscribe one URL to several events, or to an event pattern, in one call.

        ``events`` is an event, a pattern the catalogue allows (``party/*``, ``*``: see
        :meth:`EventCatalogue.expand() <resthooks.EventCatalogue.expand>`), or a list of
        them; each event is subscribed as :meth:`subscribe_or_get` does, one hook per event,
        all of them sharing the endpoint's secret (see :doc:`api`). Everything is validated,
        and the owner's cap checked for all the new hooks together, before anything is
        stored: a refused call stores nothing.

        Args:
            events: What to subscribe to (at most
                :data:`~resthooks.dispatcher.MAX_EVENTS_PER_CALL` names).
            target_url: As for :meth:`subscribe`.
            owner: As for :meth:`subscribe`.
            description: As for :meth:`subscribe`, given to each new hook.
            secret: A ``whsec_`` secret for the endpoint when it is new; for an endpoint
                that has one already it must be that secret (rotate it to change it).
            batching: As for :meth:`subscribe`, given to each new hook.

        Returns:
            ``(hook, created)`` per event, in the order the events were named (duplicates
            once).

        Raises:
            ValidationError: Naming the field at fault (``events`` for an empty or too long
                list, ``event`` for an unknown name or pattern); nothing is stored.
            HookLimitReached: If the new hooks would take the owner past
                ``max_hooks_per_owner``; nothing is stored.

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock
            >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
            >>> made = dispatcher.subscribe_many("party/*", "https://a.example/h", owner="acme")
            >>> [(hook.event, created) for hook, created in made]  # doctest: +NORMALIZE_WHITESPACE
            [('party/created', True), ('party/updated', True), ('party/deleted', True)]
            >>> len({hook.secret for hook, _ in made})  # one secret for the endpoint
            1

        .. versionadded:: 0.2.0
        """
        owner = _validation.owner(owner)
        names = self._expand_events(events)
        target_url, description = self._target_and_description(target_url, description)
        batching = self._batching(batching)
        secret, signing_key = self._endpoint_keys(owner, target_url, secret, None)
        existing = self.store.list_hooks(owner=owner)
        subscribed = {h.event for h in existing if h.target_url == target_url}
        new = [name for name in names if name not in subscribed]
        cap = self.limits.hooks_per_owner
        if cap is not None and new and len(existing) + len(new) > cap:
            raise HookLimitReached(cap)
        made: list[tuple[Hook, bool]] = []
        try:
            for name in names:
                made.append(
                    self._add_hook(
                        owner,
                        name,
                        target_url=target_url,
                        description=description,
                        secret=secret,
                        signing_key=signing_key,
                        batching=batching,
                    )
                )
        except HookLimitReached:  # another subscribe got in between: take this call back
            for hook, created in made:
                if created:
                    self.store.remove_hook(hook.id, now=self.clock.now())
            raise
        return made

    def _expand_events(self, events: object) -> list[str]:
        names = [events] if isinstance(events, str) else events
        if not isinstance(names, (list, tuple)):
            raise ValidationError(
                "events", f"must be an event or a list of events, not {type(events).__name__}"
            )
        if not names:
            raise ValidationError("events", "must name at least one event")
        if len(names) > MAX_EVENTS_PER_CALL:
            raise ValidationError("events", f"must name at most {MAX_EVENTS_PER_CALL} events")
        field = "event" if isinstance(events, str) else "events"
        expanded: dict[str, None] = {}
        for name in names:
            expanded.update(dict.fromkeys(self.events.expand(name, field=field)))
        return list(expanded)

    def _target_and_description(self, target_url: object, description: object) -> tuple[str, str]:
        url = validate_target_url(target_url)
        self.network_policy.check_url(url)
        return url, self._description(description)

    def _batching(self, batching: object) -> Batching | None:
        """A subscribe's ``batching``, checked against this Dispatcher and its store."""
        if batching is None:
            return None
        if not isinstance(batching, Batching):
            raise ValidationError(
                "batching", f"must be a Batching or None, not {type(batching).__name__}"
            )
        if batching.max_bytes > self.limits.payload_bytes:
            raise ValidationError(
                "batching.max_bytes",
                f"must be at most limits.payload_bytes ({self.limits.payload_bytes}), the "
                "largest body this Dispatcher sends",
            )
        if getattr(self.store, "batches", False) is not True:
            raise ConfigurationError(
                f"batching: {type(self.store).__name__} does not batch deliveries (a store "
                "says so with a true `batches` attribute; see the storage guide)"
            )
        return batching

    def _description(self, description: object) -> str:
        if not isinstance(description, str):
            raise ValidationError(
                "description", f"must be a string, not {type(description).__name__}"
            )
        if len(description) > self.limits.description_length:
            raise ValidationError(
                "description", f"must be at most {self.limits.description_length} characters"
            )
        if _DESCRIPTION_FORBIDDEN.search(description):
            # NUL and lone surrogates cannot be stored as text by every database.
            raise ValidationError(
                "description",
                "must be text without control characters (tab and newline are allowed)",
            )
        return description

    def _endpoint_keys(
        self, owner: str, target_url: str, secret: str | None, signing_key: str | None
    ) -> tuple[str | None, str | None]:
        """The secret and signing key a new hook of this endpoint is made with: those given
        (validated) or new ones. The store gives a hook joining an existing endpoint that
        endpoint's own (one secret per endpoint), so a ``secret`` given for such an endpoint
        must be its secret."""
        if secret is not None:
            parse_secret(secret)
            endpoint = self._endpoint(owner, target_url)
            if endpoint and not any(
                h.secret is not None and hmac.compare_digest(h.secret, secret) for h in endpoint
            ):
                raise ValidationError(
                    "secret",
                    "this target URL already has a signing secret: give that one or none "
                    "(rotate the secret to change it)",
                )
        elif self.sign_deliveries and "v1" in self.signature_versions:
            secret = generate_secret()
        if signing_key is not None:
            ed25519.parse_secret_key(signing_key)
        elif self.sign_deliveries and "v1a" in self.signature_versions:
            signing_key = ed25519.generate_key_pair().secret_key
        return secret, signing_key

    def _endpoint(self, owner: str, target_url: str) -> list[Hook]:
        """The owner's hooks to ``target_url`` (one endpoint), oldest first."""
        return [h for h in self.store.list_hooks(owner=owner) if h.target_url == target_url]

    def _add_hook(
        self,
        owner: str,
        event: str,
        *,
        target_url: str,
        description: str,
        secret: str | None,
        signing_key: str | None,
        batching: Batching | None = None,
    ) -> tuple[Hook, bool]:
        now = self.clock.now()
        hook = Hook(
            id="hook_" + secrets.token_hex(12),
            owner=owner,
            event=event,
            target_url=target_url,
            description=description,
            created_at=now,
            updated_at=now,
            secret=secret,
            signing_key=signing_key,
            batching=batching,
        )
        if self.verify_intent:
            hook = attrs.evolve(
                hook,
                state=HookState.UNCONFIRMED,
                confirm_secret=secrets.token_urlsafe(32),
                confirm_by=now + self.confirm_within,
            )
        stored, created = self.store.add_hook(hook, max_per_owner=self.limits.hooks_per_owner)
        if stored.state is HookState.UNCONFIRMED and self._handshake(stored):
            confirmed = self.store.confirm_hook(stored.id, now=self.clock.now())
            if confirmed is not None:
                stored = confirmed
        return stored, created

    def _handshake(self, hook: Hook) -> bool:
        """Send the intent verification request; whether the target echoed the secret."""
        assert hook.confirm_secret is not None
        msg_id = "msg_" + secrets.token_hex(16)
        request = self._signed_request(
            hook, msg_id, b"", now=self.clock.now(), extra={"X-Hook-Secret": hook.confirm_secret}
        )
        try:
            response = self.transport.send(request)
        except Exception as exc:  # noqa: BLE001 - a failed handshake leaves the hook unconfirmed
            what = exc.kind if isinstance(exc, TransportError) else type(exc).__name__
            logger.info(
                "intent verification of hook %s: no answer (%s); it stays unconfirmed",
                hook.id,
                what,
                extra={"hook_id": hook.id, "error_kind": what},
            )
            return False
        echoed = {k.lower(): v for k, v in response.headers.items()}.get("x-hook-secret", "")
        confirmed = 200 <= response.status < 300 and hmac.compare_digest(
            echoed.encode("utf-8", "surrogatepass"), hook.confirm_secret.encode()
        )
        logger.info(
            "intent verification of hook %s: HTTP %d, %s",
            hook.id,
            response.status,
            "confirmed" if confirmed else "not confirmed; it stays unconfirmed",
            extra={"hook_id": hook.id, "status": response.status},
        )
        return confirmed

    def confirm_hook(self, hook_id: str, hook_secret: str, *, owner: str) -> Hook:
        """Confirm an unconfirmed hook later (intent verification): its target got the
        ``X-Hook-Secret`` of the handshake and passes it back through its owner's API client.

        Returns:
            The hook, now active (deliveries to it start with the next emit).

        Raises:
            HookNotFound: If the owner has no such hook.
            InvalidStateError: If the hook is not unconfirmed (it is active or dead), or its
                ``confirm_by`` has passed (it is removed then: subscribe again).
            ValidationError: Naming ``hook_secret``, if it is not the secret sent.

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock, RecordingTransport
            >>> transport = RecordingTransport(script=[404])   # the target does not echo
            >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=transport,
            ...                         verify_intent=True)
            >>> hook = dispatcher.subscribe("party/created", "https://example.com/h", owner="a")
            >>> hook.state.value
            'unconfirmed'
            >>> secret = transport.requests[0].headers["X-Hook-Secret"]   # what the target got
            >>> dispatcher.confirm_hook(hook.id, secret, owner="a").state.value
            'active'

        .. versionadded:: 0.2.0
        """
        hook = self.get_hook(hook_id, owner=owner)
        if hook.state is not HookState.UNCONFIRMED:
            raise InvalidStateError(f"hook {hook.id!r} is {hook.state.value}, not unconfirmed")
        if not isinstance(hook_secret, str):
            raise ValidationError(
                "hook_secret", f"must be a string, not {type(hook_secret).__name__}"
            )
        now = self.clock.now()
        if hook.confirm_by is not None and now >= hook.confirm_by:
            self.store.remove_hook(hook.id, now=now)
            raise InvalidStateError(
                f"hook {hook.id!r} was not confirmed in time and is removed: subscribe again"
            )
        expected = (hook.confirm_secret or "").encode()
        if not expected or not hmac.compare_digest(
            hook_secret.encode("utf-8", "surrogatepass"), expected
        ):
            raise ValidationError("hook_secret", "is not the X-Hook-Secret sent to the target")
        confirmed = self.store.confirm_hook(hook.id, now=now)
        if confirmed is None:  # confirmed or removed meanwhile
            raise InvalidStateError(f"hook {hook.id!r} is no longer unconfirmed")
        return confirmed

    def expire_unconfirmed(self) -> int:
        """Remove the unconfirmed hooks whose ``confirm_by`` has passed; return how many.

        :meth:`purge` calls it too.

        .. versionadded:: 0.2.0
        """
        now = self.clock.now()
        expired = 0
        for hook in self.store.list_hooks(state=HookState.UNCONFIRMED):
            if hook.confirm_by is not None and hook.confirm_by <= now:
                self.store.remove_hook(hook.id, now=now)
                expired += 1
        return expired

    def rotate_secret(self, hook_id: str, *, owner: str, secret: str | None = None) -> str:
        """Give the owner's hook, and every other hook of its owner to the same target URL
        (one secret per endpoint), a new signing secret and return it.

        For ``secret_grace`` (24 h unless configured) requests carry two signatures,
        space-separated: one with the new secret and one with the old, so the receiver can
        switch at its own pace; then only the new one. Rotating again during a grace period
        drops the oldest secret at once.

        Args:
            hook_id: The hook.
            owner: Its owner.
            secret: A ``whsec_`` secret to use instead of a generated one.

        Returns:
            The new secret.

        Raises:
            HookNotFound: If the owner has no such hook.
            ValidationError: Naming ``secret``, if the secret given is not valid.

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock
            >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
            >>> hook = dispatcher.subscribe("party/created", "https://example.com/h", owner="a")
            >>> new = dispatcher.rotate_secret(hook.id, owner="a")
            >>> rotated = dispatcher.get_hook(hook.id, owner="a")
            >>> (rotated.secret == new, rotated.previous_secret == hook.secret)
            (True, True)

        .. versionchanged:: 0.2.0
            The whole endpoint is rotated (each hook keeps its own old secret for the grace).
        """
        hook = self.get_hook(hook_id, owner=owner)
        if secret is not None:
            parse_secret(secret)
        else:
            secret = generate_secret()
        now = self.clock.now()
        # One secret per endpoint: every hook of the owner to this URL gets the new secret,
        # each keeping its own old one for the grace period (a database from before 0.2.0
        # may hold several secrets for one endpoint: this makes them one).
        endpoint = [h for h in self._endpoint(hook.owner, hook.target_url) if h.id != hook.id]
        for member in (hook, *endpoint):
            keep = member.secret if member.secret and self.secret_grace > timedelta(0) else None
            updated = self.store.set_secret(
                member.id,
                secret=secret,
                previous_secret=keep,
                previous_secret_until=now + self.secret_grace if keep else None,
                now=now,
            )
            if updated is None and member is hook:  # removed meanwhile
                raise HookNotFound(hook_id)
        return secret

    def update_hook(
        self,
        hook_id: str,
        *,
        owner: str,
        event: str | None = None,
        target_url: str | None = None,
        description: str | None = None,
    ) -> Hook:
        """Change the owner's hook: its event, target URL or description (``None``: unchanged).

        The hook keeps its id, state and deliveries; deliveries not yet sent go to the new
        target URL. A hook moved to a URL where the owner has other hooks takes their
        endpoint's secret; moved to a new URL, it keeps its own (the receiver moved).

        Raises:
            HookNotFound: If the owner has no such hook.
            ValidationError: Naming the field at fault, as :meth:`subscribe`; nothing changes.
            SubscriptionExists: If another hook of the owner has this event and target URL.
            InvalidStateError: For a new target URL under ``verify_intent`` (a new target
                must confirm: subscribe it instead).
            ConfigurationError: If the store cannot update hooks (a store of your own
                without ``update_hook``).

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock
            >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
            >>> hook = dispatcher.subscribe("party/created", "https://example.com/h", owner="a")
            >>> moved = dispatcher.update_hook(hook.id, owner="a", target_url="https://example.com/v2")
            >>> moved.id == hook.id, moved.target_url, moved.secret == hook.secret
            (True, 'https://example.com/v2', True)

        .. versionadded:: 0.2.0
        """
        hook = self.get_hook(hook_id, owner=owner)
        new_event = hook.event if event is None else self.events.validate(event)
        new_url = hook.target_url
        if target_url is not None:
            new_url = validate_target_url(target_url)
            self.network_policy.check_url(new_url)
        new_description = (
            hook.description if description is None else self._description(description)
        )
        if new_url != hook.target_url and self.verify_intent:
            raise InvalidStateError(
                "a new target URL must confirm the subscription (intent verification): "
                "subscribe it, then remove this hook"
            )
        update = getattr(self.store, "update_hook", None)
        if update is None:
            raise ConfigurationError(f"{type(self.store).__name__} cannot update hooks")
        updated: Hook | None = update(
            hook.id,
            event=new_event,
            target_url=new_url,
            description=new_description,
            now=self.clock.now(),
        )
        if updated is None:  # removed meanwhile
            raise HookNotFound(hook_id)
        return updated

    def get_hook(self, hook_id: str, *, owner: str) -> Hook:
        """Return the owner's hook with this id.

        Raises:
            HookNotFound: If there is none (or it belongs to another owner).
        """
        owner = _validation.owner(owner)
        hook = self.store.get_hook(_validation.hook_id(hook_id))
        if hook is None or hook.owner != owner:
            raise HookNotFound(hook_id)
        return hook

    def hooks(
        self, *, owner: str, event: str | None = None, state: HookState | str | None = None
    ) -> list[Hook]:
        """The owner's hooks, oldest first, optionally only of one event or state."""
        owner = _validation.owner(owner)
        if event is not None:
            event = self.events.validate(event)
        return self.store.list_hooks(owner=owner, event=event, state=_hook_state(state))

    def public_keys(self, *, owner: str) -> dict[str, str]:
        """The ``v1a`` public keys of the owner's hooks: ``{hook id: "whpk_..."}``, oldest first.

        Dead hooks are included (their requests may still need verifying); hooks without a
        ``v1a`` key are not. Pass the result to :func:`resthooks.ed25519.jwks` for a
        document to serve, or see :meth:`resthooks.api.SubscriptionAPI.public_keys`.

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock
            >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(),
            ...                         signature_versions={"v1", "v1a"})
            >>> hook = dispatcher.subscribe("party/created", "https://example.com/h", owner="a")
            >>> [key[:5] for key in dispatcher.public_keys(owner="a").values()]
            ['whpk_']

        .. versionadded:: 0.2.0
        """
        return {
            hook.id: ed25519.public_key_of(hook.signing_key)
            for hook in self.hooks(owner=owner)
            if hook.signing_key
        }

    def unsubscribe(self, hook_id: str, *, owner: str) -> None:
        """Remove the owner's hook; its deliveries not yet sent are cancelled.

        Raises:
            HookNotFound: If there is no such hook for this owner.
        """
        hook = self.get_hook(hook_id, owner=owner)
        cancelled = self.store.remove_hook(hook.id, now=self.clock.now())
        if self._listeners:
            lifecycle.notify_unsubscribed(self._listeners, hook, cancelled)

    # -- events ------------------------------------------------------------------------------

    def emit(
        self,
        event: str,
        payload: object,
        *,
        owner: str,
        connection: object | None = None,
        ordering_key: str | None = None,
    ) -> Sequence[Delivery]:
        """Queue ``event`` for every active hook of ``owner`` subscribed to it.

        The body ``{"event": event, "payload": [...]}`` is serialised once, here; errors in
        the payload surface now, before anything is stored.

        Args:
            event: An event of the catalogue.
            payload: One entity (a mapping or attrs instance) or a sequence of them.
            owner: Whose hooks receive it.
            connection: The transactional outbox: a connection of the host's to the store's
                database, with the host's transaction open. The deliveries are written
                through it and exist only if that transaction commits (see the store's docs).
            ordering_key: Deliveries to one hook with the same key are sent one at a time,
                in emit order (``"party:11587"``: the changes of one entity); different
                keys, and deliveries without one, go in parallel. At most 255 characters,
                no control characters. See :doc:`delivery`.

        Returns:
            The new pending deliveries, one per hook (empty when no hook matched). A store
            may build them only when they are first read (:class:`~resthooks.stores.SQLiteStore`
            does): an emit whose caller never looks at them does not pay for them.

        Raises:
            ValidationError: For an unknown event, a bad owner or ordering key.
            PayloadError: If the payload cannot be encoded, is too large, or (with
                ``validate_payloads``) does not match its event's schema.

        .. versionchanged:: 0.2.0
           Returns a sequence (it was a list); ``ordering_key``.
        """
        owner, event, body = self.prepare_emit(event, payload, owner=owner)
        keyed = _validation.ordering_arguments(ordering_key)
        observer = self.emit_observer
        if observer is None:
            created = self.store.enqueue(
                owner=owner,
                event=event,
                body=body,
                now=self.clock.now(),
                connection=connection,
                **keyed,
            )
        else:
            created = self._enqueue_observed(
                observer, owner, event, body, now=self.clock.now(), connection=connection, **keyed
            )
        self.emitted(created, transactional=connection is not None)
        return created

    def _enqueue_observed(
        self,
        observer: EmitObserver,
        owner: str,
        event: str,
        body: bytes,
        *,
        now: datetime,
        connection: object | None,
        **keyed: str,
    ) -> Sequence[Delivery]:
        # The store's enqueue inside the emit observer, with the trace
        # context it gave.
        trace = EmitTrace(event=event, owner=owner)
        with observer(trace):
            created = self.store.enqueue(
                owner=owner,
                event=event,
                body=body,
                now=now,
                connection=connection,
                **trace.store_arguments(),
                **keyed,
            )
            trace.deliveries = len(created)
        return created

    # -- the engine's own API: for the faces and workers built on this Dispatcher ------------
    #
    # emit() is three steps: prepare_emit, the store's enqueue, emitted. The asyncio face
    # (resthooks.aio) makes the middle one through an async connection of the host's, so it
    # calls the other two; the workers claim through claim_due and sleep on a waker.

    def prepare_emit(self, event: str, payload: object, *, owner: str) -> tuple[str, str, bytes]:
        """Validate an emit and encode its body: the ``(owner, event, body)`` to enqueue.

        Engine API, for a face that stores an emit itself (the asyncio face, through an
        async connection); :meth:`emit` is this, the store's ``enqueue`` and :meth:`emitted`.

        Raises:
            ValidationError: For an unknown event or a bad owner (or, with
                ``validate_payloads``, a payload its event's schema refuses).
            PayloadError: If the payload cannot be encoded or is too large.

        .. versionadded:: 0.2.0

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> Dispatcher(MemoryStore()).prepare_emit("party/created", {"id": 1}, owner="a")
            ('a', 'party/created', b'{"event":"party/created","payload":[{"id":1}]}')
        """
        owner = _validation.owner(owner)
        event = self.events.validate(event)
        body = encode_body(event, payload, max_bytes=self.limits.payload_bytes)
        if self.validate_payloads:
            # What the receiver gets is checked: the JSON, not the Python values before it.
            self.events.validate_payload(event, json.loads(body)["payload"])
        return owner, event, body

    def emitted(self, created: Sequence[Delivery], *, transactional: bool) -> None:
        """What follows an enqueue: wake this process's workers and run :attr:`after_emit`,
        unless the deliveries were written inside the host's transaction
        (``transactional``): those are invisible until the host commits, and what wakes
        the workers then is the commit (the store's own signal, or :meth:`committed`).

        Engine API, the last step of :meth:`emit` (see :meth:`prepare_emit`).

        .. versionadded:: 0.2.0
        """
        # A worker woken before the commit would find nothing and sleep its poll interval.
        if created and not transactional:
            self._wake_workers()
            if self.after_emit is not None:
                self.after_emit(created)

    def validate_emit(self, event: str, payload: object, *, owner: str) -> bytes:
        """Raise what :meth:`emit` would raise for these arguments, and store nothing.

        For a host that emits later (after its transaction commits, say) and wants a bad
        event, owner or payload to fail now, at the call site.

        Returns:
            The body :meth:`emit` would send now (a snapshot of the payload as it is).

        Raises:
            ValidationError: For an unknown event or a bad owner.
            PayloadError: If the payload cannot be encoded, is too large, or (with
                ``validate_payloads``) does not match its event's schema.

        .. versionadded:: 0.2.0

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> Dispatcher(MemoryStore()).validate_emit("party/exploded", {}, owner="acme")
            Traceback (most recent call last):
            ...
            resthooks.errors.ValidationError: event: ...
        """
        return self.prepare_emit(event, payload, owner=owner)[2]

    def committed(self, deliveries: Sequence[Delivery]) -> None:
        """Say that deliveries an ``emit(..., connection=...)`` wrote have been committed.

        The host calls it after its transaction commits (the Django integration does, from
        ``transaction.on_commit``): this process's workers wake up at once instead of at their
        next poll, and :attr:`after_emit` (the synchronous test mode) runs for them.

        Raises:
            ValidationError: Naming ``deliveries`` if it is not a sequence of deliveries.

        .. versionadded:: 0.2.0
        """
        if (
            not isinstance(deliveries, Sequence)
            or isinstance(deliveries, (str, bytes))
            or not all(isinstance(d, Delivery) for d in deliveries)
        ):
            raise ValidationError("deliveries", "must be the deliveries an emit returned")
        if deliveries:
            self._wake_workers()
            if self.after_emit is not None:
                self.after_emit(list(deliveries))

    def emit_many(
        self,
        events: Iterable[tuple[str, object, str] | tuple[str, object, str, str | None]],
        *,
        connection: object | None = None,
    ) -> Sequence[Delivery]:
        """Queue several events, each ``(event, payload, owner)`` or ``(event, payload, owner,
        ordering_key)``, in one store transaction.

        What :meth:`emit` does for each, but the store writes them all at once (one commit
        instead of one per event, where the store has an ``enqueue_many``; a store of your
        own without it gets one :meth:`~resthooks.stores.DeliveryStore.enqueue` per event).
        Every event is validated and encoded before anything is stored: one bad event stores
        none.

        Args:
            events: ``(event, payload, owner)`` tuples, as :meth:`emit` takes them, or
                ``(event, payload, owner, ordering_key)``: deliveries of one key keep the
                order of ``events``.
            connection: The transactional outbox, as for :meth:`emit`.

        Returns:
            The new pending deliveries of all the events, in their order.

        Raises:
            ValidationError: Naming the field at fault and, in the message, the index of the
                event (``events[3]: ...``); nothing is stored.
            PayloadError: Likewise, for a payload that cannot be encoded or is too large.

        .. versionadded:: 0.2.0

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock, RecordingTransport
            >>> dispatcher = Dispatcher(
            ...     MemoryStore(), clock=FakeClock(), transport=RecordingTransport()
            ... )
            >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="a")
            >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="b")
            >>> made = dispatcher.emit_many(
            ...     [("party/created", {"id": 1}, "a"), ("party/created", {"id": 2}, "b")]
            ... )
            >>> [d.owner for d in made]
            ['a', 'b']
        """
        if isinstance(events, (str, bytes)) or not isinstance(events, Iterable):
            raise ValidationError("events", "must be an iterable of (event, payload, owner)")
        batch: list[tuple[str, str, bytes]] = []
        keys: list[str | None] = []
        for i, item in enumerate(events):
            if not isinstance(item, tuple) or len(item) not in (3, 4):
                raise ValidationError(
                    "events", f"events[{i}] must be an (event, payload, owner[, ordering_key])"
                )
            event, payload, owner = item[:3]
            try:
                owner, event, body = self.prepare_emit(event, payload, owner=owner)
                keys.append(_validation.ordering_key(item[3] if len(item) == 4 else None))
            except PayloadError as exc:
                indexed = PayloadError(f"events[{i}]: {exc.message}")
                indexed.path = exc.path
                raise indexed from None
            except ValidationError as exc:
                raise ValidationError(exc.field, f"events[{i}]: {exc.message}") from None
            batch.append((owner, event, body))
        if not batch:
            return []
        now = self.clock.now()
        enqueue_many = getattr(self.store, "enqueue_many", None)
        observer = self.emit_observer
        keyed = any(k is not None for k in keys)
        if observer is not None:  # traced: each event observed (its trace context) alone
            created: Sequence[Delivery] = [
                d
                for (owner, event, body), key in zip(batch, keys, strict=True)
                for d in self._enqueue_observed(
                    observer,
                    owner,
                    event,
                    body,
                    now=now,
                    connection=connection,
                    **_validation.ordering_arguments(key),
                )
            ]
        elif enqueue_many is not None:
            if keyed:
                created = enqueue_many(batch, now=now, connection=connection, ordering_keys=keys)
            else:
                created = enqueue_many(batch, now=now, connection=connection)
        else:
            created = [
                d
                for (owner, event, body), key in zip(batch, keys, strict=True)
                for d in self.store.enqueue(
                    owner=owner,
                    event=event,
                    body=body,
                    now=now,
                    connection=connection,
                    **_validation.ordering_arguments(key),
                )
            ]
        self.emitted(created, transactional=connection is not None)
        return created

    # -- deliveries --------------------------------------------------------------------------

    def deliveries(
        self,
        *,
        owner: str,
        hook_id: str | None = None,
        state: DeliveryState | str | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """The owner's deliveries, newest first.

        Raises:
            ValidationError: Naming the filter at fault (``owner``, ``hook_id``, ``state`` or
                ``limit``, which must be an int >= 0).
        """
        owner = _validation.owner(owner)
        if hook_id is not None:
            hook_id = _validation.id_filter(hook_id, "hook_id")
        return self.store.list_deliveries(
            owner=owner,
            hook_id=hook_id,
            state=_delivery_state(state),
            limit=_validation.limit(limit),
        )

    def get_delivery(self, delivery_id: str, *, owner: str) -> Delivery:
        """Return the owner's delivery with this id.

        Raises:
            DeliveryNotFound: If there is none for this owner.
        """
        owner = _validation.owner(owner)
        delivery = self.store.get_delivery(_validation.delivery_id(delivery_id))
        if delivery is None or delivery.owner != owner:
            raise DeliveryNotFound(delivery_id)
        return delivery

    def attempts(self, delivery_id: str, *, owner: str) -> list[Attempt]:
        """The attempt log of the owner's delivery, oldest first.

        Raises:
            DeliveryNotFound: If there is no such delivery for this owner.
        """
        delivery = self.get_delivery(delivery_id, owner=owner)
        return self.store.attempts(delivery.id)

    def deliver_due(self, *, batch_size: int = 100) -> DeliverySummary:
        """Send every delivery due now, one after the other, and record each outcome.

        This is what a test or a cron-style host calls; deliveries that become due while it
        runs (a retry due at once, say) are sent too. A claimed delivery is sent only if its
        attempt can end before the claim's lease does; otherwise it is released and claimed
        again, so two workers never send it at once.

        It sends one request at a time, so it claims up to ``batch_size`` deliveries without
        applying ``limits.in_flight_per_host``: a batch to one host is still sent one after the
        other (see :doc:`delivery`).

        Returns:
            The counts of outcomes.
        """
        summary = DeliverySummary()
        while True:
            now = self.clock.now()
            # No per-host limit here: this loop never has more than one request in flight,
            # and claiming a few at a time under the limit cost a claim and a record per few
            # deliveries (a quarter of the Dispatcher's own time per delivery).
            claims = self.claim_due(now=now, limit=batch_size, per_host=False)
            if not claims:
                return summary
            outcomes = [self._attempt_within_lease(claim) for claim in claims]
            summary += self.record(outcomes, claims=claims)

    def claim_due(self, *, now: datetime, limit: int, per_host: bool) -> list[Claim]:
        """Claim up to ``limit`` deliveries due at ``now``, leased for the Dispatcher's ``lease``.

        Engine API, what every worker claims with (:meth:`deliver_due`, the thread worker,
        the asyncio worker): the store's
        :meth:`~resthooks.stores.DeliveryStore.claim_due` under this Dispatcher's lease and,
        with ``per_host``, its ``limits.in_flight_per_host``; then the rows the store
        quarantined meanwhile are logged and sent to the listeners
        (:class:`~resthooks.lifecycle.DeliveryQuarantined`).

        .. versionadded:: 0.2.0
        """
        try:
            return self.store.claim_due(
                now=now,
                limit=limit,
                lease_until=now + self.lease,
                max_in_flight_per_host=self.limits.in_flight_per_host if per_host else None,
            )
        finally:
            self._report_quarantined()

    def _report_quarantined(self) -> None:
        # Optional: only stores that can hold rows they cannot read (SQL stores) have it.
        take = getattr(self.store, "take_quarantined", None)
        if take is None:
            return
        found: Sequence[QuarantinedDelivery] = take()
        if found and self._listeners:  # the log listener says it too
            lifecycle.notify_quarantined(self._listeners, found)

    def _attempt_within_lease(self, claim: Claim) -> Outcome:
        # The claims of a batch are sent one after the other: one whose attempt could end
        # after its lease expires (another worker may take it over then) goes back to the
        # queue unsent, to be claimed afresh by the next round.
        longest = timedelta(seconds=self.timeouts.total)
        if self.clock.now() + longest > claim.lease_until:
            return Outcome(
                delivery_id=claim.delivery.id, token=claim.token, kind=OutcomeKind.RELEASE
            )
        return self.attempt(claim)

    # -- the policy, one attempt at a time -----------------------------------------------------

    def build_request(self, claim: Claim, *, now: datetime) -> Request:
        """The request for one attempt of a claimed delivery, signed if the hook has a secret."""
        return self._signed_request(claim.hook, claim.delivery.id, claim.body, now=now)

    def _signed_request(
        self,
        hook: Hook,
        msg_id: str,
        body: bytes,
        *,
        now: datetime,
        extra: Mapping[str, str] | None = None,
    ) -> Request:
        """A POST of ``body`` to the hook's target, signed with every live secret and key:
        what a delivery, the intent handshake and a ping send."""
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": user_agent(),
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
        }
        if extra:
            headers.update(extra)
        signatures = [sign(s, msg_id, timestamp, body) for s in _live_secrets(hook, now)]
        if hook.signing_key:
            signatures.append(ed25519.sign_v1a(hook.signing_key, msg_id, timestamp, body))
        if signatures:
            headers["webhook-signature"] = " ".join(signatures)
        return Request(
            method="POST",
            url=hook.target_url,
            headers=headers,
            body=body,
            timeouts=self.timeouts,
            max_response_bytes=self.limits.response_bytes,
        )

    def attempt(self, claim: Claim) -> Outcome:
        """Make one attempt for a claimed delivery and decide its outcome (nothing recorded)."""
        steps = self.attempt_steps(claim)
        try:
            request = next(steps)
            try:
                response = self.transport.send(request)
            except Exception as exc:  # noqa: BLE001 - attempt_steps turns it into an outcome
                steps.throw(exc)
            else:
                steps.send(response)
        except StopIteration as done:
            outcome: Outcome = done.value
            return outcome
        raise AssertionError("attempt_steps yields one request")  # pragma: no cover

    def attempt_steps(self, claim: Claim) -> Generator[Request, Response, Outcome]:
        """One attempt as a generator, whoever sends it: the policy of :meth:`attempt`, no I/O.

        It yields the :class:`~resthooks.transports.Request` to send (signed, size-checked),
        takes the transport's :class:`~resthooks.transports.Response` through ``send()`` or
        the exception the transport raised through ``throw()``, and returns the
        :class:`~resthooks.model.Outcome` (by ``StopIteration``). When the request cannot be
        sent (too large), it returns at once without yielding. :meth:`attempt` drives it with
        the Dispatcher's transport; the asyncio worker (:mod:`resthooks.aio`) with an
        awaitable one, so both faces make the same decisions.

        .. versionadded:: 0.2.0

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock
            >>> from resthooks.transports import Response
            >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
            >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="a")
            >>> _ = dispatcher.emit("party/created", {"id": 1}, owner="a")
            >>> now = dispatcher.clock.now()
            >>> lease_until = now + dispatcher.lease
            >>> [claim] = dispatcher.store.claim_due(now=now, limit=1, lease_until=lease_until)
            >>> steps = dispatcher.attempt_steps(claim)
            >>> next(steps).url
            'https://example.com/h'
            >>> try:
            ...     steps.send(Response(status=204))
            ... except StopIteration as done:
            ...     print(done.value.kind.value)
            delivered
        """
        started = self.clock.now()
        request = self.build_request(claim, now=started)
        response: Response | None = None
        error: TransportError | None = None
        try:
            _check_request_size(request, self.limits.payload_bytes)
            response = yield request
        except TransportError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - a broken custom transport must not lose the delivery
            error = TransportError("protocol", f"transport raised {type(exc).__name__}: {exc}")
        if error is not None:  # custom transports may quote the URL: no credentials, no query
            error = TransportError(error.kind, redact_url(error.message, request.url))
        finished = self.clock.now()
        return self.decide(
            claim, started=started, finished=finished, response=response, error=error
        )

    def decide(
        self,
        claim: Claim,
        *,
        started: datetime,
        finished: datetime,
        response: Response | None,
        error: TransportError | None,
    ) -> Outcome:
        """The outcome of one attempt: delivered, gone (410), retry later, or failed for good.

        A failed attempt is retried when the Dispatcher's :class:`~resthooks.RetryPolicy`
        says (its schedule, the timeout penalty, ``Retry-After``), and fails for good when
        the policy gives up. Either way the attempt counts: the schedule does not restart.
        """
        attempt = self._logged_attempt(
            claim.delivery.id,
            claim.delivery.attempts + 1,
            started=started,
            finished=finished,
            response=response,
            error=error,
        )
        kind, next_at, reason = self._policy(
            attempt, finished, headers=response.headers if response is not None else None
        )
        return Outcome(
            delivery_id=claim.delivery.id,
            token=claim.token,
            kind=kind,
            attempt=attempt,
            next_attempt_at=next_at,
            reason=reason,
        )

    def _logged_attempt(
        self,
        delivery_id: str,
        number: int,
        *,
        started: datetime,
        finished: datetime,
        response: Response | None,
        error: TransportError | None,
    ) -> Attempt:
        """The attempt log's entry for one request: its status or error, a capped excerpt."""
        duration = max((finished - started).total_seconds(), 0.0)
        if response is not None:
            ok = 200 <= response.status < 300
            return Attempt(
                delivery_id=delivery_id,
                number=number,
                started_at=started,
                duration=duration,
                status=response.status,
                error_kind=None if ok else "http",
                error=None if ok else f"HTTP {response.status}",
                response_excerpt=response.body[: self.limits.response_bytes].decode(
                    "utf-8", "replace"
                ),
            )
        assert error is not None
        return Attempt(
            delivery_id=delivery_id,
            number=number,
            started_at=started,
            duration=duration,
            error_kind=error.kind.value,
            error=error.message[:500],
        )

    def _policy(
        self, attempt: Attempt, finished: datetime, *, headers: Mapping[str, str] | None
    ) -> tuple[OutcomeKind, datetime | None, str | None]:
        if attempt.succeeded:
            return OutcomeKind.DELIVERED, None, None
        if attempt.status == 410:
            return OutcomeKind.GONE, None, None
        next_at = self.retry.next_attempt_at(attempt, finished=finished, headers=headers)
        if next_at is None:
            reason = f"{attempt.number} attempts failed; the last: {attempt.summary}"
            return OutcomeKind.FAILED, None, reason
        return OutcomeKind.RETRY, next_at, None

    def record(
        self, outcomes: Sequence[Outcome], *, claims: Sequence[Claim] | None = None
    ) -> DeliverySummary:
        """Record a batch of outcomes in the store (one transaction) and count them.

        Then call the lifecycle listeners (see :mod:`resthooks.lifecycle`), the first of
        which is the log listener (:attr:`log_listener`: a line per attempt on the
        ``resthooks`` logger). An outcome whose delivery was cancelled while it
        was in flight has its attempt logged but changes nothing else: it is counted as
        ``late`` and sends only :class:`~resthooks.lifecycle.AttemptFinished`.

        Args:
            outcomes: The decisions to record.
            claims: The claims the outcomes were decided for, in the same order. They give
                the listeners and the log each delivery's hook without reading the store;
                without them the hooks are read from the store first.

        Raises:
            ValidationError: If ``claims`` does not match ``outcomes``.
        """
        if not outcomes:
            return DeliverySummary()
        if claims is not None and [c.delivery.id for c in claims] != [
            o.delivery_id for o in outcomes
        ]:
            raise ValidationError("claims", "must be the claims of the outcomes, in order")
        hooks = (
            {c.delivery.id: c.hook for c in claims}
            if claims is not None
            else self._hooks_of(outcomes)
        )
        results = self.store.record(outcomes, now=self.clock.now())
        listeners = self._listeners
        if listeners:
            traces = (
                {c.delivery.id: c.trace_context for c in claims if c.trace_context}
                if claims is not None
                else None
            )
            lifecycle.notify_recorded(
                listeners, outcomes, results, hooks, self.store, trace_contexts=traces
            )
        return summarize(outcomes, results)

    def _hooks_of(self, outcomes: Sequence[Outcome]) -> dict[str, Hook]:
        hooks: dict[str, Hook] = {}
        for outcome in outcomes:
            delivery = self.store.get_delivery(outcome.delivery_id)
            hook = self.store.get_hook(delivery.hook_id) if delivery is not None else None
            if hook is not None:
                hooks[outcome.delivery_id] = hook
        return hooks

    # -- lifecycle listeners -------------------------------------------------------------------

    def add_listener(self, listener: LifecycleListener) -> LifecycleListener:
        """Call ``listener`` with every lifecycle event from now on (or those it asks for:
        see :class:`~resthooks.lifecycle.LifecycleListener`).

        Returns ``listener``, so this works as a decorator. See :mod:`resthooks.lifecycle`.

        Raises:
            ValidationError: If ``listener`` is not callable, or its ``lifecycle_events`` or
                ``wants_attempt`` is not what :class:`~resthooks.lifecycle.LifecycleListener`
                says.

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.lifecycle import DeliveryDelivered
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock, RecordingTransport
            >>> dispatcher = Dispatcher(
            ...     MemoryStore(), clock=FakeClock(), transport=RecordingTransport()
            ... )
            >>> delivered = []
            >>> @dispatcher.add_listener
            ... def count(event):
            ...     if isinstance(event, DeliveryDelivered):
            ...         delivered.append(event.delivery_id)
            >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
            >>> _ = dispatcher.emit("party/created", {"id": 1}, owner="acme")
            >>> _ = dispatcher.deliver_due()
            >>> len(delivered)
            1
        """
        lifecycle.check_listener(listener)
        with self._listeners_lock:  # who wants which event is worked out here, once
            self._listeners = lifecycle.Listeners((*self._listeners, listener))
        return listener

    def remove_listener(self, listener: LifecycleListener) -> None:
        """Stop calling ``listener`` (nothing happens if it was not registered)."""
        with self._listeners_lock:
            self._listeners = lifecycle.Listeners(x for x in self._listeners if x != listener)

    # -- the worker ----------------------------------------------------------------------------

    def worker(
        self,
        *,
        workers: int = 16,
        poll_interval: float = 5.0,
        grace: float | None = None,
    ) -> Worker:
        """A :class:`~resthooks.worker.Worker` that delivers for this Dispatcher.

        Args:
            workers: Threads sending attempts at once.
            poll_interval: Seconds between looks at the store for work that another process
                queued (emits in this process wake the worker at once).
            grace: When stopping, how long attempts in flight may take to finish, in seconds.
                Default: the attempt deadline, ``timeouts.total``.
        """
        return Worker(self, workers=workers, poll_interval=poll_interval, grace=grace)

    def run(
        self,
        *,
        workers: int = 16,
        stop: threading.Event | None = None,
        poll_interval: float = 5.0,
        grace: float | None = None,
    ) -> DeliverySummary:
        """Deliver until ``stop`` is set: the long-running worker. See :doc:`worker`.

        Args:
            workers: Threads sending attempts at once.
            stop: Set it (from another thread or a signal handler) to stop: no new work is
                taken, attempts in flight get ``grace`` seconds to finish, and every claim not
                finished is released. Without it, the worker runs until interrupted.
            poll_interval: Seconds between looks at the store for other processes' work.
            grace: Seconds attempts in flight may take to finish after ``stop``. Default:
                ``timeouts.total``.

        Returns:
            The counts of outcomes recorded.
        """
        return self.worker(workers=workers, poll_interval=poll_interval, grace=grace).run(stop)

    def run_until_idle(
        self,
        *,
        workers: int = 16,
        stop: threading.Event | None = None,
        grace: float | None = None,
    ) -> DeliverySummary:
        """Deliver, ``workers`` at a time, until nothing is due and nothing is in flight.

        Like :meth:`deliver_due`, but concurrent, with the worker's isolation and stopping.
        Deliveries due later (retries) are left for later.

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock, RecordingTransport
            >>> dispatcher = Dispatcher(
            ...     MemoryStore(), clock=FakeClock(), transport=RecordingTransport()
            ... )
            >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
            >>> _ = dispatcher.emit("party/created", [{"id": 1}], owner="acme")
            >>> dispatcher.run_until_idle(workers=4).delivered
            1
        """
        worker = self.worker(workers=workers, grace=grace)
        return worker.run_until_idle(stop)

    def add_waker(self, waker: Waker) -> None:
        """Set ``waker`` (anything with a ``set()`` method, a :class:`threading.Event`, say)
        at every emit of this process from now on.

        Engine API: a worker sleeping until its next poll registers what it sleeps on, so an
        emit wakes it at once (both workers do).

        .. versionadded:: 0.2.0
        """
        with self._listeners_lock:
            self._wakers = {*self._wakers, waker}

    def remove_waker(self, waker: Waker) -> None:
        """Stop setting ``waker`` (nothing happens if it was not added).

        .. versionadded:: 0.2.0
        """
        with self._listeners_lock:
            self._wakers = self._wakers - {waker}

    def _wake_workers(self) -> None:
        for event in self._wakers:
            event.set()

    # -- operations ----------------------------------------------------------------------------

    def stats(self, *, owner: str | None = None) -> Stats:
        """Hooks by state, deliveries by state, and when the oldest unfinished one was emitted.

        Args:
            owner: Only this owner's; ``None`` for the whole store.

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock
            >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
            >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
            >>> _ = dispatcher.emit("party/created", {"id": 1}, owner="acme")
            >>> stats = dispatcher.stats(owner="acme")
            >>> stats.hooks["active"], stats.deliveries["pending"]
            (1, 1)
            >>> stats.oldest_pending_at.isoformat()
            '2026-01-01T00:00:00+00:00'
        """
        if owner is not None:
            owner = _validation.owner(owner)
        return self.store.stats(owner=owner)

    def redeliver(self, delivery_id: str, *, owner: str) -> Delivery:
        """Queue a failed or cancelled delivery again, due now: a new series of attempts.

        The delivery keeps its id (the same ``webhook-id``, so receivers can deduplicate) and
        its attempt log; its attempt count starts again at 0.

        Returns:
            The delivery, pending.

        Raises:
            DeliveryNotFound: If the owner has no such delivery.
            InvalidStateError: If it is not failed or cancelled (still pending, in flight or
                delivered), or if its hook is dead (revive the hook first).
            HookNotFound: If its hook no longer exists (it was unsubscribed or answered 410;
                the message says which).
        """
        delivery = self.get_delivery(delivery_id, owner=owner)
        if delivery.state not in (DeliveryState.FAILED, DeliveryState.CANCELLED):
            raise InvalidStateError(
                f"delivery {delivery.id!r} is {delivery.state.value}: only failed or cancelled "
                "deliveries can be redelivered"
            )
        hook = self.store.get_hook(delivery.hook_id)
        if hook is None or hook.owner != delivery.owner:
            gone = delivery.last_error == "HTTP 410"
            raise HookNotFound(
                delivery.hook_id,
                why=(
                    "the hook of this delivery was removed when its receiver answered 410 Gone; "
                    "subscribe the URL again to deliver to it"
                    if gone
                    else "the hook of this delivery was removed (unsubscribed)"
                ),
            )
        if not hook.is_active:
            raise InvalidStateError(
                f"hook {hook.id!r} is dead: revive it before redelivering its deliveries"
            )
        requeued = self.store.requeue(delivery.id, now=self.clock.now())
        if requeued is None:  # pragma: no cover - purged between the two calls
            raise DeliveryNotFound(delivery_id)
        self._wake_workers()
        return requeued

    def replay(
        self,
        hook_id: str,
        *,
        owner: str,
        since: datetime,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> tuple[list[Delivery], bool]:
        """Queue again the failed and cancelled deliveries of a hook emitted since a time.

        Each is redelivered as :meth:`redeliver` does (same id, a new series of attempts),
        oldest first, at most ``limit`` per call. Delivered, pending and in-flight deliveries
        are left alone: a replay never sends a delivered event twice.

        Args:
            hook_id: The owner's hook (active: revive a dead one first).
            owner: Its owner.
            since: Deliveries emitted at or after this time (an aware datetime).
            until: And before this time; default: now.
            limit: At most this many (1 to 10,000); the second value returned says whether
                more were left (call again with the same window).

        Returns:
            ``(queued, more)``: the deliveries queued again, and whether others in the window
            were left for another call.

        Raises:
            HookNotFound: If the owner has no such hook.
            InvalidStateError: If the hook is not active.
            ValidationError: Naming ``since``, ``until`` or ``limit``.

        Example:
            >>> from datetime import timedelta
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock
            >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock())
            >>> hook = dispatcher.subscribe("party/created", "https://example.com/h", owner="a")
            >>> queued, more = dispatcher.replay(
            ...     hook.id, owner="a", since=dispatcher.clock.now() - timedelta(days=1))
            >>> queued, more
            ([], False)

        .. versionadded:: 0.2.0
        """
        hook = self.get_hook(hook_id, owner=owner)
        now = self.clock.now()
        start = _validation.aware_datetime(since, "since")
        end = now if until is None else _validation.aware_datetime(until, "until")
        if end <= start:
            raise ValidationError("until", "must be later than since")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_REPLAY:
            raise ValidationError("limit", f"must be an int from 1 to {MAX_REPLAY}")
        if not hook.is_active:
            raise InvalidStateError(
                f"hook {hook.id!r} is {hook.state.value}: only an active hook's deliveries "
                "can be replayed (revive it first)"
            )
        window = sorted(
            (
                d
                for state in (DeliveryState.FAILED, DeliveryState.CANCELLED)
                for d in self.store.list_deliveries(
                    hook_id=hook.id, state=state, limit=_validation.MAX_LIMIT
                )
                if start <= d.created_at < end
            ),
            key=lambda d: (d.created_at, d.id),
        )
        queued = [
            requeued
            for d in window[:limit]
            if (requeued := self.store.requeue(d.id, now=now)) is not None
        ]
        if queued:
            self._wake_workers()
        return queued, len(window) > limit

    def ping(self, hook_id: str, *, owner: str) -> Attempt:
        """Send the hook's target a test event now and say how it went; nothing is stored.

        The request is a delivery's (signed with the endpoint's live secrets, the same
        headers, the network policy of the transport) with a fresh ``webhook-id`` and the
        body ``{"event": "ping", "payload": [{"hookId": ..., "event": ...}]}``. It is sent
        once, now, by the caller's thread (it takes up to ``timeouts.total``), never retried,
        and not kept in any attempt log.

        Returns:
            An :class:`~resthooks.Attempt` whose ``delivery_id`` is the ping's
            ``webhook-id`` and ``status`` the answer's (``None``, with ``error_kind``, when
            none came).

        Raises:
            HookNotFound: If the owner has no such hook.
            InvalidStateError: If the hook is unconfirmed (its target has not agreed to
                receive anything yet). A dead hook can be pinged, to test before reviving.

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock, RecordingTransport
            >>> transport = RecordingTransport()
            >>> dispatcher = Dispatcher(MemoryStore(), clock=FakeClock(), transport=transport)
            >>> hook = dispatcher.subscribe("party/created", "https://example.com/h", owner="a")
            >>> dispatcher.ping(hook.id, owner="a").status
            204
            >>> transport.requests[0].body[:36]
            b'{"event":"ping","payload":[{"hookId"'

        .. versionadded:: 0.2.0
        """
        hook = self.get_hook(hook_id, owner=owner)
        if hook.state is HookState.UNCONFIRMED:
            raise InvalidStateError(
                f"hook {hook.id!r} is unconfirmed: its target has not confirmed it yet"
            )
        body = encode_body("ping", {"hookId": hook.id, "event": hook.event}, max_bytes=2**20)
        msg_id = "msg_" + secrets.token_hex(16)
        started = self.clock.now()
        request = self._signed_request(hook, msg_id, body, now=started)
        response: Response | None = None
        error: TransportError | None = None
        try:
            response = self.transport.send(request)
        except TransportError as exc:
            error = TransportError(exc.kind, redact_url(exc.message, request.url))
        except Exception as exc:  # noqa: BLE001 - a broken transport is the ping's answer
            error = TransportError(
                "protocol",
                redact_url(f"transport raised {type(exc).__name__}: {exc}", request.url),
            )
        attempt = self._logged_attempt(
            msg_id, 1, started=started, finished=self.clock.now(), response=response, error=error
        )
        logger.info(
            "ping of hook %s: %s",
            hook.id,
            attempt.summary or f"HTTP {attempt.status}",
            extra={"hook_id": hook.id, "status": attempt.status},
        )
        return attempt

    def revive(self, hook_id: str, *, owner: str, redeliver_failed: bool = False) -> Hook:
        """Make a dead hook active again.

        Its deliveries that were not delivered stay as they are unless ``redeliver_failed``:
        then the one that failed and those cancelled when the hook died are queued again
        (as :meth:`redeliver` does).

        Returns:
            The hook, active.

        Raises:
            HookNotFound: If the owner has no such hook.
            InvalidStateError: If the hook is not dead.
        """
        hook = self.get_hook(hook_id, owner=owner)
        if hook.state is not HookState.DEAD:
            raise InvalidStateError(f"hook {hook.id!r} is {hook.state.value}, not dead")
        now = self.clock.now()
        revived = self.store.revive_hook(hook.id, now=now)
        if revived is None:  # pragma: no cover - removed between the two calls
            raise HookNotFound(hook_id)
        if redeliver_failed:
            for state in (DeliveryState.FAILED, DeliveryState.CANCELLED):
                for delivery in self.store.list_deliveries(
                    hook_id=hook.id, state=state, limit=_validation.MAX_LIMIT
                ):
                    self.store.requeue(delivery.id, now=now)
            self._wake_workers()
        return revived

    def purge(
        self,
        *,
        older_than: float | timedelta = DEFAULT_RETENTION,
        batch_size: int = 1000,
        progress: Callable[[int], object] | None = None,
    ) -> int:
        """Delete final deliveries (and their attempt logs) last changed before ``older_than``.

        Pending and in-flight deliveries are never purged. Run it daily, say, so the outbox
        does not grow forever. It works in batches of ``batch_size``, one store transaction
        each, so emits and workers get the database between two batches: a purge of a
        million deliveries never holds the outbox up for longer than one batch takes. It also
        removes unconfirmed hooks past their ``confirm_by`` (:meth:`expire_unconfirmed`).

        Args:
            older_than: An age, in seconds or as a timedelta. Default
                :data:`~resthooks.DEFAULT_RETENTION` (30 days).
            batch_size: Deliveries deleted per transaction (1 to 100,000). Default 1,000.
            progress: Called after each batch with how many were deleted so far.

                .. versionadded:: 0.2.0

        Returns:
            How many deliveries were deleted.

        Raises:
            ValidationError: If ``older_than`` is negative or not a number.

        Example:
            >>> from resthooks import Dispatcher
            >>> from resthooks.stores import MemoryStore
            >>> from resthooks.testing import FakeClock, RecordingTransport
            >>> clock = FakeClock()
            >>> dispatcher = Dispatcher(MemoryStore(), clock=clock, transport=RecordingTransport())
            >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
            >>> _ = dispatcher.emit("party/created", {"id": 1}, owner="acme")
            >>> _ = dispatcher.deliver_due()
            >>> clock.advance(timedelta(days=31))
            >>> dispatcher.purge()
            1
        """
        before = _validation.purge_before(older_than, self.clock.now())
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or not 1 <= batch_size <= _MAX_PURGE_BATCH
        ):
            raise ValidationError("batch_size", f"must be an int from 1 to {_MAX_PURGE_BATCH}")
        if progress is not None and not callable(progress):
            raise ValidationError("progress", "must be callable")
        self.expire_unconfirmed()
        total = 0
        while True:
            # A store deletes at most ``limit`` and, on the last (short) batch, gives the
            # space back (SQLite: checkpoint and truncate the WAL, incremental vacuum).
            count = self.store.purge(before=before, limit=batch_size)
            total += count
            if progress is not None and count:
                progress(total)
            if count < batch_size:
                return total

    def __repr__(self) -> str:
        return f"<Dispatcher store={self.store!r} transport={self.transport!r}>"


def _check_request_size(request: Request, max_body: int) -> None:
    """Refuse to send a body or headers larger than configured (a store may hold old rows)."""
    if len(request.body) > max_body:
        raise TransportError(
            "too_large", f"the body is {len(request.body)} bytes, more than {max_body}"
        )
    headers = request.headers
    header_bytes = sum(map(len, headers)) + sum(map(len, headers.values())) + 4 * len(headers)
    if header_bytes > MAX_REQUEST_HEADER_BYTES:
        raise TransportError(
            "too_large",
            f"the headers are {header_bytes} bytes, more than {MAX_REQUEST_HEADER_BYTES}",
        )


def _confirm_window(value: object) -> timedelta:
    if isinstance(value, timedelta):
        window = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigurationError("confirm_within must be a finite number of seconds")
        window = timedelta(seconds=value)
    else:
        raise ConfigurationError("confirm_within must be seconds or a timedelta")
    if window <= timedelta(0):
        raise ConfigurationError("confirm_within must be > 0")
    return window


def _live_secrets(hook: Hook, now: datetime) -> list[str]:
    found = [hook.secret] if hook.secret else []
    if (
        hook.previous_secret
        and hook.previous_secret_until is not None
        and now < hook.previous_secret_until
    ):
        found.append(hook.previous_secret)
    return found


def _hook_state(state: HookState | str | None) -> HookState | None:
    if state is None or isinstance(state, HookState):
        return state
    try:
        return HookState(state)
    except ValueError:
        raise ValidationError(
            "state", f"must be one of {', '.join(s.value for s in HookState)}"
        ) from None


def _delivery_state(state: DeliveryState | str | None) -> DeliveryState | None:
    if state is None or isinstance(state, DeliveryState):
        return state
    try:
        return DeliveryState(state)
    except ValueError:
        raise ValidationError(
            "state", f"must be one of {', '.join(s.value for s in DeliveryState)}"
        ) from None


def _limits(given: Limits | None, **old: object) -> Limits:
    """The Dispatcher's :class:`Limits`: ``limits`` as given, or built from the old
    ``max_*`` options (checked by ``Limits`` itself, the error naming the option given)."""
    if given is not None and not isinstance(given, Limits):
        raise ConfigurationError(f"limits must be a Limits, not {type(given).__name__}")
    named = {field: value for field, value in old.items() if value is not _UNSET}
    if not named:
        return given if given is not None else Limits()
    if given is not None:
        raise ConfigurationError(
            f"give limits=Limits(...) or the max_* options ({', '.join(sorted(named))}), not both"
        )
    try:
        return Limits(**named)  # type: ignore[arg-type] # Limits checks every value
    except ConfigurationError as exc:
        message = str(exc)
        for field in named:
            if message.startswith(field + " "):
                message = "max_" + message
        raise ConfigurationError(message) from None
