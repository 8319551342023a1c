"""A merge left half done must not land: no tracked text file holds a conflict's markers.

One did once (in ``docs/performance.md``); only the doctest collection of that page noticed,
and only because a marker happened to follow a ``>>>`` prompt's rules.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".html", ".json", ".sql"}
# Built, not written, so that this file does not hold them itself.
MARKERS = ("<" * 7 + " ", ">" * 7 + " ", "|" * 7 + " ")


def _text_files() -> list[Path]:
    files = [
        ROOT / "README.md",
        ROOT / "CHANGELOG.md",
        ROOT / "pyproject.toml",
        ROOT / "noxfile.py",
    ]
    files.append(ROOT / ".ci" / "run")
    for top in ("src", "tests", "docs", "bench"):
        files.extend(
            p
            for p in (ROOT / top).rglob("*")
            if p.is_file() and p.suffix in SUFFIXES and "_build" not in p.parts
        )
    return [p for p in files if p.is_file()]


def test_no_file_holds_conflict_markers() -> None:
    files = _text_files()
    assert len(files) > 100, "the walk found the project's files"
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if line.startswith(MARKERS)
    ]
    assert found == []
