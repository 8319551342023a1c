"""Stores: where hooks and deliveries live.

Every store implements :class:`Store` (the :class:`HookRegistry` and :class:`DeliveryStore`
protocols) and passes :func:`resthooks.testing.check_store`.
"""

from ._protocol import DeliveryStore, HookRegistry, Store
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["DeliveryStore", "HookRegistry", "MemoryStore", "SQLiteStore", "Store"]
