"""What a new TLS connection costs the sync transport, against a bare handshake.

A TLS receiver on loopback (a subprocess, a certificate from a private CA, ``Connection:
close`` on every answer) makes every delivery a new connection: TCP connect, TLS handshake,
request, answer. The clients take turns, block by block:

- ``raw``: the baseline, ``socket.create_connection`` and ``SSLContext.wrap_socket`` with one
  context built beforehand, then the request and the answer;
- ``default``: ``Urllib3Transport()`` given no ``ssl_context``, so using the context it picks
  for itself (the system's CA store, which here is the system bundle plus the test CA, through
  ``SSL_CERT_FILE``: as many certificates to load as a real host has);
- ``given``: ``Urllib3Transport(ssl_context=...)`` trusting the private CA.

It prints each transport's time per delivery as a ratio to ``raw``; ``bench/before_after.py
REV -- bench/bench_tls.py`` compares those ratios before and after a change.

    python bench/bench_tls.py [--block 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import http.server
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HOST = "hooks.example.test"
BODY = b'{"event":"party/created","payload":[{"id":1}]}'


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = super().get_request()
        return self.context.wrap_socket(sock, server_side=True), addr


def serve(cert: str, key: str) -> None:
    """The receiver: print the port, answer 204 and close, for ever."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = _Server(context)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def _raw(port: int, context: ssl.SSLContext) -> Callable[[], None]:
    request = (
        f"POST /hook HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY

    def send() -> None:
        with (
            socket.create_connection(("127.0.0.1", port)) as plain,
            context.wrap_socket(plain, server_hostname=HOST) as sock,
        ):
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 204"), answer[:40]

    return send


def _transport(port: int, context: ssl.SSLContext | None) -> Callable[[], None]:
    from resthooks.testing import LOOPBACK_POLICY  # noqa: PLC0415 - after SSL_CERT_FILE is set
    from resthooks.transports import Request, Timeouts, Urllib3Transport  # noqa: PLC0415

    transport = Urllib3Transport(
        policy=LOOPBACK_POLICY, resolver=lambda host, port: ["127.0.0.1"], ssl_context=context
    )
    request = Request(
        method="POST",
        url=f"https://{HOST}:{port}/hook",
        headers={"Content-Type": "application/json"},
        body=BODY,
        timeouts=Timeouts(connect=5, total=10),
    )

    def send() -> None:
        assert transport.send(request).status == 204

    return send


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, default=20, help="deliveries per timed block")
    parser.add_argument("--rounds", type=int, default=5, help="blocks per client")
    parser.add_argument("--serve", nargs=2, metavar=("CERT", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return

    import trustme  # noqa: PLC0415 - the test dependency group has it

    work = Path(tempfile.mkdtemp(prefix="bench-tls-"))
    ca = trustme.CA()
    leaf = ca.issue_cert(HOST)
    leaf.cert_chain_pems[0].write_to_path(str(work / "cert.pem"))
    for pem in leaf.cert_chain_pems[1:]:
        pem.write_to_path(str(work / "cert.pem"), append=True)
    leaf.private_key_pem.write_to_path(str(work / "key.pem"))
    system = ssl.get_default_verify_paths().openssl_cafile
    bundle = work / "bundle.pem"
    bundle.write_bytes(Path(system).read_bytes() + ca.cert_pem.bytes())
    os.environ["SSL_CERT_FILE"] = str(bundle)  # the "system" store: the bundle plus the CA

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(work / "cert.pem"), str(work / "key.pem")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        clients = {
            "raw": _raw(port, trusting),
            "default": _transport(port, None),
            "given": _transport(port, trusting),
        }
        times: dict[str, list[float]] = {name: [] for name in clients}
        for send in clients.values():
            send()  # warm up: imports, the default context's first build
        for _ in range(args.rounds):
            for name, send in clients.items():
                start = time.perf_counter()
                for _ in range(args.block):
                    send()
                times[name].append((time.perf_counter() - start) / args.block)
    finally:
        server.kill()
        server.wait()
    raw = statistics.median(times["raw"])
    print(f"load average: {Path('/proc/loadavg').read_text().split()[0]}")
    print(f"raw handshake and exchange: {raw * 1e3:.2f} ms per new connection")
    for name in ("default", "given"):
        median = statistics.median(times[name])
        print(f"{name} context: {median / raw:.2f}x raw ({median * 1e3:.2f} ms)")


if __name__ == "__main__":
    main()
