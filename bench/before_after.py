"""Run a benchmark script on an older revision and on the working tree, interleaved.

Run it from the repository root:

    python bench/before_after.py REV [--rounds 3] -- bench/bench_delivery.py --deliveries 5000

Each round runs the script twice, once with ``src/`` of ``REV`` (extracted with
``git archive`` into a temporary directory and put first on ``PYTHONPATH``) and once with
the working tree, in alternating order. Every ratio the script prints (a number followed by
``x``, such as ``0.56x plain loop``) is collected per line; the summary gives, per line, the
median over rounds before and after, and after / before. The scripts' own ratios are already
against a baseline measured in the same run, so this compares like with like on a shared,
noisy machine.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from io import BytesIO
from pathlib import Path

_RATIO = re.compile(r"(\d+(?:\.\d+)?)x\b")
_LABEL = re.compile(r"^\s*([^\d]*?)[\s:]*\d")


def _extract(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", rev, "src"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _run(script: list[str], src: Path | None) -> dict[str, list[float]]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, *script], check=True, capture_output=True, text=True, env=env
    ).stdout
    found: dict[str, list[float]] = {}
    for line in out.splitlines():
        ratios = [float(r) for r in _RATIO.findall(line)]
        label = _LABEL.match(line)
        if ratios and label and label.group(1).strip():
            found[label.group(1).strip()] = ratios
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the revision measured as 'before'")
    parser.add_argument("--rounds", type=int, default=3)
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    script = argv[cut + 1 :]
    if not script:
        parser.error("give the benchmark script after --")
    results: dict[str, dict[str, list[list[float]]]] = {
        "before": defaultdict(list),
        "after": defaultdict(list),
    }
    with tempfile.TemporaryDirectory() as tmp:
        old_src = _extract(args.rev, Path(tmp))
        for n in range(args.rounds):
            order = [("before", old_src), ("after", None)]
            for side, src in order if n % 2 == 0 else reversed(order):
                for label, ratios in _run(script, src).items():
                    results[side][label].append(ratios)
                print(f"round {n + 1}: {side} done", file=sys.stderr, flush=True)
    print(f"{' '.join(script)}: {args.rounds} rounds, before = {args.rev}, after = working tree")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    for label, rounds in results["after"].items():
        before_rounds = results["before"].get(label)
        if not before_rounds:
            continue
        for i in range(len(rounds[0])):
            after = statistics.median(r[i] for r in rounds if len(r) > i)
            before = statistics.median(r[i] for r in before_rounds if len(r) > i)
            print(
                f"{label[:48]:>48} [{i}]: before {before:.2f}x, after {after:.2f}x, "
                f"after/before {after / before:.2f}"
            )


if __name__ == "__main__":
    main()
