"""The ``resthooks`` command: a demo, a worker, and the inspection of one store.

Every command works on one store: the host application's own Dispatcher (``--app
module:attribute``, default ``$RESTHOOKS_APP``: a Dispatcher or a factory returning one, with
the app's events, retry policy, timeouts, limits and network policy), a PostgreSQL database
(``--dsn``, default ``$RESTHOOKS_DSN``) or a SQLite file (``--db``, default ``$RESTHOOKS_DB``,
else ``./resthooks.db``). It prints either text for a human or, with ``--json``, one JSON
document built from the same data. Bad input (an unknown event, an invalid URL, a malformed
payload, an unknown id, a file that is not a resthooks database, an ``--app`` that names no
Dispatcher) prints one line on stderr and exits with status 2, having written nothing.

The command line is an operator's tool: it sees every owner's hooks and deliveries. Commands
that create something (``hooks add``, ``emit``) act for ``--owner``, default
:data:`DEFAULT_OWNER`. Commands that take an id look the object up in the store and then act
through the :class:`~resthooks.Dispatcher` on behalf of the object's own owner, so every rule
of the Dispatcher still applies. See the "Command line" page of the documentation.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import attrs

from . import _app, _live, _validation, health
from ._app import AppDispatcher
from ._report import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from ._report import Result as _Result
from ._report import table as _table
from .batching import Batching
from .dispatcher import Dispatcher
from .encoding import isoformat_z
from .errors import (
    AppError,
    ConfigurationError,
    DeliveryNotFound,
    HookNotFound,
    InvalidStateError,
    NotFound,
    ResthooksError,
    SchemaError,
    StoreError,
    ValidationError,
)
from .events import CAPSULE_EVENTS
from .lifecycle import AttemptFinished
from .model import Attempt, Delivery, DeliveryState, Hook, HookState
from .network import NetworkPolicy
from .observability import OutboxMonitor, read_outbox
from .outcomes import DeliverySummary
from .stores import SQLiteStore, Store
from .transports import Urllib3Transport
from .urls import mask_url, validate_target_url

if TYPE_CHECKING:
    from .aio import AsyncWorker
    from .worker import Worker

__all__ = ["APP_ENV", "DB_ENV", "DEFAULT_DB", "DEFAULT_OWNER", "DSN_ENV", "main"]

DEFAULT_OWNER = "default"
"""The owner ``hooks add`` and ``emit`` act for when ``--owner`` is not given."""
DB_ENV = "RESTHOOKS_DB"
"""The environment variable naming the database when ``--db`` is not given."""
APP_ENV = "RESTHOOKS_APP"
"""The environment variable naming the app (``module:attribute``) when ``--app`` is not given.

.. versionadded:: 0.2.0
"""
DSN_ENV = "RESTHOOKS_DSN"
"""The environment variable naming a PostgreSQL database when ``--dsn`` is not given.

.. versionadded:: 0.2.0
"""
DEFAULT_DB = "resthooks.db"
"""The database used when neither ``--db`` nor ``$RESTHOOKS_DB`` is given."""

_EXIT_OK = EXIT_OK
_EXIT_FAILED = EXIT_FAILED
_EXIT_BAD_INPUT = EXIT_BAD_INPUT

_Data = dict[str, Any]


class _BadInput(Exception):
    """Refused input, reported as one line on stderr with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other bad input."""

    def error(self, message: str) -> NoReturn:
        raise _BadInput(f"{message} (see '{self.prog} --help')")


# -- what a command returns: the data, and how a human reads it ---------------------------------


def _when(value: datetime | None) -> str | None:
    return None if value is None else isoformat_z(value)


def _short(value: str | None) -> str:
    """A timestamp as humans read it in a _table: to the second, UTC."""
    if not value:
        return "-"
    return value[:19].replace("T", " ") + "Z"


def _hook_data(hook: Hook) -> _Data:
    """A hook as the command line shows it: never its secret, its URL masked."""
    return {
        "id": hook.id,
        "owner": hook.owner,
        "event": hook.event,
        "target_url": mask_url(hook.target_url),
        "description": hook.description,
        "state": hook.state.value,
        "created_at": _when(hook.created_at),
        "updated_at": _when(hook.updated_at),
        "dead_at": _when(hook.dead_at),
        "dead_reason": hook.dead_reason,
        "batching": None if hook.batching is None else attrs.asdict(hook.batching),
    }


def _delivery_data(delivery: Delivery) -> _Data:
    """A delivery as the command line shows it."""
    return {
        "id": delivery.id,
        "hook_id": delivery.hook_id,
        "owner": delivery.owner,
        "event": delivery.event,
        "state": delivery.state.value,
        "attempts": delivery.attempts,
        "next_attempt_at": _when(delivery.next_attempt_at),
        "created_at": _when(delivery.created_at),
        "updated_at": _when(delivery.updated_at),
        "last_error": delivery.last_error,
    }


def _attempt_data(attempt: Attempt) -> _Data:
    """One entry of the attempt log."""
    return {
        "number": attempt.number,
        "started_at": _when(attempt.started_at),
        "duration": round(attempt.duration, 6),
        "status": attempt.status,
        "error_kind": attempt.error_kind,
        "error": attempt.error,
        "response_excerpt": attempt.response_excerpt,
    }


def _outcome_text(attempt: _Data) -> str:
    if attempt["status"] is not None:
        return f"HTTP {attempt['status']}"
    return f"{attempt['error_kind']}: {attempt['error']}"


def _render_fields(data: _Data, keys: Sequence[str]) -> str:
    width = max(len(k) for k in keys)

    def shown(key: str) -> object:
        value = data.get(key)
        if value is None or value == "":
            return "-"
        if isinstance(value, dict):  # a hook's batching
            return " ".join(f"{k}={v:g}" for k, v in value.items())
        return _short(value) if key.endswith("_at") else value

    return "\n".join(f"{k.ljust(width)}  {shown(k)}" for k in keys)


_HOOK_FIELDS = (
    "id",
    "owner",
    "event",
    "target_url",
    "description",
    "state",
    "created_at",
    "updated_at",
    "dead_at",
    "dead_reason",
    "batching",
)
_DELIVERY_FIELDS = (
    "id",
    "hook_id",
    "owner",
    "event",
    "state",
    "attempts",
    "next_attempt_at",
    "created_at",
    "updated_at",
    "last_error",
)


def _render_hooks(hooks: list[_Data]) -> str:
    if not hooks:
        return "no hooks"
    return _table(
        ["id", "owner", "event", "state", "target_url", "description"],
        [
            [h["id"], h["owner"], h["event"], h["state"], h["target_url"], h["description"]]
            for h in hooks
        ],
    )


def _render_hook(hook: _Data) -> str:
    text = _render_fields(hook, _HOOK_FIELDS)
    if hook.get("created") is False:
        text += "\n(this owner was already subscribed to this event and URL: the existing hook)"
    if hook.get("secret"):
        text += (
            f"\n{'secret'.ljust(len('description'))}  {hook['secret']}"
            "\n(the signing secret is shown this once: give it to the receiver)"
        )
    return text


def _render_deliveries(deliveries: list[_Data]) -> str:
    if not deliveries:
        return "no deliveries"
    return _table(
        ["id", "hook_id", "owner", "event", "state", "attempts", "created_at", "last_error"],
        [
            [
                d["id"],
                d["hook_id"],
                d["owner"],
                d["event"],
                d["state"],
                d["attempts"],
                _short(d["created_at"]),
                d["last_error"],
            ]
            for d in deliveries
        ],
    )


def _render_delivery(delivery: _Data) -> str:
    text = _render_fields(delivery, _DELIVERY_FIELDS)
    log = delivery["attempt_log"]
    if not log:
        return text + "\n\nno attempts yet"
    rows = [
        [
            a["number"],
            _short(a["started_at"]),
            _outcome_text(a),
            f"{a['duration'] * 1000:.0f} ms",
            _excerpt(a["response_excerpt"]),
        ]
        for a in log
    ]
    return (
        text + "\n\n" + _table(["attempt", "started_at", "outcome", "duration", "response"], rows)
    )


def _excerpt(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    if not flat:
        return "-"
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# -- input -----------------------------------------------------------------------------------


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _parse_age(text: str, field: str = "older_than") -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s`` or ``2w`` as a timedelta.

    Example:
        >>> _parse_age("30d")
        datetime.timedelta(days=30)
        >>> _parse_age("soon")
        Traceback (most recent call last):
        ...
        resthooks.errors.ValidationError: older_than: must be a number and a unit ...
    """
    match = _DURATION.match(text)
    if not match:
        raise ValidationError(
            field,
            f"must be a number and a unit (s, m, h, d or w), like 30d; got {text!r}",
        )
    try:
        return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    except (OverflowError, ValueError):  # more days than a timedelta holds, or digits
        raise ValidationError(field, f"is longer than the calendar; got {text!r}") from None


