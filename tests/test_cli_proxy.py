"""``resthooks worker --proxy URL``: deliveries go through a real egress proxy (proxy.py on
loopback, as in test_egress_proxy), with the thread worker and the asyncio one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from proxy_support import ProxyServer
from test_cli import (  # noqa: F401 - the run and receiver fixtures, as test_cli has them
    Run,
    _receiver,
    _run,
    add_hook,
    dump,
)


@pytest.fixture(name="proxy", scope="module")
def _proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    proxy = ProxyServer(tmp_path_factory.mktemp("cli-proxy"))
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("worker", [(), ("--concurrency", "8")], ids=["threads", "asyncio"])
def test_the_worker_delivers_through_the_proxy(
    run: Run, receiver: HTTPServer, proxy: ProxyServer, worker: tuple[str, ...]
) -> None:
    """The receiver is on loopback, by name, which the worker's default network policy
    refuses when it dials: through --proxy it is delivered (the proxy resolves and dials
    the receiver; the engine dials only the proxy), and the proxy's log shows the request.
    The same worker without --proxy is refused (``blocked``)."""
    receiver.expect_request("/hook").respond_with_data("", status=204)
    add_hook(run, f"http://localhost:{receiver.port}/hook")
    run.ok("emit", "party/created", "--owner", "acme", "--payload", '{"id": 1}')

    through = run.ok("worker", "--once", *worker, "--proxy", proxy.url())

    assert "worker stopped (nothing left due): 1 delivered" in through.stdout
    assert len(receiver.log) == 1
    assert f"localhost:{receiver.port}" in proxy.log.read_text()

    run.ok("emit", "party/created", "--owner", "acme", "--payload", '{"id": 2}')
    direct = run("worker", "--once", *worker)
    assert "0 delivered" in direct.stdout, direct.stdout + direct.stderr
    assert "blocked" in direct.stdout + direct.stderr
    assert len(receiver.log) == 1


@pytest.mark.parametrize(
    "bad",
    [
        "ftp://egress:hunter2@10.0.0.5:4750",
        "http://egress:hunter2@10.0.0.5",
        "not a url hunter2",
        "http://:hunter2@:4750",
    ],
)
def test_a_bad_proxy_is_refused_naming_the_option_and_changes_nothing(
    run: Run, receiver: HTTPServer, bad: str
) -> None:
    """A --proxy that is not http://host:port: exit 2, ``--proxy`` named, its password not
    shown, nothing sent and the database unchanged."""
    add_hook(run, receiver.url_for("/hook"))
    run.ok("emit", "party/created", "--owner", "acme", "--payload", '{"id": 1}')
    before = dump(run.db)

    done = run("worker", "--once", "--proxy", bad)

    assert done.returncode == 2, done.stdout + done.stderr
    assert "--proxy" in done.stderr
    assert "hunter2" not in done.stdout + done.stderr
    assert receiver.log == []
    assert before == dump(run.db)
