"""The admin index's two links (unmanaged models: no table is created)."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):  # type: ignore[misc] # Django ships no type hints
    dependencies = [("resthooks", "0001_initial")]  # noqa: RUF012 - Django reads class attributes
    operations = [  # noqa: RUF012 - as Django writes migrations
        migrations.CreateModel(
            name="DeliveriesPage",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
            ],
            options={
                "verbose_name": "delivery",
                "verbose_name_plural": "deliveries",
                "db_table": "resthooks_admin_link_deliveries",
                "managed": False,
                "default_permissions": (),
            },
        ),
        migrations.CreateModel(
            name="HooksPage",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
            ],
            options={
                "verbose_name": "hook",
                "verbose_name_plural": "hooks",
                "db_table": "resthooks_admin_link_hooks",
                "managed": False,
                "default_permissions": (),
            },
        ),
    ]