def _read_payload(spec: str, stdin: TextIO) -> object:
    """The payload of ``emit``: JSON text, ``@file.json``, or ``-`` for standard input."""
    if spec == "-":
        text = stdin.read()
        source = "standard input"
    elif spec.startswith("@"):
        path = Path(spec[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ValidationError("payload", f"cannot read {str(path)!r}: {reason}") from None
        source = repr(str(path))
    else:
        text = spec
        source = "--payload"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            "payload",
            f"{source} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
        ) from None
    except (ValueError, RecursionError) as exc:  # an integer of 4,300+ digits; deep nesting
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ValidationError("payload", f"{source} cannot be read: {reason}") from None


# -- the store and the engine ------------------------------------------------------------------


class _Context:
    """What every command gets: its arguments, and the store opened once on demand.

    The store comes from one source (:func:`_choose_source`): the host's own Dispatcher
    (``--app``, ``$RESTHOOKS_APP``, or ``main(app=...)``), a PostgreSQL database (``--dsn``,
    ``$RESTHOOKS_DSN``) or a SQLite file (``--db``, ``$RESTHOOKS_DB``, ``./resthooks.db``).
    """

    def __init__(
        self,
        args: argparse.Namespace,
        stdin: TextIO,
        stdout: TextIO,
        app: Callable[[], AppDispatcher] | None = None,
        *,
        source: _Source | None = None,
    ) -> None:
        self.args = args
        self.stdin = stdin
        self.stdout = stdout
        self.source = source if source is not None else _Source("db", DEFAULT_DB)
        # With an app, every command works on the host's own Dispatcher (its store, events,
        # retry policy, network policy...). A host that runs the command line itself
        # (manage.py, flask) opened it and closes it; one the command line loaded (--app) is
        # this process's, and closed with it.
        self._owns_app = app is None and self.source.kind == "app"
        if app is None and self.source.kind == "app":
            spec = self.source.value
            app = lambda: _app.load_app(spec)  # noqa: E731 - a one-line factory
        self.app = app
        self._store: Store | None = None
        self._app_dispatcher: AppDispatcher | None = None

    @property
    def db_path(self) -> Path:
        return Path(self.source.value if self.source.kind == "db" else DEFAULT_DB)

    def store(self, *, create: bool = False) -> Store:
        """Open the store; only commands that create something may create a database."""
        if self.app is not None:
            return self.dispatcher().store
        if self._store is None:
            if self.source.kind == "dsn":
                self._store = _postgres_store(self.source.value, create=create)
            else:
                self._store = _sqlite_store(self.db_path, create=create)
        return self._store

    def policy(self) -> NetworkPolicy:
        """The default network policy, widened by ``--allow-network``."""
        try:
            return NetworkPolicy(allow_networks=getattr(self.args, "allow_network", None) or [])
        except ConfigurationError as exc:
            raise _BadInput(f"--allow-network: {exc}") from None

    def app_dispatcher(self) -> AppDispatcher:
        """What the app gave: a Dispatcher, or an AsyncDispatcher (loaded once)."""
        assert self.app is not None
        if self._app_dispatcher is None:
            self._app_dispatcher = self.app()
        return self._app_dispatcher

    def dispatcher(self, *, create: bool = False) -> Dispatcher:
        """The engine on this store (the app's own Dispatcher, with an app)."""
        if self.app is not None:
            return _app.sync_dispatcher(self.app_dispatcher())
        policy = self.policy()
        proxy = getattr(self.args, "proxy", None)
        if proxy is None:
            return Dispatcher(self.store(create=create), network_policy=policy)
        try:  # before the store is opened: a bad --proxy changes nothing
            transport = Urllib3Transport(policy=policy, proxy=proxy)
        except ConfigurationError as exc:
            raise _BadInput(f"--proxy: {exc}") from None
        # The asyncio worker's default transport takes the same proxy from this one.
        return Dispatcher(self.store(create=create), network_policy=policy, transport=transport)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._owns_app and self._app_dispatcher is not None:
            with suppress(ResthooksError):
                _app.sync_dispatcher(self._app_dispatcher).store.close()
            self._app_dispatcher = None


@attrs.frozen
class _Source:
    """Where the store comes from: ``app`` (a module:attribute spec), ``dsn`` or ``db``."""

    kind: str
    value: str
    option: str = ""  # how it was given: "--app", "$RESTHOOKS_APP"...


_SOURCES = (("app", "--app", APP_ENV), ("dsn", "--dsn", DSN_ENV), ("db", "--db", DB_ENV))


def _choose_source(args: argparse.Namespace, environ: Mapping[str, str]) -> _Source:
    """The one source of the store: an option given, else an environment variable, else
    ``./resthooks.db``. Two given together are refused rather than one silently chosen."""
    given = [
        _Source(kind, value, option)
        for kind, option, _ in _SOURCES
        if (value := getattr(args, kind, None)) is not None
    ]
    if len(given) > 1:
        first, second = given[0].option, given[1].option
        why = (
            "the app's Dispatcher says where its store is"
            if given[0].kind == "app"
            else "give one store"
        )
        raise _BadInput(f"{first} and {second} cannot be used together: {why}")
    if not given:
        given = [
            _Source(kind, environ[env], f"${env}") for kind, _, env in _SOURCES if environ.get(env)
        ]
        if len(given) > 1:
            names = " and ".join(s.option for s in given)
            raise _BadInput(f"{names} are both set: unset one, or choose with --app, --dsn or --db")
    return given[0] if given else _Source("db", DEFAULT_DB, "--db")


def _sqlite_store(path: Path, *, create: bool) -> SQLiteStore:
    if not create and not path.exists():
        raise _BadInput(
            f"no resthooks database at {str(path)!r} "
            f"(give --db or set {DB_ENV}; 'resthooks hooks add' creates one)"
        )
    if path.is_dir():
        raise _BadInput(f"{str(path)!r} is a directory, not a resthooks database")
    parent = path.parent
    if not path.exists() and not parent.is_dir():
        raise _BadInput(f"--db: the directory {str(parent)!r} does not exist")
    return SQLiteStore(path)


def _postgres_store(dsn: str, *, create: bool) -> Store:
    """``--dsn``: a PostgreSQL store in the default schema, ``resthooks``.

    Commands that only read refuse a database without the schema rather than create it.
    """
    if not dsn.strip() or "\x00" in dsn:
        raise _BadInput(
            "--dsn: must be a PostgreSQL connection string, like postgresql://app@db/app"
        )
    try:
        import psycopg  # noqa: PLC0415 - the postgres extra, loaded only when asked

        from .stores.postgres import PostgresStore  # noqa: PLC0415 - needs the postgres extra
    except ImportError:
        raise ConfigurationError(
            "--dsn needs the postgres extra: pip install 'resthooks[postgres]'"
        ) from None
    schema = "resthooks"
    # One connection first: a server that cannot be reached, or a malformed string, is one
    # line now (the store would wait for the server, reconnecting in the background).
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            row = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".schema_version',)).fetchone()
    except psycopg.ProgrammingError as exc:  # a malformed connection string
        raise _BadInput(f"--dsn: {_app.quote(exc)}") from None
    except psycopg.Error as exc:
        raise StoreError(f"cannot reach PostgreSQL: {_app.quote(exc)}") from None
    if not create and (row is None or row[0] is None):
        raise _BadInput(
            f"no resthooks store in schema {schema!r} of that database "
            "('resthooks hooks add' creates one; another schema needs --app)"
        )
    return PostgresStore(dsn, schema=schema)


def _find_hook(store: Store, hook_id: str) -> Hook:
    hook = store.get_hook(_validation.hook_id(hook_id))
    if hook is None:
        raise HookNotFound(hook_id)
    return hook


def _find_delivery(store: Store, delivery_id: str) -> Delivery:
    delivery = store.get_delivery(_validation.delivery_id(delivery_id))
    if delivery is None:
        raise DeliveryNotFound(delivery_id)
    return delivery


# -- commands ----------------------------------------------------------------------------------


def _check_target(ctx: _Context, target_url: str) -> None:
    """Refuse a URL the policy refuses before the database is opened, saying how to allow
    a network on purpose."""
    url = validate_target_url(target_url)
    try:
        ctx.policy().check_url(url)
    except ValidationError as exc:
        if "allow" in exc.message or exc.field != "target_url":
            raise
        raise ValidationError(
            exc.field, f"{exc.message} (--allow-network CIDR allows a network on purpose)"
        ) from None


def _cmd_hooks_add(ctx: _Context) -> _Result:
    args = ctx.args
    # Several events (party/created,party/updated) or a pattern (party/*): one hook each.
    names = args.event.split(",") if "," in args.event or "*" in args.event else None
    if ctx.app is None:
        # Refuse bad input before the database file is opened (or created).
        for name in names or [args.event]:
            CAPSULE_EVENTS.expand(name)
        _check_target(ctx, args.url)
    batching = _batching_option(args)
    dispatcher = ctx.dispatcher(create=True)
    if names is not None:
        made = dispatcher.subscribe_many(
            names, args.url, owner=args.owner, description=args.description, batching=batching
        )
        many = []
        for hook, created in made:
            data = _hook_data(hook)
            data["created"] = created
            if created:
                data["secret"] = hook.secret
            many.append(data)

        def render(hooks: list[_Data]) -> str:
            text = _render_hooks(hooks)
            secret = next((h["secret"] for h in hooks if h.get("secret")), None)
            if secret:
                text += (
                    f"\nsecret  {secret}\n(the signing secret of this URL, shared by its "
                    "hooks, is shown this once: give it to the receiver)"
                )
            return text

        return _Result(many, render)
    # The API layer's entry point: it also says whether the hook is new, and only a new
    # hook's secret is shown (an existing one was shown when it was created).
    hook, created = dispatcher.subscribe_or_get(
        args.event, args.url, owner=args.owner, description=args.description, batching=batching
    )
    data = _hook_data(hook)
    data["created"] = created
    if created:
        data["secret"] = hook.secret
    return _Result(data, _render_hook)


def _batching_option(args: argparse.Namespace) -> Batching | None:
    """``hooks add --batch-wait/--batch-entities/--batch-bytes``: any of them batches."""
    given = {
        name: value
        for name, value in (
            ("max_wait", args.batch_wait),
            ("max_entities", args.batch_entities),
            ("max_bytes", args.batch_bytes),
        )
        if value is not None
    }
    return Batching(**given) if given else None


def _cmd_hooks_update(ctx: _Context) -> _Result:
    args = ctx.args
    if args.event is None and args.url is None and args.description is None:
        raise ValidationError(None, "give at least one of --event, --url, --description")
    if ctx.app is None:
        if args.event is not None:
            CAPSULE_EVENTS.validate(args.event)
        if args.url is not None:
            _check_target(ctx, args.url)
    dispatcher = ctx.dispatcher()
    hook = _find_hook(dispatcher.store, args.id)
    updated = dispatcher.update_hook(
        hook.id,
        owner=hook.owner,
        event=args.event,
        target_url=args.url,
        description=args.description,
    )
    return _Result(_hook_data(updated), _render_hook)


def _cmd_hooks_rotate_secret(ctx: _Context) -> _Result:
    args = ctx.args
    secret = args.secret
    if secret == "-":  # noqa: S105 - "-" means standard input, not a secret
        secret = ctx.stdin.readline().strip()
    dispatcher = ctx.dispatcher()
    hook = _find_hook(dispatcher.store, args.id)
    new = dispatcher.rotate_secret(hook.id, owner=hook.owner, secret=secret)
    rotated = dispatcher.get_hook(hook.id, owner=hook.owner)
    endpoint = [h.id for h in dispatcher.hooks(owner=hook.owner) if h.target_url == hook.target_url]
    data = {
        **_hook_data(rotated),
        "secret": new,
        "previous_secret_expires_at": (
            _when(rotated.previous_secret_until) if rotated.previous_secret else None
        ),
        "endpoint_hook_ids": endpoint,
    }

    def render(d: _Data) -> str:
        until = d["previous_secret_expires_at"]
        grace = (
            f"the old secret also signs until {_short(until)}"
            if until
            else "the old secret no longer signs"
        )
        return (
            f"new signing secret of {len(d['endpoint_hook_ids'])} hook(s) to "
            f"{d['target_url']}:\n{d['secret']}\n(shown this once: give it to the receiver; "
            f"{grace})"
        )

    return _Result(data, render)


def _cmd_hooks_ping(ctx: _Context) -> _Result:
    dispatcher = ctx.dispatcher()
    hook = _find_hook(dispatcher.store, ctx.args.id)
    attempt = dispatcher.ping(hook.id, owner=hook.owner)
    data = {"hook_id": hook.id, "webhook_id": attempt.delivery_id, **_attempt_data(attempt)}
    data["succeeded"] = attempt.succeeded

    def render(d: _Data) -> str:
        verdict = "answered" if d["succeeded"] else "FAILED"
        return (
            f"ping of hook {d['hook_id']} ({d['webhook_id']}): {verdict}, {_outcome_text(d)} "
            f"in {d['duration'] * 1000:.0f} ms"
        )

    return _Result(data, render, status=_EXIT_OK if attempt.succeeded else _EXIT_FAILED)


def _parse_when(text: str, field: str, now: datetime) -> datetime:
    """A point in time on the command line: ISO 8601 with a zone, or an age (``2h``: two
    hours ago)."""
    if _DURATION.match(text):
        try:
            return now - _parse_age(text, field)
        except OverflowError:
            raise ValidationError(field, f"reaches before the calendar; got {text!r}") from None
    return _validation.iso_datetime(text, field)


def _cmd_hooks_list(ctx: _Context) -> _Result:
    state = _choice(ctx.args.state, HookState, "state")
    owner = None if ctx.args.owner is None else _validation.owner(ctx.args.owner)
    hooks = ctx.store().list_hooks(owner=owner, state=state)
    return _Result([_hook_data(h) for h in hooks], _render_hooks)


def _cmd_hooks_show(ctx: _Context) -> _Result:
    return _Result(_hook_data(_find_hook(ctx.store(), ctx.args.id)), _render_hook)


def _cmd_hooks_remove(ctx: _Context) -> _Result:
    dispatcher = ctx.dispatcher()
    hook = _find_hook(dispatcher.store, ctx.args.id)
    dispatcher.unsubscribe(hook.id, owner=hook.owner)
    data = {"removed": hook.id, "owner": hook.owner}
    return _Result(data, lambda d: f"removed hook {d['removed']} (owner {d['owner']})")


def _cmd_hooks_revive(ctx: _Context) -> _Result:
    dispatcher = ctx.dispatcher()
    hook = _find_hook(dispatcher.store, ctx.args.id)
    revived = dispatcher.revive(hook.id, owner=hook.owner)
    return _Result(_hook_data(revived), _render_hook)


def _cmd_emit(ctx: _Context) -> _Result:
    args = ctx.args
    if ctx.app is None:
        CAPSULE_EVENTS.validate(args.event)
    payload = _read_payload(args.payload, ctx.stdin)
    dispatcher = ctx.dispatcher(create=True)
    deliveries = dispatcher.emit(args.event, payload, owner=args.owner)
    data = {
        "event": args.event,
        "owner": args.owner,
        "deliveries": [_delivery_data(d) for d in deliveries],
    }

    def render(d: _Data) -> str:
        n = len(d["deliveries"])
        head = f"{d['event']} for {d['owner']}: {n} deliver{'y' if n == 1 else 'ies'} queued"
        if not n:
            return head + " (no active hook of this owner is subscribed to it)"
        rows = [[x["id"], x["hook_id"], x["state"]] for x in d["deliveries"]]
        return head + "\n" + _table(["id", "hook_id", "state"], rows)

    return _Result(data, render)


def _cmd_events(ctx: _Context) -> _Result:
    # No store is opened: the catalogue and the signing settings are the Dispatcher's options.
    from .openapi import openapi_document_of  # noqa: PLC0415 - loaded when asked for
    from .stores import MemoryStore  # noqa: PLC0415

    dispatcher = ctx.dispatcher() if ctx.app is not None else Dispatcher(MemoryStore())
    if ctx.args.openapi:
        try:
            document = openapi_document_of(
                dispatcher, title=ctx.args.title, version=ctx.args.version
            )
        except ConfigurationError as exc:
            raise _BadInput(f"--title, --version: {exc}") from None
        # The document is JSON whether or not --json is given.
        return _Result(document, lambda d: json.dumps(d, indent=2, ensure_ascii=False))
    events = dispatcher.events
    data = [
        {
            "event": event,
            "description": events.description(event),
            "schema": events.schema(event),
            "example": events.example(event),
        }
        for event in events
    ]

    def render(rows: list[_Data]) -> str:
        return _table(
            ["event", "schema", "description"],
            [
                [r["event"], "yes" if r["schema"] is not None else "-", r["description"] or "-"]
                for r in rows
            ],
        )

    return _Result(data, render)


def _cmd_deliveries_list(ctx: _Context) -> _Result:
    state = _choice(ctx.args.state, DeliveryState, "state")
    if ctx.args.limit < 1:
        raise ValidationError("limit", f"must be at least 1; got {ctx.args.limit}")
    limit = _validation.limit(ctx.args.limit)
    hook_id = None if ctx.args.hook is None else _validation.id_filter(ctx.args.hook, "hook")
    deliveries = ctx.store().list_deliveries(hook_id=hook_id, state=state, limit=limit)
    return _Result([_delivery_data(d) for d in deliveries], _render_deliveries)


def _cmd_deliveries_show(ctx: _Context) -> _Result:
    store = ctx.store()
    delivery = _find_delivery(store, ctx.args.id)
    data = _delivery_data(delivery)
    data["attempt_log"] = [_attempt_data(a) for a in store.attempts(delivery.id)]
    return _Result(data, _render_delivery)


def _cmd_deliveries_redeliver(ctx: _Context) -> _Result:
    dispatcher = ctx.dispatcher()
    delivery = _find_delivery(dispatcher.store, ctx.args.id)
    queued = dispatcher.redeliver(delivery.id, owner=delivery.owner)
    return _Result(
        _delivery_data(queued),
        lambda d: f"delivery {d['id']} queued again for hook {d['hook_id']} (state {d['state']})",
    )


def _cmd_deliveries_replay(ctx: _Context) -> _Result:
    args = ctx.args
    dispatcher = ctx.dispatcher()
    now = dispatcher.clock.now()
    since = _parse_when(args.since, "since", now)
    until = None if args.until is None else _parse_when(args.until, "until", now)
    hook = _find_hook(dispatcher.store, args.hook)
    queued, more = dispatcher.replay(
        hook.id, owner=hook.owner, since=since, until=until, limit=args.limit
    )
    data = {
        "hook_id": hook.id,
        "since": _when(since),
        "until": _when(until if until is not None else now),
        "replayed": [_delivery_data(d) for d in queued],
        "more": more,
    }

    def render(d: _Data) -> str:
        n = len(d["replayed"])
        head = (
            f"{n} failed or cancelled deliver{'y' if n == 1 else 'ies'} of hook {d['hook_id']} "
            f"emitted from {_short(d['since'])} to {_short(d['until'])} queued again"
        )
        if d["more"]:
            head += " (more are left: run it again)"
        return head if not n else head + "\n" + _render_deliveries(d["replayed"])

    return _Result(data, render)


def _stats_data(dispatcher: Dispatcher) -> _Data:
    stats = dispatcher.stats()
    figures = read_outbox(dispatcher.store, now=dispatcher.clock.now())
    return {
        "hooks": dict(stats.hooks),
        "deliveries": dict(stats.deliveries),
        "oldest_pending_at": _when(stats.oldest_pending_at),
        "blocked": stats.blocked,
        "outbox": _live.figures_data(figures),
    }


def _render_stats(d: _Data, hint: str = "") -> str:
    rows: list[list[object]] = [["hooks", k, v] for k, v in d["hooks"].items()]
    rows += [["deliveries", k, v] for k, v in d["deliveries"].items()]
    outbox = d["outbox"]
    waiting = outbox["oldest_due_age"] if outbox["oldest_due_at"] is not None else None
    return (
        _table(["what", "state", "count"], rows)
        + f"\noldest delivery not yet final: {_short(d['oldest_pending_at'])}"
        + f"\ndue now: {_dash(outbox['due'])}, retrying: {_dash(outbox['retrying'])}, "
        + f"in flight: {outbox['in_flight']}, the oldest due has waited: "
        + ("-" if waiting is None else f"{waiting:.0f} s")
        + f"\nblocked by the network policy: {d['blocked']}"
        + (f" deliveries whose last attempt was refused ({hint})" if d["blocked"] else "")
    )


def _blocked_hint(ctx: _Context) -> str:
    """What to do about attempts the network policy refuses, for this command's source."""
    if ctx.app is not None:
        return (
            "to deliver to that network on purpose, list it in the app's "
            "NetworkPolicy(allow_networks=[...])"
        )
    return (
        "this command uses the default network policy, not your app's: run the worker with "
        "--app module:factory, or allow a network on purpose with --allow-network CIDR"
    )


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def _cmd_stats(ctx: _Context) -> _Result:
    dispatcher = ctx.dispatcher()
    if not ctx.args.watch:
        hint = _blocked_hint(ctx)
        return _Result(_stats_data(dispatcher), lambda d: _render_stats(d, hint))
    interval = ctx.args.interval
    if not 0.1 <= interval <= 86400:
        raise ValidationError("interval", f"must be from 0.1 to 86400 seconds; got {interval}")
    as_json = bool(getattr(ctx.args, "json", False))
    live = ctx.stdout.isatty() and not as_json
    screen = _live.Screen(ctx.stdout)
    stop = threading.Event()
    rounds = 0
    with _stop_on_signals(stop):
        while not stop.is_set():
            try:
                data = _stats_data(dispatcher)
                data["at"] = _when(dispatcher.clock.now())
            except ResthooksError as exc:  # keep watching through an outage
                data = {"at": _when(dispatcher.clock.now()), "error": _one_line(exc)}
            if as_json:
                ctx.stdout.write(json.dumps(data) + "\n")
                ctx.stdout.flush()
            else:
                text = (
                    f"store unreadable: {data['error']}"
                    if "error" in data
                    else _render_stats(data, _blocked_hint(ctx))
                )
                head = f"resthooks stats at {_short(data['at'])} (every {interval:g} s)"
                if live:
                    screen.draw([head, *text.splitlines()])
                else:
                    ctx.stdout.write(("\n" if rounds else "") + head + "\n" + text + "\n")
                    ctx.stdout.flush()
            rounds += 1
            stop.wait(interval)
    return _Result({"watched": rounds}, lambda d: "", compact=True, quiet=True)


def _cmd_purge(ctx: _Context) -> _Result:
    age = _parse_age(ctx.args.older_than)
    dispatcher = ctx.dispatcher()
    before = _validation.purge_before(age, dispatcher.clock.now())

    def progress(done: int) -> None:
        print(f"purged {done} so far", file=sys.stderr, flush=True)

    purged = dispatcher.purge(older_than=age, batch_size=ctx.args.batch_size, progress=progress)
    data = {"purged": purged, "before": _when(before)}
    return _Result(
        data,
        lambda d: (
            f"purged {d['purged']} final deliveries last updated before {_short(d['before'])}"
        ),
    )


def _sqlite_only(ctx: _Context, what: str) -> SQLiteStore:
    store = ctx.store()
    if not isinstance(store, SQLiteStore):
        raise _BadInput(f"{what} works on a SQLite store; this one is a {type(store).__name__}")
    return store


def _cmd_vacuum(ctx: _Context) -> _Result:
    store = _sqlite_only(ctx, "vacuum")
    report = store.vacuum()
    data = {"path": str(store.path), **attrs.asdict(report)}
    return _Result(
        data,
        lambda d: f"vacuumed {d['path']}: {d['size_before']} -> {d['size_after']} bytes",
    )


def _cmd_check(ctx: _Context) -> _Result:
    store = ctx.store()
    check = getattr(store, "check", None)
    if check is None:
        raise _BadInput(f"check works on a SQL store; this one is a {type(store).__name__}")
    problems = [attrs.asdict(p) for p in check()]

    def render(found: list[_Data]) -> str:
        if not found:
            return "no problems found"
        return _table(
            ["problem", "count", "what it means"],
            [[p["kind"], p["count"], p["description"]] for p in found],
        )

    return _Result(problems, render, status=_EXIT_FAILED if problems else _EXIT_OK)


def _store_name(store: Store) -> str:
    """The store as the worker's title names it: never a connection string."""
    if isinstance(store, SQLiteStore):
        return str(store.path)
    schema = getattr(store, "schema", None)
    if type(store).__name__ == "PostgresStore" and isinstance(schema, str):
        return f"PostgreSQL (schema {schema})"
    return f"a {type(store).__name__}"


class _WorkerReport:
    """What ``resthooks worker`` shows while it runs: a lifecycle listener.

    On a terminal, the live view (:class:`resthooks._live.WorkerView`), redrawn in place;
    otherwise one line per attempt (a JSON object per line with ``--json``).
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        out: TextIO,
        *,
        live: bool,
        as_json: bool,
        blocked_hint: str = "",
    ) -> None:
        self.dispatcher = dispatcher
        self.out = out
        self.as_json = as_json
        self.blocked_hint = blocked_hint
        self._lock = threading.Lock()
        self._blocked_hooks: set[str] = set()
        title = f"resthooks worker on {_store_name(dispatcher.store)}"
        self.view = _live.WorkerView(
            OutboxMonitor(dispatcher.store, clock=dispatcher.clock, max_age=1.0),
            out,
            live=live,
            on_attempt=None if live else self._log,
            title=title,
            blocked_hint=blocked_hint,
        )

    def _warn_blocked(self, event: AttemptFinished) -> None:
        """A hook's first attempt refused by the network policy: said on stderr, once."""
        hook = event.hook
        with self._lock:
            if hook.id in self._blocked_hooks or len(self._blocked_hooks) >= 1000:
                return
            self._blocked_hooks.add(hook.id)
        print(
            f"resthooks: warning: the network policy refused an attempt to hook {hook.id} "
            f"({mask_url(hook.target_url)}): {event.attempt.error or 'blocked'}; "
            f"{self.blocked_hint}",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> _WorkerReport:
        self.dispatcher.add_listener(self.view)
        self.view.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispatcher.remove_listener(self.view)
        self.view.stop()

    def _log(self, event: AttemptFinished, kind: str) -> None:
        if event.attempt.error_kind == "blocked":
            self._warn_blocked(event)
        attempt = _attempt_data(event.attempt)
        line: _Data = {
            "at": attempt["started_at"],
            "delivery_id": event.delivery_id,
            "hook_id": event.hook.id,
            "attempt": attempt["number"],
            "status": attempt["status"],
            "error": attempt["error"] if attempt["status"] is None else None,
            "duration": attempt["duration"],
            "outcome": kind,
            "next_attempt_at": _when(event.next_attempt_at),
        }
        if self.as_json:
            text = json.dumps(line) + "\n"
        else:
            status = _outcome_text(attempt)
            after = (
                f", next attempt {_short(line['next_attempt_at'])}" if kind == "retrying" else ""
            )
            text = (
                f"{_short(line['at'])}  {line['delivery_id']}  {line['hook_id']}  "
                f"attempt {line['attempt']}  {status}  {kind}{after}  "
                f"({attempt['duration'] * 1000:.0f} ms)\n"
            )
        with self._lock:
            self.out.write(text)
            self.out.flush()


@contextmanager
def _heartbeat_file(path: str | None, worker: Worker | AsyncWorker) -> Iterator[None]:
    """Keep ``path`` up to date with the worker's heartbeat, every second, while it runs."""
    if not path:
        yield
        return
    try:
        health.write_heartbeat_file(path, None)
    except OSError as exc:
        raise _BadInput(f"--heartbeat-file: cannot write {path!r}: {exc.strerror}") from None
    done = threading.Event()

    def beat() -> None:
        while not done.wait(1.0):
            try:
                health.write_heartbeat_file(path, worker.heartbeat)
            except OSError:  # a full disk must not stop the worker; health then fails
                continue

    thread = threading.Thread(target=beat, name="resthooks-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        with suppress(OSError):
            health.write_heartbeat_file(path, None)


@contextmanager
def _metrics_server(args: argparse.Namespace, dispatcher: Dispatcher) -> Iterator[None]:
    """Serve ``/metrics`` while the worker runs, if ``--metrics-port`` was given."""
    port = getattr(args, "metrics_port", None)
    if port is None:
        yield
        return
    if not 0 <= port <= 65535:
        raise ValidationError("metrics_port", f"must be from 0 to 65535; got {port}")
    try:
        from . import prometheus  # noqa: PLC0415 - an optional extra, loaded only when asked
    except ImportError as exc:
        raise _BadInput(str(exc)) from None
    try:
        instrumentation, server = prometheus.serve_metrics(
            dispatcher, port=port, host=args.metrics_host
        )
    except ConfigurationError as exc:
        raise _BadInput(f"--metrics-port: {exc}") from None
    print(f"resthooks: metrics on {server.url}", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        server.close()
        instrumentation.close()


_PREFLIGHT_HOOKS = 10_000


def _refuse_a_worker_that_could_only_be_blocked(dispatcher: Dispatcher, hint: str) -> None:
    """Look at the active hooks' targets before the first claim.

    When the network policy refuses every one (by its address as written: an IP literal, a
    refused scheme or port; names are resolved only when dialled), the worker would only
    use up one attempt of every delivery as ``blocked`` and push it back on the schedule:
    refused input, exit 2. When it refuses some, a warning on stderr says how many.
    """
    active = dispatcher.stats().hooks.get(HookState.ACTIVE.value, 0)
    if not active or active > _PREFLIGHT_HOOKS:
        # Past that many, reading them all would hold the start up for seconds; their
        # refused attempts are still logged at WARNING and said on stderr as they happen.
        return
    policy = dispatcher.network_policy
    hooks = dispatcher.store.list_hooks(state=HookState.ACTIVE)
    verdicts: dict[str, str | None] = {}  # by origin: the policy looks at nothing else
    refused: list[tuple[Hook, str]] = []
    for hook in hooks:
        origin = "/".join(hook.target_url.split("/", 3)[:3])
        if origin not in verdicts:
            try:
                policy.check_url(hook.target_url)
                verdicts[origin] = None
            except ValidationError as exc:
                verdicts[origin] = exc.message
        reason = verdicts[origin]
        if reason is not None:
            refused.append((hook, reason))
    if not refused:
        return
    hook, reason = refused[0]
    example = f"{mask_url(hook.target_url)}: {reason}"
    if len(refused) == len(hooks):
        raise _BadInput(
            f"the network policy refuses the target of every active hook ({len(hooks)}; "
            f"{example}): the worker would only use up their attempts as blocked; {hint}"
        )
    print(
        f"resthooks: warning: the network policy refuses the targets of {len(refused)} of "
        f"{len(hooks)} active hooks ({example}): their attempts will be blocked; {hint}",
        file=sys.stderr,
        flush=True,
    )


def _cmd_worker(ctx: _Context) -> _Result:
    args = ctx.args
    if args.workers < 1:
        raise ValidationError("workers", f"must be at least 1; got {args.workers}")
    dispatcher = ctx.dispatcher()
    hint = _blocked_hint(ctx)
    _refuse_a_worker_that_could_only_be_blocked(dispatcher, hint)
    as_json = bool(getattr(args, "json", False))
    stop = threading.Event()
    report = _WorkerReport(
        dispatcher,
        ctx.stdout,
        live=ctx.stdout.isatty() and not as_json,
        as_json=as_json,
        blocked_hint=hint,
    )
    concurrency = getattr(args, "concurrency", None)
    if concurrency is not None:
        summary = _run_async_worker(ctx, dispatcher, concurrency, stop=stop, report=report)
    else:
        worker = dispatcher.worker(workers=args.workers, poll_interval=args.poll_interval)
        with (
            _metrics_server(args, dispatcher),
            _heartbeat_file(args.heartbeat_file, worker),
            _stop_on_signals(stop),
            report,
        ):
            summary = worker.run_until_idle(stop) if args.once else worker.run(stop)
    data = {
        "stopped": "idle" if args.once and not stop.is_set() else "signal",
        **attrs.asdict(summary),
    }

    def render(d: _Data) -> str:
        counts = ", ".join(f"{v} {k}" for k, v in d.items() if k != "stopped")
        why = "nothing left due" if d["stopped"] == "idle" else "asked to"
        return f"worker stopped ({why}): {counts}"

    return _Result(data, render, compact=True)


def _run_async_worker(
    ctx: _Context,
    dispatcher: Dispatcher,
    concurrency: int,
    *,
    stop: threading.Event,
    report: _WorkerReport,
) -> DeliverySummary:
    """``worker --concurrency N``: the asyncio worker, on the default async transport."""
    args = ctx.args
    if concurrency < 1:
        raise ValidationError("concurrency", f"must be at least 1; got {concurrency}")
    if importlib.util.find_spec("httptools") is None:  # the default async transport's parser
        raise ConfigurationError(
            "--concurrency runs the asyncio worker, which needs the async extra: "
            "pip install 'resthooks[async]' (or use --workers N for threads)"
        )
    import asyncio  # noqa: PLC0415 - only this command needs it

    from .aio import AsyncDispatcher  # noqa: PLC0415 - only this command needs it

    given = ctx.app_dispatcher() if ctx.app is not None else dispatcher
    # The app's own async face keeps its transport; otherwise the default async transport:
    # the Dispatcher's network policy, and its transport's egress proxy if it has one.
    engine = given if isinstance(given, AsyncDispatcher) else AsyncDispatcher(dispatcher)
    transport = engine.transport
    worker = engine.worker(concurrency=concurrency, poll_interval=args.poll_interval)

    async def run() -> DeliverySummary:
        try:
            return await (worker.run_until_idle() if args.once else worker.run())
        finally:
            await transport.aclose()

    with (
        _metrics_server(args, dispatcher),
        _heartbeat_file(args.heartbeat_file, worker),
        _stop_on_signals(stop, also=worker.stop),
        report,
    ):
        return asyncio.run(run())


def _cmd_health(ctx: _Context) -> _Result:
    args = ctx.args
    max_due_age = _parse_age(args.max_due_age, "max_due_age")
    max_beat_age = _parse_age(args.max_heartbeat_age, "max_heartbeat_age")
    for field, age in (("max_due_age", max_due_age), ("max_heartbeat_age", max_beat_age)):
        if age <= timedelta(0):
            raise ValidationError(field, "must be longer than 0s")
    try:
        dispatcher = ctx.dispatcher()
    except (_BadInput, StoreError) as exc:  # no database, no server: unhealthy, not bad input
        data = {"ok": False, "checks": {"store": {"ok": False, "detail": str(exc), "value": None}}}
    else:
        data = health.check_health(
            dispatcher,
            heartbeat_file=args.heartbeat_file,
            max_due_age=max_due_age,
            max_heartbeat_age=max_beat_age,
        ).as_dict()

    def render(d: _Data) -> str:
        rows = [
            [name, "ok" if check["ok"] else "FAILED", check["detail"]]
            for name, check in d["checks"].items()
        ]
        verdict = "healthy" if d["ok"] else "unhealthy"
        return _table(["check", "result", "detail"], rows) + f"\n{verdict}"

    return _Result(data, render, status=_EXIT_OK if data["ok"] else _EXIT_FAILED)


@contextmanager
def _stop_on_signals(
    stop: threading.Event, *, also: Callable[[], object] | None = None
) -> Iterator[None]:
    """SIGINT and SIGTERM ask for a clean stop; a second one stops at once, as usual."""
    signals = [signal.SIGINT, signal.SIGTERM]
    previous = {s: signal.getsignal(s) for s in signals}

    def ask_to_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if also is not None:
            also()  # the async worker's stop(): safe from a signal handler (thread-safe)
        for s in signals:
            signal.signal(s, signal.SIG_DFL if s is signal.SIGTERM else signal.default_int_handler)

    for s in signals:
        signal.signal(s, ask_to_stop)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _choice(value: str | None, enum: Any, field: str) -> Any:
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError:
        raise ValidationError(
            field, f"must be one of {', '.join(s.value for s in enum)}; got {value!r}"
        ) from None


# -- the parser --------------------------------------------------------------------------------


def _build_parser(  # noqa: PLR0915 - one statement per option, in help order
    prog: str = "resthooks", *, app: bool = False, workers: int = 16, poll_interval: float = 5.0
) -> argparse.ArgumentParser:
    """The argument parser of the ``resthooks`` command.

    With ``app``, the commands of a host's own configuration (``manage.py resthooks``, ``flask
    resthooks``): no ``--db``, ``--allow-network`` or ``demo``, since the host's Dispatcher
    says where its store is and which networks it may reach.
    """
    common = _Parser(add_help=False)
    # SUPPRESS: given after the subcommand, they override; given before it, they stay.
    if not app:
        common.add_argument(
            "--app",
            metavar="MODULE:ATTR",
            default=argparse.SUPPRESS,
            help="your application's Dispatcher (or a factory returning one), like "
            f"myproject.hooks:make_dispatcher: its store, events, retry policy, network policy "
            f"(default: ${APP_ENV})",
        )
        common.add_argument(
            "--dsn",
            metavar="DSN",
            default=argparse.SUPPRESS,
            help=f"a PostgreSQL store, like postgresql://app@db/app (default: ${DSN_ENV})",
        )
        common.add_argument(
            "--db",
            metavar="PATH",
            default=argparse.SUPPRESS,
            help=f"the SQLite database (default: ${DB_ENV}, else ./{DEFAULT_DB})",
        )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print machine-readable JSON instead of text",
    )

    parser = _Parser(
        prog=prog,
        description="REST hooks from a shell: a demo, a worker, and inspection of one store.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        group: Any, name: str, handler: Callable[[_Context], _Result] | None, help: str
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(
            name, help=help, description=help, parents=[common]
        )
        if handler is not None:
            sub.set_defaults(handler=handler)
        return sub

    def allow_network(sub: argparse.ArgumentParser) -> None:
        if not app:
            _allow_network(sub)

    if not app:
        from . import _demo  # noqa: PLC0415 - the demo's modules load only when it runs

        demo = command(commands, "demo", _demo.cmd_demo, "play the whole contract on a fast clock")
        demo.add_argument(
            "--speed",
            type=float,
            default=_demo.DEFAULT_SPEED,
            help=f"simulated seconds per real second (default {_demo.DEFAULT_SPEED:g})",
        )

    hooks = command(
        commands,
        "hooks",
        None,
        "subscriptions: add, list, show, update, remove, revive, rotate-secret, ping",
    )
    hooks_cmds = hooks.add_subparsers(dest="hooks_command", metavar="COMMAND", required=True)
    add = command(hooks_cmds, "add", _cmd_hooks_add, "subscribe URL to EVENT")
    add.add_argument(
        "event",
        metavar="EVENT",
        help="an event such as party/created, several (party/created,party/updated) or a "
        "pattern (party/*, *): one hook each, sharing the URL's secret",
    )
    add.add_argument("url", metavar="URL", help="the target URL deliveries are POSTed to")
    add.add_argument("--owner", default=DEFAULT_OWNER, help=f"default {DEFAULT_OWNER!r}")
    add.add_argument("--description", default="", help="free text")
    add.add_argument(
        "--batch-wait",
        type=float,
        metavar="SECONDS",
        help="batch the hook's deliveries: send what was emitted within SECONDS of a batch's "
        "first emit as one POST (default 1 when another --batch option is given)",
    )
    add.add_argument(
        "--batch-entities",
        type=int,
        metavar="N",
        help="batch, at most N entities per POST (default 100)",
    )
    add.add_argument(
        "--batch-bytes",
        type=int,
        metavar="N",
        help="batch, bodies of at most N bytes (default 262144)",
    )
    allow_network(add)
    lst = command(hooks_cmds, "list", _cmd_hooks_list, "list hooks of every owner, oldest first")
    lst.add_argument("--owner", help="only this owner's hooks")
    lst.add_argument("--state", help="active or dead")
    for name, handler, text in (
        ("show", _cmd_hooks_show, "show one hook"),
        ("remove", _cmd_hooks_remove, "remove a hook and cancel its pending deliveries"),
        ("revive", _cmd_hooks_revive, "make a dead hook active again"),
    ):
        command(hooks_cmds, name, handler, text).add_argument("id", metavar="ID")
    update = command(
        hooks_cmds, "update", _cmd_hooks_update, "change a hook's event, URL or description"
    )
    update.add_argument("id", metavar="ID")
    update.add_argument("--event", help="the new event")
    update.add_argument("--url", help="the new target URL")
    update.add_argument("--description", help="the new description")
    allow_network(update)
    rotate = command(
        hooks_cmds,
        "rotate-secret",
        _cmd_hooks_rotate_secret,
        "give a hook's endpoint (every hook of its owner to its URL) a new signing secret",
    )
    rotate.add_argument("id", metavar="ID")
    rotate.add_argument(
        "--secret",
        metavar="whsec_...|-",
        help="the new secret instead of a generated one (- reads it from standard input)",
    )
    ping = command(
        hooks_cmds, "ping", _cmd_hooks_ping, "send a hook's target a signed test event now"
    )
    ping.add_argument("id", metavar="ID")
    allow_network(ping)

    emit = command(commands, "emit", _cmd_emit, "emit EVENT to the owner's subscribed hooks")
    emit.add_argument("event", metavar="EVENT")
    emit.add_argument("--owner", default=DEFAULT_OWNER, help=f"default {DEFAULT_OWNER!r}")
    emit.add_argument(
        "--payload",
        required=True,
        metavar="JSON|@FILE|-",
        help="the entity (or list of entities): JSON text, @file.json, or - for stdin",
    )

    events = command(
        commands, "events", _cmd_events, "the event catalogue, or its OpenAPI 3.1 document"
    )
    events.add_argument(
        "--openapi",
        action="store_true",
        help="print the webhooks as an OpenAPI 3.1 document (JSON)",
    )
    events.add_argument("--title", default="Webhooks", help="with --openapi: info.title")
    events.add_argument("--version", default="1.0.0", help="with --openapi: info.version")

    worker = command(commands, "worker", _cmd_worker, "deliver what is due")
    worker.add_argument(
        "--workers", type=int, default=workers, help=f"threads sending (default {workers})"
    )
    worker.add_argument(
        "--poll-interval",
        type=float,
        default=poll_interval,
        metavar="SECONDS",
        help=f"seconds between looks for other processes' work (default {poll_interval:g})",
    )
    worker.add_argument(
        "--concurrency",
        type=int,
        default=None,
        metavar="N",
        help="run the asyncio worker with N deliveries in flight instead of threads "
        "(needs the async extra; 256 is a good start)",
    )
    worker.add_argument("--once", action="store_true", help="stop when nothing is due")
    allow_network(worker)
    if not app:
        worker.add_argument(
            "--proxy",
            metavar="URL",
            help="send every delivery through this egress proxy, http://[user:password@]host:port"
            " (an SSRF-safe one: it resolves and dials the receivers)",
        )
    _worker_observability(worker)

    deliveries = command(commands, "deliveries", None, "deliveries: list, show, redeliver, replay")
    d_cmds = deliveries.add_subparsers(dest="deliveries_command", metavar="COMMAND", required=True)
    d_list = command(d_cmds, "list", _cmd_deliveries_list, "list deliveries, newest first")
    d_list.add_argument("--state", help=", ".join(s.value for s in DeliveryState))
    d_list.add_argument("--hook", metavar="ID", help="only this hook's deliveries")
    d_list.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    command(d_cmds, "show", _cmd_deliveries_show, "a delivery and its attempt log").add_argument(
        "id", metavar="ID"
    )
    command(
        d_cmds, "redeliver", _cmd_deliveries_redeliver, "queue a failed or cancelled delivery again"
    ).add_argument("id", metavar="ID")
    replay = command(
        d_cmds,
        "replay",
        _cmd_deliveries_replay,
        "queue again a hook's failed and cancelled deliveries emitted since a time",
    )
    replay.add_argument("--hook", required=True, metavar="ID", help="the hook")
    replay.add_argument(
        "--since",
        required=True,
        metavar="WHEN",
        help="an ISO 8601 time with its zone (2026-01-01T00:00:00Z) or an age (2h, 3d)",
    )
    replay.add_argument("--until", metavar="WHEN", help="as --since (default: now)")
    replay.add_argument(
        "--limit", type=int, default=1000, help="at most this many (default 1000, most 10000)"
    )
    command(
        commands,
        "redeliver",
        _cmd_deliveries_redeliver,
        "queue a failed or cancelled delivery again (as 'deliveries redeliver')",
    ).add_argument("id", metavar="ID")

    stats = command(commands, "stats", _cmd_stats, "hooks and deliveries by state")
    stats.add_argument(
        "--watch", action="store_true", help="show the figures again every --interval seconds"
    )
    stats.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="with --watch (default 2)"
    )
    _health(command(commands, "health", _cmd_health, _HEALTH_HELP))
    purge = command(commands, "purge", _cmd_purge, "delete old final deliveries")
    purge.add_argument(
        "--older-than", required=True, metavar="AGE", help="like 30d, 12h, 90m (s m h d w)"
    )
    purge.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        metavar="N",
        help="deliveries per transaction; writers get in between (default 1000)",
    )
    command(
        commands,
        "vacuum",
        _cmd_vacuum,
        "compact the database file and truncate its WAL (holds the write lock while it runs)",
    )
    command(
        commands,
        "check",
        _cmd_check,
        "look for damage: SQLite's integrity check and the outbox's invariants (exit 1 if any)",
    )
    return parser


_HEALTH_HELP = "is the store readable, the backlog short, the worker up? (exit 0 or 1)"


def _worker_observability(worker: argparse.ArgumentParser) -> None:
    worker.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (needs resthooks[prometheus])",
    )
    worker.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="the address /metrics listens on (default 127.0.0.1; 0.0.0.0 for every interface)",
    )
    worker.add_argument(
        "--heartbeat-file",
        metavar="PATH",
        help="keep the worker's heartbeat in this file, for 'resthooks health'",
    )


