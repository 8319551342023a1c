"""``manage.py resthooks``: the ``resthooks`` command's verbs on the project's Dispatcher.

``worker`` (stops cleanly on SIGTERM or SIGINT), ``stats``, ``hooks``, ``deliveries``,
``redeliver`` and ``purge``, exactly as the ``resthooks`` command line has them (see its
page), but on the store, events and network policy of ``settings.RESTHOOKS``.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ..... import cli
from ... import conf
from ..._store import get_dispatcher


class Command(BaseCommand):  # type: ignore[misc] # Django ships no type hints
    help = "REST hooks: worker, stats, hooks, deliveries, redeliver, purge (see --help)."

    def run_from_argv(self, argv: list[str]) -> None:
        # The verbs parse their own arguments: hand everything after the name to the CLI.
        settings = conf.load()
        status = cli.main(
            argv[2:],
            app=get_dispatcher,
            prog=f"{argv[0].rsplit('/', 1)[-1]} {argv[1]}",
            workers=settings.workers,
            poll_interval=settings.poll_interval,
            stdout=self.stdout._out,
        )
        sys.stdout.flush()
        if status:
            sys.exit(status)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("args", nargs="*")

    def handle(self, *args: str, **options: Any) -> None:
        # call_command("resthooks", "stats"): the same, without the process exit.
        settings = conf.load()
        status = cli.main(
            list(args),
            app=get_dispatcher,
            prog="resthooks",
            workers=settings.workers,
            poll_interval=settings.poll_interval,
            stdout=self.stdout._out,
        )
        if status:
            raise CommandError(f"resthooks {' '.join(args)} exited with status {status}")
