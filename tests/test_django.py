"""The Django integration in a real project (tests/django_project) on SQLite.

Django's own test runner runs the project's tests (in-memory SQLite test database,
``TestCase`` transactions, ``captureOnCommitCallbacks``); then the project runs under
``runserver`` with ``manage.py resthooks worker`` delivering to a receiver on loopback.
PostgreSQL: tests/postgres/test_django_postgres.py.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
from pathlib import Path

import pytest

from framework_support import DJANGO_PROJECT, django_end_to_end, run
from resthooks.testing import HookReceiver

# Without the extra these tests are skipped, saying so; in CI, where every extra is installed,
# a missing Django is a failure rather than a quiet skip (as for aiohttp and PostgreSQL).
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("django") is None and not os.environ.get("CI"),
    reason="the django extra is not installed: pip install -e '.[django]' to run these tests",
)


@pytest.mark.parametrize(
    "env",
    [{}, {"CRM_STORE_ELSEWHERE": "memory"}],
    ids=["store-in-the-test-database", "store-elsewhere"],
)
def test_the_projects_own_tests_pass_under_djangos_runner(env: dict[str, str]) -> None:
    """manage.py test: the project's tests pass on the in-memory SQLite test database, with
    the store's tables inside it (the default) and with the store elsewhere (on_commit)."""
    result = run(["manage.py", "test", "crm", "-v", "2"], cwd=DJANGO_PROJECT, env=env)
    assert result.returncode == 0, result.stderr[-5000:]
    assert "Ran 20 tests" in result.stderr
    assert "OK" in result.stderr


def test_end_to_end_under_runserver_in_the_projects_sqlite_file(
    tmp_path: Path, hook_receiver: HookReceiver
) -> None:
    """runserver + worker process on one SQLite file holding the CRM's tables and the
    store's resthooks_* tables, both written in one transaction."""
    db = tmp_path / "crm.sqlite3"
    django_end_to_end({"CRM_DATABASE": str(db)}, hook_receiver)
    conn = sqlite3.connect(db)
    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert {"crm_party", "auth_user", "resthooks_hooks", "resthooks_deliveries"} <= tables
