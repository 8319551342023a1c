from importlib.metadata import version

import pytest

import resthooks


def test_version_is_the_package_metadata() -> None:
    """resthooks.__version__ is read from the installed distribution's metadata."""
    assert version("resthooks") == resthooks.__version__


def test_unknown_attribute_raises_attribute_error() -> None:
    """The lazy module __getattr__ does not invent other names."""
    with pytest.raises(AttributeError, match="no_such_name"):
        resthooks.no_such_name  # noqa: B018


def _isort_key(name: str) -> tuple[int, str]:
    # Constants, then classes, then functions: the order ruff's RUF022 keeps.
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_importable() -> None:
    """__all__ is sorted (constants, classes, functions) and every name in it exists."""
    assert sorted(resthooks.__all__, key=_isort_key) == resthooks.__all__
    for name in resthooks.__all__:
        assert getattr(resthooks, name) is not None
