"""resthooks in a Flask application: the Dispatcher per app, the API as a Blueprint, and
``flask resthooks``.

::

    from resthooks.contrib.flask import Resthooks, subscription_blueprint

    hooks = Resthooks()                      # at import time, as Flask extensions are

    def create_app(dispatcher):
        app = Flask(__name__)
        hooks.init_app(app, dispatcher)      # a Dispatcher, or a callable building one
        app.register_blueprint(subscription_blueprint(owner=current_owner))
        return app

Then ``flask --app crm resthooks worker`` delivers (stopping cleanly on SIGTERM), and
``flask resthooks stats|hooks|deliveries|redeliver|purge`` inspect the app's own store: the
``resthooks`` command line's verbs on the app's Dispatcher. Needs the ``flask`` extra.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import click
from flask import Blueprint, Flask, Response, current_app, request
from flask.cli import with_appcontext

from .. import cli
from ..api import OPENAPI_PATH, ApiResponse, SubscriptionAPI
from ..dispatcher import Dispatcher
from ..errors import ConfigurationError

__all__ = ["Resthooks", "get_dispatcher", "subscription_blueprint"]

EXTENSION = "resthooks"
_log = logging.getLogger("resthooks.contrib.flask")
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]  # the API answers the others 405


class Resthooks:
    """The Flask extension: one Dispatcher per application, under
    ``app.extensions["resthooks"]``, and the ``flask resthooks`` command group.

    Args:
        app: The application, or ``None`` to call :meth:`init_app` later (app factories).
        dispatcher: As for :meth:`init_app`.
    """

    def __init__(
        self,
        app: Flask | None = None,
        dispatcher: Dispatcher | Callable[[], Dispatcher] | None = None,
    ) -> None:
        if app is not None:
            if dispatcher is None:
                raise ConfigurationError("dispatcher: give the Dispatcher with the app")
            self.init_app(app, dispatcher)

    def init_app(self, app: Flask, dispatcher: Dispatcher | Callable[[], Dispatcher]) -> None:
        """Give ``app`` its Dispatcher: an instance, or a callable building it on first use
        (so that ``flask resthooks`` and each server process open the store themselves).

        Raises:
            ConfigurationError: If ``dispatcher`` is neither.
        """
        if not isinstance(dispatcher, Dispatcher) and not callable(dispatcher):
            raise ConfigurationError(
                "dispatcher: must be a Dispatcher or a callable returning one, not "
                f"{type(dispatcher).__name__}"
            )
        app.extensions[EXTENSION] = _Holder(dispatcher)
        app.cli.add_command(_command)


class _Holder:
    def __init__(self, dispatcher: Dispatcher | Callable[[], Dispatcher]) -> None:
        self._made = dispatcher if isinstance(dispatcher, Dispatcher) else None
        self._factory = None if isinstance(dispatcher, Dispatcher) else dispatcher
        self._lock = threading.Lock()

    def get(self) -> Dispatcher:
        if self._made is None:
            with self._lock:
                if self._made is None:
                    assert self._factory is not None
                    made = self._factory()
                    if not isinstance(made, Dispatcher):
                        raise ConfigurationError(
                            "dispatcher: the callable must return a Dispatcher, not "
                            f"{type(made).__name__}"
                        )
                    self._made = made
        return self._made


def get_dispatcher(app: Flask | None = None) -> Dispatcher:
    """The Dispatcher of ``app`` (default: the current app).

    Raises:
        ConfigurationError: If :meth:`Resthooks.init_app` was not called for the app.
    """
    app = app if app is not None else current_app
    holder = app.extensions.get(EXTENSION)
    if holder is None:
        raise ConfigurationError("this Flask app has no resthooks: call Resthooks().init_app")
    dispatcher: Dispatcher = holder.get()
    return dispatcher


def _reply(answer: ApiResponse) -> Response:
    response = Response(answer.content, answer.status)
    response.headers.clear()
    response.headers.update(answer.headers)
    return response


def subscription_blueprint(
    *,
    owner: Callable[[Any], object],
    url_prefix: str = "/api/v2/resthooks",
    name: str = "resthooks",
) -> Blueprint:
    """The subscription endpoints under ``url_prefix``, as a Blueprint: Capsule's four, the
    owners' (``PATCH``, ``rotate-secret``, ``deliveries``, ``attempts``, ``replay``, ``ping``,
    ``confirm``, ``keys``: see :meth:`resthooks.api.SubscriptionAPI.handle`), and the
    webhooks' OpenAPI document at ``{url_prefix}/openapi.json``
    (:meth:`~resthooks.api.SubscriptionAPI.handle_openapi`).

    Args:
        owner: ``request -> owner``: whose hooks the request sees (your authentication), or
            ``None`` for ``401``. It may raise as your authentication does (``abort(403)``).
        url_prefix: Where the endpoints are mounted; ``Location`` headers follow it.
        name: The Blueprint's name (two APIs in one app need two names).

    Every answer is JSON: ``401`` without an owner, ``400`` for an owner that is not a valid
    owner (a 300-character account header) or a malformed body, ``405`` for other methods,
    ``500`` (logged) if anything unexpected fails. CSRF and authentication are the app's.

    .. versionadded:: 0.2.0
    """
    if not callable(owner):
        raise ConfigurationError("owner: must be a callable, request -> owner")
    if not isinstance(url_prefix, str) or not isinstance(name, str) or not name:
        raise ConfigurationError("url_prefix and name: must be strings (name not empty)")
    base = "/" + url_prefix.strip("/")
    blueprint = Blueprint(name, __name__)

    def answer(
        hook_id: str | None, action: str | None = None, *, document: bool = False
    ) -> Response:
        who = owner(request)
        try:
            api = SubscriptionAPI(get_dispatcher(), base_path=base)
            if document:
                return _reply(api.handle_openapi(request.method, owner=who))
            return _reply(
                api.handle(
                    request.method,
                    hook_id,
                    body=request.get_data(),
                    owner=who,
                    action=action,
                    query=request.args,
                )
            )
        except Exception:  # noqa: BLE001 - the client gets JSON whatever failed; it is logged
            _log.exception("the subscription API failed")
            return _reply(
                ApiResponse(
                    status=500,
                    headers={"Content-Type": "application/json"},
                    body={"message": "Internal error"},
                )
            )

    @blueprint.route(base, methods=_METHODS, endpoint="hooks", strict_slashes=False)
    def hooks() -> Response:
        return answer(None)

    # The webhooks' OpenAPI document (a static path: Werkzeug matches it before <hook_id>).
    @blueprint.route(f"{base}/{OPENAPI_PATH}", methods=_METHODS, endpoint="openapi")
    def openapi() -> Response:
        return answer(None, document=True)

    @blueprint.route(f"{base}/<hook_id>", methods=_METHODS, endpoint="hook")
    def hook(hook_id: str) -> Response:
        return answer(hook_id)

    @blueprint.route(f"{base}/<hook_id>/<path:action>", methods=_METHODS, endpoint="hook-action")
    def hook_action(hook_id: str, action: str) -> Response:
        return answer(hook_id, action)

    return blueprint


@click.command(
    "resthooks",
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@with_appcontext
def _command(args: tuple[str, ...]) -> None:
    """REST hooks: worker, stats, hooks, deliveries, redeliver, purge (see --help)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined] # a LocalProxy
    status = cli.main(list(args), app=lambda: get_dispatcher(app), prog="flask resthooks")
    raise SystemExit(status)
