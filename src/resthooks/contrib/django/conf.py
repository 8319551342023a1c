"""The ``RESTHOOKS`` setting: read once, checked by Django's system checks.

Every key is optional::

    RESTHOOKS = {
        "DATABASE": "default",      # the store lives in this Django database ...
        "STORE": None,              # ... or: "app.hooks.make_store", a callable -> Store
        "SCHEMA": "resthooks",      # PostgreSQL: the schema of the store's tables
        "EVENTS": None,             # ["party/created", ...], or "app.hooks.EVENTS" (an
                                    # EventCatalogue, with schemas); default: Capsule's 19
        "VALIDATE_PAYLOADS": False, # check each emit against its event's JSON Schema
        "RETRY": None,              # [5, 60, 300, 900, 900] seconds; default: Capsule's
        "TIMEOUTS": None,           # {"CONNECT": 5, "TOTAL": 15} seconds
        "LEASE": 60,                # seconds a worker's claim lasts
        "LIMITS": {},               # {"MAX_HOOKS_PER_OWNER": 20, "MAX_PAYLOAD_BYTES": ...}
        "ALLOW_NETWORKS": [],       # ["10.0.0.0/8"]: targets allowed despite the policy
        "PROXY": None,              # "http://[user:pw@]egress.internal:4750": send through it
        "SIGN_DELIVERIES": True,    # a whsec_ secret per hook, Standard Webhooks signatures
        "OWNER_RESOLVER": None,     # "app.hooks.owner_of": request -> owner (or None: 401)
        "MODEL_EVENTS": {},         # {"party/created": "crm.Party.created", ...}
        "MODEL_OWNER": None,        # "app.hooks.owner_of_instance": instance -> owner
        "SERIALIZER": None,         # "app.hooks.serialize": (instance, event) -> payload
        "WORKER": {},               # {"WORKERS": 4, "POLL_INTERVAL": 5.0}
    }
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from django.utils.module_loading import import_string

from ...errors import ConfigurationError, ResthooksError

__all__ = ["ResthooksSettings", "SettingsProblem", "forget", "load", "problems"]

_KEYS = frozenset(
    {
        "DATABASE",
        "STORE",
        "SCHEMA",
        "EVENTS",
        "RETRY",
        "TIMEOUTS",
        "LEASE",
        "LIMITS",
        "ALLOW_NETWORKS",
        "SIGN_DELIVERIES",
        "OWNER_RESOLVER",
        "MODEL_EVENTS",
        "MODEL_OWNER",
        "SERIALIZER",
        "WORKER",
        "VALIDATE_PAYLOADS",
        "PROXY",
    }
)
#: ``LIMITS`` keys and the Dispatcher option each sets.
LIMIT_KEYS = {
    "MAX_HOOKS_PER_OWNER": "max_hooks_per_owner",
    "MAX_DESCRIPTION_LENGTH": "max_description_length",
    "MAX_PAYLOAD_BYTES": "max_payload_bytes",
    "MAX_RESPONSE_BYTES": "max_response_bytes",
    "MAX_IN_FLIGHT_PER_HOST": "max_in_flight_per_host",
}
_ACTIONS = ("created", "updated", "deleted")


@attrs.frozen
class SettingsProblem:
    """One thing wrong with ``RESTHOOKS``: a system check error ``resthooks.E<id>``."""

    id: int
    key: str
    message: str


class _Problems(Exception):
    def __init__(self, found: list[SettingsProblem]) -> None:
        super().__init__("; ".join(f"RESTHOOKS[{p.key!r}]: {p.message}" for p in found))
        self.found = found


@attrs.frozen(kw_only=True)
class ResthooksSettings:
    """``RESTHOOKS``, checked and with defaults filled in (keys in lower case)."""

    database: str | None
    store: Callable[[], Any] | None
    schema: str
    events: tuple[str, ...] | None
    catalogue: Any | None  # an EventCatalogue named by EVENTS (a dotted path), else None
    validate_payloads: bool
    proxy: str | None
    retry: tuple[float, ...] | None
    timeouts: tuple[float, float] | None
    lease: float
    limits: Mapping[str, int | None]
    allow_networks: tuple[str, ...]
    sign_deliveries: bool
    owner_resolver: Callable[[Any], object] | None
    model_events: Mapping[str, tuple[str, str]]  # event -> (model label, action)
    model_owner: Callable[[Any], object] | None
    serializer: Callable[[Any, str], object] | None
    workers: int
    poll_interval: float


def _seconds(value: object, *, positive: bool = False) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        return None
    return float(value)


def _django_settings() -> Any:
    # Not bound at import: Django's lazy settings object raises on any attribute before
    # the project is configured (doctest collection looks for __wrapped__, say).
    from django.conf import settings  # noqa: PLC0415

    return settings


def _callable(raw: Mapping[str, Any], key: str, found: list[SettingsProblem]) -> Any:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportError as exc:
            found.append(SettingsProblem(4, key, f"cannot import {raw[key]!r}: {exc}"))
            return None
    if not callable(value):
        found.append(SettingsProblem(4, key, "must be a callable or its dotted path"))
        return None
    return value


def _parse(raw: object) -> ResthooksSettings:  # noqa: PLR0915 - one flat pass, key by key
    found: list[SettingsProblem] = []
    if not isinstance(raw, Mapping):
        raise _Problems([SettingsProblem(1, "RESTHOOKS", "must be a dict")])
    unknown = sorted(str(k) for k in raw if k not in _KEYS)
    if unknown:
        found.append(
            SettingsProblem(1, unknown[0], f"unknown key(s) {', '.join(map(repr, unknown))}")
        )

    store = _callable(raw, "STORE", found)
    database = raw.get("DATABASE", None if store is not None else "default")
    if store is not None and "DATABASE" in raw:
        found.append(SettingsProblem(2, "STORE", "give DATABASE or STORE, not both"))
    if database is not None and (
        not isinstance(database, str) or database not in _django_settings().DATABASES
    ):
        found.append(
            SettingsProblem(2, "DATABASE", f"{database!r} is not an alias of settings.DATABASES")
        )
        database = None

    schema = raw.get("SCHEMA", "resthooks")
    if not isinstance(schema, str) or not schema or "\x00" in schema or len(schema) > 63:
        found.append(SettingsProblem(3, "SCHEMA", "must be a PostgreSQL identifier (1-63 chars)"))

    events = raw.get("EVENTS")
    catalogue = None
    if isinstance(events, str) or _is_catalogue(events):
        catalogue = _named_catalogue(events, found)
        events = tuple(catalogue) if catalogue is not None else None
    elif events is not None:
        if not isinstance(events, (list, tuple)) or not all(
            isinstance(e, str) and e.count("/") == 1 for e in events
        ):
            found.append(SettingsProblem(5, "EVENTS", 'must be a list of "entity/action" names'))
            events = None
        else:
            events = tuple(events)
            try:
                _catalogue(events)
            except ResthooksError as exc:
                found.append(SettingsProblem(5, "EVENTS", str(exc)))

    retry = raw.get("RETRY")
    if retry is not None:
        delays = [_seconds(d) for d in retry] if not isinstance(retry, (str, bytes)) else [None]
        if not delays or None in delays:
            found.append(SettingsProblem(6, "RETRY", "must be a list of seconds >= 0"))
            retry = None
        else:
            retry = tuple(d for d in delays if d is not None)

    timeouts = raw.get("TIMEOUTS")
    if timeouts is not None:
        connect = _seconds(getattr(timeouts, "get", lambda _k: None)("CONNECT"), positive=True)
        total = _seconds(getattr(timeouts, "get", lambda _k: None)("TOTAL"), positive=True)
        if connect is None or total is None:
            found.append(
                SettingsProblem(7, "TIMEOUTS", 'must be {"CONNECT": seconds, "TOTAL": seconds}')
            )
            timeouts = None
        else:
            timeouts = (connect, total)

    lease = _seconds(raw.get("LEASE", 60.0), positive=True)
    if lease is None:
        found.append(SettingsProblem(7, "LEASE", "must be a number of seconds > 0"))
        lease = 60.0

    limits_raw = raw.get("LIMITS", {})
    limits: dict[str, int | None] = {}
    if not isinstance(limits_raw, Mapping):
        found.append(SettingsProblem(8, "LIMITS", "must be a dict"))
    else:
        for key, value in limits_raw.items():
            if key not in LIMIT_KEYS:
                found.append(SettingsProblem(8, "LIMITS", f"unknown limit {key!r}"))
            elif value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                found.append(SettingsProblem(8, "LIMITS", f"{key} must be an int or None"))
            else:
                limits[LIMIT_KEYS[key]] = value

    allow = raw.get("ALLOW_NETWORKS", ())
    if isinstance(allow, str) or not all(isinstance(n, str) for n in allow):
        found.append(SettingsProblem(9, "ALLOW_NETWORKS", "must be a list of CIDR strings"))
        allow = ()
    else:
        try:
            _policy(tuple(allow))
        except ResthooksError as exc:
            found.append(SettingsProblem(9, "ALLOW_NETWORKS", str(exc)))
            allow = ()

    sign = raw.get("SIGN_DELIVERIES", True)
    if not isinstance(sign, bool):
        found.append(SettingsProblem(10, "SIGN_DELIVERIES", "must be True or False"))
        sign = True

    validate = raw.get("VALIDATE_PAYLOADS", False)
    if not isinstance(validate, bool):
        found.append(SettingsProblem(17, "VALIDATE_PAYLOADS", "must be True or False"))
        validate = False
    elif validate and (catalogue is None or not catalogue.has_schemas):
        found.append(
            SettingsProblem(
                17,
                "VALIDATE_PAYLOADS",
                "needs EVENTS to name an EventCatalogue with schemas (a dotted path)",
            )
        )
        validate = False

    proxy = raw.get("PROXY")
    if proxy is not None:
        try:
            from ...transports import Proxy  # noqa: PLC0415 - keeps this module's imports light
            from ...transports._proxy import parse_proxy  # noqa: PLC0415

            parse_proxy(proxy if isinstance(proxy, (str, Proxy)) else object())
        except ConfigurationError as exc:
            found.append(SettingsProblem(18, "PROXY", str(exc)))
            proxy = None

    model_events: dict[str, tuple[str, str]] = {}
    raw_events = raw.get("MODEL_EVENTS", {})
    if not isinstance(raw_events, Mapping):
        found.append(SettingsProblem(11, "MODEL_EVENTS", "must be a dict"))
    else:
        for event, spec in raw_events.items():
            label, _, action = spec.rpartition(".") if isinstance(spec, str) else ("", "", "")
            if not label or label.count(".") != 1 or not action:
                found.append(
                    SettingsProblem(
                        11,
                        "MODEL_EVENTS",
                        f'{event!r}: must name "app_label.Model.action", like "crm.Party.created"',
                    )
                )
                continue
            model_events[str(event)] = (label, action)
        if events is not None or model_events:
            known = set(events) if events is not None else None
            for event in model_events:
                if known is not None and event not in known:
                    found.append(SettingsProblem(11, "MODEL_EVENTS", f"{event!r} is not in EVENTS"))
    model_owner = _callable(raw, "MODEL_OWNER", found)
    if model_events and model_owner is None and "MODEL_OWNER" not in raw:
        found.append(
            SettingsProblem(
                12, "MODEL_OWNER", "MODEL_EVENTS needs MODEL_OWNER: whose hooks get an instance"
            )
        )

    worker = raw.get("WORKER", {})
    workers, poll = 4, 5.0
    if not isinstance(worker, Mapping):
        found.append(SettingsProblem(13, "WORKER", "must be a dict"))
    else:
        workers = worker.get("WORKERS", 4)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            found.append(SettingsProblem(13, "WORKER", "WORKERS must be an int >= 1"))
            workers = 4
        polled = _seconds(worker.get("POLL_INTERVAL", 5.0), positive=True)
        if polled is None:
            found.append(SettingsProblem(13, "WORKER", "POLL_INTERVAL must be seconds > 0"))
        else:
            poll = polled

    settings = ResthooksSettings(
        database=database,
        store=store,
        schema=schema if isinstance(schema, str) else "resthooks",
        events=events,
        catalogue=catalogue,
        validate_payloads=validate,
        proxy=proxy,
        retry=retry,
        timeouts=timeouts,
        lease=lease,
        limits=limits,
        allow_networks=tuple(allow),
        sign_deliveries=sign,
        owner_resolver=_callable(raw, "OWNER_RESOLVER", found),
        model_events=model_events,
        model_owner=model_owner,
        serializer=_callable(raw, "SERIALIZER", found),
        workers=workers,
        poll_interval=poll,
    )
    if not found:
        try:
            from ._store import dispatcher_options  # noqa: PLC0415 - needs the settings

            dispatcher_options(settings)
        except ConfigurationError as exc:
            found.append(SettingsProblem(14, "RESTHOOKS", str(exc)))
    if found:
        raise _Problems(found)
    return settings


def _is_catalogue(value: object) -> bool:
    from ...events import EventCatalogue  # noqa: PLC0415 - keeps this module's imports light

    return isinstance(value, EventCatalogue)


def _named_catalogue(value: object, found: list[SettingsProblem]) -> Any:
    """EVENTS as an EventCatalogue, or its dotted path (the way to give schemas)."""
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportError as exc:
            found.append(SettingsProblem(5, "EVENTS", f"cannot import {value!r}: {exc}"))
            return None
        except ResthooksError as exc:  # the module built a bad catalogue
            found.append(SettingsProblem(5, "EVENTS", str(exc)))
            return None
    if not _is_catalogue(value):
        found.append(
            SettingsProblem(
                5,
                "EVENTS",
                'must be a list of "entity/action" names, or an EventCatalogue or its dotted path',
            )
        )
        return None
    return value


def _catalogue(events: tuple[str, ...]) -> Any:
    from ...events import EventCatalogue  # noqa: PLC0415 - keeps this module's imports light

    entities: dict[str, list[str]] = {}
    for event in events:
        entity, _, action = event.partition("/")
        entities.setdefault(entity, []).append(action)
    return EventCatalogue(entities)


def _policy(allow: tuple[str, ...]) -> Any:
    from ...network import NetworkPolicy  # noqa: PLC0415

    return NetworkPolicy(allow_networks=list(allow))


def problems() -> list[SettingsProblem]:
    """What is wrong with ``settings.RESTHOOKS`` (empty when nothing is)."""
    try:
        _parse(getattr(_django_settings(), "RESTHOOKS", {}))
    except _Problems as exc:
        return exc.found
    return []


_loaded: list[ResthooksSettings] = []


def load() -> ResthooksSettings:
    """``settings.RESTHOOKS``, checked (read once; :func:`forget` reads it again).

    Raises:
        django.core.exceptions.ImproperlyConfigured: Naming every key at fault.
    """
    from django.core.exceptions import ImproperlyConfigured  # noqa: PLC0415

    if _loaded:
        return _loaded[0]
    try:
        settings = _parse(getattr(_django_settings(), "RESTHOOKS", {}))
    except _Problems as exc:
        raise ImproperlyConfigured(str(exc)) from None
    _loaded[:] = [settings]
    return settings


def forget() -> None:
    """Read ``settings.RESTHOOKS`` again on next use (it changed)."""
    _loaded.clear()
