"""resthooks' core never imports the optional database drivers, nor aiohttp."""

from __future__ import annotations

import subprocess
import sys

import pytest

import resthooks.stores
import resthooks.transports


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


def test_core_import_does_not_import_aiohttp() -> None:
    """Importing resthooks, resthooks.transports and resthooks.testing leaves aiohttp (and
    the packages it brings) unimported; asking for AiohttpTransport imports it then."""
    code = (
        "import sys, resthooks, resthooks.transports, resthooks.testing\n"
        "extra = ('aiohttp', 'yarl', 'multidict', 'aiohappyeyeballs', 'frozenlist', 'httptools')\n"
        "def loaded():\n"
        "    return sorted({m.split('.')[0] for m in sys.modules} & set(extra))\n"
        "print(','.join(loaded()))\n"
        "resthooks.transports.AiohttpTransport\n"
        "print(','.join(loaded()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = done.stdout.splitlines()
    assert before == ""
    assert "aiohttp" in after.split(",")


def test_the_asyncio_transport_imports_httptools_and_not_aiohttp() -> None:
    """Asking for AsyncioTransport (the async worker's default) imports httptools, its
    parser, and neither aiohttp nor what aiohttp brings: sending without a proxy needs none
    of it."""
    code = (
        "import sys, resthooks.transports\n"
        "from resthooks.transports import AsyncioTransport\n"
        "AsyncioTransport()\n"
        "extra = ('aiohttp', 'yarl', 'multidict', 'httptools')\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules} & set(extra))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "httptools"


def test_without_httptools_asking_for_the_asyncio_transport_says_what_to_install() -> None:
    """Without httptools, AsyncioTransport raises an ImportError naming the extra."""
    code = (
        "import sys\n"
        "sys.modules['httptools'] = None  # what an interpreter without httptools sees\n"
        "import resthooks.transports\n"
        "try:\n"
        "    resthooks.transports.AsyncioTransport\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "AsyncioTransport needs httptools" in done.stdout
    assert "pip install 'resthooks[async]'" in done.stdout


def test_without_the_extra_asking_for_the_async_transport_says_what_to_install() -> None:
    """Without aiohttp, resthooks.transports still imports, and AiohttpTransport raises an
    ImportError naming the extra to install."""
    code = (
        "import sys\n"
        "sys.modules['aiohttp'] = None  # what an interpreter without aiohttp sees\n"
        "import resthooks.transports\n"
        "try:\n"
        "    resthooks.transports.AiohttpTransport\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'resthooks[async]'" in done.stdout


def test_unknown_transport_name_is_an_attribute_error() -> None:
    """The lazy lookup in resthooks.transports answers other names with AttributeError."""
    with pytest.raises(AttributeError, match="NoSuchTransport"):
        resthooks.transports.NoSuchTransport  # noqa: B018 - the attribute access is the test


def test_unknown_store_name_is_an_attribute_error() -> None:
    """The lazy lookup in resthooks.stores answers other names with AttributeError."""
    with pytest.raises(AttributeError, match="NoSuchStore"):
        resthooks.stores.NoSuchStore  # noqa: B018 - the attribute access is the test
