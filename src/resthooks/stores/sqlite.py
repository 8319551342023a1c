"""The SQLite store: a durable outbox in one file, shared by threads and processes."""

# SQL text here is assembled only from this module's constants; values are always bound
# as parameters, never formatted in.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import hashlib
import heapq
import itertools
import os
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import attrs

from ..batching import Batching, batch_lane, plan
from ..errors import (
    ConfigurationError,
    DamagedRowError,
    HookLimitReached,
    ResthooksError,
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
    VacuumReport,
)
from ..outcomes import BatchRecord, HookEffect, RecordResult, StoredDelivery
from ._common import (
    WAITING_FOR_TURN,
    LazyDeliveries,
    attempt_from_row,
    delivery_from_row,
    endpoint_secrets,
    hook_from_row,
    target_host,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
# due_at of a delivery waiting behind another of its ordering key (see WAITING_FOR_TURN).
_WAITING_US = (WAITING_FOR_TURN - _EPOCH) // _MICROSECOND
_SQLITE_HEADER = b"SQLite format 3\x00"

#: ``PRAGMA application_id`` of a resthooks database ("RHKS"): how a file is known as ours.
APPLICATION_ID = 0x52484B53

# Ordered migrations: _MIGRATIONS[i] brings a database from user_version i to i + 1. A file
# at version v gets every migration after v applied on open, in one transaction.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE hooks (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            event TEXT NOT NULL,
            target_url TEXT NOT NULL,
            host TEXT NOT NULL,
            description TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            dead_reason TEXT,
            dead_at INTEGER,
            secret TEXT,
            previous_secret TEXT,
            previous_secret_until INTEGER,
            UNIQUE (owner, event, target_url)
        )
        """,
        "CREATE INDEX hooks_by_created ON hooks (created_at, id)",
        # What a fan-out reads, in the order it inserts: the hooks of one subscription come
        # straight off this index, with no sort and no lookup of the table's rows.
        "CREATE INDEX hooks_fan_out ON hooks (owner, event, state, created_at, id)",
        # One row per emit: the body (and what every delivery of the emit shares) is stored
        # once however many hooks it fans out to. ``remaining`` counts the deliveries still
        # pointing at it, so purge can drop it with the last of them. A fan-out's rows are
        # inserted by one statement, so their seqs are consecutive: first_seq..last_seq
        # finds them by rowid, with no index on deliveries.message_id to slow the fan-out.
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            owner TEXT NOT NULL,
            event TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            body BLOB NOT NULL,
            remaining INTEGER NOT NULL,
            first_seq INTEGER,
            last_seq INTEGER
        )
        """,
        "CREATE INDEX messages_by_owner ON messages (owner, created_at)",
        # Kept narrow on purpose: a fan-out writes one row per hook, and every byte and index
        # here is paid 10,000 times by an emit to 10,000 hooks. ``due_at`` is what claiming
        # orders by: next_attempt_at while pending, lease_until while in flight, NULL once
        # final. Times are integer microseconds since the Unix epoch.
        # The public id is not stored: it is ``msg_`` + seq + salt (16 hex digits each, see
        # _delivery_id), so a lookup by id is a rowid lookup and the fan-out maintains no
        # unique index of random strings. The salt (63 random bits per row, never negative)
        # keeps ids unguessable; the seq keeps them unique, even when a purge lets SQLite
        # reuse a seq.
        """
        CREATE TABLE deliveries (
            seq INTEGER PRIMARY KEY,
            salt INTEGER NOT NULL,
            hook_id TEXT NOT NULL,
            message_id INTEGER NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER,
            updated_at INTEGER NOT NULL,
            last_error TEXT,
            token TEXT,
            lease_until INTEGER,
            due_at INTEGER
        )
        """,
        "CREATE INDEX deliveries_due ON deliveries (due_at, seq) WHERE due_at IS NOT NULL",
        # Open deliveries by hook. An index keyed by hook takes a scattered entry per hook
        # on every fan-out, so it holds open deliveries only (it stays as small as the
        # backlog, not the history), and neither its key nor its condition uses a column
        # that claiming changes, so a claim does not touch it: next_attempt_at is set
        # exactly while a delivery is not final.
        "CREATE INDEX deliveries_open_by_hook ON deliveries (hook_id, seq)"
        " WHERE next_attempt_at IS NOT NULL",
        "CREATE INDEX deliveries_in_flight ON deliveries (lease_until) WHERE state = 'in_flight'",
        "CREATE INDEX deliveries_final ON deliveries (updated_at) WHERE due_at IS NULL",
        """
        CREATE TABLE attempts (
            delivery_id TEXT NOT NULL,
            number INTEGER NOT NULL,
            started_at INTEGER NOT NULL,
            duration REAL NOT NULL,
            status INTEGER,
            error_kind TEXT,
            error TEXT,
            response_excerpt TEXT NOT NULL
        )
        """,
        "CREATE INDEX attempts_by_delivery ON attempts (delivery_id)",
    ),
    (
        # Delivery rows the store could not read back (a damaged or hand-edited file), moved
        # out of the outbox so they cannot fail every claim. ``row`` is the raw row as
        # SQLite quotes it; its message stays (``remaining`` still counts it) so the body is
        # not lost.
        """
        CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY,
            delivery_id TEXT NOT NULL,
            hook_id TEXT,
            message_id INTEGER,
            reason TEXT NOT NULL,
            row TEXT NOT NULL,
            quarantined_at INTEGER NOT NULL
        )
        """,
    ),
)

#: What every table and index of the store is named with, so that it can share a file with
#: the tables of the host application (``SQLiteStore(path, adopt=True)``).
TABLE_PREFIX = "resthooks_"
_TABLES = ("hooks", "messages", "deliveries", "attempts", "quarantine")
_TABLE_NAME = re.compile(r"\b(FROM|INTO|UPDATE|JOIN|TABLE|ON)(\s+)(" + "|".join(_TABLES) + r")\b")
_INDEX_NAME = re.compile(r"\bCREATE INDEX (\w+)")


def _prefixed(statement: str) -> str:
    """A statement of the history written before the prefix, with the prefixed names."""
    statement = _TABLE_NAME.sub(lambda m: f"{m[1]}{m[2]}{TABLE_PREFIX}{m[3]}", statement)
    return _INDEX_NAME.sub(lambda m: f"CREATE INDEX {TABLE_PREFIX}{m[1]}", statement)


# The migrations above were written before the prefix. This one renames what they made; a
# database the store adopts gets the prefixed names at once (see _adopted_migrations).
_RENAMED_AT = len(_MIGRATIONS)
_MIGRATIONS = (
    *_MIGRATIONS,
    (
        *(f"ALTER TABLE {table} RENAME TO {TABLE_PREFIX}{table}" for table in _TABLES),
        *(
            f"DROP INDEX {index}"
            for migration in _MIGRATIONS
            for statement in migration
            for index in _INDEX_NAME.findall(statement)
        ),
        *(
            _prefixed(statement)
            for migration in _MIGRATIONS
            for statement in migration
            if _INDEX_NAME.search(statement)
        ),
    ),
)

# Written after the rename, so with the prefixed names.
_MIGRATIONS = (
    *_MIGRATIONS,
    (
        # Open deliveries by hook, in the order they fall due: a claim under the per-host
        # limit reads the oldest pending deliveries of a hook in a few index steps however
        # long its backlog (it read every open delivery of the hook and sorted them). The
        # key and condition still use no column a claim changes (next_attempt_at is set while
        # a delivery is not final and changes only when an outcome is recorded), so a claim
        # still does not touch this index; removing a hook still finds its open deliveries.
        "DROP INDEX resthooks_deliveries_open_by_hook",
        "CREATE INDEX resthooks_deliveries_open_by_hook_due ON resthooks_deliveries "
        "(hook_id, next_attempt_at, seq) WHERE next_attempt_at IS NOT NULL",
    ),
    # The W3C traceparent of the emit, shared by its deliveries (NULL when not traced).
    ("ALTER TABLE resthooks_messages ADD COLUMN trace_context TEXT",),
)

_MIGRATIONS = (
    *_MIGRATIONS,
    # Version 6 (written with the prefix): delivery ids reveal nothing (see _delivery_id).
    # The rows already there keep the ids they were given (receivers deduplicate on them,
    # hosts may have kept them): their salt gets its top bit set, which marks an id of the
    # old form. And hooks get an ed25519 key for v1a signatures.
    (
        "CREATE TABLE resthooks_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
        "INSERT INTO resthooks_meta (name, value) VALUES ('delivery_id_key', randomblob(32))",
        "UPDATE resthooks_deliveries SET salt = salt | -9223372036854775808",
        "ALTER TABLE resthooks_hooks ADD COLUMN signing_key TEXT",
        # And what intent verification keeps while a hook waits for its target's confirmation.
        "ALTER TABLE resthooks_hooks ADD COLUMN confirm_secret TEXT",
        "ALTER TABLE resthooks_hooks ADD COLUMN confirm_by INTEGER",
    ),
)

# Version 7: the attempt log is found by the delivery's row number. It was indexed by the
# public id, whose masked seq is random: every attempt written took a scattered entry in that
# index, and writing those pages was more than half of each record's COMMIT. Rows are
# recorded in about the order they were enqueued, so an index on the seq grows at its end.
# The rows already there get their seq from their id (see _backfill_attempt_seqs).
_ATTEMPTS_BY_SEQ_AT = len(_MIGRATIONS)
_MIGRATIONS = (
    *_MIGRATIONS,
    (
        "ALTER TABLE resthooks_attempts ADD COLUMN delivery_seq INTEGER",
        "DROP INDEX resthooks_attempts_by_delivery",
        "CREATE INDEX resthooks_attempts_by_seq ON resthooks_attempts (delivery_seq)",
    ),
)

# Version 8: ordering keys. NULL (no key) costs a delivery row nothing. The open deliveries
# of a hook and key in emit order: who has the key's turn, who is next. Its key and
# condition use no column a claim changes, so a claim does not touch it, and deliveries
# without a key are not in it at all.
_MIGRATIONS = (
    *_MIGRATIONS,
    (
        "ALTER TABLE resthooks_deliveries ADD COLUMN ordering_key TEXT",
        "CREATE INDEX resthooks_deliveries_turns ON resthooks_deliveries "
        "(hook_id, ordering_key, seq) "
        "WHERE ordering_key IS NOT NULL AND next_attempt_at IS NOT NULL",
    ),
)

# Version 9: batching (see resthooks.batching). A hook's window as text (NULL: not batched);
# a batch's entity count, and whether it is its hook's open batch (never claimed, with room:
# set at its emit, cleared by the claim, the cancellation or when it is full). The open
# batches by hook and lane (at most two per batched hook); the batched hooks by subscription,
# so an emit finds at once whether any hook batches at all.
_MIGRATIONS = (
    *_MIGRATIONS,
    (
        "ALTER TABLE resthooks_hooks ADD COLUMN batching TEXT",
        "ALTER TABLE resthooks_deliveries ADD COLUMN batch_entities INTEGER",
        "ALTER TABLE resthooks_deliveries ADD COLUMN batch_open INTEGER",
        "CREATE INDEX resthooks_deliveries_open_batches ON resthooks_deliveries "
        "(hook_id, ordering_key) WHERE batch_open IS NOT NULL",
        "CREATE INDEX resthooks_hooks_batched ON resthooks_hooks (owner, event, created_at, id) "
        "WHERE batching IS NOT NULL",
    ),
)

#: The schema version this release writes (``PRAGMA user_version`` of a file of its own,
#: the ``resthooks_schema`` table of a file it shares).
SCHEMA_VERSION = len(_MIGRATIONS)


def _adopted_migrations(version: int) -> Iterator[str]:
    """The statements bringing a shared (adopted) database from ``version`` to the latest:
    it never had tables without the prefix, so the history before the rename is replayed
    with the prefixed names and the rename itself is skipped."""
    for number in range(version, SCHEMA_VERSION):
        if number < _RENAMED_AT:
            yield from (_prefixed(statement) for statement in _MIGRATIONS[number])
        elif number > _RENAMED_AT:
            yield from _MIGRATIONS[number]


# Rows the plain oldest-first scan may pass over (those of saturated hosts) before claim_due
# falls back to one index probe per host (which stays fast however large one saturated
# host's backlog is). The rows it claims do not count: a large claim of hosts with room is
# one scan, not a probe of every hook.
_SCAN_BUDGET = 256

# How long a writer waits before trying again for another process's write lock: the first
# wait, and the longest (see SQLiteStore._begin_immediate).
_FIRST_WAIT = 0.00005
_LAST_WAIT = 0.001

# Hook rows the claims remember as built Hooks (a dict of at most this many, then cleared).
_HOOKS_SEEN = 4096

# Deliveries whose rows record reads in one statement (SQLite allows 32,766 variables).
_READ_CHUNK = 500

