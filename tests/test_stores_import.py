"""resthooks' core never imports the optional database drivers."""

from __future__ import annotations

import subprocess
import sys

import pytest

import resthooks.stores


def test_core_import_does_not_import_psycopg() -> None:
    """Importing resthooks (its API layer, command line, contrib package) leaves psycopg and
    the web frameworks unimported."""
    code = (
        "import sys, resthooks, resthooks.stores, resthooks.testing, resthooks.api\n"
        "import resthooks.cli, resthooks.contrib\n"
        "drivers = ('psycopg', 'psycopg_pool', 'django', 'flask', 'werkzeug', 'fastapi',\n"
        "           'starlette')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in drivers)\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_unknown_store_name_is_an_attribute_error() -> None:
    """The lazy lookup in resthooks.stores answers other names with AttributeError."""
    with pytest.raises(AttributeError, match="NoSuchStore"):
        resthooks.stores.NoSuchStore  # noqa: B018 - the attribute access is the test
