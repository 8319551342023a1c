"""The observability extras stay optional: the core never imports them, and without them the
modules that need them say which extra to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

OPTIONAL = (
    "opentelemetry",
    "prometheus_client",
    "aiohttp",
    "httptools",
    "django",
    "psycopg",
    "cryptography",
    "jsonschema",
    "referencing",
)

# Makes the optional packages impossible to import, as on a machine without the extras.
BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('opentelemetry', 'prometheus_client'):
            raise ImportError(f'No module named {name!r} (blocked by the test)')
        return None
sys.meta_path.insert(0, Block())
"""


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_core_imports_no_optional_package() -> None:
    """resthooks, its stores, testing kit, figures, health check, command line, asyncio
    face (resthooks.aio) and OpenAPI document import none of the optional packages (a
    catalogue without schemas needs no jsonschema), and a Dispatcher has no emit observer
    until one is set."""
    code = (
        "import sys, resthooks, resthooks.stores, resthooks.testing, resthooks.observability, "
        "resthooks.health, resthooks.tracing, resthooks.cli, resthooks.aio, resthooks.api, "
        "resthooks.openapi\n"
        "from resthooks import Dispatcher, EventCatalogue\n"
        "from resthooks.stores import MemoryStore\n"
        "assert Dispatcher(MemoryStore()).emit_observer is None\n"
        "events = EventCatalogue({'a': ['b']}, descriptions={'a/b': 'x'}, examples={'a/b': {}})\n"
        "resthooks.openapi.openapi_document(events)\n"
        f"optional = {OPTIONAL!r}\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in optional)))\n"
    )
    done = python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


@pytest.mark.parametrize(
    ("module", "extra"), [("resthooks.otel", "otel"), ("resthooks.prometheus", "prometheus")]
)
def test_without_the_extra_the_module_names_it(module: str, extra: str) -> None:
    """Importing resthooks.otel or resthooks.prometheus without its package raises an
    ImportError that says which extra to install."""
    done = python(BLOCK + f"import {module}\n")
    assert done.returncode != 0
    assert f"ImportError: {module} needs" in done.stderr
    assert f"pip install 'resthooks[{extra}]'" in done.stderr


def test_the_worker_without_prometheus_refuses_metrics_port(tmp_path: Path) -> None:
    """`resthooks worker --metrics-port` without prometheus_client: exit 2, one line."""
    db = tmp_path / "hooks.db"
    from resthooks.stores import SQLiteStore  # noqa: PLC0415

    SQLiteStore(db).close()
    done = python(
        BLOCK
        + "from resthooks.cli import main\n"
        + f"sys.exit(main(['worker', '--once', '--metrics-port', '0', '--db', {str(db)!r}]))\n"
    )
    assert done.returncode == 2, done.stderr
    assert "resthooks[prometheus]" in done.stderr
    assert len(done.stderr.splitlines()) == 1
