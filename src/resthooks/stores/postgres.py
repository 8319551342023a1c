"""The PostgreSQL store: many workers on many machines, and the host's own transaction.

Needs the ``postgres`` extra (``pip install 'resthooks[postgres]'``: psycopg 3 and
psycopg-pool) and PostgreSQL 13 or newer. Nothing else in resthooks imports psycopg.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import attrs
import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

from ..batching import BATCH_ORDERING_KEY, Batching, batch_lane, plan
from ..errors import (
    ConfigurationError,
    DamagedRowError,
    HookLimitReached,
    SchemaError,
    StoreError,
    SubscriptionExists,
)
from ..model import (
    Attempt,
    Claim,
    Delivery,
    DeliveryState,
    Hook,
    HookState,
    OutboxStats,
    Outcome,
    QuarantinedDelivery,
    Stats,
    StoreProblem,
)
from ..outcomes import (
    BatchRecord,
    HookEffect,
    RecordResult,
    StoredDelivery,
    may_touch_hook,
)
from ._common import (
    WAITING_FOR_TURN,
    LazyDeliveries,
    attempt_from_row,
    delivery_from_row,
    endpoint_secrets,
    hook_from_row,
    target_host,
)

if TYPE_CHECKING:
    from typing_extensions import LiteralString

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

logger = logging.getLogger("resthooks")

SCHEMA_VERSION = 7
"""The version of the tables this release writes. A database at a higher version (written by
a newer resthooks) is refused with :class:`~resthooks.errors.SchemaError`."""

_TABLES = ("schema_version", "hooks", "messages", "deliveries", "attempts", "quarantine")

# Migration n brings the schema from version n - 1 to n. Every statement names its tables
# through the {s} placeholder, the quoted schema.
_MIGRATIONS: dict[int, tuple[LiteralString, ...]] = {
    1: (
        """
        CREATE TABLE {s}.hooks (
            id text PRIMARY KEY,
            owner text NOT NULL,
            event text NOT NULL,
            target_url text NOT NULL,
            host text NOT NULL,
            description text NOT NULL,
            state text NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            dead_reason text,
            dead_at timestamptz,
            secret text,
            previous_secret text,
            previous_secret_until timestamptz,
            UNIQUE (owner, event, target_url)
        )
        """,
        "CREATE INDEX ON {s}.hooks (owner, created_at, id)",
        "CREATE TABLE {s}.messages (id bigserial PRIMARY KEY, body bytea NOT NULL)",
        # due_at is when the delivery can be claimed: next_attempt_at while pending, the
        # lease's end while in flight, NULL once final. One column, one index, one scan.
        """
        CREATE TABLE {s}.deliveries (
            id text PRIMARY KEY,
            hook_id text NOT NULL,
            owner text NOT NULL,
            event text NOT NULL,
            message_id bigint NOT NULL REFERENCES {s}.messages (id),
            host text NOT NULL,
            state text NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz,
            due_at timestamptz,
            token text,
            lease_until timestamptz,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            last_error text
        )
        """,
        "CREATE INDEX ON {s}.deliveries (due_at, created_at, id) WHERE due_at IS NOT NULL",
        "CREATE INDEX ON {s}.deliveries (host) WHERE state = 'in_flight'",
        "CREATE INDEX ON {s}.deliveries (hook_id)",
        "CREATE INDEX ON {s}.deliveries (owner, created_at, id)",
        "CREATE INDEX ON {s}.deliveries (created_at, id)",
        "CREATE INDEX ON {s}.deliveries (message_id)",
        "CREATE INDEX ON {s}.deliveries (updated_at) WHERE due_at IS NULL",
        """
        CREATE TABLE {s}.attempts (
            seq bigserial PRIMARY KEY,
            delivery_id text NOT NULL,
            number integer NOT NULL,
            started_at timestamptz NOT NULL,
            duration double precision NOT NULL,
            status integer,
            error_kind text,
            error text,
            response_excerpt text NOT NULL
        )
        """,
        "CREATE INDEX ON {s}.attempts (delivery_id, seq)",
    ),
    # Delivery rows the store could not read back (a damaged or hand-edited row), moved out
    # of the outbox so they cannot fail every claim. ``row`` is the raw row as text; the
    # message (the body) stays.
    2: (
        """
        CREATE TABLE {s}.quarantine (
            seq bigserial PRIMARY KEY,
            delivery_id text NOT NULL,
            hook_id text,
            message_id bigint,
            reason text NOT NULL,
            row text NOT NULL,
            quarantined_at timestamptz NOT NULL
        )
        """,
    ),
    # Each host's due deliveries in due order: a claim under the per-host limit reads the
    # few oldest of each host with room (it ranked every due delivery with a window).
    3: (
        "CREATE INDEX deliveries_due_by_host ON {s}.deliveries (host, due_at, created_at, id) "
        "WHERE due_at IS NOT NULL",
    ),
    # The W3C traceparent of the emit, shared by its deliveries (NULL when not traced).
    4: ("ALTER TABLE {s}.messages ADD COLUMN trace_context text",),
    # Hooks get an ed25519 key for v1a signatures, and what intent verification keeps while
    # a hook waits for its target's confirmation.
    5: (
        "ALTER TABLE {s}.hooks ADD COLUMN signing_key text",
        "ALTER TABLE {s}.hooks ADD COLUMN confirm_secret text",
        "ALTER TABLE {s}.hooks ADD COLUMN confirm_by timestamptz",
    ),
    # Ordering keys: the key (NULL: none) and the emit order of a keyed delivery (ids are
    # random), and the open deliveries of a hook and key in emit order (who has the key's
    # turn, who is next); keyless deliveries are not in the index, and a claim changes none
    # of its columns.
    6: (
        "ALTER TABLE {s}.deliveries ADD COLUMN ordering_key text",
        "ALTER TABLE {s}.deliveries ADD COLUMN ordering_seq bigint",
        "CREATE SEQUENCE {s}.ordering_seq",
        "CREATE INDEX deliveries_turns ON {s}.deliveries (hook_id, ordering_key, ordering_seq) "
        "WHERE ordering_key IS NOT NULL AND next_attempt_at IS NOT NULL",
    ),
    # Batching (see resthooks.batching): a hook's window as text (NULL: not batched); a
    # batch's entity count, and whether it is its hook's open batch (never claimed, with
    # room: set at its emit, cleared by the claim, the cancellation or when it is full); the
    # open batches by hook and lane, and the batched hooks by subscription.
    7: (
        "ALTER TABLE {s}.hooks ADD COLUMN batching text",
        "ALTER TABLE {s}.deliveries ADD COLUMN batch_entities integer",
        "ALTER TABLE {s}.deliveries ADD COLUMN batch_open boolean",
        "CREATE INDEX deliveries_open_batches ON {s}.deliveries (hook_id, ordering_key) "
        "WHERE batch_open",
        "CREATE INDEX hooks_batched ON {s}.hooks (owner, event, created_at, id) "
        "WHERE batching IS NOT NULL",
    ),
}

# Open deliveries the store cannot turn into claims, with why. A damaged row is found by
# what PostgreSQL's own types let through: an unknown state, a time no Python datetime holds
# (timestamptz goes to 294276 AD, and infinity), a missing hook or message.
_DAMAGED: LiteralString = """
    SELECT d.id, CASE
        WHEN h.id IS NULL THEN 'its hook does not exist'
        WHEN m.id IS NULL THEN 'its message does not exist'
        WHEN d.state NOT IN ('pending', 'in_flight')
            OR h.state NOT IN ('active', 'dead', 'unconfirmed')
            THEN 'an unknown state'
        ELSE 'a time that a datetime cannot hold'
    END
    FROM {s}.deliveries d
    LEFT JOIN {s}.hooks h ON h.id = d.hook_id
    LEFT JOIN {s}.messages m ON m.id = d.message_id
    WHERE d.due_at IS NOT NULL AND (
        h.id IS NULL OR m.id IS NULL
        OR d.state NOT IN ('pending', 'in_flight')
        OR h.state NOT IN ('active', 'dead', 'unconfirmed')
        OR NOT (d.due_at BETWEEN {lo} AND {hi})
        OR NOT (d.created_at BETWEEN {lo} AND {hi})
        OR NOT (d.updated_at BETWEEN {lo} AND {hi})
        OR NOT (coalesce(d.next_attempt_at, d.created_at) BETWEEN {lo} AND {hi})
        OR NOT (coalesce(d.lease_until, d.created_at) BETWEEN {lo} AND {hi})
        OR NOT (h.created_at BETWEEN {lo} AND {hi})
        OR NOT (h.updated_at BETWEEN {lo} AND {hi})
        OR NOT (coalesce(h.dead_at, h.created_at) BETWEEN {lo} AND {hi})
        OR NOT (coalesce(h.previous_secret_until, h.created_at) BETWEEN {lo} AND {hi})
    )
    FOR UPDATE OF d SKIP LOCKED
"""

_HOOK_COLUMNS: LiteralString = (
    "id, owner, event, target_url, description, state, created_at, updated_at, dead_reason, "
    "dead_at, secret, previous_secret, previous_secret_until, signing_key, confirm_secret, "
    "confirm_by, batching"
)
_DELIVERY_COLUMNS: LiteralString = (
    "id, hook_id, owner, event, state, attempts, next_attempt_at, created_at, updated_at, "
    "last_error, ordering_key"
)
# Cancel a hook's deliveries that are not final (pending or in flight: due_at is set). The
# token is kept (a cancelled delivery is never claimed again): the outcome of an attempt in
# flight is still logged when it comes (see record).
_CANCEL_OPEN: LiteralString = """
    UPDATE {s}.deliveries SET state = 'cancelled', next_attempt_at = NULL, due_at = NULL,
        lease_until = NULL, batch_open = NULL, updated_at = %(now)s
    WHERE hook_id = %(hook_id)s AND due_at IS NOT NULL
    RETURNING id, created_at
