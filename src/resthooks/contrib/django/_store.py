"""The Dispatcher of the Django project, built once from ``RESTHOOKS``, and ``emit``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from ... import _validation
from ...dispatcher import Dispatcher
from ...errors import ConfigurationError, ValidationError
from ...model import Delivery
from ...network import NetworkPolicy
from ...retry import RetryPolicy
from ...stores import MemoryStore, Store
from ...transports import Timeouts, Urllib3Transport
from . import conf

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

__all__ = ["emit", "get_dispatcher", "reset_dispatcher", "shared_alias"]


def dispatcher_options(settings: conf.ResthooksSettings) -> dict[str, Any]:
    """The Dispatcher's keyword arguments from the settings (everything but the store).

    Raises:
        ConfigurationError: If the Dispatcher refuses them together (a lease shorter than the
            attempt deadline, say).
    """
    options: dict[str, Any] = dict(settings.limits)
    if settings.catalogue is not None:
        options["events"] = settings.catalogue
    elif settings.events is not None:
        options["events"] = conf._catalogue(settings.events)
    options["validate_payloads"] = settings.validate_payloads
    if settings.retry is not None:
        options["retry"] = RetryPolicy(delays=settings.retry)
    if settings.timeouts is not None:
        options["timeouts"] = Timeouts(connect=settings.timeouts[0], total=settings.timeouts[1])
    options["lease"] = settings.lease
    policy = NetworkPolicy(allow_networks=list(settings.allow_networks))
    options["network_policy"] = policy
    options["sign_deliveries"] = settings.sign_deliveries
    # The Dispatcher checks the combination; a throwaway one costs nothing and opens nothing.
    probe = Dispatcher(MemoryStore(), transport=_NoTransport(), **options)
    del probe
    if settings.proxy is not None:
        # The async worker (manage.py resthooks worker --concurrency) takes the same proxy
        # from this transport.
        options["transport"] = Urllib3Transport(policy=policy, proxy=settings.proxy)
    return options


class _NoTransport:
    def send(self, request: object) -> Any:  # pragma: no cover - never called
        raise ConfigurationError("a settings probe does not send")

    def close(self) -> None:
        pass


def open_store(settings: conf.ResthooksSettings) -> tuple[Store, str | None]:
    """The store the settings name, and the Django database alias it lives in (or None)."""
    if settings.store is not None:
        store = settings.store()
        return store, None
    alias = settings.database or DEFAULT_DB_ALIAS
    wrapper = connections[alias]
    if wrapper.vendor == "postgresql":
        if not _is_psycopg3(wrapper):
            raise ImproperlyConfigured(
                "RESTHOOKS['DATABASE']: the store shares a PostgreSQL database through "
                "psycopg 3; this project's backend uses psycopg2 (set STORE instead)"
            )
        from ...stores.postgres import PostgresStore  # noqa: PLC0415 - the postgres extra

        # The store works on Django's own connection of the calling thread: inside an
        # atomic() block (a TestCase's too) it writes in that transaction.
        return PostgresStore(partial(raw_connection, alias), schema=settings.schema), alias
    if wrapper.vendor == "sqlite":
        from ...stores import SQLiteStore  # noqa: PLC0415

        # resthooks_* tables beside the project's, on Django's connection of each thread.
        return SQLiteStore(partial(raw_connection, alias)), alias
    raise ImproperlyConfigured(
        f"RESTHOOKS['DATABASE']: {alias!r} is a {wrapper.vendor} database; the store can live "
        "in a SQLite or PostgreSQL database only (set STORE to a callable returning a Store)"
    )


def _is_psycopg3(wrapper: BaseDatabaseWrapper) -> bool:
    try:
        from django.db.backends.postgresql.psycopg_any import is_psycopg3  # noqa: PLC0415
    except ImportError:  # pragma: no cover - Django < 4.2
        return False
    return bool(is_psycopg3)


@attrs.define
class _State:
    dispatcher: Dispatcher
    alias: str | None  # the Django database the store lives in, if any
    name: object  # that database's NAME when the store was opened (the test runner swaps it)


_lock = threading.Lock()
_state: _State | None = None
#: Called with every Dispatcher the settings build, before it is used (test modes use it).
_configure: list[Callable[[Dispatcher], object]] = []


def _current() -> _State:
    global _state  # noqa: PLW0603 - the one Dispatcher of the process, built on first use
    state = _state
    if state is not None and (
        state.alias is None or connections[state.alias].settings_dict["NAME"] == state.name
    ):
        return state
    with _lock:
        if _state is not None and _state is state:
            _close(_state)
            _state = None
        if _state is None:
            settings = conf.load()
            try:
                options = dispatcher_options(settings)
            except ConfigurationError as exc:  # pragma: no cover - the settings check saw it
                raise ImproperlyConfigured(f"RESTHOOKS: {exc}") from None
            store, alias = open_store(settings)
            dispatcher = Dispatcher(store, **options)
            for configure in _configure:
                configure(dispatcher)
            name = connections[alias].settings_dict["NAME"] if alias is not None else None
            _state = _State(dispatcher, alias, name)
        return _state


def _close(state: _State) -> None:
    state.dispatcher.transport.close()
    state.dispatcher.store.close()


def get_dispatcher() -> Dispatcher:
    """The project's :class:`~resthooks.Dispatcher`, built from ``settings.RESTHOOKS`` on
    first use and kept for the life of the process.

    Raises:
        django.core.exceptions.ImproperlyConfigured: If the settings are wrong.

    .. versionadded:: 0.2.0
    """
    return _current().dispatcher


def shared_alias() -> str | None:
    """The Django database the store lives in (``None`` when ``STORE`` puts it elsewhere)."""
    return _current().alias


def reset_dispatcher() -> None:
    """Close the project's Dispatcher; the next :func:`get_dispatcher` builds a new one.

    Called when ``RESTHOOKS`` or ``DATABASES`` change (``override_settings``).

    .. versionadded:: 0.2.0
    """
    global _state  # noqa: PLW0603
    with _lock:
        if _state is not None:
            _close(_state)
            _state = None


def raw_connection(alias: str) -> Any:
    """The DB-API connection under Django's connection ``alias`` (connecting if needed)."""
    wrapper = connections[alias]
    wrapper.ensure_connection()
    return wrapper.connection


