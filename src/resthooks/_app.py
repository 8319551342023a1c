"""``--app module:attribute``: the host application's own Dispatcher, found by name. Not public.

What ``uvicorn mod:app`` and ``celery -A`` do for their frameworks: the command line imports
``module``, looks ``attribute`` up in it (dotted names go further down: ``mod:hooks.engine``)
and uses what it finds, either a :class:`~resthooks.Dispatcher` (or an
:class:`~resthooks.aio.AsyncDispatcher`) or a factory called with no arguments that returns
one. The current directory is put on ``sys.path`` first, as uvicorn does, so that
``resthooks --app myproject.hooks:make_dispatcher`` works from the project's directory.

Every way this can fail raises :class:`~resthooks.errors.AppError`, whose message names the
spec and says what went wrong, never a secret: an exception raised while importing the module
or calling the factory is quoted with URL credentials, query strings and ``password=`` values
masked (a factory that fails to connect to its database often quotes its DSN).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import TYPE_CHECKING, Any, Union

from .dispatcher import Dispatcher
from .errors import AppError
from .urls import redact_text

if TYPE_CHECKING:
    from .aio import AsyncDispatcher

__all__ = ["AppDispatcher", "load_app", "quote", "redact", "sync_dispatcher"]

AppDispatcher = Union[Dispatcher, "AsyncDispatcher"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_MAX_SPEC = 500
_MAX_QUOTE = 300
# libpq key/value connection strings (``host=db password=s3cret``) and the like.
_SECRET_VALUE = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|api_key|apikey)(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|[^\s),;]+)"
)


def redact(text: str) -> str:
    """``text`` on one line, with URL credentials, query strings and secret values masked.

    Example:
        >>> redact("cannot connect to postgresql://app:s3cret@db/app (host=db password=s3cret)")
        'cannot connect to postgresql://***@db/app (host=db password=***)'
    """
    text = redact_text(" ".join(text.split()))
    return _SECRET_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


def quote(exc: BaseException) -> str:
    """An exception raised by the host's code (or a driver), as one safe, short line."""
    text = redact(str(exc))
    if len(text) > _MAX_QUOTE:
        text = text[: _MAX_QUOTE - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _a(name: str) -> str:
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _async_dispatcher_type() -> type | None:
    # Only an app that imported resthooks.aio can hand us an AsyncDispatcher: never import it
    # (or aiohttp) for an app that did not.
    aio = sys.modules.get("resthooks.aio")
    return getattr(aio, "AsyncDispatcher", None) if aio is not None else None


def _accepted(value: object) -> bool:
    async_type = _async_dispatcher_type()
    return isinstance(value, Dispatcher) or (
        async_type is not None and isinstance(value, async_type)
    )


def sync_dispatcher(app: AppDispatcher) -> Dispatcher:
    """The Dispatcher behind what the app gave: itself, or an AsyncDispatcher's engine."""
    return app if isinstance(app, Dispatcher) else app.dispatcher


def load_app(spec: object) -> AppDispatcher:
    """The Dispatcher (or AsyncDispatcher) ``spec`` (``"module:attribute"``) names.

    Raises:
        AppError: If ``spec`` is malformed, the module cannot be found or raises while it is
            imported, the attribute is missing, or it is neither a Dispatcher nor a factory
            returning one (or the factory raises).

    Example:
        >>> load_app("resthooks:Dispatcher")
        Traceback (most recent call last):
        ...
        resthooks.errors.AppError: --app 'resthooks:Dispatcher': calling it raised TypeError: ...
        >>> load_app("no_such_module_here:dispatcher")
        Traceback (most recent call last):
        ...
        resthooks.errors.AppError: --app 'no_such_module_here:dispatcher': no module named ...
    """
    if not isinstance(spec, str) or not spec.strip():
        raise AppError(
            "", "must be 'module:attribute', like 'myproject.hooks:dispatcher'; got nothing"
        )
    if len(spec) > _MAX_SPEC or "\x00" in spec:
        raise AppError(spec[:40] + "...", f"must be at most {_MAX_SPEC} characters, without NUL")
    module_name, colon, attribute = spec.strip().partition(":")
    if not colon or not _NAME.fullmatch(module_name) or not _NAME.fullmatch(attribute):
        raise AppError(
            spec, "must be 'module:attribute' (Python names), like 'myproject.hooks:dispatcher'"
        )
    module = _import(spec, module_name)
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise AppError(spec, f"module {module_name!r} has no attribute {attribute!r}") from None
        except Exception as exc:  # noqa: BLE001 - a property of the host's that raises
            raise AppError(spec, f"reading {attribute!r} raised {quote(exc)}") from None
    if _accepted(found):
        return found  # type: ignore[no-any-return]
    if not callable(found):
        raise AppError(
            spec,
            f"is {_a(type(found).__name__)}, not a resthooks.Dispatcher "
            "(nor a factory returning one)",
        )
    try:
        made = found()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the host's code may raise anything
        raise AppError(spec, f"calling it raised {quote(exc)}") from None
    if not _accepted(made):
        raise AppError(
            spec,
            f"calling it returned {_a(type(made).__name__)}, not a resthooks.Dispatcher "
            "(or resthooks.aio.AsyncDispatcher)",
        )
    return made  # type: ignore[no-any-return]


def _import(spec: str, module_name: str) -> Any:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            raise AppError(
                spec,
                f"no module named {missing!r} (run from the directory that holds it, or add "
                "that directory to PYTHONPATH)",
            ) from None
        raise AppError(spec, f"importing {module_name!r} raised {quote(exc)}") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the host's code may raise anything
        raise AppError(spec, f"importing {module_name!r} raised {quote(exc)}") from None
