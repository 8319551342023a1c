"""The store conformance suite, run against every store the project ships."""

from __future__ import annotations

from pathlib import Path

import pytest

from resthooks.stores import MemoryStore, SQLiteStore
from resthooks.testing import STORE_CHECKS, check_store


@pytest.mark.parametrize("name", sorted(STORE_CHECKS))
def test_memory_store_passes(name: str) -> None:
    """MemoryStore passes each conformance check."""
    check_store(MemoryStore, only=name)


def test_check_store_names_the_failing_check() -> None:
    """A store that breaks the contract fails with an AssertionError naming the check."""

    class Forgetful(MemoryStore):
        def get_hook(self, hook_id: str):  # type: ignore[no-untyped-def]
            return None

    with pytest.raises(AssertionError, match="add_and_get_hook"):
        check_store(Forgetful, only="add_and_get_hook")


@pytest.mark.parametrize("name", sorted(STORE_CHECKS))
def test_sqlite_store_passes(name: str, tmp_path: Path) -> None:
    """SQLiteStore, on a new file in a temporary directory, passes each conformance check."""
    counter = iter(range(1_000_000))
    check_store(lambda: SQLiteStore(tmp_path / f"store{next(counter)}.db"), only=name)