def _health(check: argparse.ArgumentParser) -> None:
    check.add_argument(
        "--max-due-age",
        default="5m",
        metavar="AGE",
        help="unhealthy when the oldest due delivery has waited longer (default 5m)",
    )
    check.add_argument(
        "--heartbeat-file",
        metavar="PATH",
        help="the file 'resthooks worker --heartbeat-file' keeps",
    )
    check.add_argument(
        "--max-heartbeat-age",
        default="60s",
        metavar="AGE",
        help="unhealthy when the worker's heartbeat is older (default 60s)",
    )


def _allow_network(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="allow targets in this network (e.g. 127.0.0.0/8 for development); repeatable",
    )


def main(
    argv: Sequence[str] | None = None,
    *,
    app: Callable[[], AppDispatcher] | None = None,
    prog: str = "resthooks",
    workers: int = 16,
    poll_interval: float = 5.0,
    stdout: TextIO | None = None,
) -> int:
    """Run the ``resthooks`` command line and return its exit status.

    Args:
        argv: The arguments, without the program name. Default: ``sys.argv[1:]``.
        app: A host application's own Dispatcher (a callable returning it, or an
            :class:`~resthooks.aio.AsyncDispatcher`, called once when a command needs it):
            then every command works on it, and ``--app``, ``--dsn``, ``--db``,
            ``--allow-network`` and ``demo`` are not offered. What ``manage.py resthooks``
            and ``flask resthooks`` run; ``resthooks --app`` is the same from a shell.
        prog: The program name usage lines show.
        workers: The default of ``worker --workers``.
        poll_interval: The default of ``worker --poll-interval``.
        stdout: Where results are written. Default: ``sys.stdout``.

    .. versionchanged:: 0.2.0
       ``app``, ``prog``, ``workers``, ``poll_interval`` and ``stdout``; the top-level
       ``redeliver`` command and ``worker --poll-interval``; the ``--app`` and ``--dsn``
       options.

    Returns:
        0 when the command succeeded, 1 when it ran but did not succeed (a demo check failed,
        the store was locked), 2 when the input was refused (one line on stderr, nothing
        written).

    Example:
        >>> main(["emit", "party/nothing", "--payload", "{}", "--db", "unused.db"])
        2
    """
    out = stdout if stdout is not None else sys.stdout
    try:
        args = _build_parser(
            prog, app=app is not None, workers=workers, poll_interval=poll_interval
        ).parse_args(argv)
        source = (
            None
            if app is not None
            # The demo makes its own store: only an option given to it says anything.
            else _choose_source(args, {} if args.command == "demo" else os.environ)
        )
        if source is not None:
            _refuse_mixed_options(args, source)
    except _BadInput as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return _EXIT_BAD_INPUT
    # The command prints its own account of every attempt; the library's log lines would
    # repeat it on stderr (the last-resort handler), so they go nowhere unless configured.
    logging.getLogger("resthooks").addHandler(logging.NullHandler())
    ctx = _Context(args, sys.stdin, out, app, source=source)
    try:
        result = args.handler(ctx)
        result.write(out, as_json=getattr(args, "json", False))
        return int(result.status)
    except (_BadInput, ValidationError, NotFound, InvalidStateError, SchemaError, AppError) as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return _EXIT_BAD_INPUT
    except ResthooksError as exc:
        # A store's message can quote a driver's, which can quote a connection string.
        print(f"{prog}: error: {_app.redact(_one_line(exc))}", file=sys.stderr)
        return _EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: one line, never a traceback
        print(
            f"resthooks: internal error: {type(exc).__name__}: {_one_line(exc)} (please report it)",
            file=sys.stderr,
        )
        return _EXIT_FAILED
    finally:
        ctx.close()


def _refuse_mixed_options(args: argparse.Namespace, source: _Source) -> None:
    """Options that the chosen source makes meaningless are refused, not ignored."""
    command = getattr(args, "command", None)
    if command == "demo" and source.kind in ("app", "dsn") and source.option.startswith("--"):
        raise _BadInput(
            f"demo runs on a SQLite store of its own: {source.option} is not used by it "
            "(demo --db PATH keeps that store)"
        )
    if source.kind == "app" and command != "demo" and getattr(args, "allow_network", None):
        raise _BadInput(
            f"--allow-network cannot be used with {source.option}: the app's NetworkPolicy "
            "decides which networks deliveries may reach (allow_networks=[...] in the app)"
        )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
