"""The documented Flask recipe (docs/examples/parties_app.py), configured as it would be in
production: its SQLite file from the environment, the real transport, the system clock."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "examples"))

from parties_app import create_app

from resthooks import Dispatcher, Timeouts
from resthooks.stores import SQLiteStore
from resthooks.testing import LOOPBACK_POLICY

# The receiver of the test listens on loopback, which the default policy refuses.
dispatcher = Dispatcher(
    SQLiteStore(os.environ["CRM_DB"], adopt=True),
    network_policy=LOOPBACK_POLICY,
    timeouts=Timeouts(connect=2, total=5),
)
app = create_app(dispatcher)
