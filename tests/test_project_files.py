"""The commands that install the project for its tests agree with pyproject.toml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The compiled psycopg: another build of what the postgres extra installs, not a feature.
NOT_FOR_TESTS = {"postgres-binary"}


def _declared_extras() -> set[str]:
    # Read as text: tomllib is 3.11 and up, and the project supports 3.10.
    pyproject = (ROOT / "pyproject.toml").read_text()
    section = pyproject.split("[project.optional-dependencies]\n", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([a-z0-9-]+) = \[", section, re.MULTILINE)) - NOT_FOR_TESTS


def _extras_installed_by(text: str) -> set[str]:
    [extras] = re.findall(r"\.\[([a-z0-9,-]+)\]", text)
    return set(extras.split(","))


@pytest.mark.parametrize(
    ("name", "part"),
    [
        (".ci/run", lambda text: text),
        ("README.md", lambda text: next(line for line in text.splitlines() if "pytest" in line)),
        ("noxfile.py", lambda text: text.split("def tests(", 1)[1].split("@nox.session", 1)[0]),
    ],
)
def test_the_test_installs_have_every_extra(name, part):
    """CI, the README's test command and nox's tests session install every extra the project
    declares (but the alternative psycopg build), so no optional feature goes untested."""
    assert _declared_extras() == _extras_installed_by(part((ROOT / name).read_text()))
