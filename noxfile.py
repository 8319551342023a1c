"""Sessions: tests, lint, typing, docs. A plain ``nox`` runs them all."""

from __future__ import annotations

import nox

nox.needs_version = ">=2024.4.15"
nox.options.default_venv_backend = "venv"
nox.options.error_on_external_run = True
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typing", "docs"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite with branch coverage."""
    session.install(
        "-e",
        # Every extra but postgres-binary, as .ci/run and README.md (tests/test_project_files.py)
        ".[postgres,async,django,flask,fastapi,otel,prometheus,ed25519,schemas]",
        *nox.project.dependency_groups(PYPROJECT, "tests"),
    )
    session.run(
        "python",
        "-m",
        "pytest",
        "--cov=resthooks",
        "--cov-branch",
        "--cov-report=term",
        *session.posargs,
    )


@nox.session
@nox.parametrize("series", ["4.2", "5.2"])
def django(session: nox.Session, series: str) -> None:
    """The Django integration's tests on each supported Django series (4.2 LTS, 5.2)."""
    session.install(
        "-e",
        ".[postgres,django]",
        f"django~={series}.0",
        *nox.project.dependency_groups(PYPROJECT, "tests"),
    )
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/test_django.py",
        "tests/postgres/test_django_postgres.py",
        *session.posargs,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on src/."""
    session.install(
        "-e",
        ".[postgres,async,django,flask,fastapi,otel,prometheus,schemas]",
        *nox.project.dependency_groups(PYPROJECT, "typing"),
    )
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation; a warning or a broken reference fails it."""
    session.install(
        "-e",
        ".[postgres,async,django,flask,fastapi,otel,prometheus,schemas]",
        *nox.project.dependency_groups(PYPROJECT, "docs"),
    )
    session.run(
        "sphinx-build", "-W", "-n", "--keep-going", "-b", "html", "docs", "docs/_build/html"
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks in bench/ (by hand: they take minutes and print ratios)."""
    session.install(
        "-e",
        ".[postgres,async,django,flask,fastapi,otel,prometheus,schemas]",
        *nox.project.dependency_groups(PYPROJECT, "tests"),
    )
    for script in sorted(__import__("pathlib").Path("bench").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs)
