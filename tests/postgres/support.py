"""A throwaway PostgreSQL cluster and the one Dispatcher factory of the PostgreSQL tests.

Shared by the PostgreSQL tests, their worker script and ``bench/bench_postgres.py``; it
imports nothing from psycopg, so it loads (and reports what is missing) without the extra.
Their receiver is the one every test uses, :class:`resthooks.testing.HookReceiver`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from resthooks import Dispatcher
from resthooks.stores import Store
from resthooks.testing import LOOPBACK_POLICY

__all__ = ["Cluster", "find_bindir", "make_dispatcher", "start_cluster"]

# Settings for a disposable test server: durability off, nothing listening on TCP.
TEST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


def make_dispatcher(store: Store, **options: Any) -> Dispatcher:
    """Every Dispatcher of the PostgreSQL tests, workers and benchmark is built here.

    The receivers run on loopback, which the default network policy refuses: allow it here.
    """
    options.setdefault("network_policy", LOOPBACK_POLICY)
    return Dispatcher(store, **options)


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: ``$PG_BINDIR``, the ``PATH``, or
    Debian's ``/usr/lib/postgresql/<version>/bin`` (the newest)."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Cluster:
    """A PostgreSQL cluster in a temporary directory, reachable on a Unix socket only."""

    def __init__(self, bindir: Path, settings: dict[str, str]) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="rh-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.settings = settings
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            # initdb refuses to run as root: run the server as the unprivileged `postgres`
            # user (Debian's package creates it) and give it the temporary directory.
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root, and there is no 'postgres' user to run PostgreSQL as"
                ) from None
            os.chown(self.root, user.pw_uid, user.pw_gid)
            runuser = shutil.which("runuser")
            # Without runuser (not Debian), _run falls back on su.
            self._as_user = [runuser, "-u", "postgres", "--"] if runuser else []

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0 and not self._as_user:
            command = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(map(_quote, command))]
        else:
            command = [*self._as_user, *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed:\n{done.stdout}\n{done.stderr}\n{log}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-locale", "--no-instructions", "--no-sync")  # fmt: skip
        self.resume()

    def resume(self) -> None:
        """Start the server (again) on the same data directory; returns once it is ready."""
        options = ["-c listen_addresses=''", f"-k {self.root}", f"-p {self.port}"]
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", " ".join(options), "start")  # fmt: skip

    def halt(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data (``resume`` starts it again)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.root} port={self.port} user=postgres dbname={dbname}"


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


@contextlib.contextmanager
def start_cluster(settings: dict[str, str] | None = None) -> Iterator[Cluster]:
    """Start a throwaway cluster; stop it and delete its directory afterwards."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl) found")
    cluster = Cluster(bindir, TEST_SETTINGS if settings is None else settings)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


if __name__ == "__main__":  # pragma: no cover - by hand: start a cluster and print its address
    with start_cluster() as c:
        print(c.conninfo(), file=sys.stderr)
        input("press Enter to stop")
