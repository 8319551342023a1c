"""nginx as a receiver for the benchmarks: fast, in C, so the client side is what is measured.

``start(addresses)`` writes a configuration into a temporary directory (one worker
process, no access log, keep-alive without a request limit, ``204`` to every request,
bodies read and dropped) and runs ``nginx`` in the foreground on a free port of each
address. nginx is for benchmarks only (tests use Python servers); ``available()`` says
whether it is installed, so a benchmark can skip cleanly with a message when it is not
(``apt-get install -y nginx`` on Debian).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

_CANDIDATES = ("nginx", "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def binary() -> str | None:
    """The nginx executable, or None if it is not installed."""
    for candidate in _CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def available() -> bool:
    return binary() is not None


MISSING = "nginx is not installed (apt-get install -y nginx): skipping the nginx runs"


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


class Nginx:
    """A running nginx; ``stop()`` (or the context manager) ends it and removes its files."""

    def __init__(self, addresses: list[str], *, workers: int = 1) -> None:
        nginx = binary()
        if nginx is None:
            raise RuntimeError(MISSING)
        self.directory = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        self.port = _free_port(addresses[0])
        listens = "\n".join(
            f"        listen {address}:{self.port} backlog=4096;" for address in addresses
        )
        d = self.directory
        (d / "nginx.conf").write_text(
            f"""
worker_processes {workers};
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_buffer_size 64k;
    server {{
{listens}
        location / {{ return 204; }}
    }}
}}
"""
        )
        self.process = subprocess.Popen(
            [nginx, "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((addresses[-1], self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (d / "error.log").read_text() if (d / "error.log").exists() else ""
                    self.stop()
                    raise RuntimeError(f"nginx did not start: {log[-500:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Nginx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def loopback_hosts(count: int) -> list[str]:
    """``count`` distinct loopback addresses, 127.0.0.2 on (skipping .0 and .255)."""
    found: list[str] = []
    n = 2
    while len(found) < count:
        third, fourth = divmod(n, 256)
        if fourth not in (0, 255):
            found.append(f"127.0.{third}.{fourth}")
        n += 1
    return found
