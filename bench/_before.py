"""Load a module of resthooks as it was at another git revision, beside the current one.

A benchmark's "before" and "after" then run in one process, rounds interleaved, so the load
of a shared machine hits both alike.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_before(rev: str, module: str) -> ModuleType:
    """``module`` (dotted, e.g. ``resthooks.stores.memory``) as of git revision ``rev``."""
    path = "src/" + module.replace(".", "/") + ".py"
    source = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    name = f"{module}_before_{rev.replace('/', '_').replace('~', '_').replace('^', '_')}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    loaded = importlib.util.module_from_spec(spec)
    loaded.__package__ = module.rpartition(".")[0]
    sys.modules[name] = loaded
    exec(compile(source, f"{rev}:{path}", "exec"), loaded.__dict__)
    return loaded
