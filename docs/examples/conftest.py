"""Lets the example tests import the example app the way an app's own tests import it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
