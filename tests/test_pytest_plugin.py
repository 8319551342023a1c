"""The pytest plugin, exercised in pytest sessions of its own through pytester."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.filterwarnings("error")

# Hypothesis' own plugin imports the whole of hypothesis at the end of every session (seconds
# on a busy machine, again for each pytester run); it has nothing to do with these sessions.
NO_HYPOTHESIS = ("-p", "no:hypothesispytest")

STRICT_INI = """
[pytest]
filterwarnings = error
xfail_strict = true
"""

USES_EVERY_DISPATCHER_FIXTURE = """
from resthooks import Dispatcher
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock, RecordingTransport


def test_dispatcher_is_wired_to_the_clock_and_transport(
    resthooks_dispatcher, resthooks_clock, resthooks_transport
):
    assert isinstance(resthooks_clock, FakeClock)
    assert isinstance(resthooks_transport, RecordingTransport)
    assert isinstance(resthooks_dispatcher, Dispatcher)
    assert isinstance(resthooks_dispatcher.store, MemoryStore)
    assert resthooks_dispatcher.clock is resthooks_clock
    assert resthooks_dispatcher.transport is resthooks_transport
    resthooks_dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    resthooks_dispatcher.emit("party/created", {"id": 1}, owner="acme")
    resthooks_clock.advance(1)
    assert resthooks_dispatcher.deliver_due().delivered == 1
    assert len(resthooks_transport.requests) == 1


def test_every_test_gets_new_ones(resthooks_dispatcher, resthooks_transport, resthooks_clock):
    assert resthooks_transport.requests == []
    assert resthooks_dispatcher.store.list_hooks() == []
    assert resthooks_clock.now().isoformat() == "2026-01-01T00:00:00+00:00"
"""

USES_THE_RECEIVER = """
import threading

from resthooks import Dispatcher
from resthooks.stores import MemoryStore
from resthooks.testing import LOOPBACK_POLICY, run_schedule


def test_receiver_records_retries_and_delivery(hook_receiver, resthooks_clock):
    dispatcher = Dispatcher(MemoryStore(), clock=resthooks_clock, network_policy=LOOPBACK_POLICY)
    hook_receiver.subscribe(dispatcher, "party/created", owner="acme")
    hook_receiver.answer(503, 200, path="/acme/party/created")
    dispatcher.emit("party/created", {"id": 1}, owner="acme")
    assert run_schedule(dispatcher).delivered == 1
    assert [d.answer.status for d in hook_receiver.deliveries] == [503, 200]
    assert all(d.verified for d in hook_receiver.deliveries)
    assert hook_receiver.payloads("party/created") == [{"id": 1}]


def test_the_previous_receiver_was_closed():
    assert [t for t in threading.enumerate() if t.name == "resthooks-hook-receiver"] == []
"""

DOES_NOT_USE_THE_PLUGIN = """
import sys
import threading

import pytest


def test_passes():
    print("some output of the test's own")
    assert "resthooks" not in sys.modules, "the plugin imported resthooks without being used"
    assert not [t for t in threading.enumerate() if t.name.startswith("resthooks")]


def test_fails():
    assert 1 + 1 == 3


@pytest.mark.skip(reason="to see a skip reported")
def test_skipped():
    pass


@pytest.mark.xfail(reason="to see an xfail reported")
def test_xfails():
    raise ValueError


@pytest.fixture
def tmp_thing(tmp_path):
    return tmp_path / "thing"


def test_uses_builtin_fixtures(tmp_thing, capsys):
    print("hello")
    assert capsys.readouterr().out == "hello\\n"