_HOOK_COLUMNS = (
    "id, owner, event, target_url, description, state, created_at, updated_at, dead_reason,"
    " dead_at, secret, previous_secret, previous_secret_until, signing_key, confirm_secret,"
    " confirm_by, batching"
)
# The public id of a delivery, from its row (see _delivery_id): a function each connection
# of the store registers, with the file's key.
_ID_SQL = "resthooks_delivery_id({0}seq, {0}salt)"
# Deliveries are always read joined with their message: ``d`` and ``m``.
_DELIVERY_COLUMNS = (
    f"{_ID_SQL.format('d.')}, d.hook_id, m.owner, m.event, d.state, d.attempts,"
    " d.next_attempt_at, m.created_at, d.updated_at, d.last_error, d.ordering_key"
)
_DELIVERY_FROM = "resthooks_deliveries d JOIN resthooks_messages m ON m.id = d.message_id"
# The same join, driven from the messages of one owner (``m.owner = ?`` in the WHERE).
_OWNER_DELIVERY_FROM = (
    "resthooks_messages m JOIN resthooks_deliveries d ON d.seq BETWEEN m.first_seq AND m.last_seq"
    " AND d.message_id = m.id"
)
_OPEN = "due_at IS NOT NULL"
_CLAIM_COLUMNS = _DELIVERY_COLUMNS + ", " + ", ".join(f"h.{c}" for c in _HOOK_COLUMNS.split(", "))


_SALT_SQL = "random() & 0x7fffffffffffffff"
_I63 = 1 << 63
_U64 = (1 << 64) - 1
_ID_LENGTH = len("msg_") + 32
_HEX = frozenset("0123456789abcdef")


def _id_hasher(key: bytes) -> Any:
    """Keyed BLAKE2b, ready to be copied: copying beats keying anew for every id."""
    return hashlib.blake2b(key=key, digest_size=8)


def _seq_mask(hasher: Any, salt: int) -> int:
    """64 pseudo-random bits from the salt under the file's key."""
    h = hasher.copy()
    h.update(salt.to_bytes(8, "big"))
    return int.from_bytes(h.digest(), "big")


def _delivery_id(seq: int, salt: int, hasher: Any) -> str:
    """The public id of the delivery in row ``seq``: what _ID_SQL computes in SQL.

    ``msg_`` and 32 hex digits: the seq masked by a keyed hash of the salt (the key is the
    file's own, made when the file was), then the salt (63 random bits) with the top bit set.
    Without the key the id is random: it shows no counter, so a receiver cannot read the
    host's delivery volume from it. It is unique (the seq is), and decoding it gives the seq
    back: a lookup by id is a rowid lookup, and the fan-out maintains no index of random
    strings. A row from before schema version 6 (its stored salt has the top bit set) keeps
    its old id, ``msg_`` + seq + salt, whose 17th hex digit is 0-7, never 8-f.
    """
    if salt < 0:
        return f"msg_{seq:016x}{salt + _I63:016x}"
    return f"msg_{(seq ^ _seq_mask(hasher, salt)) & _U64:016x}{salt | _I63:016x}"


def _parse_id(delivery_id: object, hasher: Any) -> tuple[int, int] | None:
    """``(seq, stored salt)`` of a delivery id this store made, or None for any other string."""
    if (
        not isinstance(delivery_id, str)
        or len(delivery_id) != _ID_LENGTH
        or not delivery_id.startswith("msg_")
        or not _HEX.issuperset(delivery_id[4:])
    ):
        return None
    first, second = int(delivery_id[4:20], 16), int(delivery_id[20:], 16)
    if second >= _I63:  # the current form
        salt = second - _I63
        seq = first ^ _seq_mask(hasher, salt)
        return (seq, salt) if 0 < seq < _I63 else None
    return (first, second - _I63) if first < _I63 else None  # a row from before version 6


def _us(value: datetime, field: str) -> int:
    if value.utcoffset() is None:
        raise ConfigurationError(f"{field} must be an aware datetime, got a naive one")
    return (value - _EPOCH) // _MICROSECOND


def _us_or_none(value: datetime | None, field: str) -> int | None:
    return None if value is None else _us(value, field)


