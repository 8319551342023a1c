"""The app factory uvicorn serves in the lifespan test (a script, not a test module).

``uvicorn --factory aio_uvicorn_app:make --workers N``: each server process builds the
example FastAPI app (docs/examples/fastapi_async_app.py) on the same SQLite file, with its
own async worker in its own loop.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from resthooks import Dispatcher
from resthooks.aio import AsyncDispatcher
from resthooks.stores import SQLiteStore
from resthooks.testing import LOOPBACK_POLICY

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "fastapi_async_app.py"


def make() -> Any:
    spec = importlib.util.spec_from_file_location("fastapi_async_app", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    engine = Dispatcher(
        SQLiteStore(os.environ["RESTHOOKS_TEST_DB"]), network_policy=LOOPBACK_POLICY
    )
    # The loopback receiver is allowed by the engine's policy; the default (aiohttp)
    # transport enforces the same policy.
    return example.create_app(AsyncDispatcher(engine), concurrency=64)