def emit(
    event: str,
    payload: object,
    *,
    owner: str,
    using: str | None = None,
    ordering_key: str | None = None,
) -> Sequence[Delivery]:
    """Emit ``event`` to ``owner``'s hooks, as part of the current transaction.

    - The store lives in Django's database (``RESTHOOKS["DATABASE"]``) and an ``atomic()``
      block is open on it: the deliveries are written through Django's own connection, inside
      that transaction. They exist, and are sent, only if it commits.
    - The store is elsewhere (``RESTHOOKS["STORE"]``) and an ``atomic()`` block is open on
      ``using`` (default: the ``default`` database): the arguments are checked now, and the
      emit happens in ``transaction.on_commit``. Nothing is emitted if the block rolls back.
    - No transaction open (autocommit): the emit happens now.

    Args:
        event: An event of the catalogue.
        payload: One entity or a list of them (JSON-serialisable, or attrs instances).
        owner: Whose hooks receive it.
        using: The database whose transaction the emit joins. Default: the store's database,
            else ``default``.
        ordering_key: As for :meth:`Dispatcher.emit <resthooks.Dispatcher.emit>`: deliveries
            to one hook with the same key are sent one at a time, in emit (commit) order.

    Returns:
        The deliveries created now (empty when they wait for the commit).

    Raises:
        ValidationError: For an unknown event, a bad owner or ordering key, or an unknown
            ``using`` (nothing is stored).
        PayloadError: If the payload cannot be encoded or is too large.

    .. versionadded:: 0.2.0
    """
    if using is not None and (not isinstance(using, str) or using not in connections):
        raise ValidationError("using", f"must be an alias of settings.DATABASES, not {using!r}")
    key = _validation.ordering_key(ordering_key)
    state = _current()
    dispatcher = state.dispatcher
    if state.alias is not None and (using is None or using == state.alias):
        wrapper = connections[state.alias]
        if not wrapper.in_atomic_block:
            return dispatcher.emit(event, payload, owner=owner, ordering_key=key)
        created = dispatcher.emit(
            event,
            payload,
            owner=owner,
            connection=raw_connection(state.alias),
            ordering_key=key,
        )
        if created:
            transaction.on_commit(lambda: dispatcher.committed(created), using=state.alias)
        return created
    alias = using or DEFAULT_DB_ALIAS
    if not connections[alias].in_atomic_block:
        return dispatcher.emit(event, payload, owner=owner, ordering_key=key)
    # Checked now, and frozen as it is now: the caller may change its objects before commit.
    snapshot = json.loads(dispatcher.validate_emit(event, payload, owner=owner))["payload"]
    transaction.on_commit(
        lambda: dispatcher.emit(event, snapshot, owner=owner, ordering_key=key), using=alias
    )
    return []


def create_tables(alias: str) -> None:
    """Create or migrate the store's tables if the store lives in database ``alias``.

    What the app's migration runs (``manage.py migrate``, and the test runner's test
    databases); the stores bring their own tables up to date, by their own versions.
    """
    settings = conf.load()
    if settings.store is not None or (settings.database or DEFAULT_DB_ALIAS) != alias:
        return
    store, _ = open_store(settings)
    store.close()
