"""A real forward proxy for the tests: proxy.py (from PyPI, the tests group) on loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["ProxyServer"]


class ProxyServer:
    """proxy.py in a process group of its own on a free loopback port."""

    def __init__(self, tmp: Path, *options: str) -> None:
        port_file = tmp / "port"
        self.log = tmp / "proxy.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "proxy",
                    "--hostname",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--port-file",
                    str(port_file),
                    "--threaded",
                    "--num-acceptors",
                    "1",
                    *options,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while True:
            text = port_file.read_text().strip() if port_file.exists() else ""
            if text and _listening(int(text)):
                self.port = int(text)
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"proxy.py did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def url(self, credentials: str | None = None) -> str:
        who = f"{credentials}@" if credentials else ""
        return f"http://{who}127.0.0.1:{self.port}"

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
