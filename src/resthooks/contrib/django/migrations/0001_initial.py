"""Create (or bring up to date) the store's tables in the database the store lives in."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def create_store_tables(apps: Any, schema_editor: Any) -> None:
    from resthooks.contrib.django._store import create_tables  # noqa: PLC0415

    create_tables(schema_editor.connection.alias)


class Migration(migrations.Migration):  # type: ignore[misc] # Django ships no type hints
    initial = True
    dependencies: list[tuple[str, str]] = []  # noqa: RUF012 - Django reads class attributes
    operations = [  # noqa: RUF012 - as Django writes migrations
        migrations.RunPython(create_store_tables, migrations.RunPython.noop, elidable=False)
    ]