def _dt(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + value * _MICROSECOND


def _dt_required(value: int) -> datetime:
    return _EPOCH + value * _MICROSECOND


def _hook(row: Sequence[Any]) -> Hook:
    return hook_from_row(row, _dt_required)


def _delivery(row: Sequence[Any]) -> Delivery:
    return delivery_from_row(row, _dt_required)


# The raw columns of a delivery row, as SQLite quotes them (a BLOB as X'..'), for quarantine.
_QUOTED_ROW = " || ',' || ".join(
    f"quote({c})"
    for c in (
        "seq",
        "salt",
        "hook_id",
        "message_id",
        "state",
        "attempts",
        "next_attempt_at",
        "updated_at",
        "last_error",
        "token",
        "lease_until",
        "due_at",
        "ordering_key",
    )
)
# The range of times a datetime can hold, in the store's microseconds.
_MIN_US = (datetime(1, 1, 2, tzinfo=timezone.utc) - _EPOCH) // _MICROSECOND
_MAX_US = (datetime(9999, 12, 30, tzinfo=timezone.utc) - _EPOCH) // _MICROSECOND


_TIMES_OK = " AND ".join(
    f"({c} IS NULL OR (typeof({c}) = 'integer' AND {c} BETWEEN :lo AND :hi))"
    for c in ("next_attempt_at", "updated_at", "lease_until", "due_at")
)
# (kind, what it means, a query counting the rows that break it; :lo and :hi bound the times).
_INVARIANTS: tuple[tuple[str, str, str], ...] = (
    (
        "unknown_state",
        "deliveries or hooks in a state resthooks does not know",
        "SELECT (SELECT count(*) FROM resthooks_deliveries WHERE state NOT IN "
        "('pending', 'in_flight', 'delivered', 'failed', 'cancelled')) + "
        "(SELECT count(*) FROM resthooks_hooks WHERE state NOT IN ('active', 'dead'))",
    ),
    (
        "time_out_of_range",
        "deliveries with a time no datetime can hold",
        f"SELECT count(*) FROM resthooks_deliveries WHERE NOT ({_TIMES_OK})",
    ),
    (
        "pending_without_due_time",
        "pending deliveries that no claim will ever pick (no due time, or not their own)",
        "SELECT count(*) FROM resthooks_deliveries WHERE state = 'pending' "
        "AND (next_attempt_at IS NULL OR due_at IS NULL OR due_at != next_attempt_at)",
    ),
    (
        "in_flight_without_claim",
        "in-flight deliveries without a claim token or lease",
        "SELECT count(*) FROM resthooks_deliveries WHERE state = 'in_flight' AND (token IS NULL "
        "OR lease_until IS NULL OR due_at IS NULL OR next_attempt_at IS NULL)",
    ),
    (
        "final_still_due",
        "final deliveries that still have a due time",
        "SELECT count(*) FROM resthooks_deliveries "
        "WHERE state IN ('delivered', 'failed', 'cancelled') "
        "AND (due_at IS NOT NULL OR next_attempt_at IS NOT NULL)",
    ),
    (
        "open_delivery_without_hook",
        "pending or in-flight deliveries whose hook does not exist",
        "SELECT count(*) FROM resthooks_deliveries d WHERE d.due_at IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM resthooks_hooks h WHERE h.id = d.hook_id)",
    ),
    (
        "open_delivery_of_dead_hook",
        "pending or in-flight deliveries of a dead hook (they are cancelled when it dies)",
        "SELECT count(*) FROM resthooks_deliveries d JOIN resthooks_hooks h ON h.id = d.hook_id "
        "WHERE d.due_at IS NOT NULL AND h.state = 'dead'",
    ),
    (
        "delivery_without_message",
        "deliveries whose message (the body) does not exist",
        "SELECT count(*) FROM resthooks_deliveries d WHERE NOT EXISTS "
        "(SELECT 1 FROM resthooks_messages m WHERE m.id = d.message_id)",
    ),
    (
        "message_count_mismatch",
        "messages whose count of deliveries is wrong (purge would drop a body too early, or never)",
        "SELECT count(*) FROM resthooks_messages m WHERE m.remaining != "
        "(SELECT count(*) FROM resthooks_deliveries d WHERE d.message_id = m.id) + "
        "(SELECT count(*) FROM resthooks_quarantine q WHERE q.message_id = m.id)",
    ),
    (
        "quarantined",
        "delivery rows moved aside because they could not be read (see the quarantine table)",
        "SELECT count(*) FROM resthooks_quarantine",
    ),
)

_SQL_NOW_US = "SELECT CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)"


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return f"{type(cause).__name__}: {cause}"[:200]


# What reading a damaged file can raise: SQLite's errors, and text that is not UTF-8 (a
# damaged schema or row, decoded by Python's sqlite3).
_DB_ERRORS = (sqlite3.Error, UnicodeDecodeError)


def _is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _attempt_row(delivery_id: str, seq: int, attempt: Attempt) -> tuple[Any, ...]:
    """The values of one row of the attempt log (see _INSERT_ATTEMPT)."""
    return (
        delivery_id,
        seq,
        attempt.number,
        _us(attempt.started_at, "started_at"),
        attempt.duration,
        attempt.status,
        attempt.error_kind,
        attempt.error,
        attempt.response_excerpt,
    )


_INSERT_ATTEMPT = (
    "INSERT INTO resthooks_attempts (delivery_id, delivery_seq, number, started_at, duration, "
    "status, error_kind, error, response_excerpt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_RECORD_DELIVERY = (
    "UPDATE resthooks_deliveries SET state = ?, attempts = ?, next_attempt_at = ?, due_at = ?, "
    "last_error = ?, token = NULL, lease_until = NULL, updated_at = ? WHERE seq = ?"
)

# Give the turn of a hook's ordering key to its oldest waiting delivery, due now: ?1 now,
# ?2 the hook, ?3 the key, ?4 the waiting time (see WAITING_FOR_TURN).
_HAND_OVER = (
    "UPDATE resthooks_deliveries SET due_at = ?1, next_attempt_at = ?1 WHERE seq = ("
    "SELECT seq FROM resthooks_deliveries WHERE hook_id = ?2 AND ordering_key = ?3 "
    "AND next_attempt_at IS NOT NULL ORDER BY seq LIMIT 1) AND due_at = ?4"
)


# Whether the file has a batched hook at all (one step of an index that is empty without).
_ANY_BATCHED = "SELECT 1 FROM resthooks_hooks WHERE batching IS NOT NULL LIMIT 1"
# Seal an open batch (it is full, or the next emit did not fit): it takes no more entities
# and is due now, unless it waits for its ordering key's turn. ?1 now, ?2 the waiting time,
# ?3 its seq.
_SEAL_BATCH = (
    "UPDATE resthooks_deliveries SET batch_open = NULL, "
    "next_attempt_at = CASE WHEN due_at = ?2 THEN next_attempt_at ELSE min(next_attempt_at, ?1) "
    "END, due_at = CASE WHEN due_at = ?2 THEN due_at ELSE min(due_at, ?1) END WHERE seq = ?3"
)


class _RecordWrites:
    """What recording a batch writes, gathered to be written with one statement each."""

    __slots__ = ("attempts", "deliveries", "turns")

    def __init__(self) -> None:
        self.deliveries: list[tuple[Any, ...]] = []
        self.attempts: list[tuple[Any, ...]] = []
        # (due at, hook id, ordering key, waiting) of the keys whose turn is handed on, once
        # the deliveries that had it are written final.
        self.turns: list[tuple[int, str, str, int]] = []

    def flush(self, conn: sqlite3.Connection) -> None:
        if self.deliveries:
            conn.executemany(_RECORD_DELIVERY, self.deliveries)
            self.deliveries.clear()
        if self.attempts:
            conn.executemany(_INSERT_ATTEMPT, self.attempts)
            self.attempts.clear()
        if self.turns:
            conn.executemany(_HAND_OVER, self.turns)
            self.turns.clear()


class SQLiteStore:
    """A store in one SQLite file: durable, and shared by threads and processes on one host.

    Hooks, deliveries (the outbox), message bodies and the attempt log all live in the file,
    so a restart loses nothing. The file is in WAL mode; every transaction that writes starts
    with ``BEGIN IMMEDIATE`` and waits up to ``busy_timeout`` for another writer. Each thread
    gets its own connection; several processes may open the same file (on one machine: WAL
    does not work over a network file system). See the storage guide for what is in the
    file, the durability settings and backups.

    The store's tables and indexes are all named ``resthooks_*``, so it can live inside the
    host application's own database: give ``adopt=True`` to open a file that holds other
    tables (it adds its own and touches nothing else: not the host's tables, its
    ``application_id``, ``user_version`` or journal mode), or a callable returning the host's
    own connection (Django's, say) to work on it, inside the host's transactions.

    Args:
        path: The database file. Created, with its schema, if it does not exist. Or a callable
            returning the host's :class:`sqlite3.Connection` for the calling thread: then the
            store opens no connection of its own, and each operation runs on the host's
            connection, inside the host's open transaction if there is one (as a savepoint:
            it commits or rolls back with the host's), else in a transaction of its own; the
            store never closes it (``synchronous`` is the host's affair then). Implies
            ``adopt``.
        adopt: Open a database that holds another application's tables too (the host's own
            database), keeping the store's schema version in a ``resthooks_schema`` table.
            Without it such a file is refused, untouched (a mistyped path must not grow
            tables in someone else's database).
        synchronous: ``"NORMAL"`` (the default: a commit survives a crash of the process; a
            power loss may lose the last transactions, never corrupt the file) or ``"FULL"``
            (a commit also survives a power loss, at several times the cost per transaction).
        busy_timeout: Seconds a transaction waits for another connection's write lock before
            it fails with :class:`~resthooks.errors.StoreError`. Default 5 s.

    Raises:
        SchemaError: If the file is not a resthooks database (another application's SQLite
            file without ``adopt``, or not SQLite at all), or was written by a newer version
            of resthooks. The file is left as it was.
        StoreError: If the file cannot be opened or created (a read-only directory, say).
        ConfigurationError: For an unknown ``synchronous`` or a negative ``busy_timeout``.

    Example:
        >>> import os, tempfile
        >>> from resthooks import Dispatcher
        >>> from resthooks.stores import SQLiteStore
        >>> from resthooks.testing import FakeClock, RecordingTransport
        >>> path = os.path.join(tempfile.mkdtemp(), "hooks.db")
        >>> store = SQLiteStore(path)
        >>> dispatcher = Dispatcher(store, clock=FakeClock(), transport=RecordingTransport())
        >>> _ = dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
        >>> [d.state.value for d in dispatcher.emit("party/created", {"id": 1}, owner="acme")]
        ['pending']
        >>> store.close()
        >>> store = SQLiteStore(path)  # reopened: the delivery is still there
        >>> store.stats().deliveries["pending"]
        1
        >>> store.close()

        In the host's own database, next to its tables:

        >>> import sqlite3
        >>> app = os.path.join(tempfile.mkdtemp(), "app.db")
        >>> host = sqlite3.connect(app)
        >>> _ = host.execute("CREATE TABLE hooks (name TEXT)")  # the host's own "hooks"
        >>> host.commit()
        >>> with SQLiteStore(app, adopt=True) as shared:
        ...     shared.stats().hooks["active"]
        0
        >>> tables = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        >>> [name for (name,) in host.execute(tables)]  # doctest: +NORMALIZE_WHITESPACE
        ['hooks', 'resthooks_attempts', 'resthooks_deliveries', 'resthooks_hooks',
         'resthooks_messages', 'resthooks_meta', 'resthooks_quarantine', 'resthooks_schema']
        >>> host.close()

    .. versionchanged:: 0.2.0
       Tables named ``resthooks_*`` (schema version 3; older files are renamed when
       opened); ``adopt``; ``path`` may be a callable returning the host's connection.
    """

    #: Bytes the WAL file is cut back to after a checkpoint (``journal_size_limit``): 4 MiB.
    #:
    #: .. versionadded:: 0.2.0
    WAL_SIZE_LIMIT = 4 * 1024 * 1024

    #: It batches the emits of hooks subscribed with a :class:`~resthooks.Batching`.
    #:
    #: .. versionadded:: 0.2.0
    batches = True

    def __init__(
        self,
        path: str | os.PathLike[str] | Callable[[], sqlite3.Connection],
        *,
        adopt: bool = False,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout: float = 5.0,
    ) -> None:
        if sqlite3.sqlite_version_info < (3, 35, 0):  # pragma: no cover - depends on the build
            raise ConfigurationError(
                f"SQLiteStore needs SQLite 3.35 or newer; this Python has {sqlite3.sqlite_version}"
            )
        if not isinstance(synchronous, str) or synchronous.upper() not in ("NORMAL", "FULL"):
            raise ConfigurationError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}")
        if (
            isinstance(busy_timeout, bool)
            or not isinstance(busy_timeout, (int, float))
            or not busy_timeout >= 0
        ):
            raise ConfigurationError(
                f"busy_timeout must be a number of seconds >= 0, not {busy_timeout!r}"
            )
        self._provider: Callable[[], sqlite3.Connection] | None = None
        self._with_id_function: dict[int, sqlite3.Connection] = {}
        if callable(path):
            self._provider = path
            self.path = "the host's connection"
        else:
            self.path = os.fspath(path)
        self.adopt = bool(adopt) or self._provider is not None
        self._adopted = False  # whether the database is shared (set by _open_schema)
        self.synchronous = synchronous.upper()
        self.busy_timeout = float(busy_timeout)
        self._local = threading.local()
        # Each thread's own connection, by thread. A thread that has ended has its connection
        # closed when the next one is opened: a process that runs workers again and again
        # (each run its own store threads) would otherwise keep every run's connections
        # open, each with its page cache, until the store is closed.
        self._connections: dict[threading.Thread, sqlite3.Connection] = {}
        self._connections_lock = threading.Lock()
        self._write_lock = threading.Lock()
        # Rows moved aside by the transaction in progress (under _write_lock), then, once it
        # committed, waiting for take_quarantined.
        self._pending_quarantine: list[QuarantinedDelivery] = []
        self._reported_quarantine: list[QuarantinedDelivery] = []
        self._quarantine_lock = threading.Lock()
        self._closed = False
        self._hooks_seen: dict[tuple[Any, ...], Hook] = {}
        self._open_schema()

    # -- connections and transactions ----------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                # bytes: a path the file system took with surrogateescape (from argv, say)
                # cannot be encoded as UTF-8, but it names a file all the same.
                os.fsencode(self.path),
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,  # each connection is used by one thread, then closed
            )
        except _DB_ERRORS as exc:
            raise self._open_error(exc) from exc
        try:
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.create_function("resthooks_delivery_id", 2, self._id_of, deterministic=True)
            # A WAL that grew (a long reader, a burst) is cut back to this at the next
            # checkpoint; without it the file keeps its largest size forever.
            conn.execute(f"PRAGMA journal_size_limit = {self.WAL_SIZE_LIMIT}")
        except _DB_ERRORS as exc:
            conn.close()
            raise self._wrap(exc, "configuring the connection") from exc
        return conn

    def _id_of(self, seq: object, salt: object) -> str:
        if not isinstance(seq, int) or not isinstance(salt, int):
            # A damaged row (see quarantine): an id that names it and matches nothing.
            return f"msg_unreadable_{str(seq)[:40]}"
        return _delivery_id(seq, salt, self._id_hasher)

    def _key_of(self, delivery_id: object) -> tuple[int, int] | None:
        return _parse_id(delivery_id, self._id_hasher)

    def _conn(self) -> sqlite3.Connection:
        if self._provider is not None:
            if self._closed:
                raise StoreError("the store is closed")
            host = self._provider()
            if not isinstance(host, sqlite3.Connection):
                raise ConfigurationError(
                    "path: the callable must return a sqlite3.Connection, not "
                    f"{type(host).__name__}"
                )
            if self._with_id_function.get(id(host)) is not host:
                # The host's connection needs the store's id function as ours do. Held here
                # (so its id cannot be reused while listed), the last few only.
                host.create_function("resthooks_delivery_id", 2, self._id_of, deterministic=True)
                if len(self._with_id_function) >= 64:
                    del self._with_id_function[next(iter(self._with_id_function))]
                self._with_id_function[id(host)] = host
            return host
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreError(f"the store on {self.path!r} is closed")
            conn = self._connect()
            with self._connections_lock:
                ended = [t for t in self._connections if not t.is_alive()]
                gone = [self._connections.pop(t) for t in ended]
                self._connections[threading.current_thread()] = conn
            for old in gone:
                with contextlib.suppress(sqlite3.Error):
                    old.close()
            self._local.conn = conn
        elif self._closed:
            raise StoreError(f"the store on {self.path!r} is closed")
        return conn

    def _open_error(self, exc: BaseException) -> StoreError:
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.access(directory, os.W_OK):
            return StoreError(
                f"cannot open {self.path!r}: its directory is not writable (SQLite needs to "
                f"create the database and its -wal and -shm files there): {exc}"
            )
        return StoreError(f"cannot open {self.path!r}: {exc}")

    def _wrap(self, exc: BaseException, doing: str) -> StoreError:
        if _is_busy(exc):
            return StoreError(
                f"{doing} on {self.path!r}: the database stayed locked by another connection "
                f"for longer than busy_timeout ({self.busy_timeout} s); nothing was written"
            )
        if "database or disk is full" in str(exc) or getattr(exc, "sqlite_errorname", "") in (
            "SQLITE_FULL",
            "SQLITE_IOERR_WRITE",
        ):
            return StoreError(
                f"{doing} on {self.path!r}: the disk is full; nothing was written. The store "
                "carries on by itself once there is space again"
            )
        if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
            return SchemaError(f"{self.path!r} is not a SQLite database: {exc}")
        if "readonly" in str(exc).replace(" ", "").lower() or "unable to open" in str(exc):
            if not os.access(os.path.dirname(os.path.abspath(self.path)), os.W_OK):
                return self._open_error(exc)
            return StoreError(f"{doing} on {self.path!r}: the database is read-only: {exc}")
        return StoreError(f"{doing} on {self.path!r} failed: {exc}")

    @contextmanager
    def _write(self, doing: str) -> Iterator[sqlite3.Connection]:
        """One writing transaction: BEGIN IMMEDIATE, so a busy database waits at the start
        (where nothing is written yet) instead of failing half-way.

        Threads of this process queue on a lock first: SQLite's own busy handler waits by
        sleeping and polling, which wastes time between threads that a lock hands over at
        once. Other processes still meet SQLite's lock and its busy timeout.
        """
        conn = self._conn()
        if conn.in_transaction:  # the host's own transaction: join it
            with self._savepoint(conn, doing):
                yield conn
            return
        deadline = time.monotonic() + self.busy_timeout
        if not self._write_lock.acquire(timeout=self.busy_timeout):
            raise StoreError(
                f"{doing} on {self.path!r}: other threads of this process held the write "
                f"lock for longer than busy_timeout ({self.busy_timeout} s); nothing was written"
            )
        try:
            try:
                if self._provider is None:
                    self._begin_immediate(conn, deadline)
                else:  # the host's connection: its own busy timeout
                    conn.execute("BEGIN IMMEDIATE")
            except _DB_ERRORS as exc:
                raise self._wrap(exc, doing) from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                self._pending_quarantine.clear()
                # The transaction may already be gone; the original error says why.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, _DB_ERRORS):
                    raise self._wrap(exc, doing) from exc
                raise
            if self._pending_quarantine:
                with self._quarantine_lock:
                    self._reported_quarantine.extend(self._pending_quarantine)
                self._pending_quarantine.clear()
        finally:
            self._write_lock.release()

    def _begin_immediate(self, conn: sqlite3.Connection, deadline: float) -> None:
        """BEGIN IMMEDIATE on one of the store's connections, waiting for another process's
        write lock in short steps until ``deadline`` (monotonic seconds).

        SQLite's own busy handler sleeps 1, 2, 5, 10, 15... ms between tries: a worker
        process whose neighbour holds the lock for 3 ms sleeps until 8 ms, idle while the
        lock is free, and several processes on one file add up to little more than one.
        Here the wait starts at 50 µs and doubles up to 1 ms, so the lock changes hands
        within a fraction of the time it was held.
        """
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            wait = _FIRST_WAIT
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    left = deadline - time.monotonic()
                    if not _is_busy(exc) or left <= 0:
                        raise
                # Waiting for another process's lock, as SQLite's busy handler would (it
                # sleeps too); not the Dispatcher's time, which only the Clock tells.
                time.sleep(min(wait, left))
                wait = min(wait * 2, _LAST_WAIT)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")

    @contextmanager
    def _savepoint(self, conn: sqlite3.Connection, doing: str) -> Iterator[None]:
        """Inside the host's open transaction (a connection of the host's): a savepoint, so
        a failure undoes this operation only, and the host's COMMIT or ROLLBACK decides."""
        try:
            conn.execute("SAVEPOINT resthooks")
        except _DB_ERRORS as exc:
            raise self._wrap(exc, doing) from exc
        try:
            yield
            conn.execute("RELEASE resthooks")
        except BaseException as exc:
            self._pending_quarantine.clear()
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK TO resthooks")
                conn.execute("RELEASE resthooks")
            if isinstance(exc, _DB_ERRORS):
                raise self._wrap(exc, doing) from exc
            raise
        if self._pending_quarantine:
            with self._quarantine_lock:
                self._reported_quarantine.extend(self._pending_quarantine)
            self._pending_quarantine.clear()

    @contextmanager
    def _read(self, doing: str) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot for several SELECTs."""
        conn = self._conn()
        if conn.in_transaction:  # the host's own transaction is the snapshot
            yield conn
            return
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        except _DB_ERRORS as exc:
            raise self._wrap(exc, doing) from exc

    # -- schema ------------------------------------------------------------------------------

    def _open_schema(self) -> None:
        if self._provider is None:
            self._check_header()
        conn = self._conn()
        try:
            version, self._adopted = self._identify(conn)
            if version == 0 and not self._adopted:
                # Only possible before anything is written (WAL mode included): then purge
                # can give free pages back to the file system.
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            # Only now that the file is known to be ours (or empty) may anything be written;
            # a shared file keeps the journal mode its application chose.
            if (
                not self._adopted
                and conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal"
            ):
                conn.execute("PRAGMA journal_mode = WAL")
            if version < SCHEMA_VERSION:
                self._migrate(conn)
            row = conn.execute(
                "SELECT value FROM resthooks_meta WHERE name = 'delivery_id_key'"
            ).fetchone()
            if row is None or not isinstance(row[0], bytes) or len(row[0]) < 16:
                raise SchemaError(f"{self.path!r} has no usable delivery id key in resthooks_meta")
            self._id_hasher = _id_hasher(row[0])
        except _DB_ERRORS as exc:
            self.close()
            raise self._wrap(exc, "opening the database") from exc
        except ResthooksError:
            self.close()
            raise
        except Exception as exc:  # a damaged file can surprise the code reading it
            self.close()
            raise SchemaError(
                f"{self.path!r} cannot be opened as a resthooks database: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        except BaseException:
            self.close()
            raise

    def _check_header(self) -> None:
        # Read the first bytes ourselves: a file that is not SQLite must not be touched at all.
        try:
            with open(self.path, "rb") as f:
                header = f.read(len(_SQLITE_HEADER))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"cannot read {self.path!r}: {exc}") from exc
        if header and header != _SQLITE_HEADER:
            raise SchemaError(f"{self.path!r} is not a resthooks database: it is not a SQLite file")

    def _identify(self, conn: sqlite3.Connection) -> tuple[int, bool]:
        """The file's schema version, and whether the file is shared with a host's tables;
        SchemaError if it is not ours (and not to be adopted) or is too new."""
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            names = {
                name
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                )
            }
            shared_version = None
            if f"{TABLE_PREFIX}schema" in names and app_id != APPLICATION_ID:
                (shared_version,) = conn.execute(
                    f"SELECT max(version) FROM {TABLE_PREFIX}schema"
                ).fetchone()
        except _DB_ERRORS as exc:
            raise self._wrap(exc, "reading the schema") from exc
        adopted = app_id != APPLICATION_ID
        if adopted and shared_version is not None:
            version = shared_version
        elif adopted:
            if app_id == 0 and version == 0 and not names and not self.adopt:
                return 0, False  # a new, empty database of our own
            if not self.adopt:
                raise SchemaError(
                    f"{self.path!r} is not a resthooks database (application_id {app_id:#x}, "
                    f"{len(names)} schema objects); it was left untouched (adopt=True shares "
                    "the database of an application)"
                )
            ours = sorted(n for n in names if n.startswith(TABLE_PREFIX))
            if ours:
                raise SchemaError(
                    f"{self.path!r} holds {', '.join(ours)} but no {TABLE_PREFIX}schema table: "
                    "they are not a resthooks store's; it was left untouched"
                )
            return 0, True
        if not isinstance(version, int) or version < 0:
            raise SchemaError(
                f"{self.path!r} has resthooks schema version {version}, which no resthooks "
                "writes: the file is damaged; it was left untouched"
            )
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"{self.path!r} has resthooks schema version {version}, written by a newer "
                f"resthooks; this version knows versions up to {SCHEMA_VERSION}. Upgrade "
                "resthooks to open it"
            )
        return int(version), adopted

    def _migrate(self, conn: sqlite3.Connection) -> None:
        with self._write("migrating the schema"):
            # Another process may have migrated between our look and our lock: look again.
            version, adopted = self._identify(conn)
            if adopted:
                for statement in _adopted_migrations(version):
                    conn.execute(statement)
                if version <= _ATTEMPTS_BY_SEQ_AT:
                    self._backfill_attempt_seqs(conn)
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {TABLE_PREFIX}schema (version INTEGER NOT NULL)"
                )
                conn.execute(f"DELETE FROM {TABLE_PREFIX}schema")
                conn.execute(
                    f"INSERT INTO {TABLE_PREFIX}schema (version) VALUES (?)", (SCHEMA_VERSION,)
                )
                return
            for number in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[number]:
                    conn.execute(statement)
            if version <= _ATTEMPTS_BY_SEQ_AT:
                self._backfill_attempt_seqs(conn)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @staticmethod
    def _backfill_attempt_seqs(conn: sqlite3.Connection) -> None:
        """Give the attempts of a file from before version 7 their delivery's seq (in the
        migration's transaction). An id that does not decode keeps NULL: no delivery has it."""
        rows = conn.execute(
            "SELECT rowid, delivery_id FROM resthooks_attempts WHERE delivery_seq IS NULL"
        ).fetchall()
        if not rows:
            return
        (key,) = conn.execute(
            "SELECT value FROM resthooks_meta WHERE name = 'delivery_id_key'"
        ).fetchone()
        hasher = _id_hasher(key)
        conn.executemany(
            "UPDATE resthooks_attempts SET delivery_seq = ? WHERE rowid = ?",
            [
                (parsed[0], rowid)
                for rowid, delivery_id in rows
                if (parsed := _parse_id(delivery_id, hasher)) is not None
            ],
        )

    # -- hooks -------------------------------------------------------------------------------

    def add_hook(self, hook: Hook, *, max_per_owner: int | None) -> tuple[Hook, bool]:
        """See :meth:`resthooks.stores.HookRegistry.add_hook`."""
        with self._write("adding a hook") as conn:
            row = conn.execute(
                f"SELECT {_HOOK_COLUMNS} FROM resthooks_hooks WHERE owner = ? AND event = ? "
                "AND target_url = ?",
                (hook.owner, hook.event, hook.target_url),
            ).fetchone()
            if row is not None:
                existing = _hook(row)
                if existing.state is HookState.DEAD:
                    return self._revive(conn, existing.id, hook.updated_at), False
                return existing, False
            if max_per_owner is not None:
                (count,) = conn.execute(
                    "SELECT count(*) FROM resthooks_hooks WHERE owner = ?", (hook.owner,)
                ).fetchone()
                if count >= max_per_owner:
                    raise HookLimitReached(max_per_owner)
            sibling = self._endpoint_sibling(conn, hook.owner, hook.target_url, hook.id)
            if sibling is not None:
                hook = endpoint_secrets(hook, sibling)
            conn.execute(
                f"INSERT INTO resthooks_hooks ({_HOOK_COLUMNS}, host) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    hook.id,
                    hook.owner,
                    hook.event,
                    hook.target_url,
                    hook.description,
                    hook.state.value,
                    _us(hook.created_at, "created_at"),
                    _us(hook.updated_at, "updated_at"),
                    hook.dead_reason,
                    _us_or_none(hook.dead_at, "dead_at"),
                    hook.secret,
                    hook.previous_secret,
                    _us_or_none(hook.previous_secret_until, "previous_secret_until"),
                    hook.signing_key,
                    hook.confirm_secret,
                    _us_or_none(hook.confirm_by, "confirm_by"),
                    None if hook.batching is None else hook.batching.to_text(),
                    target_host(hook.target_url),
                ),
            )
            return hook, True

    def _endpoint_sibling(
        self, conn: sqlite3.Connection, owner: str, target_url: str, other_than: str
    ) -> Hook | None:
        """The oldest other hook of ``owner`` to ``target_url``: whose secrets a hook joining
        the endpoint takes."""
        row = conn.execute(
            f"SELECT {_HOOK_COLUMNS} FROM resthooks_hooks WHERE owner = ? AND target_url = ? "
            "AND id != ? ORDER BY created_at, id LIMIT 1",
            (owner, target_url, other_than),
        ).fetchone()
        return None if row is None else _hook(row)

    def update_hook(
        self, hook_id: str, *, event: str, target_url: str, description: str, now: datetime
    ) -> Hook | None:
        """The optional ``update_hook`` of :class:`resthooks.stores.HookRegistry`."""
        with self._write("updating a hook") as conn:
            hook = self._get_hook(conn, hook_id)
            if hook is None:
                return None
            taken = conn.execute(
                "SELECT id FROM resthooks_hooks WHERE owner = ? AND event = ? AND target_url = ? "
                "AND id != ?",
                (hook.owner, event, target_url, hook_id),
            ).fetchone()
            if taken is not None:
                raise SubscriptionExists(taken[0])
            updated = attrs.evolve(
                hook, event=event, target_url=target_url, description=description, updated_at=now
            )
            if target_url != hook.target_url:
                sibling = self._endpoint_sibling(conn, hook.owner, target_url, hook_id)
                if sibling is not None:
                    updated = endpoint_secrets(updated, sibling)
            conn.execute(
                "UPDATE resthooks_hooks SET event = ?, target_url = ?, host = ?, description = ?, "
                "updated_at = ?, secret = ?, previous_secret = ?, previous_secret_until = ?, "
                "signing_key = ? WHERE id = ?",
                (
                    event,
                    target_url,
                    target_host(target_url),
                    description,
                    _us(now, "now"),
                    updated.secret,
                    updated.previous_secret,
                    _us_or_none(updated.previous_secret_until, "previous_secret_until"),
                    updated.signing_key,
                    hook_id,
                ),
            )
            return updated

    def _get_hook(self, conn: sqlite3.Connection, hook_id: str) -> Hook | None:
        row = conn.execute(
            f"SELECT {_HOOK_COLUMNS} FROM resthooks_hooks WHERE id = ?", (hook_id,)
        ).fetchone()
        return None if row is None else _hook(row)

    def get_hook(self, hook_id: str) -> Hook | None:
        """See :meth:`resthooks.stores.HookRegistry.get_hook`."""
        try:
            return self._get_hook(self._conn(), hook_id)
        except _DB_ERRORS as exc:
            raise self._wrap(exc, "reading a hook") from exc

    def list_hooks(
        self,
        *,
        owner: str | None = None,
        event: str | None = None,
        state: HookState | None = None,
    ) -> list[Hook]:
        """See :meth:`resthooks.stores.HookRegistry.list_hooks`."""
        where, params = [], []
        for column, value in (("owner", owner), ("event", event)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if state is not None:
            where.append("state = ?")
            params.append(state.value)
        sql = f"SELECT {_HOOK_COLUMNS} FROM resthooks_hooks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        try:
            rows = self._conn().execute(sql + " ORDER BY created_at, id", params).fetchall()
        except _DB_ERRORS as exc:
            raise self._wrap(exc, "listing hooks") from exc
        return [_hook(r) for r in rows]

    def _cancel_open(self, conn: sqlite3.Connection, hook_id: str, now: datetime) -> list[str]:
        rows = conn.execute(
            # The token is kept (a cancelled delivery is never claimed again): the outcome of
            # an attempt in flight is still logged when it comes (see _record_one).
            "UPDATE resthooks_deliveries SET state = 'cancelled', next_attempt_at = NULL, due_at "
            "= NULL, "
            "lease_until = NULL, batch_open = NULL, updated_at = ? "
            "WHERE hook_id = ? AND next_attempt_at IS NOT NULL RETURNING seq, salt",
            (_us(now, "now"), hook_id),
        ).fetchall()
        return [_delivery_id(seq, salt, self._id_hasher) for seq, salt in sorted(rows)]

    def remove_hook(self, hook_id: str, *, now: datetime) -> list[str]:
        """See :meth:`resthooks.stores.HookRegistry.remove_hook`."""
        with self._write("removing a hook") as conn:
            return self._remove(conn, hook_id, now)

    def _remove(self, conn: sqlite3.Connection, hook_id: str, now: datetime) -> list[str]:
        if conn.execute("DELETE FROM resthooks_hooks WHERE id = ?", (hook_id,)).rowcount == 0:
            return []
        return self._cancel_open(conn, hook_id, now)

    def _mark_dead(
        self, conn: sqlite3.Connection, hook_id: str, reason: str, now: datetime
    ) -> list[str]:
        row = conn.execute("SELECT state FROM resthooks_hooks WHERE id = ?", (hook_id,)).fetchone()
        if row is None:
            return []
        if row[0] != HookState.DEAD.value:
            at = _us(now, "now")
            conn.execute(
                "UPDATE resthooks_hooks SET state = 'dead', dead_reason = ?, dead_at = ?, "
                "updated_at = ? "
                "WHERE id = ?",
                (reason, at, at, hook_id),
            )
        return self._cancel_open(conn, hook_id, now)

    def revive_hook(self, hook_id: str, *, now: datetime) -> Hook | None:
        """See :meth:`resthooks.stores.HookRegistry.revive_hook`."""
        with self._write("reviving a hook") as conn:
            hook = self._get_hook(conn, hook_id)
            if hook is None or hook.state is not HookState.DEAD:
                return hook
            return self._revive(conn, hook_id, now)

    def _revive(self, conn: sqlite3.Connection, hook_id: str, now: datetime) -> Hook:
        row = conn.execute(
            "UPDATE resthooks_hooks SET state = 'active', dead_reason = NULL, dead_at = NULL, "
            f"updated_at = ? WHERE id = ? RETURNING {_HOOK_COLUMNS}",
            (_us(now, "now"), hook_id),
        ).fetchone()
        return _hook(row)

    def confirm_hook(self, hook_id: str, *, now: datetime) -> Hook | None:
        """See :meth:`resthooks.stores.HookRegistry.confirm_hook`."""
        with self._write("confirming a hook") as conn:
            row = conn.execute(
                "UPDATE resthooks_hooks SET state = 'active', confirm_secret = NULL, "
                "confirm_by = NULL, updated_at = ? WHERE id = ? AND state = 'unconfirmed' "
                f"RETURNING {_HOOK_COLUMNS}",
                (_us(now, "now"), hook_id),
            ).fetchone()
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
        """See :meth:`resthooks.stores.HookRegistry.set_secret`."""
        with self._write("replacing a hook's secret") as conn:
            row = conn.execute(
                "UPDATE resthooks_hooks SET secret = ?, previous_secret = ?, "
                "previous_secret_until = ?, "
                f"updated_at = ? WHERE id = ? RETURNING {_HOOK_COLUMNS}",
                (
                    secret,
                    previous_secret,
                    _us_or_none(previous_secret_until, "previous_secret_until"),
                    _us(now, "now"),
                    hook_id,
                ),
            ).fetchone()
            return None if row is None else _hook(row)

    # -- deliveries --------------------------------------------------------------------------

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
        """Fan out one event (see :meth:`resthooks.stores.DeliveryStore.enqueue`).

        The body is stored once; one ``INSERT ... SELECT`` creates a delivery per active
        hook, all in one transaction.

        ``connection`` is the transactional outbox: pass your own :class:`sqlite3.Connection`
        to the same file, with your transaction open (``BEGIN IMMEDIATE`` is best: a deferred
        transaction that only read so far may fail with "database is locked" when it first
        writes). The deliveries are written through it and are neither committed nor rolled
        back here: they exist if, and only if, your transaction commits.

        Raises:
            ConfigurationError: If ``connection`` is not a :class:`sqlite3.Connection`, has
                no open transaction, or is connected to another file.
            StoreError: If the database cannot be written (nothing was).
        """
        events = [(owner, event, body)]
        keys = None if ordering_key is None else [ordering_key]
        if connection is None:
            with self._write("enqueueing deliveries") as conn:
                return self._enqueue_all(
                    conn, events, now, trace_context=trace_context, ordering_keys=keys
                )
        conn = self._host_connection(connection)
        try:
            return self._enqueue_all(
                conn, events, now, trace_context=trace_context, ordering_keys=keys
            )
        except _DB_ERRORS as exc:
            raise self._wrap(exc, "enqueueing deliveries through the caller's connection") from exc

    def _host_connection(self, connection: object) -> sqlite3.Connection:
        if self._provider is not None and connection is self._conn():
            if not connection.in_transaction:
                raise ConfigurationError(
                    "connection has no open transaction: begin one so the deliveries commit "
                    "or roll back with your own writes"
                )
            return connection
        if not isinstance(connection, sqlite3.Connection):
            raise ConfigurationError(
                "connection must be a sqlite3.Connection to the store's file, not "
                f"{type(connection).__name__}"
            )
        try:
            in_transaction = connection.in_transaction
            files = connection.execute("PRAGMA database_list").fetchall()
        except _DB_ERRORS as exc:
            raise ConfigurationError(f"connection cannot be used: {exc}") from exc
        main = next((f for _, name, f in files if name == "main"), "")
        try:
            same = bool(main) and os.path.samefile(main, self.path)
        except OSError:
            same = False
        if not same:
            raise ConfigurationError(
                f"connection is connected to {main or 'an in-memory database'!r}, not to the "
                f"store's file {self.path!r}"
            )
        if not in_transaction:
            raise ConfigurationError(
                "connection has no open transaction: begin one (BEGIN IMMEDIATE) so the "
                "deliveries commit or roll back with your own writes"
            )
        return connection

    def enqueue_many(
        self,
        events: Sequence[tuple[str, str, bytes]],
        *,
        now: datetime,
        connection: object | None = None,
        ordering_keys: Sequence[str | None] | None = None,
    ) -> Sequence[Delivery]:
        """Fan out several events, each ``(owner, event, body)``, in one transaction.

        What :meth:`enqueue` does for each (``connection`` likewise), with one commit for
        all: :meth:`resthooks.Dispatcher.emit_many` calls it. ``ordering_keys[i]`` is the
        ordering key of ``events[i]``.

        .. versionadded:: 0.2.0
        """
        if connection is None:
            with self._write("enqueueing deliveries") as conn:
                return self._enqueue_all(conn, events, now, ordering_keys=ordering_keys)
        conn = self._host_connection(connection)
        try:
            return self._enqueue_all(conn, events, now, ordering_keys=ordering_keys)
        except _DB_ERRORS as exc:
            raise self._wrap(exc, "enqueueing deliveries through the caller's connection") from exc

    def _enqueue_all(
        self,
        conn: sqlite3.Connection,
        events: Sequence[tuple[str, str, bytes]],
        now: datetime,
        *,
        trace_context: str | None = None,
        ordering_keys: Sequence[str | None] | None = None,
        unbatched: str | None = None,
    ) -> Sequence[Delivery]:
        # ``unbatched``: the condition that leaves batched hooks out of the fan-out's
        # statements ("" when the file has no batched hook: the statements stay as fast as
        # without batching); None: not known yet.
        at = _us(now, "now")
        if unbatched is None:
            if conn.execute(_ANY_BATCHED).fetchone() is not None:
                return self._enqueue_batching(
                    conn, events, now, trace_context=trace_context, ordering_keys=ordering_keys
                )
            unbatched = ""
        if ordering_keys is not None and any(k is not None for k in ordering_keys):
            if len(events) > 1:
                # Each keyed fan-out must see the ones before it (whether its key already
                # has open deliveries): one statement per event.
                parts = [
                    self._enqueue_all(conn, [e], now, ordering_keys=[k], unbatched=unbatched)
                    for e, k in zip(events, ordering_keys, strict=True)
                ]
                return LazyDeliveries(
                    sum(len(p) for p in parts), lambda: [d for p in parts for d in p]
                )
            return self._enqueue_keyed(
                conn,
                events[0],
                ordering_keys[0],
                now,
                at=at,
                trace_context=trace_context,
                unbatched=unbatched,
            )
        if len(events) > 1:
            return self._enqueue_batch(conn, events, now, at, unbatched=unbatched)
        fan_outs: list[tuple[int, int, str, str]] = []  # first seq, last seq, owner, event
        for owner, event, body in events:
            message_id = conn.execute(
                "INSERT INTO resthooks_messages (owner, event, created_at, body, remaining, "
                "trace_context) VALUES (?, ?, ?, ?, 0, ?)",
                (owner, event, at, body, trace_context),
            ).lastrowid
            # No RETURNING: it made SQLite buffer every row and Python build a tuple per row
            # inside the insert, which halved the fan-out rate. One statement inserts the
            # rows with consecutive seqs ending at the last insert rowid, so a rowid range
            # finds exactly them.
            cursor = conn.execute(
                "INSERT INTO resthooks_deliveries (salt, hook_id, message_id, state, attempts, "
                "next_attempt_at, updated_at, due_at) "
                f"SELECT {_SALT_SQL}, id, :message, 'pending', 0, :at, :at, :at "
                "FROM resthooks_hooks "
                f"WHERE owner = :owner AND event = :event AND state = 'active'{unbatched} "
                "ORDER BY created_at, id",
                {"at": at, "message": message_id, "owner": owner, "event": event},
            )
            count = cursor.rowcount
            if count <= 0:
                conn.execute("DELETE FROM resthooks_messages WHERE id = ?", (message_id,))
                continue
            last = cursor.lastrowid
            assert last is not None  # an insert that wrote rows
            first = last - count + 1
            conn.execute(
                "UPDATE resthooks_messages SET remaining = ?, first_seq = ?, last_seq = ? "
                "WHERE id = ?",
                (count, first, last, message_id),
            )
            fan_outs.append((first, last, owner, event))
        if not fan_outs:
            return []
        # The new rows' ids are read back now, as plain tuples (one rowid range each); the
        # Delivery values are built only if the caller reads them: building 10,000 of them
        # was half the cost of a fan-out, and most emitters never look.
        found = [
            (rows, owner, event)
            for first, last, owner, event in fan_outs
            if (
                rows := conn.execute(
                    "SELECT seq, salt, hook_id FROM resthooks_deliveries WHERE seq BETWEEN ? AND ? "
                    "ORDER BY seq",
                    (first, last),
                ).fetchall()
            )
        ]
        total = sum(last - first + 1 for first, last, _, _ in fan_outs)

        def load() -> list[Delivery]:
            return [
                Delivery(
                    id=_delivery_id(seq, salt, self._id_hasher),
                    hook_id=hook_id,
                    owner=owner,
                    event=event,
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
                for rows, owner, event in found
                for seq, salt, hook_id in rows
            ]

        return LazyDeliveries(total, load)

    def _enqueue_keyed(
        self,
        conn: sqlite3.Connection,
        event_: tuple[str, str, bytes],
        key: str | None,
        now: datetime,
        *,
        at: int,
        trace_context: str | None,
        unbatched: str = "",
    ) -> Sequence[Delivery]:
        """One fan-out with an ordering key: a delivery gets its key's turn (due now) unless
        its hook has an open delivery of the same key already (then it waits, see
        :mod:`resthooks.outcomes`)."""
        owner, event, body = event_
        message_id = conn.execute(
            "INSERT INTO resthooks_messages (owner, event, created_at, body, remaining, "
            "trace_context) VALUES (?, ?, ?, ?, 0, ?)",
            (owner, event, at, body, trace_context),
        ).lastrowid
        cursor = conn.execute(
            "INSERT INTO resthooks_deliveries (salt, hook_id, message_id, state, attempts, "
            "next_attempt_at, updated_at, due_at, ordering_key) "
            f"SELECT {_SALT_SQL}, id, :message, 'pending', 0, due, :at, due, :key FROM ("
            "SELECT h.id, h.created_at, CASE WHEN EXISTS (SELECT 1 FROM resthooks_deliveries o "
            "WHERE o.hook_id = h.id AND o.ordering_key = :key AND o.next_attempt_at IS NOT NULL) "
            "THEN :waiting ELSE :at END AS due "
            "FROM resthooks_hooks h "
            f"WHERE h.owner = :owner AND h.event = :event AND h.state = 'active'{unbatched}) "
            "ORDER BY created_at, id",
            {
                "at": at,
                "message": message_id,
                "owner": owner,
                "event": event,
                "key": key,
                "waiting": _WAITING_US,
            },
        )
        count = cursor.rowcount
        if count <= 0:
            conn.execute("DELETE FROM resthooks_messages WHERE id = ?", (message_id,))
            return []
        last = cursor.lastrowid
        assert last is not None  # an insert that wrote rows
        first = last - count + 1
        conn.execute(
            "UPDATE resthooks_messages SET remaining = ?, first_seq = ?, last_seq = ? WHERE id = ?",
            (count, first, last, message_id),
        )
        rows = conn.execute(
            "SELECT seq, salt, hook_id, due_at FROM resthooks_deliveries "
            "WHERE seq BETWEEN ? AND ? ORDER BY seq",
            (first, last),
        ).fetchall()

        def load() -> list[Delivery]:
            return [
                Delivery(
                    id=_delivery_id(seq, salt, self._id_hasher),
                    hook_id=hook_id,
                    owner=owner,
                    event=event,
                    next_attempt_at=None if due == _WAITING_US else now,
                    created_at=now,
                    updated_at=now,
                    ordering_key=key,
                )
                for seq, salt, hook_id, due in rows
            ]

        return LazyDeliveries(count, load)

    def _enqueue_batching(
        self,
        conn: sqlite3.Connection,
        events: Sequence[tuple[str, str, bytes]],
        now: datetime,
        *,
        trace_context: str | None,
        ordering_keys: Sequence[str | None] | None,
    ) -> Sequence[Delivery]:
        """The fan-outs when some hook of the file batches: event by event, the hooks that
        do not batch as usual, then each batched hook's batch (see resthooks.batching)."""
        keys = ordering_keys if ordering_keys is not None else [None] * len(events)
        parts: list[Sequence[Delivery]] = []
        for (owner, event, body), key in zip(events, keys, strict=True):
            parts.append(
                self._enqueue_all(
                    conn,
                    [(owner, event, body)],
                    now,
                    trace_context=trace_context,
                    ordering_keys=None if key is None else [key],
                    unbatched=" AND batching IS NULL",
                )
            )
            hooks = conn.execute(
                "SELECT id, batching FROM resthooks_hooks WHERE owner = ? AND event = ? "
                "AND batching IS NOT NULL AND state = 'active' ORDER BY created_at, id",
                (owner, event),
            ).fetchall()
            parts.append(
                [
                    self._join_batch(
                        conn,
                        hook_id,
                        Batching.from_text(text),
                        (owner, event, body),
                        now,
                        key=key,
                        trace_context=trace_context,
                    )
                    for hook_id, text in hooks
                ]
            )
        return LazyDeliveries(sum(len(p) for p in parts), lambda: [d for p in parts for d in p])

    def _join_batch(
        self,
        conn: sqlite3.Connection,
        hook_id: str,
        batching: Batching,
        event_: tuple[str, str, bytes],
        now: datetime,
        *,
        key: str | None,
        trace_context: str | None,
    ) -> Delivery:
        """One emit to a batched hook, in the emit's transaction (which holds the file's
        write lock, so no claim comes between the read of the open batch and its write)."""
        owner, event, body = event_
        at = _us(now, "now")
        lane = batch_lane(key)
        current = conn.execute(
            "SELECT d.seq, d.message_id, d.batch_entities, m.body FROM "
            f"{_DELIVERY_FROM} WHERE d.hook_id = ? AND d.ordering_key IS ? "
            "AND d.batch_open IS NOT NULL AND d.state = 'pending' ORDER BY d.seq DESC LIMIT 1",
            (hook_id, lane),
        ).fetchone()
        step = plan(
            batching,
            event,
            body,
            open_body=None if current is None else bytes(current[3]),
            open_entities=0 if current is None else current[2],
        )
        if current is not None and step.joins:
            seq = current[0]
            conn.execute(
                "UPDATE resthooks_messages SET body = ? WHERE id = ?", (step.body, current[1])
            )
            conn.execute(
                "UPDATE resthooks_deliveries SET batch_entities = ? WHERE seq = ?",
                (step.entities, seq),
            )
            if step.sealed:
                conn.execute(_SEAL_BATCH, (at, _WAITING_US, seq))
        else:
            if current is not None:
                conn.execute(_SEAL_BATCH, (at, _WAITING_US, current[0]))
            due = at if step.sealed else at + round(batching.max_wait * 1_000_000)
            if (
                lane is not None
                and conn.execute(
                    "SELECT 1 FROM resthooks_deliveries WHERE hook_id = ? AND ordering_key = ? "
                    "AND next_attempt_at IS NOT NULL LIMIT 1",
                    (hook_id, lane),
                ).fetchone()
            ):
                due = _WAITING_US  # an earlier keyed batch is open: this one waits its turn
            message_id = conn.execute(
                "INSERT INTO resthooks_messages (owner, event, created_at, body, remaining, "
                "trace_context) VALUES (?, ?, ?, ?, 1, ?)",
                (owner, event, at, step.body, trace_context),
            ).lastrowid
            (seq,) = conn.execute(
                "INSERT INTO resthooks_deliveries (salt, hook_id, message_id, state, attempts, "
                "next_attempt_at, updated_at, due_at, ordering_key, batch_entities, batch_open) "
                f"VALUES ({_SALT_SQL}, ?, ?, 'pending', 0, ?, ?, ?, ?, ?, ?) RETURNING seq",
                (
                    hook_id,
                    message_id,
                    due,
                    at,
                    due,
                    lane,
                    step.entities,
                    None if step.sealed else 1,
                ),
            ).fetchone()
            conn.execute(
                "UPDATE resthooks_messages SET first_seq = ?1, last_seq = ?1 WHERE id = ?2",
                (seq, message_id),
            )
        # The id is made here: a connection of the host's has not the store's id function.
        row = conn.execute(
            "SELECT d.salt, d.hook_id, m.owner, m.event, d.state, d.attempts, "
            "d.next_attempt_at, m.created_at, d.updated_at, d.last_error, d.ordering_key "
            f"FROM {_DELIVERY_FROM} WHERE d.seq = ?",
            (seq,),
        ).fetchone()
        return _delivery((_delivery_id(seq, row[0], self._id_hasher), *row[1:]))

    def _take_turn(
        self, conn: sqlite3.Connection, hook_id: str, key: str, seq: int, at: int
    ) -> int:
        """The due time of a redelivered delivery of an ordering key: ``at`` if it takes the
        key's turn (no other open delivery has it, or a pending newer one does: the turn is
        the oldest's, and that one waits again), the waiting time otherwise (another is in
        flight, or an older one has the turn)."""
        holder = conn.execute(
            "SELECT seq, state FROM resthooks_deliveries WHERE hook_id = ? AND ordering_key = ? "
            "AND next_attempt_at IS NOT NULL AND due_at != ? AND seq != ?",
            (hook_id, key, _WAITING_US, seq),
        ).fetchone()
        if holder is None:
            return at
        if holder[1] == DeliveryState.IN_FLIGHT.value or holder[0] < seq:
            return _WAITING_US
        conn.execute(
            "UPDATE resthooks_deliveries SET due_at = ?1, next_attempt_at = ?1 WHERE seq = ?2",
            (_WAITING_US, holder[0]),
        )
        return at

    def _hand_over(self, conn: sqlite3.Connection, hook_id: str, key: str, at: int) -> None:
        """Give the turn of a hook's ordering key to its oldest waiting delivery, due ``at``
        (the one that had it was just written final, or moved aside)."""
        conn.execute(_HAND_OVER, (at, hook_id, key, _WAITING_US))

    def _enqueue_batch(
        self,
        conn: sqlite3.Connection,
        events: Sequence[tuple[str, str, bytes]],
        now: datetime,
        at: int,
        *,
        unbatched: str = "",
    ) -> Sequence[Delivery]:
        """Several fan-outs in a handful of statements, however many events: the messages in
        one ``executemany`` (ids chosen here, consecutive), every delivery of every event in
        one ``INSERT ... SELECT`` joining them to their hooks, in event order then hook
        order, so each event's deliveries get consecutive seqs, as one fan-out's do."""
        (top,) = conn.execute("SELECT coalesce(max(id), 0) FROM resthooks_messages").fetchone()
        first_message = top + 1
        conn.executemany(
            "INSERT INTO resthooks_messages (id, owner, event, created_at, body, remaining) "
            "VALUES (?, ?, ?, ?, ?, 0)",
            [(first_message + i, o, e, at, b) for i, (o, e, b) in enumerate(events)],
        )
        last_message = first_message + len(events) - 1
        cursor = conn.execute(
            "INSERT INTO resthooks_deliveries (salt, hook_id, message_id, state, attempts, "
            "next_attempt_at, updated_at, due_at) "
            f"SELECT {_SALT_SQL}, h.id, m.id, 'pending', 0, :at, :at, :at "
            "FROM resthooks_messages m JOIN resthooks_hooks h "
            "ON h.owner = m.owner AND h.event = m.event "
            f"AND h.state = 'active'{unbatched} WHERE m.id BETWEEN :first AND :last "
            "ORDER BY m.id, h.created_at, h.id",
            {"at": at, "first": first_message, "last": last_message},
        )
        count = cursor.rowcount
        if count <= 0:
            conn.execute(
                "DELETE FROM resthooks_messages WHERE id BETWEEN ? AND ?",
                (first_message, last_message),
            )
            return []
        last = cursor.lastrowid
        assert last is not None  # an insert that wrote rows
        rows = conn.execute(
            "SELECT seq, salt, hook_id, message_id FROM resthooks_deliveries "
            "WHERE seq BETWEEN ? AND ? "
            "ORDER BY seq",
            (last - count + 1, last),
        ).fetchall()
        spans: dict[int, list[int]] = {}  # message id -> [first seq, last seq, count]
        for seq, _, _, message_id in rows:
            span = spans.get(message_id)
            if span is None:
                spans[message_id] = [seq, seq, 1]
            else:
                span[1] = seq
                span[2] += 1
        conn.executemany(
            "UPDATE resthooks_messages SET remaining = ?, first_seq = ?, last_seq = ? WHERE id = ?",
            [(n, first, last_seq, m) for m, (first, last_seq, n) in spans.items()],
        )
        conn.execute(
            "DELETE FROM resthooks_messages WHERE id BETWEEN ? AND ? AND remaining = 0",
            (first_message, last_message),
        )
        owners = {first_message + i: (o, e) for i, (o, e, _) in enumerate(events)}

        def load() -> list[Delivery]:
            return [
                Delivery(
                    id=_delivery_id(seq, salt, self._id_hasher),
                    hook_id=hook_id,
                    owner=owners[message_id][0],
                    event=owners[message_id][1],
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                )
                for seq, salt, hook_id, message_id in rows
            ]

        return LazyDeliveries(count, load)

    def claim_due(
        self,
        *,
        now: datetime,
        limit: int,
        lease_until: datetime,
        max_in_flight_per_host: int | None = None,
    ) -> list[Claim]:
        """See :meth:`resthooks.stores.DeliveryStore.claim_due`.

        Uses the index on ``due_at``: the cost grows with the log of the backlog, not with it.
        """
        if limit <= 0:
            return []
        at, lease = _us(now, "now"), _us(lease_until, "lease_until")
        with self._write("claiming deliveries") as conn:
            if max_in_flight_per_host is None:
                picked = [
                    r[0]
                    for r in conn.execute(
                        "SELECT seq FROM resthooks_deliveries WHERE due_at <= ? ORDER BY due_at, "
                        "seq LIMIT ?",
                        (at, limit),
                    )
                ]
            else:
                picked = self._pick_per_host(conn, at, limit, max_in_flight_per_host)
            if not picked:
                return []
            leased = self._lease(conn, picked, at, lease)
        # Built after the commit: the write lock is the one thing several worker processes
        # on the file queue on, so it is held for the SQL only, not for building values.
        claims, damaged = self._claims(leased, lease_until)
        if damaged:
            # Rows that could not be read back: still leased to this caller, so no one else
            # takes them while they are moved aside.
            with self._write("claiming deliveries") as conn:
                self._quarantine(conn, damaged, at)
        return claims

    def _pick_per_host(
        self, conn: sqlite3.Connection, at: int, limit: int, per_host: int
    ) -> list[int]:
        baseline: Counter[str] = Counter(
            dict(
                conn.execute(
                    "SELECT h.host, count(*) FROM resthooks_deliveries d JOIN resthooks_hooks h "
                    "ON h.id = d.hook_id "
                    "WHERE d.state = 'in_flight' AND d.lease_until > ? GROUP BY h.host",
                    (at,),
                ).fetchall()
            )
        )
        in_flight = baseline.copy()
        picked: list[int] = []
        cursor = conn.execute(
            "SELECT d.seq, h.host FROM resthooks_deliveries d JOIN resthooks_hooks h ON h.id = "
            "d.hook_id "
            "WHERE d.due_at <= ? ORDER BY d.due_at, d.seq",
            (at,),
        )
        # Hosts of active hooks that can take more, looked up the first time the scan meets a
        # saturated host: once it is empty nothing more can be claimed, so the scan stops
        # instead of walking the rest of a saturated host's backlog.
        with_room: set[str] | None = None
        exhausted = True
        for scanned, (seq, host) in enumerate(cursor, start=1):
            if in_flight[host] < per_host:
                in_flight[host] += 1
                picked.append(seq)
                if len(picked) >= limit:
                    break
                if with_room is not None and in_flight[host] >= per_host:
                    with_room.discard(host)
            elif with_room is None:
                with_room = {
                    h
                    for (h,) in conn.execute(
                        "SELECT DISTINCT host FROM resthooks_hooks WHERE state = 'active'"
                    )
                    if in_flight[h] < per_host
                }
            if with_room is not None and not with_room:
                break
            if scanned - len(picked) >= _SCAN_BUDGET:
                exhausted = False
                break
        cursor.close()
        if exhausted or (with_room is not None and not with_room):
            return picked
        return self._pick_by_hook(conn, at, limit, per_host, baseline)

    def _pick_by_hook(
        self, conn: sqlite3.Connection, at: int, limit: int, per_host: int, busy: Counter[str]
    ) -> list[int]:
        """The oldest due deliveries of the hosts with room, found hook by hook.

        Saturated hosts' backlogs fill the front of the due queue: rather than walk past them,
        take the oldest pending deliveries of each hook whose host has room (a few steps of
        the index of open deliveries by hook and due time each, whatever the backlog), and
        the expired claims (from the index of deliveries in flight), keep each host's oldest
        up to its room, and merge them, oldest due first.
        """
        rooms = {
            host: min(per_host - busy[host], limit)
            for (host,) in conn.execute(
                "SELECT DISTINCT host FROM resthooks_hooks WHERE state = 'active'"
            )
            if per_host - busy[host] > 0
        }
        by_host: dict[str, list[tuple[int, int]]] = {}
        hosts = sorted(rooms)
        for start in range(0, len(hosts), 500):
            chunk = hosts[start : start + 500]
            marks = ",".join("?" * len(chunk))
            # One statement probes every hook of these hosts (a correlated subquery per hook,
            # each reading at most the host's room of pending rows plus the hook's few in flight).
            rows = conn.execute(
                "SELECT h.host, d.next_attempt_at, d.seq FROM resthooks_hooks h "
                "JOIN resthooks_deliveries d "
                "ON d.seq IN (SELECT p.seq FROM resthooks_deliveries p WHERE p.hook_id = h.id "
                "AND p.next_attempt_at IS NOT NULL AND p.next_attempt_at <= ? "
                "AND p.state = 'pending' ORDER BY p.next_attempt_at, p.seq LIMIT ?) "
                f"WHERE h.state = 'active' AND h.host IN ({marks})",
                (at, min(per_host, limit), *chunk),
            )
            for host, due_at, seq in rows:
                by_host.setdefault(host, []).append((due_at, seq))
        # Claims whose lease expired are due again, at their lease's end.
        for host, due_at, seq in conn.execute(
            "SELECT h.host, d.lease_until, d.seq FROM resthooks_deliveries d "
            "JOIN resthooks_hooks h "
            "ON h.id = d.hook_id WHERE d.state = 'in_flight' AND d.lease_until <= ?",
            (at,),
        ):
            if host in rooms:
                by_host.setdefault(host, []).append((due_at, seq))
        candidates = [
            sorted(found)[: rooms[host]] for host, found in by_host.items() if host in rooms
        ]
        return [seq for _, seq in itertools.islice(heapq.merge(*candidates), limit)]

    def _lease(
        self, conn: sqlite3.Connection, picked: list[int], at: int, lease: int
    ) -> list[tuple[int, Any, tuple[Any, ...]]]:
        """Lease the picked rows (in the caller's transaction); their ``(seq, token, row)``
        in the order picked. Rows that cannot be read or whose hook or message is gone are
        moved aside here."""
        leased: dict[int, tuple[Any, tuple[Any, ...]]] = {}
        damaged: dict[int, str] = {}
        for start in range(0, len(picked), 500):
            chunk = picked[start : start + 500]
            marks = ",".join("?" * len(chunk))
            tokens = dict(
                conn.execute(
                    # A claimed batch takes no more entities (batch_open: see enqueue).
                    "UPDATE resthooks_deliveries SET state = 'in_flight', "
                    "token = lower(hex(randomblob(12))), lease_until = ?, due_at = ?, "
                    f"batch_open = NULL, updated_at = ? WHERE seq IN ({marks}) "
                    "RETURNING seq, token",
                    (lease, lease, at, *chunk),
                ).fetchall()
            )
            select = (
                f"SELECT d.seq, m.body, m.trace_context, {_CLAIM_COLUMNS} FROM {_DELIVERY_FROM} "
                "JOIN resthooks_hooks h ON h.id = d.hook_id WHERE d.seq IN "
            )
            try:
                rows = conn.execute(f"{select}({marks})", chunk).fetchall()
            except UnicodeDecodeError:
                # Text that is not UTF-8 somewhere in the batch: read the rows one by one.
                rows = []
                for seq in chunk:
                    try:
                        rows.extend(conn.execute(f"{select}(?)", (seq,)).fetchall())
                    except UnicodeDecodeError as exc:
                        damaged[seq] = _reason(exc)
            for row in rows:
                leased[row[0]] = (tokens.get(row[0]), row)
            for seq in chunk:
                if seq not in leased and seq not in damaged:
                    # Due, but its hook or message is missing: it could never be sent, and
                    # would be claimed again each time its lease ran out.
                    damaged[seq] = "its hook or its message does not exist"
        if damaged:
            self._quarantine(conn, damaged, at)
        return [(seq, *leased[seq]) for seq in picked if seq in leased]

    def _claims(
        self, leased: list[tuple[int, Any, tuple[Any, ...]]], lease_until: datetime
    ) -> tuple[list[Claim], dict[int, str]]:
        """The claims of leased rows, and the rows that could not be read back (seq -> why)."""
        claims: list[Claim] = []
        damaged: dict[int, str] = {}
        # Claims keep meeting the same hooks: a hook row already seen (all its columns
        # equal, so the same Hook) is not built again.
        hooks = self._hooks_seen
        if len(hooks) > _HOOKS_SEEN:
            hooks.clear()
        for seq, token, row in leased:
            if token is None:  # not leased after all (cannot happen in one transaction)
                damaged[seq] = "its lease was not written"
                continue
            try:
                hook_row = row[14:]
                hook = hooks.get(hook_row)
                if hook is None:
                    hook = hooks[hook_row] = _hook(hook_row)
                claims.append(
                    Claim(
                        delivery=_delivery(row[3:14]),
                        hook=hook,
                        body=bytes(row[1]),
                        token=token,
                        lease_until=lease_until,
                        trace_context=row[2],
                    )
                )
            except Exception as exc:  # noqa: BLE001 - any damage: move the row aside
                damaged[seq] = _reason(exc)
        return claims, damaged

    def _quarantine(
        self, conn: sqlite3.Connection, damaged: dict[int, str], at: int | None
    ) -> None:
        """Move these delivery rows to the quarantine table (in the caller's transaction).

        ``at`` is the caller's now; without one (next_due_at has none), the database's clock.
        """
        if at is None:
            (at,) = conn.execute(_SQL_NOW_US).fetchone()
        assert at is not None
        found: list[QuarantinedDelivery] = []
        for seq, reason in damaged.items():
            turn = conn.execute(
                "SELECT hook_id, ordering_key FROM resthooks_deliveries WHERE seq = ? "
                "AND ordering_key IS NOT NULL AND next_attempt_at IS NOT NULL "
                "AND typeof(hook_id) = 'text' AND typeof(ordering_key) = 'text'",
                (seq,),
            ).fetchone()
            row = conn.execute(
                f"INSERT INTO resthooks_quarantine (delivery_id, hook_id, message_id, reason, row, "
                f"quarantined_at) SELECT {_ID_SQL.format('')}, CAST(hook_id AS TEXT), "
                "CAST(message_id AS INTEGER), ?, " + _QUOTED_ROW + ", ? FROM resthooks_deliveries "
                "WHERE seq = ? RETURNING delivery_id",
                (reason, at, seq),
            ).fetchone()
            conn.execute("DELETE FROM resthooks_deliveries WHERE seq = ?", (seq,))
            if turn is not None:  # the key goes on without it
                self._hand_over(conn, turn[0], turn[1], at)
            if row is not None:
                found.append(
                    QuarantinedDelivery(
                        delivery_id=str(row[0]),
                        reason=reason,
                        quarantined_at=_EPOCH + at * _MICROSECOND,
                    )
                )
        # Reported once the transaction commits (see take_quarantined); a rollback leaves
        # the rows where they were, to be found again.
        self._pending_quarantine.extend(found)

    def take_quarantined(self) -> list[QuarantinedDelivery]:
        """The delivery rows this store object moved aside since the last call.

        The Dispatcher calls it after each claim, to log them and tell its listeners
        (:class:`~resthooks.lifecycle.DeliveryQuarantined`); ``stats()`` counts them all.

        .. versionadded:: 0.2.0
        """
        with self._quarantine_lock:
            taken, self._reported_quarantine = self._reported_quarantine, []
        return taken

    def record(self, outcomes: Sequence[Outcome], *, now: datetime) -> list[RecordResult]:
        """See :meth:`resthooks.stores.DeliveryStore.record`. One transaction per batch.

        A batch costs a handful of statements whatever its size: one read of its rows, then
        its delivery updates and its attempts, each one prepared statement run for every row
        (a hook effect, rare, writes what came before it first, as it reads the hook's rows).
        """
        at = _us(now, "now")
        # seq -> (the id as the outcome spells it, its salt), decoded before the write lock
        # is taken (it is what several processes on the file queue on): the id decodes to
        # its row, so the row need not be hashed again to know its id; the salt must match.
        wanted: dict[int, tuple[str, int]] = {}
        for o in outcomes:
            key = self._key_of(o.delivery_id)
            if key is not None:
                wanted[key[0]] = (o.delivery_id, key[1])
        with self._write("recording outcomes") as conn:
            # BEGIN IMMEDIATE holds the database's write lock: the rows read here are the
            # rows written below, as the transition expects.
            seqs: dict[str, int] = {}
            keys: dict[str, str] = {}
            batch = BatchRecord(self._slices(conn, wanted, seqs, keys))
            writes = _RecordWrites()
            results = [
                self._record_one(conn, batch, seqs, keys, o, now=now, at=at, writes=writes)
                for o in outcomes
            ]
            writes.flush(conn)
            return results

    def _slices(
        self,
        conn: sqlite3.Connection,
        wanted: dict[int, tuple[str, int]],
        seqs: dict[str, int],
        keys: dict[str, str],
    ) -> dict[str, tuple[str, StoredDelivery]]:
        """The slices of the batch's deliveries (``wanted``: seq -> (id, salt)); fills
        ``seqs`` (delivery id -> row) and ``keys`` (delivery id -> ordering key, for those
        with one)."""
        found: dict[str, tuple[str, StoredDelivery]] = {}
        ordered = sorted(wanted)
        for first in range(0, len(ordered), _READ_CHUNK):
            chunk = ordered[first : first + _READ_CHUNK]
            for (
                seq,
                salt,
                hook_id,
                state,
                token,
                attempts,
                next_at,
                error,
                hook,
                ordering_key,
            ) in conn.execute(
                "SELECT d.seq, d.salt, d.hook_id, d.state, d.token, d.attempts, "
                "d.next_attempt_at, d.last_error, h.state, d.ordering_key "
                "FROM resthooks_deliveries d LEFT JOIN resthooks_hooks h ON h.id = d.hook_id "
                f"WHERE d.seq IN ({', '.join('?' * len(chunk))})",
                chunk,
            ):
                delivery_id, expected_salt = wanted[seq]
                if salt != expected_salt:
                    continue  # the seq was reused: not the delivery the outcome names
                seqs[delivery_id] = seq
                if ordering_key is not None:
                    keys[delivery_id] = ordering_key
                found[delivery_id] = (
                    hook_id,
                    StoredDelivery(
                        state=DeliveryState(state),
                        token=token,
                        attempts=attempts,
                        next_attempt_at=_dt(next_at),
                        last_error=error,
                        hook_state=None if hook is None else HookState(hook),
                    ),
                )
        return found

    def _record_one(
        self,
        conn: sqlite3.Connection,
        batch: BatchRecord,
        seqs: dict[str, int],
        keys: dict[str, str],
        outcome: Outcome,
        *,
        now: datetime,
        at: int,
        writes: _RecordWrites,
    ) -> RecordResult:
        hook_id = batch.hook_id(outcome.delivery_id)
        t = batch.transition(outcome, now=now)
        written = t.delivery
        if written is None:
            return t.result(outcome.delivery_id, hook_id=hook_id)
        seq = seqs[outcome.delivery_id]
        next_us = _us_or_none(written.next_attempt_at, "next_attempt_at")
        writes.deliveries.append(
            (
                written.state.value,
                written.attempts,
                next_us,
                next_us if written.state is DeliveryState.PENDING else None,
                written.last_error,
                at,
                seq,
            )
        )
        if t.attempt is not None:
            writes.attempts.append(_attempt_row(outcome.delivery_id, seq, t.attempt))
        key = keys.get(outcome.delivery_id)
        if key is not None and t.ends_turn:
            # Written after the delivery (flush): the turn goes to the oldest still open.
            writes.turns.append((at, hook_id, key, _WAITING_US))
        cancelled: list[str] = []
        if t.hook_effect is not HookEffect.NONE:
            writes.flush(conn)  # the hook's rows as the outcomes before this one left them
            if t.hook_effect is HookEffect.DEAD:
                cancelled = self._mark_dead(conn, hook_id, t.dead_reason or "", now)
            else:
                cancelled = self._remove(conn, hook_id, now)
            batch.hook_changed(hook_id, cancelled=cancelled, hook_state=written.hook_state)
        return t.result(outcome.delivery_id, hook_id=hook_id, cancelled=cancelled)

    def get_delivery(self, delivery_id: str) -> Delivery | None:
        """See :meth:`resthooks.stores.DeliveryStore.get_delivery`."""
        key = self._key_of(delivery_id)
        if key is None:
            return None
        try:
            row = (
                self._conn()
                .execute(
                    f"SELECT {_DELIVERY_COLUMNS} FROM {_DELIVERY_FROM} "
                    "WHERE d.seq = ? AND d.salt = ?",
                    key,
                )
                .fetchone()
            )
        except _DB_ERRORS as exc:
            raise self._wrap(exc, "reading a delivery") from exc
        return None if row is None else _delivery(row)

    def list_deliveries(
        self,
        *,
        owner: str | None = None,
        hook_id: str | None = None,
        state: DeliveryState | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """See :meth:`resthooks.stores.DeliveryStore.list_deliveries`."""
        where, params = [], []
        for column, value in (("m.owner", owner), ("d.hook_id", hook_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if state is not None:
            where.append("d.state = ?")
            params.append(state.value)
        source = _DELIVERY_FROM if owner is None else _OWNER_DELIVERY_FROM
        sql = f"SELECT {_DELIVERY_COLUMNS} FROM {source}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY m.created_at DESC, d.seq DESC LIMIT ?"
        try:
            rows = self._conn().execute(sql, (*params, max(limit, 0))).fetchall()
        except _DB_ERRORS as exc:
            raise self._wrap(exc, "listing deliveries") from exc
        return [_delivery(r) for r in rows]

    def attempts(self, delivery_id: str) -> list[Attempt]:
        """See :meth:`resthooks.stores.DeliveryStore.attempts`."""
        key = self._key_of(delivery_id)
        if key is None:
            return []
        try:
            rows = (
                self._conn()
                .execute(
                    "SELECT delivery_id, number, started_at, duration, status, error_kind, "
                    "error, response_excerpt FROM resthooks_attempts WHERE delivery_seq = ? "
                    "AND delivery_id = ? ORDER BY rowid",
                    (key[0], delivery_id),
                )
                .fetchall()
            )
        except _DB_ERRORS as exc:
            raise self._wrap(exc, "reading attempts") from exc
        return [attempt_from_row(r, _dt_required) for r in rows]

    def requeue(self, delivery_id: str, *, now: datetime) -> Delivery | None:
        """See :meth:`resthooks.stores.DeliveryStore.requeue`."""
        at = _us(now, "now")
        key = self._key_of(delivery_id)
        if key is None:
            return None
        with self._write("requeueing a delivery") as conn:
            due = at
            turn = conn.execute(
                "SELECT hook_id, ordering_key FROM resthooks_deliveries WHERE seq = ? AND salt = ? "
                "AND ordering_key IS NOT NULL",
                key,
            ).fetchone()
            if turn is not None:
                due = self._take_turn(conn, turn[0], turn[1], key[0], at)
            conn.execute(
                "UPDATE resthooks_deliveries SET state = 'pending', attempts = 0, next_attempt_at "
                "= :due, due_at = :due, token = NULL, lease_until = NULL, updated_at = :at "
                "WHERE seq = :seq AND salt = :salt",
                {"at": at, "due": due, "seq": key[0], "salt": key[1]},
            )
            row = conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM {_DELIVERY_FROM} WHERE d.seq = ? AND d.salt = ?",
                key,
            ).fetchone()
            return None if row is None else _delivery(row)

    def next_due_at(self) -> datetime | None:
        """See :meth:`resthooks.stores.DeliveryStore.next_due_at`.

        A due time no datetime can hold (a damaged row) moves its row to the quarantine.
        """
        try:
            (value,) = (
                self._conn()
                .execute(f"SELECT min(due_at) FROM resthooks_deliveries WHERE {_OPEN}")
                .fetchone()
            )
        except _DB_ERRORS as exc:
            raise self._wrap(exc, "reading the next due time") from exc
        if value is None or (isinstance(value, int) and _MIN_US <= value <= _MAX_US):
            return _dt(value)
        with self._write("moving damaged deliveries aside") as conn:
            rows = conn.execute(
                f"SELECT seq FROM resthooks_deliveries WHERE {_OPEN} AND (typeof(due_at) != "
                "'integer' "
                "OR due_at NOT BETWEEN ? AND ?)",
                (_MIN_US, _MAX_US),
            ).fetchall()
            self._quarantine(
                conn,
                {seq: "its due time is not a time a datetime can hold" for (seq,) in rows},
                None,
            )
        return self.next_due_at()

    def outbox_stats(self, *, now: datetime) -> OutboxStats:
        """What is due at ``now``: see :class:`~resthooks.OutboxStats` (read-only).

        Walks the partial index of open deliveries only (final ones are not read).
        """
        at = _us(now, "now")
        with self._read("counting due deliveries") as conn:
            due, oldest = conn.execute(
                "SELECT count(*), min(due_at) FROM resthooks_deliveries WHERE due_at <= ?", (at,)
            ).fetchone()
            (retrying,) = conn.execute(
                f"SELECT count(*) FROM resthooks_deliveries WHERE {_OPEN} "
                "AND state = 'pending' AND attempts > 0"
            ).fetchone()
        return OutboxStats(due=due, retrying=retrying, oldest_due_at=_dt(oldest))

    def stats(self, *, owner: str | None = None) -> Stats:
        """See :meth:`resthooks.stores.DeliveryStore.stats`."""
        params: tuple[str, ...] = ()
        if owner is None:
            hook_where, delivery_where = "", ""
        else:
            hook_where, delivery_where, params = "WHERE owner = ?", "WHERE m.owner = ?", (owner,)
        source = _DELIVERY_FROM if owner is None else _OWNER_DELIVERY_FROM
        with self._read("counting") as conn:
            hooks = dict(
                conn.execute(
                    f"SELECT state, count(*) FROM resthooks_hooks {hook_where} GROUP BY state",
                    params,
                )
            )
            by_state = conn.execute(
                f"SELECT d.state, count(*), sum(d.{_OPEN} AND d.last_error LIKE 'blocked%') "
                f"FROM {source} {delivery_where} GROUP BY d.state",
                params,
            ).fetchall()
            deliveries = {state: count for state, count, _ in by_state}
            blocked = sum(b or 0 for _, _, b in by_state)
            (oldest,) = conn.execute(
                f"SELECT min(m.created_at) FROM {source} "
                f"{delivery_where or 'WHERE 1'} AND d.{_OPEN}",
                params,
            ).fetchone()
            (quarantined,) = (
                conn.execute("SELECT count(*) FROM resthooks_quarantine").fetchone()
                if owner is None
                else (0,)
            )
        try:
            oldest_at = _dt(oldest)
        except (OverflowError, TypeError) as exc:
            raise DamagedRowError("messages", "?", f"a creation time out of range: {exc}") from exc
        return Stats(
            hooks={s.value: hooks.get(s.value, 0) for s in HookState},
            deliveries={s.value: deliveries.get(s.value, 0) for s in DeliveryState},
            oldest_pending_at=oldest_at,
            quarantined=quarantined,
            blocked=blocked,
        )

    def purge(self, *, before: datetime, limit: int | None = None) -> int:
        """See :meth:`resthooks.stores.DeliveryStore.purge`.

        One transaction of at most ``limit`` deliveries (oldest first), then a passive WAL
        checkpoint. When it deletes fewer than ``limit`` (the last batch of a purge), it also
        gives the space back: the file's free pages to the file system (incremental vacuum)
        and the WAL checkpointed and truncated.
        """
        cutoff = _us(before, "before")
        with self._write("purging deliveries") as conn:
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS purged_deliveries "
                "(seq INTEGER PRIMARY KEY, id TEXT NOT NULL, message_id INTEGER)"
            )
            conn.execute("DELETE FROM temp.purged_deliveries")
            conn.execute(
                f"INSERT INTO temp.purged_deliveries SELECT seq, {_ID_SQL.format('')}, message_id "
                "FROM resthooks_deliveries WHERE due_at IS NULL AND updated_at < ? "
                "ORDER BY updated_at LIMIT ?",
                (cutoff, -1 if limit is None else max(limit, 0)),
            )
            conn.execute(
                "DELETE FROM resthooks_attempts WHERE delivery_seq IN (SELECT seq FROM "
                "temp.purged_deliveries) AND delivery_id IN (SELECT id FROM "
                "temp.purged_deliveries)"
            )
            count = conn.execute(
                "DELETE FROM resthooks_deliveries WHERE seq IN (SELECT seq FROM "
                "temp.purged_deliveries)"
            ).rowcount
            conn.execute(
                "UPDATE resthooks_messages SET remaining = remaining - (SELECT count(*) "
                "FROM temp.purged_deliveries p WHERE p.message_id = resthooks_messages.id) "
                "WHERE id IN (SELECT message_id FROM temp.purged_deliveries)"
            )
            conn.execute(
                "DELETE FROM resthooks_messages WHERE remaining <= 0 AND id IN "
                "(SELECT message_id FROM temp.purged_deliveries)"
            )
            conn.execute("DELETE FROM temp.purged_deliveries")
        if self._provider is not None:
            pass  # the host's connection: its file, its maintenance
        elif limit is None or count < limit:
            self._give_space_back()
        else:
            self._checkpoint("PASSIVE")
        return count

    def _checkpoint(self, mode: Literal["PASSIVE", "TRUNCATE"]) -> None:
        # Best effort: a reader holding an old snapshot keeps part of the WAL, and the next
        # checkpoint takes it. journal_size_limit caps what the file keeps afterwards.
        try:
            self._conn().execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except _DB_ERRORS as exc:
            if not _is_busy(exc):
                raise self._wrap(exc, "checkpointing the WAL") from exc

    def _give_space_back(self) -> None:
        conn = self._conn()
        if not self._write_lock.acquire(timeout=self.busy_timeout):
            return  # busy: the next purge gives it back
        try:
            # executescript steps the pragma to its end: execute() frees one page per step.
            # In autocommit mode it is its own short transaction.
            conn.executescript("PRAGMA incremental_vacuum;")
        except _DB_ERRORS as exc:
            if not _is_busy(exc):
                raise self._wrap(exc, "giving free pages back") from exc
        finally:
            self._write_lock.release()
        self._checkpoint("TRUNCATE")

    def vacuum(self) -> VacuumReport:
        """Rewrite the file compactly (``VACUUM``) and truncate the WAL: ``resthooks vacuum``.

        :meth:`purge` already gives free pages back on files this version created (they use
        incremental vacuum); ``vacuum`` also compacts files made by earlier versions (it turns
        incremental vacuum on for them) and defragments. It holds the write lock while it
        runs (seconds per hundred MB) and needs free space about the size of the file: run
        it in a quiet moment.

        Returns:
            The file's size before and after, in bytes.

        Raises:
            StoreError: If it cannot (the disk is full, the database is locked...).

        .. versionadded:: 0.2.0
        """
        if self._provider is not None:
            raise ConfigurationError(
                "vacuum() compacts a file the store opens itself, not the host's connection"
            )
        before = self._file_size()
        conn = self._conn()
        if not self._write_lock.acquire(timeout=self.busy_timeout):
            raise StoreError(f"vacuuming {self.path!r}: other threads held the write lock")
        try:
            if not self._adopted:  # a shared file keeps the settings its application chose
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("VACUUM")
        except _DB_ERRORS as exc:
            raise self._wrap(exc, "vacuuming") from exc
        finally:
            self._write_lock.release()
        self._checkpoint("TRUNCATE")
        return VacuumReport(size_before=before, size_after=self._file_size())

    def _file_size(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(self.path + suffix)
        return total

    def check(self) -> list[StoreProblem]:
        """Look for damage: SQLite's integrity and foreign-key checks, then the outbox's own
        invariants (every pending delivery has a due time and a live hook, every in-flight
        one a claim, every message the right count of deliveries...). ``resthooks check``.

        It only reads. An empty list means nothing was found.

        Returns:
            What is wrong, one :class:`~resthooks.model.StoreProblem` per kind of problem.

        Example:
            >>> import os, tempfile
            >>> from resthooks.stores import SQLiteStore
            >>> with SQLiteStore(os.path.join(tempfile.mkdtemp(), "hooks.db")) as store:
            ...     store.check()
            []

        .. versionadded:: 0.2.0
        """
        problems: list[StoreProblem] = []
        try:
            conn = self._conn()
            found = [r[0] for r in conn.execute("PRAGMA integrity_check(20)").fetchall()]
            if found != ["ok"]:
                problems.append(StoreProblem("integrity", "; ".join(map(str, found)), len(found)))
            keys = conn.execute("PRAGMA foreign_key_check").fetchall()
            if keys:
                problems.append(
                    StoreProblem("foreign_key", f"{len(keys)} rows point nowhere", len(keys))
                )
            for kind, description, query in _INVARIANTS:
                (count,) = conn.execute(_prefixed(query), {"lo": _MIN_US, "hi": _MAX_US}).fetchone()
                if count:
                    problems.append(StoreProblem(kind, description, count))
        except _DB_ERRORS as exc:
            problems.append(StoreProblem("integrity", f"the file cannot be read: {exc}", 1))
        return problems

    # -- the file ----------------------------------------------------------------------------

    def backup(self, target_path: str | os.PathLike[str]) -> None:
        """Copy the database to ``target_path`` with SQLite's online backup API.

        Safe while other threads and processes keep using the store: the copy is one
        consistent snapshot. An existing file at ``target_path`` is replaced.

        Raises:
            StoreError: If the copy cannot be written.

        Example:
            >>> import os, tempfile
            >>> from resthooks.stores import SQLiteStore
            >>> folder = tempfile.mkdtemp()
            >>> store = SQLiteStore(os.path.join(folder, "hooks.db"))
            >>> store.backup(os.path.join(folder, "copy.db"))
            >>> store.close()
            >>> with SQLiteStore(os.path.join(folder, "copy.db")) as copy:
            ...     copy.stats().deliveries["pending"]
            0
        """
        source = self._conn()
        try:
            target = sqlite3.connect(os.fspath(target_path), isolation_level=None)
        except _DB_ERRORS as exc:
            raise StoreError(
                f"cannot open the backup target {os.fspath(target_path)!r}: {exc}"
            ) from exc
        try:
            source.backup(target)
        except _DB_ERRORS as exc:
            raise self._wrap(exc, f"backing up to {os.fspath(target_path)!r}") from exc
        finally:
            target.close()

    def close(self) -> None:
        """Close every connection the store opened. Idempotent; the store is unusable after."""
        self._closed = True
        with self._connections_lock:
            connections, self._connections = self._connections, {}
        for conn in connections.values():
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path!r} synchronous={self.synchronous}>"
