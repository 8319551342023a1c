"""The Django integration on PostgreSQL: the store shares the project's database.

The store's tables live in the ``resthooks`` schema of the project's database, and every
store operation runs on Django's own connection, so emit joins the ``atomic()`` block of the
save (and a ``TestCase``'s transaction). Django's test runner runs the project's tests on a
test database of the server the run started; then the project runs under ``runserver`` and
``manage.py resthooks worker``.
"""

# ruff: noqa: PLC0415 - psycopg is optional: imported once the fixtures checked for it

from __future__ import annotations

import importlib.util
import os
import uuid

import pytest
import support

from framework_support import DJANGO_PROJECT, django_end_to_end, run
from resthooks.testing import HookReceiver

# Without the extra these tests are skipped, saying so; in CI, where every extra is installed,
# a missing Django is a failure rather than a quiet skip (as for aiohttp and PostgreSQL).
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("django") is None and not os.environ.get("CI"),
    reason="the django extra is not installed: pip install -e '.[django]' to run these tests",
)


def _database(cluster: support.Cluster) -> dict[str, str]:
    import psycopg
    from psycopg import sql

    name = f"crm_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return {"CRM_PG_HOST": str(cluster.root), "CRM_PG_PORT": str(cluster.port), "CRM_PG_NAME": name}


def test_the_projects_own_tests_pass_on_postgres(pg_cluster: support.Cluster) -> None:
    """manage.py test on a PostgreSQL test database, the store inside it."""
    result = run(["manage.py", "test", "crm"], cwd=DJANGO_PROJECT, env=_database(pg_cluster))
    assert result.returncode == 0, result.stderr[-5000:]


def test_end_to_end_under_runserver_on_postgres(
    pg_cluster: support.Cluster, hook_receiver: HookReceiver
) -> None:
    """runserver + worker process on one PostgreSQL database, store and CRM together."""
    env = _database(pg_cluster)
    django_end_to_end(env, hook_receiver)
    import psycopg

    conninfo = pg_cluster.conninfo(env["CRM_PG_NAME"])
    with psycopg.connect(conninfo) as conn:
        tables = {
            (schema, table)
            for schema, table in conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema IN ('public', 'resthooks')"
            )
        }
    assert ("public", "crm_party") in tables
    assert ("resthooks", "deliveries") in tables, "the store's tables are in their own schema"
