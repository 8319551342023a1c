"""Stores: where hooks and deliveries live.

Every store implements :class:`Store` (the :class:`HookRegistry` and :class:`DeliveryStore`
protocols) and passes :func:`resthooks.testing.check_store`.
"""

from ._protocol import DeliveryStore, HookRegistry, Store, WakesWorkers
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "DeliveryStore",
    "HookRegistry",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "WakesWorkers",
]


def __getattr__(name: str) -> object:
    # PostgresStore needs psycopg (the `postgres` extra): import it only when asked for, so
    # `import resthooks.stores` never imports psycopg.
    if name == "PostgresStore":
        from .postgres import PostgresStore  # noqa: PLC0415 - lazy on purpose, see above

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
