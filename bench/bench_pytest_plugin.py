"""What the pytest plugin costs a session that does not use it.

Runs the same one-test session in fresh interpreters, interleaved, in three ways:

- baseline: the plugin disabled (``-p no:resthooks``);
- plugin: as installed (the plugin module loads, imports nothing of resthooks);
- eager: the plugin disabled and ``resthooks.testing`` loaded as a plugin instead, which is
  what a plugin module inside the resthooks package would cost (its parent packages import
  the Dispatcher, urllib3 and ssl).

Prints the median CPU time (user + system) of each session's process, which a busy machine
disturbs less than wall time, and the ratios to the baseline; then the import time of the
plugin module against that of ``resthooks.testing``, both after ``import pytest``. Run by
hand: ``python bench/bench_pytest_plugin.py [rounds]``.
"""

from __future__ import annotations

import re
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# Other plugins' costs are the same in every variant; leaving the slowest out lowers the noise.
QUIET = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
VARIANTS = {
    "baseline": ["-p", "no:resthooks"],
    "plugin": [],
    "eager": ["-p", "no:resthooks", "-p", "resthooks.testing"],
}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_one.py").write_text("def test_one():\n    assert True\n")
        Path(tmp, "pytest.ini").write_text("[pytest]\n")
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(rounds):
            for name, args in VARIANTS.items():
                command = [sys.executable, "-m", "pytest", "-q", *QUIET, *args]
                times[name].append(_cpu_seconds(command, cwd=tmp))
    base = statistics.median(times["baseline"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:9} median CPU {median * 1000:7.1f} ms  ratio to baseline {median / base:.3f}")
    plugin = statistics.median(_import_us("_resthooks_pytestplugin") for _ in range(rounds))
    eager = statistics.median(_import_us("resthooks.testing") for _ in range(rounds))
    print(
        f"import after pytest: plugin module {plugin / 1000:.1f} ms, resthooks.testing "
        f"{eager / 1000:.1f} ms (ratio {eager / plugin:.0f})"
    )


def _cpu_seconds(command: list[str], cwd: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _import_us(module: str) -> int:
    """Cumulative import time of ``module`` in microseconds, pytest already imported."""
    code = f"import pytest, _pytest.config, importlib.metadata; import {module}"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], check=True, capture_output=True, text=True
    )
    pattern = re.compile(rf"\|\s*(\d+) \| {re.escape(module)}$", re.MULTILINE)
    match = pattern.search(result.stderr)
    assert match, result.stderr[-500:]
    return int(match.group(1))


if __name__ == "__main__":
    main()
