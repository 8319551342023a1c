"""Running the store conformance suite against a store of your own."""

from __future__ import annotations

from typing import Any

import pytest

from resthooks import Delivery
from resthooks.stores import MemoryStore
from resthooks.testing import STORE_CHECKS, check_store


class CountingStore(MemoryStore):
    """Stands for your own store: here, a MemoryStore that counts the events it queued."""

    def __init__(self) -> None:
        super().__init__()
        self.enqueued = 0

    def enqueue(self, **kwargs: Any) -> list[Delivery]:
        made = super().enqueue(**kwargs)
        self.enqueued += 1
        return made


@pytest.mark.parametrize("check", sorted(STORE_CHECKS))
def test_counting_store_conforms(check: str) -> None:
    """CountingStore passes each check of the conformance suite (one test per check)."""
    check_store(CountingStore, only=check)