"""


def test_dispatcher_fixtures_are_provided_fresh_for_each_test(pytester: pytest.Pytester) -> None:
    """resthooks_dispatcher, resthooks_clock and resthooks_transport are wired and per test."""
    pytester.makeini(STRICT_INI)
    pytester.makepyfile(USES_EVERY_DISPATCHER_FIXTURE)
    result = pytester.runpytest(*NO_HYPOTHESIS)
    result.assert_outcomes(passed=2)


def test_fixtures_come_from_the_entry_point(pytester: pytest.Pytester) -> None:
    """With the plugin disabled by its entry-point name, the fixtures do not exist."""
    pytester.makeini(STRICT_INI)
    pytester.makepyfile(USES_EVERY_DISPATCHER_FIXTURE)
    result = pytester.runpytest(*NO_HYPOTHESIS, "-p", "no:resthooks")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*fixture 'resthooks_dispatcher' not found*"])


def test_hook_receiver_fixture_serves_and_is_closed_after_the_test(
    pytester: pytest.Pytester,
) -> None:
    """hook_receiver records real deliveries and its server is gone after the test."""
    pytester.makeini(STRICT_INI)
    pytester.makepyfile(USES_THE_RECEIVER)
    result = pytester.runpytest(*NO_HYPOTHESIS)
    result.assert_outcomes(passed=2)


def test_fixtures_are_listed_with_their_documentation(pytester: pytest.Pytester) -> None:
    """pytest --fixtures shows the plugin's four fixtures with a line of documentation."""
    result = pytester.runpytest(*NO_HYPOTHESIS, "--fixtures")
    result.stdout.fnmatch_lines(
        [
            "resthooks_clock*",
            "*FakeClock*",
            "resthooks_transport*",
            "*RecordingTransport*",
            "resthooks_dispatcher*",
            "*MemoryStore*",
            "hook_receiver*",
            "*HookReceiver*",
        ],
        consecutive=False,
    )


def _normalised(lines: list[str]) -> list[str]:
    """Session output without what differs from run to run or names the loaded plugins."""
    volatile = re.compile(r"^(platform |rootdir:|configfile:|plugins:|cachedir:)")
    timing = re.compile(r" in \d+\.\d+s( \(\d+:\d+:\d+\))? ")
    return [timing.sub(" in Ns ", line) for line in lines if not volatile.match(line)]


def test_a_session_that_does_not_use_the_plugin_is_unaffected(pytester: pytest.Pytester) -> None:
    """Same outcomes and output as without the plugin, and resthooks is never imported."""
    pytester.makeini(STRICT_INI)
    pytester.makepyfile(DOES_NOT_USE_THE_PLUGIN)

    # Subprocesses: a fresh interpreter each, so sys.modules shows what the plugin imported.
    with_plugin = pytester.runpytest_subprocess(*NO_HYPOTHESIS, "-rA")
    without = pytester.runpytest_subprocess(*NO_HYPOTHESIS, "-rA", "-p", "no:resthooks")

    # The plugin was loaded in the first session (pytest names it in its header)...
    assert any(re.match(r"plugins:.*\bresthooks-", line) for line in with_plugin.outlines)
    assert not any(re.match(r"plugins:.*\bresthooks-", line) for line in without.outlines)
    # ... and changed nothing: test_passes also checked that resthooks stayed unimported.
    outcomes = {"passed": 2, "failed": 1, "skipped": 1, "xfailed": 1}
    with_plugin.assert_outcomes(**outcomes)
    without.assert_outcomes(**outcomes)
    assert _normalised(without.outlines) == _normalised(with_plugin.outlines)
    assert without.errlines == with_plugin.errlines == []


def test_hook_receiver_fixture_fails_the_test_when_its_server_failed(
    pytester: pytest.Pytester,
) -> None:
    """An error inside the receiver's server is reported as an error of the test using it."""
    pytester.makepyfile(
        """
        import socket

        def test_sends_garbage(hook_receiver):
            with socket.create_connection(("127.0.0.1", hook_receiver.port)) as conn:
                conn.sendall(b"POST / HTTP/1.1\\r\\nContent-Length: many\\r\\n\\r\\n")
                conn.recv(1024)
        """
    )
    result = pytester.runpytest(*NO_HYPOTHESIS)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the hook receiver's server failed*ValueError*"])
