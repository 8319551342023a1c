"""The Django integration in a real project (tests/django_project) on SQLite.

Django's own test runner runs the project's tests (in-memory SQLite test database,
``TestCase`` transactions, ``captureOnCommitCallbacks``); then the project runs under
``runserver`` with ``manage.py resthooks worker`` delivering to a receiver on loopback.
PostgreSQL: tests/postgres/test_django_postgres.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from framework_support import DJANGO_PROJECT, django_end_to_end, run
from resthooks.testing import HookReceiver

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("django") is None, reason="the django extra is not installed"
)


def test_the_projects_own_tests_pass_under_djangos_runner_store_elsewhere() -> None:
    """manage.py test: the project's tests pass with the store outside its database."""
    result = run(
        ["manage.py", "test", "crm", "-v", "2"],
        cwd=DJANGO_PROJECT,
        env={"CRM_STORE_ELSEWHERE": "memory"},
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert "OK" in result.stderr


def test_end_to_end_under_runserver_store_elsewhere(
    tmp_path: Path, hook_receiver: HookReceiver
) -> None:
    """runserver + worker process, the store in its own SQLite file (emit on commit)."""
    django_end_to_end(
        {
            "CRM_DATABASE": str(tmp_path / "crm.sqlite3"),
            "CRM_STORE_ELSEWHERE": str(tmp_path / "hooks.db"),
        },
        hook_receiver,
    )