"""
_MAX_IDENTIFIER = 63
# The (owner, event) pairs a store remembers as batched (see PostgresStore._batching_seen).
_BATCHING_SEEN = 4096

# What a fan-out made: (id, hook_id, owner, event, ordering key, waiting) of a new delivery,
# or a batch read back; and the statements of a batch's emit (see PostgresStore._join_batch).
_Made = tuple[str, str, str, str, str | None, bool] | Delivery
_Steps = Generator["tuple[LiteralString, Any]", Any, Delivery]


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(timezone.utc)


def _utc_required(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def _text(value: str | None) -> str | None:
    # PostgreSQL's text cannot hold NUL; a receiver's response may. Keep the rest readable.
    return None if value is None else value.replace("\x00", "\ufffd")


# (kind, what it means, a query counting the rows that break it): SQLite's list, in SQL that
# PostgreSQL's types make shorter (no time can be of the wrong type).
_INVARIANTS: tuple[tuple[str, str, LiteralString], ...] = (
    (
        "unknown_state",
        "deliveries or hooks in a state resthooks does not know",
        "SELECT (SELECT count(*) FROM {s}.deliveries WHERE state NOT IN "
        "('pending', 'in_flight', 'delivered', 'failed', 'cancelled')) + "
        "(SELECT count(*) FROM {s}.hooks WHERE state NOT IN ('active', 'dead'))",
    ),
    (
        "time_out_of_range",
        "deliveries with a time no datetime can hold",
        "SELECT count(*) FROM {s}.deliveries WHERE NOT (coalesce(due_at, created_at) "
        "BETWEEN {lo} AND {hi} AND coalesce(next_attempt_at, created_at) BETWEEN {lo} AND {hi} "
        "AND coalesce(lease_until, created_at) BETWEEN {lo} AND {hi} "
        "AND created_at BETWEEN {lo} AND {hi} AND updated_at BETWEEN {lo} AND {hi})",
    ),
    (
        "pending_without_due_time",
        "pending deliveries that no claim will ever pick (no due time, or not their own)",
        "SELECT count(*) FROM {s}.deliveries WHERE state = 'pending' AND "
        "(next_attempt_at IS NULL OR due_at IS NULL OR due_at != next_attempt_at)",
    ),
    (
        "in_flight_without_claim",
        "in-flight deliveries without a claim token or lease",
        "SELECT count(*) FROM {s}.deliveries WHERE state = 'in_flight' AND "
        "(token IS NULL OR lease_until IS NULL OR due_at IS NULL)",
    ),
    (
        "final_still_due",
        "final deliveries that still have a due time",
        "SELECT count(*) FROM {s}.deliveries WHERE state IN ('delivered', 'failed', "
        "'cancelled') AND (due_at IS NOT NULL OR next_attempt_at IS NOT NULL)",
    ),
    (
        "open_delivery_without_hook",
        "pending or in-flight deliveries whose hook does not exist",
        "SELECT count(*) FROM {s}.deliveries d WHERE d.due_at IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM {s}.hooks h WHERE h.id = d.hook_id)",
    ),
    (
        "open_delivery_of_dead_hook",
        "pending or in-flight deliveries of a dead hook (they are cancelled when it dies)",
        "SELECT count(*) FROM {s}.deliveries d JOIN {s}.hooks h ON h.id = d.hook_id "
        "WHERE d.due_at IS NOT NULL AND h.state = 'dead'",
    ),
    (
        "quarantined",
        "delivery rows moved aside because they could not be read (see the quarantine table)",
        "SELECT count(*) FROM {s}.quarantine",
    ),
)


# Whether libpq can pipeline statements (libpq 14 and later).
_PIPELINE = psycopg.Pipeline.is_supported()

# How long after a connection failure the pool checks each connection before handing it out.
_SUSPECT_SECONDS = 30.0


class _Unreachable(Exception):
    """The server could not be reached (its cause says why)."""


class _ReconnectAttempt(AttemptWithBackoff):
    """psycopg_pool's reconnect backoff, made short: 0.1 s doubling up to 0.5 s.

    Its own starts at 1 s and doubles without a cap below ``reconnect_timeout``: after a
    20 s outage the pool's next try came 8.5 s after the server was ready. A connection
    attempt to a server that is down costs little; waiting costs deliveries.
    """

    INITIAL_DELAY = 0.1
    MAX_DELAY = 0.5

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, self.MAX_DELAY)


class _QuietReconnects(logging.Filter):
    """psycopg_pool logs every failed reconnect at WARNING: with the short backoff, several a
    second during an outage. For the store's own pools, one a minute gets through."""

    every = 60.0

    def __init__(self) -> None:
        super().__init__()
        self._last = 0.0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("error connecting in") or "'resthooks-" not in str(
            record.args
        ):
            return True
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.every:
                return False
            self._last = now
            return True


_QUIET = _QuietReconnects()


class _ReconnectingPool(ConnectionPool[Any]):
    """The store's own pool: the pool of psycopg_pool, reconnecting with the short backoff."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pool_logger = logging.getLogger("psycopg.pool")
        if _QUIET not in pool_logger.filters:
            pool_logger.addFilter(_QUIET)
        super().__init__(*args, **kwargs)

    def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        if attempt is None:
            attempt = _ReconnectAttempt(timeout=self.reconnect_timeout)
        super()._add_connection(attempt, growing=growing)


def _binds_on_server(cur: object) -> bool:
    """Whether ``cur`` sends its parameters apart from the query (and can use binary)."""
    return not isinstance(cur, (psycopg.ClientCursor, psycopg.AsyncClientCursor))


def _is_damage(exc: StoreError) -> bool:
    """Whether a row could not be read back: our conversion, or psycopg's (a timestamp past
    year 9999, which PostgreSQL holds and Python cannot)."""
    return isinstance(exc, DamagedRowError) or isinstance(exc.__cause__, psycopg.DataError)


def _hook(row: Sequence[Any]) -> Hook:
    return hook_from_row(row, _utc_required)


def _delivery(row: Sequence[Any]) -> Delivery:
    return delivery_from_row(row, _utc_required)


def _sorted_ids(rows: list[TupleRow]) -> list[str]:
    return [r[0] for r in sorted(rows, key=lambda r: (r[1], r[0]))]


class PostgresStore:
    """A store on PostgreSQL, for many worker processes on many machines.

    Workers claim due deliveries with ``SELECT ... FOR UPDATE SKIP LOCKED``, so any number of
    processes can share one database without handing out a delivery twice; a claim is a lease
    with a fencing token, so the claims of a worker that dies are taken over when their lease
    expires, and its late outcomes are refused. The store creates and migrates its tables in
    its own PostgreSQL schema (``resthooks`` unless told otherwise), recording the version in
    ``<schema>.schema_version``.

    ``enqueue(..., connection=conn)`` (what :meth:`resthooks.Dispatcher.emit` passes on)
    writes the deliveries through the host's own open psycopg connection, inside the host's
    transaction and without committing it: they exist only if that transaction commits (the
    transactional outbox; see the scaling guide).

    The class is not imported by ``resthooks.stores`` until it is first used (so the core
    never imports psycopg); ``from resthooks.stores import PostgresStore`` works once the
    ``postgres`` extra is installed.

    Args:
        conninfo: A libpq connection string or URI (``"postgresql://app@db/app"``), a
            ``psycopg_pool.ConnectionPool`` of your own, or a callable returning the host's
            own :class:`psycopg.Connection` for the calling thread (Django's, say). The store
            closes a pool it opened, never yours. With a callable, the store opens no
            connection: each operation runs on the host's connection, inside the host's
            open transaction if there is one (as a savepoint: it commits or rolls back with
            the host's), else in a transaction of its own; it never closes the connection,
            and :meth:`wait_for_work` is not available.
        schema: The PostgreSQL schema the tables live in; created if missing.
        min_size: Connections the store's own pool keeps open (ignored for a given pool).
        max_size: At most this many connections at once: one per thread using the store
            concurrently is enough (ignored for a given pool).
        timeout: Seconds to wait for a connection from the pool before
            :class:`~resthooks.errors.StoreError`.
        notify: When to send a ``NOTIFY`` that wakes workers waiting on
            :meth:`wait_for_work` (in this process or another). ``None`` (the default): for
            deliveries written inside a transaction the store does not commit itself (the
            host's: ``enqueue(..., connection=...)``, or one open on a connection the
            callable gave), since only PostgreSQL can tell a worker when that commits: the
            notification goes out at the host's commit, and never on a rollback. ``True``:
            for every enqueue and redelivery too, so a worker sends what another process
            emitted at once instead of at its next poll. ``False``: never; workers poll
            (behind PgBouncer in transaction mode, where ``LISTEN`` cannot work). NOTIFY
            takes a database-wide lock at commit, which is why ``True`` is not the default.

    Raises:
        ConfigurationError: For an unusable option (naming it).
        StoreError: If the database cannot be reached.
        SchemaError: If the schema was written by a newer resthooks, or holds tables of the
            same names that resthooks did not create.

    .. versionchanged:: 0.2.0
       ``conninfo`` may be a callable returning the host's connection; ``notify`` defaults
       to ``None`` (a ``NOTIFY`` at the host's commit for the outbox) instead of ``False``.

    In a host application::

        store = PostgresStore("postgresql://app@db.internal/app", max_size=8)
        dispatcher = Dispatcher(store)

    Example:
        Options are checked before anything connects:

        >>> from resthooks.stores import PostgresStore
        >>> PostgresStore("postgresql://app@db.internal/app", schema="")
        Traceback (most recent call last):
        ...
        resthooks.errors.ConfigurationError: schema: must be a non-empty string
    """

    #: It batches the emits of hooks subscribed with a :class:`~resthooks.Batching`.
    #:
    #: .. versionadded:: 0.2.0
    batches = True

    _queries: dict[tuple[str, bool], sql.Composed]
    # (owner, event) pairs whose last autocommit fan-out met a batched hook: their next emit
    # starts in a transaction at once, instead of trying alone first (a hint only: the
    # statement's guard still catches a hook batched since).
    _batching_seen: set[tuple[str, str]]

    def __init__(
        self,
        conninfo: str | ConnectionPool[Any] | Callable[[], psycopg.Connection[Any]],
        *,
        schema: str = "resthooks",
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = 30.0,
        notify: bool | None = None,
    ) -> None:
        if not isinstance(schema, str) or not schema:
            raise ConfigurationError("schema: must be a non-empty string")
        if len(schema.encode()) > _MAX_IDENTIFIER or "\x00" in schema:
            raise ConfigurationError(
                f"schema: must be at most {_MAX_IDENTIFIER} bytes, without NUL characters"
            )
        for name, size in (("min_size", min_size), ("max_size", max_size)):
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise ConfigurationError(f"{name}: must be an int >= 1")
        if min_size > max_size:
            raise ConfigurationError("min_size: must not be larger than max_size")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError("timeout: must be a number of seconds > 0")
        if notify is not None and not isinstance(notify, bool):
            raise ConfigurationError("notify: must be True, False or None")
        self.schema = schema
        self.notify = notify
        self._timeout = float(timeout)
        self._queries, self._batching_seen = {}, set()
        self._listener: psycopg.Connection[TupleRow] | None = None
        self._listener_lock = threading.Lock()
        self._closed = False
        self._reported_quarantine: list[QuarantinedDelivery] = []
        self._quarantine_lock = threading.Lock()
        # Two stores on one schema share no memory; the channel name is what they share.
        self._channel = f"resthooks.{schema}"
        self._messages_table = '"' + schema.replace('"', '""') + '".messages'
        self._lock_key = f"resthooks:{schema}"
        self._provider: Callable[[], psycopg.Connection[Any]] | None = None
        self._schema_ready = True
        self._suspect_until = 0.0
        if isinstance(conninfo, ConnectionPool):
            self._pool: ConnectionPool[Any] | None = conninfo
            self._owns_pool = False
            with self._connection() as conn:
                self._migrate(conn)
        elif callable(conninfo) and not isinstance(conninfo, str):
            self._provider = conninfo
            self._pool = None
            self._owns_pool = False
            with self._connection() as conn:
                self._migrate(conn)
        elif isinstance(conninfo, str):
            self._conninfo = conninfo
            # Connect once directly: the schema is brought up to date before any worker uses
            # it. A server that cannot be reached (down, restarting) is waited for instead:
            # the schema is then made at the first use that reaches it, and until then every
            # call fails with a StoreError that says so (a worker started during an outage
            # logs it and keeps trying).
            self._schema_ready = False
            self._schema_lock = threading.Lock()
            try:
                self._migrate_directly()
            except _Unreachable as exc:
                logger.warning(
                    "PostgreSQL cannot be reached (%s); the store will connect when it is "
                    "used, and its calls fail with StoreError until then",
                    exc.__cause__,
                )
            self._pool = _ReconnectingPool(
                conninfo,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                kwargs={"autocommit": True},
                open=True,
                name=f"resthooks-{schema}",
                check=self._check_after_failure,
            )
            self._owns_pool = True
        else:
            raise ConfigurationError(
                "conninfo: must be a connection string, a psycopg_pool.ConnectionPool or a "
                f"callable returning a psycopg.Connection, not {type(conninfo).__name__}"
            )

    # -- plumbing ----------------------------------------------------------------------------

    def _q(self, template: LiteralString, cur: object = None) -> sql.Composed:
        """``template`` with ``{s}`` bound to the quoted schema and the column lists (cached).

        ``{b}`` marks a parameter sent in binary when ``cur`` binds its parameters on the
        server (psycopg's default cursor), in text for a client-side binding cursor (Django's
        connections use one), which has no binary format. An array goes in binary for a
        fraction of its cost in text (see :meth:`_flush`).
        """
        binary = cur is not None and _binds_on_server(cur)
        query = self._queries.get((template, binary))
        if query is None:
            query = sql.SQL(template).format(
                b=sql.SQL("b" if binary else "s"),
                s=sql.Identifier(self.schema),
                hook_columns=sql.SQL(_HOOK_COLUMNS),
                lo=sql.Literal("0001-01-02 00:00:00+00"),
                hi=sql.Literal("9999-12-30 00:00:00+00"),
                delivery_columns=sql.SQL(_DELIVERY_COLUMNS),
                waiting=sql.Literal(WAITING_FOR_TURN),
            )
            self._queries[template, binary] = query
        return query

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction: committed on success, rolled back on error.

        Every psycopg error is wrapped in :class:`StoreError`.
        """
        if self._closed:
            raise StoreError("the store is closed")
        if self._owns_pool and not self._schema_ready:
            self._ensure_schema()
        try:
            if self._provider is not None:
                conn = self._provider()
                if not isinstance(conn, psycopg.Connection):
                    raise ConfigurationError(
                        "conninfo: the callable must return a psycopg.Connection, not "
                        f"{type(conn).__name__}"
                    )
                yield conn
                return
            assert self._pool is not None
            with self._pool.connection(timeout=self._timeout) as conn:
                yield conn
        except psycopg.Error as exc:
            if isinstance(exc, (psycopg.OperationalError, PoolTimeout)):
                # The server may have restarted: for a while, every connection the pool hands
                # out is checked first, so one dead connection fails one call, not one each.
                self._suspect_until = time.monotonic() + _SUSPECT_SECONDS
            raise StoreError(f"PostgreSQL: {exc}") from exc

    def _check_after_failure(self, conn: psycopg.Connection[Any]) -> None:
        # The pool's check: a round trip, so only while connections may be dead.
        if time.monotonic() < self._suspect_until:
            ConnectionPool.check_connection(conn)

    def _migrate_directly(self) -> None:
        try:
            with psycopg.connect(
                self._conninfo, connect_timeout=max(int(self._timeout), 1)
            ) as conn:
                self._migrate(conn)
        except psycopg.OperationalError as exc:
            raise _Unreachable() from exc
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the PostgreSQL store: {exc}") from exc
        self._schema_ready = True

    def _ensure_schema(self) -> None:
        with self._schema_lock:
            if self._schema_ready:
                return
            try:
                self._migrate_directly()
            except _Unreachable as exc:
                raise StoreError(
                    f"PostgreSQL cannot be reached: {exc.__cause__}; waiting for it"
                ) from exc.__cause__
            logger.warning("PostgreSQL can be reached again; the schema is ready")

    @staticmethod
    def _join(conn: psycopg.Connection[Any]) -> None:
        # A host's connection out of autocommit whose transaction has not sent BEGIN yet
        # (Django's atomic() before its first query): psycopg's transaction() would take
        # itself for the outer transaction and COMMIT at its end. One statement opens the
        # host's transaction, which transaction() then joins with a savepoint.
        if (
            not conn.autocommit
            and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        ):
            conn.execute("SELECT 1")

    @contextmanager
    def _tx(self, *, atomic: bool = True) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor; with ``atomic``, inside one transaction.

        Our own pool's connections are in autocommit mode, so an operation that is one
        statement (atomic by itself) takes one round trip instead of three.
        """
        with self._connection() as conn:
            if atomic or not conn.autocommit:
                self._join(conn)
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            else:
                with conn.cursor() as cur:
                    yield cur

    @contextmanager
    def _pipelined_tx(self) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor inside one transaction, as :meth:`_tx`, its statements pipelined.

        On the store's own connections (autocommit, and libpq with pipeline mode), each
        statement is sent without waiting for the results of the ones before it, until a
        result is fetched: the ``BEGIN`` goes with the first statements, the ``COMMIT`` with
        the last. A claim or a record batch then takes two round trips instead of one per
        statement (four to six); psycopg's own ``transaction()`` syncs the pipeline on
        entering and leaving it, which is as many round trips as without one.
        """
        with self._connection() as conn:
            if self._provider is not None or not conn.autocommit or not _PIPELINE:
                self._join(conn)
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
                return
            try:
                with conn.pipeline(), conn.cursor() as cur:
                    cur.execute("BEGIN")
                    yield cur
                    conn.execute("COMMIT")  # sent, with what is queued, as the pipeline ends
            except BaseException:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    with suppress(psycopg.Error):  # a broken connection: the pool drops it
                        conn.rollback()
                raise

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Create or upgrade the schema in one transaction, one process at a time."""
        try:
            self._join(conn)
            with conn.transaction(), conn.cursor() as cur:
                # CREATE SCHEMA IF NOT EXISTS races with itself: serialise on the schema name.
                cur.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (self._lock_key,)
                )
                cur.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (self.schema,),
                )
                present = {r[0] for r in cur.fetchall()}
                version = 0
                if "schema_version" in present:
                    cur.execute(self._q("SELECT max(version) FROM {s}.schema_version"))
                    row = cur.fetchone()
                    version = row[0] if row and row[0] is not None else 0
                elif present & set(_TABLES):
                    raise SchemaError(
                        f"schema {self.schema!r} holds tables named like resthooks' "
                        f"({', '.join(sorted(present & set(_TABLES)))}) but no "
                        "schema_version: it is not a resthooks schema"
                    )
                if version > SCHEMA_VERSION:
                    raise SchemaError(
                        f"schema {self.schema!r} is at version {version}, written by a newer "
                        f"resthooks; this one knows version {SCHEMA_VERSION} at most"
                    )
                if version == SCHEMA_VERSION:
                    return
                cur.execute(self._q("CREATE SCHEMA IF NOT EXISTS {s}"))
                cur.execute(
                    self._q("CREATE TABLE IF NOT EXISTS {s}.schema_version (version integer)")
                )
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[target]:
                        cur.execute(self._q(statement))
                cur.execute(self._q("DELETE FROM {s}.schema_version"))
                cur.execute(
                    self._q("INSERT INTO {s}.schema_version (version) VALUES (%s)"),
                    (SCHEMA_VERSION,),
                )
        except psycopg.Error as exc:
            raise StoreError(f"cannot create the resthooks schema: {exc}") from exc

    # -- hooks -------------------------------------------------------------------------------

    def add_hook(self, hook: Hook, *, max_per_owner: int | None) -> tuple[Hook, bool]:
        with self._tx() as cur:
            # One add at a time per owner, so two concurrent adds cannot both pass the cap.
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"{self._lock_key}:owner:{hook.owner}",),
            )
            cur.execute(
                self._q(
                    "SELECT {hook_columns} FROM {s}.hooks "
                    "WHERE owner = %s AND event = %s AND target_url = %s"
                ),
                (hook.owner, hook.event, hook.target_url),
            )
            row = cur.fetchone()
            if row is not None:
                existing = _hook(row)
                if existing.state is HookState.DEAD:
                    return self._revive(cur, existing.id, hook.updated_at) or existing, False
                return existing, False
            if max_per_owner is not None:
                cur.execute(
                    self._q("SELECT count(*) FROM {s}.hooks WHERE owner = %s"), (hook.owner,)
                )
                count = cur.fetchone()
                if count is not None and count[0] >= max_per_owner:
                    raise HookLimitReached(max_per_owner)
            sibling = self._endpoint_sibling(cur, hook.owner, hook.target_url, hook.id)
            if sibling is not None:
                hook = endpoint_secrets(hook, sibling)
            cur.execute(
                self._q(
                    "INSERT INTO {s}.hooks ({hook_columns}, host) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                    "%s)"
                ),
                (
                    hook.id,
                    hook.owner,
                    hook.event,
                    hook.target_url,
                    hook.description,
                    hook.state.value,
                    hook.created_at,
                    hook.updated_at,
                    hook.dead_reason,
                    hook.dead_at,
                    hook.secret,
                    hook.previous_secret,
                    hook.previous_secret_until,
                    hook.signing_key,
                    hook.confirm_secret,
                    hook.confirm_by,
                    None if hook.batching is None else hook.batching.to_text(),
                    target_host(hook.target_url),
                ),
            )
            return hook, True

    def _lock_owner(self, cur: psycopg.Cursor[Any], owner: str) -> None:
        # One change of an owner's subscriptions at a time: the cap, the (event, URL)
        # uniqueness and the endpoint's shared secret are read and written together.
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"{self._lock_key}:owner:{owner}",),
        )

    def _endpoint_sibling(
        self, cur: psycopg.Cursor[Any], owner: str, target_url: str, other_than: str
    ) -> Hook | None:
        """The oldest other hook of ``owner`` to ``target_url``: whose secrets a hook joining
        the endpoint takes."""
        cur.execute(
            self._q(
                "SELECT {hook_columns} FROM {s}.hooks WHERE owner = %s AND target_url = %s "
                "AND id != %s ORDER BY created_at, id LIMIT 1"
            ),
            (owner, target_url, other_than),
        )
        row = cur.fetchone()
        return None if row is None else _hook(row)

    def update_hook(
        self, hook_id: str, *, event: str, target_url: str, description: str, now: datetime
    ) -> Hook | None:
        """The optional ``update_hook`` of :class:`resthooks.stores.HookRegistry`."""
        with self._tx() as cur:
            cur.execute(self._q("SELECT owner FROM {s}.hooks WHERE id = %s"), (hook_id,))
            found = cur.fetchone()
            if found is None:
                return None
            self._lock_owner(cur, found[0])
            cur.execute(self._q("SELECT {hook_columns} FROM {s}.hooks WHERE id = %s"), (hook_id,))
            row = cur.fetchone()
            if row is None:  # removed before the lock was ours
                return None
            hook = _hook(row)
            cur.execute(
                self._q(
                    "SELECT id FROM {s}.hooks WHERE owner = %s AND event = %s "
                    "AND target_url = %s AND id != %s"
                ),
                (hook.owner, event, target_url, hook_id),
            )
            taken = cur.fetchone()
            if taken is not None:
                raise SubscriptionExists(taken[0])
            updated = attrs.evolve(
                hook, event=event, target_url=target_url, description=description, updated_at=now
            )
            if target_url != hook.target_url:
                sibling = self._endpoint_sibling(cur, hook.owner, target_url, hook_id)
                if sibling is not None:
                    updated = endpoint_secrets(updated, sibling)
            cur.execute(
                self._q(
                    "UPDATE {s}.hooks SET event = %s, target_url = %s, host = %s, "
                    "description = %s, updated_at = %s, secret = %s, previous_secret = %s, "
                    "previous_secret_until = %s, signing_key = %s WHERE id = %s"
                ),
                (
                    event,
                    target_url,
                    target_host(target_url),
                    description,
                    now,
                    updated.secret,
                    updated.previous_secret,
                    updated.previous_secret_until,
                    updated.signing_key,
                    hook_id,
                ),
            )
            return updated

    def get_hook(self, hook_id: str) -> Hook | None:
        with self._tx(atomic=False) as cur:
            cur.execute(self._q("SELECT {hook_columns} FROM {s}.hooks WHERE id = %s"), (hook_id,))
            row = cur.fetchone()
        return None if row is None else _hook(row)

    def list_hooks(
        self,
        *,
        owner: str | None = None,
        event: str | None = None,
        state: HookState | None = None,
    ) -> list[Hook]:
        with self._tx(atomic=False) as cur:
            cur.execute(
                self._q(
                    "SELECT {hook_columns} FROM {s}.hooks "
                    "WHERE (%(owner)s::text IS NULL OR owner = %(owner)s) "
                    "AND (%(event)s::text IS NULL OR event = %(event)s) "
                    "AND (%(state)s::text IS NULL OR state = %(state)s) "
                    "ORDER BY created_at, id"
                ),
                {"owner": owner, "event": event, "state": state.value if state else None},
            )
            return [_hook(r) for r in cur.fetchall()]

    def remove_hook(self, hook_id: str, *, now: datetime) -> list[str]:
        with self._tx() as cur:
            return self._remove(cur, hook_id, now)

    def _remove(self, cur: psycopg.Cursor[Any], hook_id: str, now: datetime) -> list[str]:
        cur.execute(self._q("DELETE FROM {s}.hooks WHERE id = %s RETURNING id"), (hook_id,))
        if cur.fetchone() is None:
            return []
        cur.execute(self._q(_CANCEL_OPEN), {"hook_id": hook_id, "now": now})
        return _sorted_ids(cur.fetchall())

    def _mark_dead(
        self, cur: psycopg.Cursor[Any], hook_id: str, reason: str, now: datetime
    ) -> list[str]:
        cur.execute(
            self._q(
                "UPDATE {s}.hooks SET state = CASE WHEN state = 'dead' THEN state ELSE 'dead' END, "
                "dead_reason = CASE WHEN state = 'dead' THEN dead_reason ELSE %(reason)s END, "
                "dead_at = CASE WHEN state = 'dead' THEN dead_at ELSE %(now)s END, "
                "updated_at = CASE WHEN state = 'dead' THEN updated_at ELSE %(now)s END "
                "WHERE id = %(id)s RETURNING id"
            ),
            {"id": hook_id, "reason": reason, "now": now},
        )
        if cur.fetchone() is None:
            return []
        cur.execute(self._q(_CANCEL_OPEN), {"hook_id": hook_id, "now": now})
        return _sorted_ids(cur.fetchall())

    def revive_hook(self, hook_id: str, *, now: datetime) -> Hook | None:
        with self._tx(atomic=False) as cur:
            revived = self._revive(cur, hook_id, now)
            if revived is not None:
                return revived
            cur.execute(self._q("SELECT {hook_columns} FROM {s}.hooks WHERE id = %s"), (hook_id,))
            row = cur.fetchone()
        return None if row is None else _hook(row)

    def _revive(self, cur: psycopg.Cursor[Any], hook_id: str, now: datetime) -> Hook | None:
        cur.execute(
            self._q(
                "UPDATE {s}.hooks SET state = 'active', dead_reason = NULL, dead_at = NULL, "
                "updated_at = %s WHERE id = %s AND state = 'dead' RETURNING {hook_columns}"
            ),
            (now, hook_id),
        )
        row = cur.fetchone()
        return None if row is None else _hook(row)

    def confirm_hook(self, hook_id: str, *, now: datetime) -> Hook | None:
        """See :meth:`resthooks.stores.HookRegistry.confirm_hook`."""
        with self._tx() as cur:
            cur.execute(
                self._q(
                    "UPDATE {s}.hooks SET state = 'active', confirm_secret = NULL, "
                    "confirm_by = NULL, updated_at = %s WHERE id = %s AND state = 'unconfirmed' "
                    "RETURNING {hook_columns}"
                ),
                (now, hook_id),
            )
            row = cur.fetchone()
        return None if row is None else _hook(row)

    def set_secret(
        self,
        hook_id: str,
        *,
        secret: str | None,
        previous_secret: str | None,
        previous_secret_until: datetime | None,
        now: datetime,
    ) -> Hook | None:
        with self._tx(atomic=False) as cur:
            cur.execute(
                self._q(
                    "UPDATE {s}.hooks SET secret = %s, previous_secret = %s, "
                    "previous_secret_until = %s, updated_at = %s WHERE id = %s "
                    "RETURNING {hook_columns}"
                ),
                (secret, previous_secret, previous_secret_until, now, hook_id),
            )
            row = cur.fetchone()
        return None if row is None else _hook(row)

    # -- deliveries --------------------------------------------------------------------------

    # The fan-outs below leave batched hooks out (they make their batches afterwards, see
    # _join_batch) and answer them too, as rows without an id, after the deliveries made.
    # With ``guard`` (a statement outside a transaction, on an autocommit connection), they
    # write nothing when a hook batches: the caller runs the emit again in a transaction, as
    # the batches take several statements.
    _ENQUEUE: LiteralString = """
        WITH matched AS (
            SELECT id, host, created_at FROM {s}.hooks
            WHERE owner = %(owner)s AND event = %(event)s AND state = 'active'
                AND batching IS NULL
        ), batched AS (
            SELECT id, created_at, batching FROM {s}.hooks
            WHERE owner = %(owner)s AND event = %(event)s AND state = 'active'
                AND batching IS NOT NULL
        ), message AS (
            INSERT INTO {s}.messages (body, trace_context)
            SELECT %(body)s, %(trace_context)s WHERE EXISTS (SELECT 1 FROM matched)
                AND NOT (%(guard)s AND EXISTS (SELECT 1 FROM batched))
            RETURNING id
        ), made AS (
            INSERT INTO {s}.deliveries (id, hook_id, owner, event, message_id, host, state,
                                        next_attempt_at, due_at, created_at, updated_at)
            SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), matched.id, %(owner)s,
                   %(event)s, message.id, matched.host, 'pending', %(now)s, %(now)s, %(now)s,
                   %(now)s
            FROM matched CROSS JOIN message
            ORDER BY matched.created_at, matched.id
            RETURNING id, hook_id
        )
        SELECT id, hook_id, false, NULL FROM made
        UNION ALL
        (SELECT NULL, id, false, batching FROM batched ORDER BY created_at, id)
    """

    # A fan-out with an ordering key: the key's turn (due now) unless the hook has an open
    # delivery of the key already (then it waits, see resthooks.outcomes). The fan-outs and
    # hand-overs of one hook and key are serialised by a transaction-scoped advisory lock
    # (_LOCK_TURNS, first), so each sees the others' rows.
    _TURN_HOOKS: LiteralString = """
        SELECT id, batching IS NOT NULL FROM {s}.hooks WHERE owner = %(owner)s
        AND event = %(event)s AND state = 'active'
    """
    _ENQUEUE_KEYED: LiteralString = """
        WITH matched AS (
            SELECT h.id, h.host, h.created_at,
                CASE WHEN EXISTS (SELECT 1 FROM {s}.deliveries o WHERE o.hook_id = h.id
                    AND o.ordering_key = %(key)s AND o.next_attempt_at IS NOT NULL)
                    THEN %(waiting)s ELSE %(now)s END AS due
            FROM {s}.hooks h
            WHERE h.owner = %(owner)s AND h.event = %(event)s AND h.state = 'active'
                AND h.batching IS NULL
        ), batched AS (
            SELECT id, created_at, batching FROM {s}.hooks
            WHERE owner = %(owner)s AND event = %(event)s AND state = 'active'
                AND batching IS NOT NULL
        ), message AS (
            INSERT INTO {s}.messages (body, trace_context)
            SELECT %(body)s, %(trace_context)s WHERE EXISTS (SELECT 1 FROM matched)
            RETURNING id
        ), made AS (
            INSERT INTO {s}.deliveries (id, hook_id, owner, event, message_id, host, state,
                                        next_attempt_at, due_at, created_at, updated_at,
                                        ordering_key, ordering_seq)
            SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), matched.id, %(owner)s,
                   %(event)s, message.id, matched.host, 'pending', matched.due, matched.due,
                   %(now)s, %(now)s, %(key)s, nextval('{s}.ordering_seq')
            FROM matched CROSS JOIN message
            ORDER BY matched.created_at, matched.id
            RETURNING id, hook_id, due_at = %(waiting)s AS waiting
        )
        SELECT id, hook_id, waiting, NULL FROM made
        UNION ALL
        (SELECT NULL, id, false, batching FROM batched ORDER BY created_at, id)
    """
    # Give the turn of a hook's key to its oldest waiting delivery (the one that had it was
    # just written final, or moved aside), under the key's advisory lock.
    _HAND_OVER: LiteralString = """
        UPDATE {s}.deliveries SET due_at = %(now)s, next_attempt_at = %(now)s
        WHERE id = (SELECT id FROM {s}.deliveries WHERE hook_id = %(hook_id)s
                    AND ordering_key = %(key)s AND next_attempt_at IS NOT NULL
                    ORDER BY ordering_seq LIMIT 1)
        AND due_at = %(waiting)s
    """

    def _take_turn(
        self, cur: psycopg.Cursor[Any], delivery_id: str, hook_id: str, key: str, now: datetime
    ) -> datetime:
        """The due time of a redelivered delivery of an ordering key (under the key's lock):
        ``now`` if it takes the key's turn (no other open delivery has it, or a pending newer
        one does: the turn is the oldest's, and that one waits again), the waiting time
        otherwise (another is in flight, or an older one has the turn)."""
        cur.execute(
            self._q(
                "SELECT h.id, h.state, h.ordering_seq < d.ordering_seq FROM {s}.deliveries h "
                "JOIN {s}.deliveries d ON d.id = %(id)s "
                "WHERE h.hook_id = %(hook_id)s AND h.ordering_key = %(key)s "
                "AND h.next_attempt_at IS NOT NULL AND h.due_at != %(waiting)s "
                "AND h.id != %(id)s"
            ),
            {"id": delivery_id, "hook_id": hook_id, "key": key, "waiting": WAITING_FOR_TURN},
        )
        holder = cur.fetchone()
        if holder is None:
            return now
        if holder[1] == DeliveryState.IN_FLIGHT.value or holder[2]:
            return WAITING_FOR_TURN
        # Only while it is still pending: a claim (which takes no key's lock) may have taken
        # it since, and then it keeps the turn and its lease.
        cur.execute(
            self._q(
                "UPDATE {s}.deliveries SET due_at = %s, next_attempt_at = %s "
                "WHERE id = %s AND state = 'pending'"
            ),
            (WAITING_FOR_TURN, WAITING_FOR_TURN, holder[0]),
        )
        return now if cur.rowcount == 1 else WAITING_FOR_TURN

    @property
    def _turn_lock(self) -> str:
        """The prefix of the advisory locks of ordering keys' turns (see _lock_turns)."""
        return f"{self._lock_key}:turn:"

    def _lock_turns(self, cur: psycopg.Cursor[Any], turns: Sequence[tuple[str, str]]) -> None:
        for hook_id, key in sorted(set(turns)):
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s || %s || ':' || %s, 0))",
                (self._turn_lock, hook_id, key),
            )

    # Several events in one statement (one parse, one plan, one round trip, however many
    # events): each event's message takes its id from the sequence first, so that every
    # delivery can name its message and event without a join on the bodies. Each event finds
    # its hooks through the hooks' index (a probe per event), and nothing is joined back to
    # the events: the planner, which cannot see how many events an array holds, ran those
    # joins as nested loops (every delivery against every event: quadratic in the batch).
    # The result is rows of four kinds, ordered by the caller: each delivery made (0, id,
    # hook id, message id), each message's event number (1, -, -, message id, n), each hook's
    # place in subscription order (2, hook id, -, rank), and each batched hook of each event
    # (3, hook id, window, n), whose batches are made afterwards (see _join_batch); with ``guard``
    # (see _ENQUEUE), nothing is written when a hook batches.
    _ENQUEUE_MANY: LiteralString = """
        WITH ev AS (
            SELECT * FROM unnest(%(owners){b}::text[], %(events){b}::text[], %(bodies){b}::bytea[])
                WITH ORDINALITY AS e(owner, event, body, n)
        ), batched AS (
            SELECT ev.n, h.id, h.batching FROM ev CROSS JOIN LATERAL (
                SELECT id, batching FROM {s}.hooks h
                WHERE h.owner = ev.owner AND h.event = ev.event AND h.state = 'active'
                    AND h.batching IS NOT NULL
            ) h
        ), numbered AS MATERIALIZED (
            SELECT ev.n, ev.owner, ev.event, ev.body,
                nextval(pg_get_serial_sequence(%(messages)s, 'id')) AS message_id
            FROM ev WHERE EXISTS (
                SELECT 1 FROM {s}.hooks h
                WHERE h.owner = ev.owner AND h.event = ev.event AND h.state = 'active'
                    AND h.batching IS NULL
            ) AND NOT (%(guard)s AND EXISTS (SELECT 1 FROM batched))
        ), message AS (
            INSERT INTO {s}.messages (id, body) SELECT message_id, body FROM numbered
        ), made AS (
            INSERT INTO {s}.deliveries (id, hook_id, owner, event, message_id, host, state,
                                        next_attempt_at, due_at, created_at, updated_at)
            SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), h.id,
                   numbered.owner, numbered.event, numbered.message_id, h.host,
                   'pending', %(now)s, %(now)s, %(now)s, %(now)s
            FROM numbered CROSS JOIN LATERAL (
                SELECT id, host FROM {s}.hooks h
                WHERE h.owner = numbered.owner AND h.event = numbered.event
                    AND h.state = 'active' AND h.batching IS NULL
            ) h
            RETURNING id, hook_id, message_id
        )
        SELECT 0, id, hook_id, message_id, NULL::bigint FROM made
        UNION ALL SELECT 1, NULL, NULL, message_id, n FROM numbered
        UNION ALL SELECT 2, h.id, NULL, row_number() OVER (ORDER BY h.created_at, h.id), NULL
            FROM (SELECT DISTINCT owner, event FROM ev) p CROSS JOIN LATERAL (
                SELECT id, created_at FROM {s}.hooks h
                WHERE h.owner = p.owner AND h.event = p.event AND h.state = 'active'
            ) h
        UNION ALL SELECT 3, id, batching, n, NULL FROM batched
    """

    def enqueue(
        self,
        *,
        owner: str,
        event: str,
        body: bytes,
        now: datetime,
        connection: object | None = None,
        trace_context: str | None = None,
        ordering_key: str | None = None,
    ) -> Sequence[Delivery]:
        """Fan out one event in one ``INSERT ... SELECT``; the body is stored once.

        With ``connection`` (a :class:`psycopg.Connection` to the same database), the rows
        are written through it, inside the caller's transaction, which is neither committed
        nor rolled back here.

        Raises:
            ConfigurationError: If ``connection`` is not a psycopg connection, or is in
                autocommit mode outside a transaction (the rows would commit at once).
            StoreError: If the database refuses.
        """
        return self._enqueue_many(
            [(owner, event, body)],
            now=now,
            connection=connection,
            trace_context=trace_context,
            ordering_keys=None if ordering_key is None else [ordering_key],
        )

    def enqueue_many(
        self,
        events: Sequence[tuple[str, str, bytes]],
        *,
        now: datetime,
        connection: object | None = None,
        ordering_keys: Sequence[str | None] | None = None,
    ) -> Sequence[Delivery]:
        """Fan out several events, each ``(owner, event, body)``, in one transaction.

        One statement for all the events (their messages and every delivery of each), one
        commit; ``connection`` as for :meth:`enqueue`.
        :meth:`resthooks.Dispatcher.emit_many` calls it. ``ordering_keys[i]`` is the
        ordering key of ``events[i]`` (events with keys take a statement each, under their
        keys' locks).

        .. versionadded:: 0.2.0
        """
        return self._enqueue_many(
            events,
            now=now,
            connection=connection,
            trace_context=None,
            ordering_keys=ordering_keys,
        )

    def _enqueue_many(
        self,
        events: Sequence[tuple[str, str, bytes]],
        *,
        now: datetime,
        connection: object | None,
        trace_context: str | None,
        ordering_keys: Sequence[str | None] | None = None,
    ) -> Sequence[Delivery]:
        keys = ordering_keys if ordering_keys is not None else [None] * len(events)
        params = [
            {
                "owner": o,
                "event": e,
                "body": b,
                "now": now,
                "trace_context": trace_context,
                "key": k,
                "waiting": WAITING_FOR_TURN,
                "lock": self._turn_lock,
            }
            for (o, e, b), k in zip(events, keys, strict=True)
        ]
        if not params:
            return []
        if connection is None:
            # One statement, atomic by itself (an autocommit connection commits it alone);
            # keyed fan-outs take their keys' locks first: a transaction.
            keyed = any(p["key"] is not None for p in params)
            pairs = {(str(p["owner"]), str(p["event"])) for p in params}
            seen = self._batching_seen
            hinted = not seen.isdisjoint(pairs)
            with self._tx(atomic=keyed or hinted) as cur:
                found = self._fan_out(cur, params, hosts=self._provider is not None)
            if found is None:  # a hook batches: the emit takes a transaction
                if len(seen) > _BATCHING_SEEN:
                    seen.clear()
                seen.update(pairs)
                with self._tx() as cur:
                    found = self._fan_out(cur, params, hosts=self._provider is not None)
            elif hinted and not any(isinstance(made, Delivery) for made in found):
                seen.difference_update(pairs)  # none of them batches any more
            assert found is not None  # in a transaction
            return self._deliveries(found, now)
        if not isinstance(connection, psycopg.Connection):
            raise ConfigurationError(
                "connection: must be a psycopg.Connection to the store's database, not "
                f"{type(connection).__name__}"
            )
        _check_in_transaction(connection)
        try:
            with connection.cursor() as cur:
                # Written (and notified) only if the caller's transaction commits.
                found = self._fan_out(cur, params, hosts=True)
            assert found is not None  # in a transaction
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc
        return self._deliveries(found, now)

    def _notifies_in(self, *, hosts: bool) -> bool:
        """Whether a write in this transaction sends NOTIFY: ``hosts`` when the transaction
        may be the host's (committed later, by the host), which only PostgreSQL can report."""
        return self.notify is True or (hosts and self.notify is None)

    def _batched(self, cur: psycopg.Cursor[Any], p: dict[str, Any], rows: list[Any]) -> list[_Made]:
        """What one fan-out statement made (its rows), with the batches of the batched
        hooks it answered (rows without an id) joined after."""
        made: list[_Made] = [
            (r[0], r[1], p["owner"], p["event"], p["key"], r[2]) for r in rows if r[0] is not None
        ]
        made.extend(self._run(cur, self._join_batch(r[1], r[3], p)) for r in rows if r[0] is None)
        return made

    def _run(self, cur: psycopg.Cursor[Any], steps: _Steps) -> Delivery:
        """Run the statements of a sans-I/O step generator (see _join_batch) on ``cur``."""
        try:
            statement, args = next(steps)
            while True:
                cur.execute(self._q(statement), args)
                row = cur.fetchone() if cur.description is not None else None
                statement, args = steps.send(row)
        except StopIteration as done:
            made: Delivery = done.value
            return made

    async def _run_async(self, cur: psycopg.AsyncCursor[Any], steps: _Steps) -> Delivery:
        """:meth:`_run` on an async cursor."""
        try:
            statement, args = next(steps)
            while True:
                await cur.execute(self._q(statement), args)
                row = await cur.fetchone() if cur.description is not None else None
                statement, args = steps.send(row)
        except StopIteration as done:
            made: Delivery = done.value
            return made

    def _join_batch(self, hook_id: str, batching_text: str, p: dict[str, Any]) -> _Steps:
        """One emit (``p``) to a batched hook, as the statements to run in the emit's
        transaction (a generator, so the sync and async outboxes share it): it joins the
        hook's open batch of its lane, or opens a new one (resthooks.batching.plan decides).
        Two statements: read the open batch, write what the plan says.

        The open batch's rows are locked first (``FOR UPDATE``, the delivery and its
        message, so that an emit that waited for another reads what that one wrote): a
        claim that has the batch waits for this transaction, and one that got it first has
        cleared ``batch_open``, so the row no longer matches and the emit opens a new batch.
        A keyed emit holds its batches' turn lock (taken with the others, first), so its "is
        an earlier keyed batch open" sees every other emit's.
        """
        lane = batch_lane(p["key"])
        current = yield (
            "SELECT d.id, d.message_id, d.batch_entities, m.body FROM {s}.deliveries d "
            "JOIN {s}.messages m ON m.id = d.message_id WHERE d.hook_id = %s "
            "AND d.ordering_key IS NOT DISTINCT FROM %s AND d.batch_open "
            "AND d.state = 'pending' ORDER BY d.created_at DESC, d.id DESC LIMIT 1 "
            "FOR UPDATE OF d, m",
            (hook_id, lane),
        )
        batching = Batching.from_text(batching_text)
        step = plan(
            batching,
            p["event"],
            p["body"],
            open_body=None if current is None else bytes(current[3]),
            open_entities=0 if current is None else current[2],
        )
        now: datetime = p["now"]
        args = {
            "now": now,
            "waiting": WAITING_FOR_TURN,
            "body": step.body,
            "entities": step.entities,
            "sealed": step.sealed,
        }
        if current is not None and step.joins:
            row = yield (self._JOIN_BATCH, {**args, "id": current[0], "message": current[1]})
            return _delivery(row)
        row = yield (
            self._NEW_BATCH,
            {
                **args,
                "open_id": None if current is None else current[0],
                "trace_context": p["trace_context"],
                "owner": p["owner"],
                "event": p["event"],
                "due": now if step.sealed else now + timedelta(seconds=batching.max_wait),
                "lane": lane,
                "open": None if step.sealed else True,
                "hook_id": hook_id,
            },
        )
        return _delivery(row)

    # The emit joins the open batch: its body and count; sealed if it is full now (it takes
    # no more entities and is due now, unless it waits for its ordering key's turn).
    _JOIN_BATCH: LiteralString = """
        WITH body AS (UPDATE {s}.messages SET body = %(body)s WHERE id = %(message)s),
        joined AS (
            UPDATE {s}.deliveries SET batch_entities = %(entities)s
            WHERE id = %(id)s AND NOT %(sealed)s RETURNING {delivery_columns}
        ), sealed AS (
            UPDATE {s}.deliveries SET batch_entities = %(entities)s, batch_open = NULL,
            next_attempt_at = CASE WHEN due_at = %(waiting)s THEN next_attempt_at
                ELSE least(next_attempt_at, %(now)s) END,
            due_at = CASE WHEN due_at = %(waiting)s THEN due_at ELSE least(due_at, %(now)s) END
            WHERE id = %(id)s AND %(sealed)s RETURNING {delivery_columns}
        )
        SELECT * FROM joined UNION ALL SELECT * FROM sealed
    """
    # A new batch (after sealing the open one, if there is one): due max_wait from now, now
    # if it is sealed already, or waiting if an earlier keyed batch of the hook is open (as
    # any keyed delivery: the statement sees the open batch as it was before the seal).
    _NEW_BATCH: LiteralString = """
        WITH seal AS (
            UPDATE {s}.deliveries SET batch_open = NULL,
            next_attempt_at = CASE WHEN due_at = %(waiting)s THEN next_attempt_at
                ELSE least(next_attempt_at, %(now)s) END,
            due_at = CASE WHEN due_at = %(waiting)s THEN due_at ELSE least(due_at, %(now)s) END
            WHERE id = %(open_id)s
        ), message AS (
            INSERT INTO {s}.messages (body, trace_context)
            VALUES (%(body)s, %(trace_context)s) RETURNING id
        )
        INSERT INTO {s}.deliveries (id, hook_id, owner, event, message_id, host, state,
            next_attempt_at, due_at, created_at, updated_at, ordering_key, ordering_seq,
            batch_entities, batch_open)
        SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), h.id, %(owner)s,
            %(event)s, message.id, h.host, 'pending', due.at, due.at, %(now)s, %(now)s,
            %(lane)s, CASE WHEN %(lane)s::text IS NULL THEN NULL
                ELSE nextval('{s}.ordering_seq') END,
            %(entities)s, %(open)s
        FROM {s}.hooks h CROSS JOIN message CROSS JOIN LATERAL (
            SELECT CASE WHEN %(lane)s::text IS NOT NULL AND EXISTS (
                SELECT 1 FROM {s}.deliveries o WHERE o.hook_id = h.id
                    AND o.ordering_key = %(lane)s AND o.next_attempt_at IS NOT NULL
            ) THEN %(waiting)s ELSE %(due)s::timestamptz END AS at
        ) AS due
        WHERE h.id = %(hook_id)s
        RETURNING {delivery_columns}
    """

    def _fan_out(
        self, cur: psycopg.Cursor[Any], params: list[dict[str, Any]], *, hosts: bool
    ) -> list[_Made] | None:
        """Run the fan-outs; (id, hook_id, owner, event, ordering key, waiting) of every
        delivery made, in order (the events' order, then each event's hooks in subscription
        order; a batch read back for each batched hook, after the others). Without keys, in
        one statement. ``None`` when nothing was written because a hook batches and ``cur``
        is not in a transaction (the caller runs it again in one)."""
        found: list[_Made]
        conn = cur.connection
        guard = conn.autocommit and (
            conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )
        for p in params:
            p["guard"] = guard
        if any(p["key"] is not None for p in params):
            # Keyed fan-outs one by one, under the turn locks of their hooks and keys, taken
            # first and in one order (hook id, then key) as record takes them.
            turns: list[tuple[str, str]] = []
            for p in params:
                if p["key"] is not None:
                    cur.execute(self._q(self._TURN_HOOKS), p)
                    # A batched hook's keyed emits take the turn of its keyed batches.
                    turns.extend(
                        (r[0], BATCH_ORDERING_KEY if r[1] else p["key"]) for r in cur.fetchall()
                    )
            self._lock_turns(cur, turns)
            found = []
            for p in params:
                cur.execute(self._q(self._ENQUEUE if p["key"] is None else self._ENQUEUE_KEYED), p)
                found.extend(self._batched(cur, p, cur.fetchall()))
        elif len(params) == 1:
            p = params[0]
            cur.execute(self._q(self._ENQUEUE), p)
            rows = cur.fetchall()
            if guard and any(r[0] is None for r in rows):
                return None
            found = self._batched(cur, p, rows)
        else:
            owners = [p["owner"] for p in params]
            events = [p["event"] for p in params]
            cur.execute(
                self._q(self._ENQUEUE_MANY, cur),
                {
                    "owners": owners,
                    "events": events,
                    "bodies": [p["body"] for p in params],
                    "messages": self._messages_table,
                    "now": params[0]["now"],
                    "guard": guard,
                },
            )
            rows = cur.fetchall()
            event_of = {r[3]: r[4] - 1 for r in rows if r[0] == 1}  # message id: event
            rank = {r[1]: r[3] for r in rows if r[0] == 2}  # hook id: subscription order
            batched = [(r[3] - 1, r[1], r[2]) for r in rows if r[0] == 3]  # event, hook, window
            if guard and batched:
                return None  # a hook batches: nothing written, run again in a transaction
            # The events' order, each event's deliveries before its batches, each in the
            # hooks' subscription order.
            made = [(event_of[r[3]], 0, rank[r[2]], r[2], r[1]) for r in rows if r[0] == 0]
            # (event, kind, rank, hook id, delivery id or, for a batched hook, its window)
            made.extend((n, 1, rank[hook_id], hook_id, window) for n, hook_id, window in batched)
            made.sort(key=lambda r: r[:3])
            found = []
            for n, kind, _, hook_id, text in made:
                if kind == 1:
                    found.append(self._run(cur, self._join_batch(hook_id, text, params[n])))
                else:
                    found.append((text, hook_id, owners[n], events[n], None, False))
        if found and self._notifies_in(hosts=hosts):
            # Queued by PostgreSQL, sent when this transaction commits, dropped on rollback.
            cur.execute("SELECT pg_notify(%s, '')", (self._channel,))
        return found

    @staticmethod
    def _deliveries(found: list[_Made], now: datetime) -> Sequence[Delivery]:
        # Only the ids come back from the database (decoding every column of 10,000 rows
        # was half the fan-out's time with the pure-Python psycopg); the rest is what was
        # written. The values are built when first read.
        if not found:
            return []
        at = _utc_required(now)

        def made(row: _Made) -> Delivery:
            if isinstance(row, Delivery):  # a batch, read back
                return row
            delivery_id, hook_id, owner, event, key, waiting = row
            return Delivery(
                id=delivery_id,
                hook_id=hook_id,
                owner=owner,
                event=event,
                next_attempt_at=None if waiting else at,
                created_at=at,
                updated_at=at,
                ordering_key=key,
            )

        def load() -> list[Delivery]:
            return [made(row) for row in found]

        return LazyDeliveries(len(found), load)

    async def enqueue_async(
        self,
        *,
        owner: str,
        event: str,
        body: bytes,
        now: datetime,
        connection: object,
        trace_context: str | None = None,
        ordering_key: str | None = None,
    ) -> Sequence[Delivery]:
        """:meth:`enqueue` through the host's :class:`psycopg.AsyncConnection`, on its loop.

        The transactional outbox of asyncio hosts (:meth:`resthooks.aio.AsyncDispatcher.emit`
        calls it): the same statement as :meth:`enqueue`, written inside the caller's open
        transaction, neither committed nor rolled back here.

        .. versionadded:: 0.2.0

        Raises:
            ConfigurationError: If ``connection`` is not a psycopg AsyncConnection, or is in
                autocommit mode outside a transaction.
            StoreError: If the database refuses.
        """
        if not isinstance(connection, psycopg.AsyncConnection):
            raise ConfigurationError(
                "connection: must be a psycopg.AsyncConnection to the store's database, not "
                f"{type(connection).__name__}"
            )
        _check_in_transaction(connection)
        params = {
            "owner": owner,
            "event": event,
            "body": body,
            "now": now,
            "trace_context": trace_context,
            "key": ordering_key,
            "waiting": WAITING_FOR_TURN,
            "guard": False,  # in the caller's transaction
        }
        try:
            async with connection.cursor() as cur:
                if ordering_key is None:
                    await cur.execute(self._q(self._ENQUEUE), params)
                else:
                    await cur.execute(self._q(self._TURN_HOOKS), params)
                    turns = sorted(
                        (r[0], BATCH_ORDERING_KEY if r[1] else ordering_key)
                        for r in await cur.fetchall()
                    )
                    for hook_id, key in turns:
                        await cur.execute(
                            "SELECT pg_advisory_xact_lock(hashtextextended(%s || %s || ':' "
                            "|| %s, 0))",
                            (self._turn_lock, hook_id, key),
                        )
                    await cur.execute(self._q(self._ENQUEUE_KEYED), params)
                rows = await cur.fetchall()
                found: list[_Made] = [
                    (r[0], r[1], owner, event, ordering_key, r[2]) for r in rows if r[0] is not None
                ]
                for r in rows:
                    if r[0] is None:
                        steps = self._join_batch(r[1], r[3], params)
                        found.append(await self._run_async(cur, steps))
                if found and self._notifies_in(hosts=True):
                    await cur.execute("SELECT pg_notify(%s, '')", (self._channel,))
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL: {exc}") from exc
        return self._deliveries(found, now)

    _CLAIM: LiteralString = """
        WITH picked AS (
            SELECT id, due_at, hook_id, message_id FROM {s}.deliveries
            WHERE due_at <= %(now)s
            ORDER BY due_at, created_at, id
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        )
    """
    # With a per-host limit: for each host of an active hook, its room under the limit (what
    # it has in flight counted through the index of deliveries in flight by host), then the
    # oldest due delivery of each host with room (one step of the index by host and due
    # time), the hosts whose oldest come first, then at most their room of each of those
    # hosts, the oldest of those, then lock what is still due. The claim can take only from
    # the ``limit`` hosts whose oldest due delivery is oldest (a host further back has at
    # least that many older deliveries of other hosts before its first), so only those are
    # read past their first row: about one row per host plus the claim's own, whatever the
    # backlog (it read each host's room of rows: four times as many with the default limit
    # and one hook per host, each a heap page while the visibility map is not set). The count
    # is a probe per host, not a join: joined, the planner (which expects one busy host)
    # filtered every host against every busy one.
    _CLAIM_PER_HOST: LiteralString = """
        WITH hosts AS (
            SELECT DISTINCT host FROM {s}.hooks WHERE state = 'active'
        ), room AS (
            SELECT hosts.host, %(per_host)s - (
                SELECT count(*) FROM {s}.deliveries b
                WHERE b.host = hosts.host AND b.state = 'in_flight'
                    AND b.lease_until > %(now)s
            ) AS room
            FROM hosts
        ), heads AS (
            SELECT room.host, room.room FROM room
            CROSS JOIN LATERAL (
                SELECT d.due_at, d.created_at, d.id FROM {s}.deliveries d
                WHERE d.host = room.host AND d.due_at <= %(now)s
                ORDER BY d.due_at, d.created_at, d.id
                LIMIT 1
            ) head
            WHERE room.room > 0
            ORDER BY head.due_at, head.created_at, head.id
            LIMIT %(limit)s
        ), fitting AS (
            SELECT c.id FROM heads
            CROSS JOIN LATERAL (
                SELECT d.id, d.due_at, d.created_at FROM {s}.deliveries d
                WHERE d.host = heads.host AND d.due_at <= %(now)s
                ORDER BY d.due_at, d.created_at, d.id
                LIMIT heads.room
            ) c
            ORDER BY c.due_at, c.created_at, c.id
            LIMIT %(limit)s
        ), picked AS (
            SELECT d.id, d.due_at, d.hook_id, d.message_id
            FROM {s}.deliveries d JOIN fitting ON fitting.id = d.id
            WHERE d.due_at <= %(now)s
            FOR UPDATE OF d SKIP LOCKED
        )
    """
    # One per-host claim at a time (the limit holds across workers), and no JIT for it (this
    # transaction only): the planner guesses a tenth of each host's due rows for a LIMIT it
    # cannot read, so its estimate grows with the backlog; past jit_above_cost, compiling
    # the query took 70 ms of a 100 ms claim at 1,000,000 pending on 1,000 hosts. (On a
    # host's connection inside its transaction, JIT stays off until that transaction ends.)
    _CLAIM_PER_HOST_LOCK: LiteralString = (
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0)), set_config('jit', 'off', true)"
    )
    # Outer joins: a delivery whose hook or message is missing comes back with NULLs, fails
    # to read, and is quarantined, rather than staying due (and picked) forever.
    _CLAIM_UPDATE: LiteralString = """
        UPDATE {s}.deliveries d
        SET state = 'in_flight', token = replace(gen_random_uuid()::text, '-', ''),
            lease_until = %(lease_until)s, due_at = %(lease_until)s, updated_at = %(now)s,
            batch_open = NULL
        FROM picked
            LEFT JOIN {s}.hooks h ON h.id = picked.hook_id
            LEFT JOIN {s}.messages m ON m.id = picked.message_id
        WHERE d.id = picked.id
        RETURNING picked.due_at,
            d.id, d.hook_id, d.owner, d.event, d.state, d.attempts, d.next_attempt_at,
            d.created_at, d.updated_at, d.last_error, d.ordering_key,
            h.id, h.owner, h.event, h.target_url, h.description, h.state, h.created_at,
            h.updated_at, h.dead_reason, h.dead_at, h.secret, h.previous_secret,
            h.previous_secret_until, h.signing_key, h.confirm_secret, h.confirm_by, h.batching,
            m.body, d.token, d.lease_until, m.trace_context, d.batch_entities, picked.message_id
    """

    def claim_due(
        self,
        *,
        now: datetime,
        limit: int,
        lease_until: datetime,
        max_in_flight_per_host: int | None = None,
    ) -> list[Claim]:
        """Claim with ``FOR UPDATE SKIP LOCKED``: concurrent claimers never wait on each other
        and never share a delivery.

        With ``max_in_flight_per_host``, claims are taken one transaction at a time (a
        transaction-scoped advisory lock), so the limit holds exactly across workers.
        """
        if limit <= 0:
            return []
        try:
            return self._claim_due(now, limit, lease_until, max_in_flight_per_host)
        except StoreError as exc:
            if not _is_damage(exc):
                raise
        # A row of the batch cannot be read: move every damaged open row aside, release
        # what the failed claim may have taken (an autocommit claim is already written), and
        # claim again.
        self._quarantine_damaged(now, lease_until)
        return self._claim_due(now, limit, lease_until, max_in_flight_per_host)

    def _quarantine_damaged(self, now: datetime, lease_until: datetime | None = None) -> None:
        with self._tx() as cur:
            cur.execute(self._q(_DAMAGED))
            damaged = cur.fetchall()
            turns: list[tuple[str, str]] = []
            if damaged:
                # The keys whose turn a moved row may hold: the key goes on without it.
                cur.execute(
                    self._q(
                        "SELECT hook_id, ordering_key FROM {s}.deliveries WHERE id = ANY(%s) "
                        "AND ordering_key IS NOT NULL AND next_attempt_at IS NOT NULL"
                    ),
                    ([r[0] for r in damaged],),
                )
                turns = [(r[0], r[1]) for r in cur.fetchall()]
                self._lock_turns(cur, turns)
                cur.execute(
                    self._q(
                        "WITH bad AS (SELECT * FROM unnest(%(ids)s::text[], %(reasons)s::text[]) "
                        "AS b(id, reason)), moved AS ("
                        "DELETE FROM {s}.deliveries d USING bad WHERE d.id = bad.id "
                        "RETURNING d.*, bad.reason) "
                        "INSERT INTO {s}.quarantine (delivery_id, hook_id, message_id, reason, "
                        "row, quarantined_at) SELECT moved.id, moved.hook_id, moved.message_id, "
                        "moved.reason, moved::text, %(now)s FROM moved RETURNING delivery_id, "
                        "reason"
                    ),
                    {
                        "ids": [r[0] for r in damaged],
                        "reasons": [r[1] for r in damaged],
                        "now": now,
                    },
                )
                moved = cur.fetchall()
                for hook_id, key in turns:
                    cur.execute(
                        self._q(self._HAND_OVER),
                        {"hook_id": hook_id, "key": key, "waiting": WAITING_FOR_TURN, "now": now},
                    )
            else:
                moved = []
            if lease_until is not None:
                cur.execute(
                    self._q(
                        "UPDATE {s}.deliveries SET state = 'pending', due_at = next_attempt_at, "
                        "token = NULL, lease_until = NULL "
                        "WHERE state = 'in_flight' AND lease_until = %s AND updated_at = %s"
                    ),
                    (lease_until, now),
                )
        if moved:
            with self._quarantine_lock:
                self._reported_quarantine.extend(
                    QuarantinedDelivery(delivery_id=i, reason=r, quarantined_at=now)
                    for i, r in moved
                )

    def take_quarantined(self) -> list[QuarantinedDelivery]:
        """The delivery rows this store object moved aside since the last call.

        The Dispatcher calls it after each claim, to log them and tell its listeners
        (:class:`~resthooks.lifecycle.DeliveryQuarantined`); ``stats()`` counts them all.

        .. versionadded:: 0.2.0
        """
        with self._quarantine_lock:
            taken, self._reported_quarantine = self._reported_quarantine, []
        return taken

    def _batch_bodies(self, cur: psycopg.Cursor[Any], rows: list[Any]) -> dict[int, Any]:
        """The bodies of the claimed batches, read again after their rows were locked.

        The claim reads the messages as they were when its statement began, so an emit that
        joined a batch just before the claim locked its row (and committed while the claim
        waited) is not in the body it returned. Claimed, the batch takes no more entities.
        """
        batches = [r[34] for r in rows if r[33] is not None]
        if not batches:
            return {}
        cur.execute(self._q("SELECT id, body FROM {s}.messages WHERE id = ANY(%s)"), (batches,))
        return dict(cur.fetchall())

    def _claim_due(
        self,
        now: datetime,
        limit: int,
        lease_until: datetime,
        max_in_flight_per_host: int | None,
    ) -> list[Claim]:
        params: dict[str, Any] = {"now": now, "limit": limit, "lease_until": lease_until}
        if max_in_flight_per_host is None:
            with self._tx(atomic=False) as cur:
                cur.execute(
                    self._q(self._CLAIM + self._CLAIM_UPDATE), params, binary=_binds_on_server(cur)
                )
                rows = cur.fetchall()
                bodies = self._batch_bodies(cur, rows)
        else:
            with self._pipelined_tx() as cur:
                cur.execute(self._CLAIM_PER_HOST_LOCK, (f"{self._lock_key}:claim",))
                params["per_host"] = max_in_flight_per_host
                cur.execute(
                    self._q(self._CLAIM_PER_HOST + self._CLAIM_UPDATE),
                    params,
                    binary=_binds_on_server(cur),
                )
                rows = cur.fetchall()
                bodies = self._batch_bodies(cur, rows)
        try:
            rows.sort(key=lambda r: (r[0], r[8], r[1]))
            return [
                Claim(
                    delivery=_delivery(r[1:12]),
                    hook=_hook(r[12:29]),
                    body=bytes(bodies.get(r[34], r[29]) if r[33] is not None else r[29]),
                    token=r[30],
                    lease_until=_utc_required(r[31]),
                    trace_context=r[32],
                )
                for r in rows
            ]
        except DamagedRowError:
            raise
        except Exception as exc:  # a NULL body or time: its message is missing
            raise DamagedRowError("deliveries", "?", f"{type(exc).__name__}: {exc}") from exc

    # The turns of the batch's ordering keys, in _lock_turns' order (byte order is Python's
    # order of str), read without locking a row: a delivery's hook and key never change.
    _LOCK_BATCH_TURNS: LiteralString = """
        SELECT pg_advisory_xact_lock(hashtextextended(%(lock)s || t.hook_id || ':' || t.k, 0))
        FROM (
            SELECT DISTINCT hook_id COLLATE "C" AS hook_id, ordering_key COLLATE "C" AS k
            FROM {s}.deliveries WHERE id = ANY(%(ids){b}) AND ordering_key IS NOT NULL
            ORDER BY 1, 2
        ) t
    """

    def record(self, outcomes: Sequence[Outcome], *, now: datetime) -> list[RecordResult]:
        """Apply a batch of outcomes in one transaction, in a handful of statements."""
        if not outcomes:
            return []
        with self._pipelined_tx() as cur:
            # Lock order, the same everywhere: hooks first, then the turns of ordering keys,
            # then deliveries by id. A record that kills or removes a hook locks it before any
            # delivery row; the keys' turns come before their rows, as in a redelivery (which
            # updates the row that has its key's turn): each took its own row first, and a
            # late outcome for that row deadlocked with it.
            doomed = sorted({o.delivery_id for o in outcomes if may_touch_hook(o.kind)})
            if doomed:
                cur.execute(
                    self._q(
                        "SELECT h.id FROM {s}.hooks h JOIN {s}.deliveries d ON d.hook_id = h.id "
                        "WHERE d.id = ANY(%{b}) ORDER BY h.id FOR UPDATE OF h",
                        cur,
                    ),
                    (doomed,),
                )
            ids = sorted({o.delivery_id for o in outcomes})
            # Before anything is written, too: the hand-overs below see every fan-out of
            # these keys (see _ENQUEUE_KEYED).
            cur.execute(self._q(self._LOCK_BATCH_TURNS, cur), {"ids": ids, "lock": self._turn_lock})
            cur.execute(
                self._q(
                    "SELECT d.id, d.hook_id, d.state, d.token, d.attempts, d.next_attempt_at, "
                    "d.last_error, h.state, d.ordering_key FROM {s}.deliveries d "
                    "LEFT JOIN {s}.hooks h ON h.id = d.hook_id "
                    "WHERE d.id = ANY(%{b}) ORDER BY d.id FOR UPDATE OF d",
                    cur,
                ),
                (ids,),
            )
            read = cur.fetchall()
            keys = {r[0]: (r[1], r[8]) for r in read if r[8] is not None}
            batch = BatchRecord(
                {
                    r[0]: (
                        r[1],
                        StoredDelivery(
                            state=DeliveryState(r[2]),
                            token=r[3],
                            attempts=r[4],
                            next_attempt_at=_utc(r[5]),
                            last_error=r[6],
                            hook_state=None if r[7] is None else HookState(r[7]),
                        ),
                    )
                    for r in read
                }
            )
            handed: list[tuple[str, str]] = []  # (hook id, key) whose turn is handed over
            live: dict[str, StoredDelivery] = {}  # written, not yet flushed
            attempts: list[Attempt] = []
            results: list[RecordResult] = []
            for outcome in outcomes:
                hook_id = batch.hook_id(outcome.delivery_id)
                t = batch.transition(outcome, now=now)
                if t.delivery is None:
                    results.append(t.result(outcome.delivery_id, hook_id=hook_id))
                    continue
                live[outcome.delivery_id] = t.delivery
                if t.attempt is not None:
                    attempts.append(t.attempt)
                if t.ends_turn and outcome.delivery_id in keys:
                    handed.append(keys[outcome.delivery_id])
                cancelled: list[str] = []
                if t.hook_effect is not HookEffect.NONE:
                    # The database must see this batch so far before the hook's open
                    # deliveries are cancelled (a delivery recorded earlier stays delivered).
                    self._flush(cur, live, attempts, now)
                    live, attempts = {}, []
                    if t.hook_effect is HookEffect.DEAD:
                        cancelled = self._mark_dead(cur, hook_id, t.dead_reason or "", now)
                    else:
                        cancelled = self._remove(cur, hook_id, now)
                    batch.hook_changed(
                        hook_id, cancelled=cancelled, hook_state=t.delivery.hook_state
                    )
                results.append(t.result(outcome.delivery_id, hook_id=hook_id, cancelled=cancelled))
            self._flush(cur, live, attempts, now)
            for hook_id, key in handed:
                cur.execute(
                    self._q(self._HAND_OVER),
                    {"hook_id": hook_id, "key": key, "waiting": WAITING_FOR_TURN, "now": now},
                )
        return results

    def _flush(
        self,
        cur: psycopg.Cursor[Any],
        live: dict[str, StoredDelivery],
        attempts: list[Attempt],
        now: datetime,
    ) -> None:
        """Write the rows ``record`` changed so far, and their attempts, in one statement.

        The arrays go in binary where the cursor allows (see :meth:`_q`): psycopg writes an
        array in text element by element, quoting each, and 100 start times alone took 1 ms.
        """
        dirty = list(live.items())
        if not dirty and not attempts:
            return
        cur.execute(
            self._q(
                "WITH changed AS ("
                "UPDATE {s}.deliveries d SET state = v.state, attempts = v.attempts, "
                "next_attempt_at = v.next_at, "
                "due_at = CASE WHEN v.state = 'pending' THEN v.next_at END, "
                "last_error = v.last_error, token = NULL, lease_until = NULL, "
                "updated_at = %(now)s "
                "FROM unnest(%(ids){b}::text[], %(states){b}::text[], %(counts){b}::integer[], "
                "%(next_at){b}::timestamptz[], %(errors){b}::text[]) "
                "AS v(id, state, attempts, next_at, last_error) "
                "WHERE d.id = v.id) "
                "INSERT INTO {s}.attempts (delivery_id, number, started_at, duration, "
                "status, error_kind, error, response_excerpt) "
                "SELECT * FROM unnest(%(a_ids){b}::text[], %(a_numbers){b}::integer[], "
                "%(a_started){b}::timestamptz[], %(a_durations){b}::double precision[], "
                "%(a_statuses){b}::integer[], %(a_kinds){b}::text[], %(a_errors){b}::text[], "
                "%(a_excerpts){b}::text[])",
                cur,
            ),
            {
                "now": now,
                "ids": [i for i, _ in dirty],
                "states": [r.state.value for _, r in dirty],
                "counts": [r.attempts for _, r in dirty],
                "next_at": [r.next_attempt_at for _, r in dirty],
                "errors": [_text(r.last_error) for _, r in dirty],
                "a_ids": [a.delivery_id for a in attempts],
                "a_numbers": [a.number for a in attempts],
                "a_started": [a.started_at for a in attempts],
                "a_durations": [a.duration for a in attempts],
                "a_statuses": [a.status for a in attempts],
                "a_kinds": [a.error_kind for a in attempts],
                "a_errors": [_text(a.error) for a in attempts],
                "a_excerpts": [_text(a.response_excerpt) for a in attempts],
            },
        )

    def get_delivery(self, delivery_id: str) -> Delivery | None:
        with self._tx(atomic=False) as cur:
            cur.execute(
                self._q("SELECT {delivery_columns} FROM {s}.deliveries WHERE id = %s"),
                (delivery_id,),
            )
            row = cur.fetchone()
        return None if row is None else _delivery(row)

    def list_deliveries(
        self,
        *,
        owner: str | None = None,
        hook_id: str | None = None,
        state: DeliveryState | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        with self._tx(atomic=False) as cur:
            cur.execute(
                self._q(
                    "SELECT {delivery_columns} FROM {s}.deliveries "
                    "WHERE (%(owner)s::text IS NULL OR owner = %(owner)s) "
                    "AND (%(hook_id)s::text IS NULL OR hook_id = %(hook_id)s) "
                    "AND (%(state)s::text IS NULL OR state = %(state)s) "
                    "ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
                ),
                {
                    "owner": owner,
                    "hook_id": hook_id,
                    "state": state.value if state else None,
                    "limit": max(limit, 0),
                },
            )
            return [_delivery(r) for r in cur.fetchall()]

    def attempts(self, delivery_id: str) -> list[Attempt]:
        with self._tx(atomic=False) as cur:
            cur.execute(
                self._q(
                    "SELECT delivery_id, number, started_at, duration, status, error_kind, "
                    "error, response_excerpt FROM {s}.attempts WHERE delivery_id = %s "
                    "ORDER BY seq"
                ),
                (delivery_id,),
            )
            rows = cur.fetchall()
        return [attempt_from_row(r, _utc_required) for r in rows]

    def requeue(self, delivery_id: str, *, now: datetime) -> Delivery | None:
        with self._tx() as cur:
            # The key's lock, then the rows: the order record takes them in. A delivery's
            # hook and key never change, so they are read before the row is locked.
            cur.execute(
                self._q("SELECT hook_id, ordering_key FROM {s}.deliveries WHERE id = %s"),
                (delivery_id,),
            )
            turn = cur.fetchone()
            due = now
            if turn is not None and turn[1] is not None:
                self._lock_turns(cur, [(turn[0], turn[1])])
            cur.execute(
                self._q("SELECT 1 FROM {s}.deliveries WHERE id = %s FOR UPDATE"), (delivery_id,)
            )
            if turn is not None and turn[1] is not None:
                due = self._take_turn(cur, delivery_id, turn[0], turn[1], now)
            cur.execute(
                self._q(
                    "UPDATE {s}.deliveries d SET state = 'pending', attempts = 0, "
                    "next_attempt_at = %(due)s, due_at = %(due)s, token = NULL, "
                    "lease_until = NULL, updated_at = %(now)s WHERE id = %(id)s "
                    "RETURNING {delivery_columns}"
                ),
                {"now": now, "id": delivery_id, "due": due},
            )
            row = cur.fetchone()
            if row is not None and self._notifies_in(hosts=self._provider is not None):
                cur.execute("SELECT pg_notify(%s, '')", (self._channel,))
        return None if row is None else _delivery(row)

    def next_due_at(self) -> datetime | None:
        try:
            return self._next_due_at()
        except StoreError as exc:
            if not _is_damage(exc):
                raise
        with self._tx(atomic=False) as cur:
            cur.execute("SELECT now()")  # next_due_at is given no time: the server's
            row = cur.fetchone()
        assert row is not None
        self._quarantine_damaged(row[0])
        return self._next_due_at()

    def _next_due_at(self) -> datetime | None:
        with self._tx(atomic=False) as cur:
            cur.execute(self._q("SELECT min(due_at) FROM {s}.deliveries"))
            row = cur.fetchone()
        return None if row is None else _utc(row[0])

    def outbox_stats(self, *, now: datetime) -> OutboxStats:
        """What is due at ``now``: see :class:`~resthooks.OutboxStats` (read-only)."""
        with self._tx(atomic=False) as cur:
            cur.execute(
                self._q(
                    "SELECT count(*) FILTER (WHERE due_at <= %(now)s), "
                    "min(due_at) FILTER (WHERE due_at <= %(now)s), "
                    "count(*) FILTER (WHERE state = 'pending' AND attempts > 0) "
                    "FROM {s}.deliveries WHERE due_at IS NOT NULL"
                ),
                {"now": now},
            )
            row = cur.fetchone()
        assert row is not None  # an aggregate always returns a row
        due, oldest, retrying = row
        return OutboxStats(
            due=int(due),
            retrying=int(retrying),
            oldest_due_at=_utc(oldest),
        )

    def stats(self, *, owner: str | None = None) -> Stats:
        with self._tx(atomic=False) as cur:
            cur.execute(
                self._q(
                    "SELECT state, count(*) FROM {s}.hooks "
                    "WHERE (%(owner)s::text IS NULL OR owner = %(owner)s) GROUP BY state"
                ),
                {"owner": owner},
            )
            hooks = dict(cur.fetchall())
            cur.execute(
                self._q(
                    "SELECT state, count(*), min(created_at) FILTER (WHERE due_at IS NOT NULL), "
                    "count(*) FILTER (WHERE due_at IS NOT NULL AND last_error LIKE 'blocked%%') "
                    "FROM {s}.deliveries "
                    "WHERE (%(owner)s::text IS NULL OR owner = %(owner)s) GROUP BY state"
                ),
                {"owner": owner},
            )
            rows = cur.fetchall()
            quarantined = 0
            if owner is None:
                cur.execute(self._q("SELECT count(*) FROM {s}.quarantine"))
                count = cur.fetchone()
                quarantined = count[0] if count else 0
        deliveries = {r[0]: r[1] for r in rows}
        oldest = min((r[2] for r in rows if r[2] is not None), default=None)
        return Stats(
            hooks={s.value: hooks.get(s.value, 0) for s in HookState},
            deliveries={s.value: deliveries.get(s.value, 0) for s in DeliveryState},
            oldest_pending_at=_utc(oldest),
            quarantined=quarantined,
            blocked=sum(r[3] for r in rows),
        )

    def purge(self, *, before: datetime, limit: int | None = None) -> int:
        with self._tx() as cur:
            cur.execute(
                self._q(
                    "DELETE FROM {s}.deliveries WHERE id IN (SELECT id FROM {s}.deliveries "
                    "WHERE due_at IS NULL AND updated_at < %s ORDER BY updated_at LIMIT %s "
                    "FOR UPDATE SKIP LOCKED) RETURNING id, message_id"
                ),
                (before, limit),
            )
            rows = cur.fetchall()
            if not rows:
                return 0
            cur.execute(
                self._q("DELETE FROM {s}.attempts WHERE delivery_id = ANY(%s)"),
                ([r[0] for r in rows],),
            )
            cur.execute(
                self._q(
                    "DELETE FROM {s}.messages m WHERE m.id = ANY(%s) AND NOT EXISTS "
                    "(SELECT 1 FROM {s}.deliveries d WHERE d.message_id = m.id)"
                ),
                (sorted({r[1] for r in rows}),),
            )
        return len(rows)

    def check(self) -> list[StoreProblem]:
        """Look for broken invariants of the outbox (``resthooks check`` on SQLite does the
        same): every pending delivery has a due time and a live hook, every in-flight one a
        claim, no final one is still due, every delivery has its message; quarantined rows.

        PostgreSQL checks its own pages (checksums, ``amcheck``): this only reads the tables.

        Returns:
            What is wrong, one :class:`~resthooks.model.StoreProblem` per kind of problem.

        .. versionadded:: 0.2.0
        """
        problems: list[StoreProblem] = []
        with self._tx(atomic=False) as cur:
            for kind, description, query in _INVARIANTS:
                cur.execute(self._q(query))
                row = cur.fetchone()
                if row and row[0]:
                    problems.append(StoreProblem(kind, description, row[0]))
        return problems

    # -- wake-ups ----------------------------------------------------------------------------

    @property
    def notifies(self) -> bool:
        """Whether a worker should wait on :meth:`wait_for_work`
        (:class:`~resthooks.stores.WakesWorkers`): unless ``notify=False``, outbox emits (of
        any process on the schema) send ``NOTIFY`` at their commit, and this store can
        listen (it has a connection string or a pool, not only the host's connections)."""
        return self.notify is not False and self._provider is None

    def wait_for_work(self, timeout: float) -> bool:
        """Block until another process enqueues work, or ``timeout`` seconds pass.

        A wake-up hint for a worker loop, never needed for correctness: polling
        :meth:`claim_due` finds every due delivery on its own. It listens on one connection
        of its own (outside the pool), opened on the first call. It hears outbox emits
        (at their host's commit) unless the emitting store has ``notify=False``, and every
        enqueue of stores with ``notify=True``; retries that come due send nothing: use
        :meth:`~resthooks.stores.DeliveryStore.next_due_at` for those.

        Args:
            timeout: The longest wait, in seconds.

        Returns:
            ``True`` if a notification arrived, ``False`` on timeout.

        Raises:
            StoreError: If the listening connection fails (the next call reconnects).
        """
        with self._listener_lock:
            try:
                if self._listener is None or self._listener.closed:
                    self._listener = self._open_listener()
                for _ in self._listener.notifies(timeout=max(timeout, 0.0), stop_after=1):
                    return True
                return False
            except psycopg.Error as exc:
                if self._listener is not None:
                    self._listener.close()
                    self._listener = None
                raise StoreError(f"PostgreSQL: {exc}") from exc

    def _open_listener(self) -> psycopg.Connection[TupleRow]:
        if self._pool is None and not self._owns_pool:
            raise StoreError(
                "wait_for_work needs a connection string or a pool: this store uses the "
                "host's connections"
            )
        if self._owns_pool:
            conn = psycopg.connect(self._conninfo, autocommit=True)
        else:
            # psycopg-pool 3.3 also accepts callables for both (credentials that rotate).
            assert self._pool is not None
            conninfo = self._pool.conninfo
            kwargs = self._pool.kwargs
            conninfo = conninfo() if callable(conninfo) else conninfo
            kwargs = kwargs() if callable(kwargs) else kwargs
            conn = psycopg.connect(conninfo, **{**(kwargs or {}), "autocommit": True})
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        return conn

    def close(self) -> None:
        """Close the store's pool (not one passed in) and its listening connection."""
        if self._closed:
            return
        self._closed = True
        with self._listener_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        if self._owns_pool and self._pool is not None:
            self._pool.close()

    def __repr__(self) -> str:
        return f"<PostgresStore schema={self.schema!r}>"


def _check_in_transaction(
    connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any],
) -> None:
    status = connection.info.transaction_status
    if connection.autocommit and status == psycopg.pq.TransactionStatus.IDLE:
        raise ConfigurationError(
            "connection: is in autocommit mode with no transaction open, so the "
            "deliveries would commit on their own; open one with connection.transaction()"
        )
