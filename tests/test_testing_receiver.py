"""HookReceiver: a real loopback endpoint that records deliveries and answers as scripted."""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import time
import urllib.request
from datetime import datetime, timezone

import pytest
import standardwebhooks

from resthooks import Dispatcher, HookState, Timeouts, ValidationError, sign
from resthooks.stores import MemoryStore
from resthooks.testing import (
    LOOPBACK_POLICY,
    Answer,
    FakeClock,
    HookReceiver,
    run_schedule,
    verify_signature,
)
from resthooks.testing._receiver import THREAD_NAME

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(name="live")
def _live(resthooks_clock: FakeClock) -> Dispatcher:
    """A Dispatcher with the real urllib3 transport, allowed to reach loopback."""
    return Dispatcher(
        MemoryStore(),
        clock=resthooks_clock,
        timeouts=Timeouts(connect=1, total=1),
        network_policy=LOOPBACK_POLICY,
    )


def _receiver_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_records_a_delivery_with_body_json_headers_and_verified_signature(
    hook_receiver: HookReceiver, live: Dispatcher
) -> None:
    """A delivery arrives with its exact body, parsed JSON, headers and a verified signature."""
    hook = hook_receiver.subscribe(live, "party/created", owner="acme")
    (delivery,) = live.emit("party/created", {"id": 7, "name": "Zoë"}, owner="acme")
    assert live.deliver_due().delivered == 1

    (got,) = hook_receiver.deliveries
    assert got.method == "POST"
    assert got.path == "/acme/party/created"
    assert got.body == '{"event":"party/created","payload":[{"id":7,"name":"Zoë"}]}'.encode()
    assert got.json == {"event": "party/created", "payload": [{"id": 7, "name": "Zoë"}]}
    assert got.event == "party/created"
    assert got.payload == [{"id": 7, "name": "Zoë"}]
    assert got.webhook_id == delivery.id
    assert got.headers["content-type"] == "application/json"
    assert got.verified is True
    assert got.answer == Answer(status=204)
    # The independent reference implementation signs the same way (its verify() would refuse
    # the FakeClock's timestamp as too old, so compare signatures).
    assert hook.secret is not None
    timestamp = datetime.fromtimestamp(int(got.headers["webhook-timestamp"]), timezone.utc)
    reference = standardwebhooks.Webhook(hook.secret).sign(
        delivery.id, timestamp, got.body.decode()
    )
    assert reference == got.headers["webhook-signature"]


def test_a_wrong_or_missing_signature_does_not_verify(hook_receiver: HookReceiver) -> None:
    """verified is False for a bad or absent signature, None where no secret is known."""
    hook_receiver.set_secret(SECRET, path="/signed")
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1614265330"}
    good = sign(SECRET, "msg_1", 1614265330, b"{}")
    for path, signature in (("/signed", good), ("/signed", "v1,AAAA"), ("/signed", None)):
        extra = {"webhook-signature": signature} if signature else {}
        request = urllib.request.Request(
            hook_receiver.url(path), data=b"{}", headers={**headers, **extra}, method="POST"
        )
        urllib.request.urlopen(request).close()
    urllib.request.urlopen(
        urllib.request.Request(hook_receiver.url("/open"), data=b"{}", method="POST")
    ).close()
    assert [d.verified for d in hook_receiver.deliveries] == [True, False, False, None]


def test_verify_signature_accepts_any_of_several_tokens() -> None:
    """During key rotation one matching v1 token among several is enough; none is not."""
    wrong = "v1," + base64.b64encode(bytes(32)).decode()
    right = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": f"{wrong} v2,xyz {right}",
    }
    assert verify_signature(b'{"test": 2432232314}', headers, SECRET)
    headers["webhook-signature"] = wrong
    assert not verify_signature(b'{"test": 2432232314}', headers, SECRET)


def test_verify_signature_ignores_the_age_of_the_timestamp() -> None:
    """A request signed at a FakeClock's time years ago still verifies."""
    body = b"{}"
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1000000000",
        "webhook-signature": sign(SECRET, "msg_1", 1000000000, body),
    }
    assert verify_signature(body, headers, SECRET)
    for bad in ("x1000000000", "9" * 5000, "\u0661" + "\u0660" * 9):
        headers["webhook-timestamp"] = bad
        assert not verify_signature(body, headers, SECRET)


def test_scripted_answers_drive_retries_then_delivery(
    hook_receiver: HookReceiver, live: Dispatcher
) -> None:
    """A path scripted 500, 503, 200 gets two failed attempts and then the delivery."""
    hook_receiver.subscribe(live, "party/created", owner="acme")
    hook_receiver.answer(500, 503, 200, path="/acme/party/created")
    live.emit("party/created", {"id": 1}, owner="acme")

    summary = run_schedule(live)

    assert (summary.retried, summary.delivered) == (2, 1)
    assert [d.answer.status for d in hook_receiver.deliveries] == [500, 503, 200]
    assert len({d.webhook_id for d in hook_receiver.deliveries}) == 1, "same id every attempt"
    assert hook_receiver.payloads("party/created") == [{"id": 1}]


def test_410_removes_the_hook(hook_receiver: HookReceiver, live: Dispatcher) -> None:
    """Told to answer 410, the receiver makes the Dispatcher remove the hook."""
    hook = hook_receiver.subscribe(live, "party/created", owner="acme")
    hook_receiver.answer(410, path="/acme/party/created")
    live.emit("party/created", {"id": 1}, owner="acme")
    assert run_schedule(live).gone == 1
    assert live.hooks(owner="acme") == []
    assert live.store.get_hook(hook.id) is None


def test_default_answer_applies_to_paths_without_their_own(
    hook_receiver: HookReceiver, live: Dispatcher
) -> None:
    """answer(..., path=None) sets the answer of every path that has no script."""
    hook_receiver.answer(503)
    hook_receiver.answer(200, path="/acme/party/updated")
    hook_receiver.subscribe(live, "party/created", owner="acme")
    hook_receiver.subscribe(live, "party/updated", owner="acme")
    live.emit("party/created", {"id": 1}, owner="acme")
    live.emit("party/updated", {"id": 1}, owner="acme")
    summary = run_schedule(live)
    assert (summary.delivered, summary.failed) == (1, 1)
    (dead,) = live.hooks(owner="acme", state=HookState.DEAD)
    assert dead.event == "party/created"


def test_a_delay_longer_than_the_deadline_times_the_attempt_out(
    hook_receiver: HookReceiver, live: Dispatcher
) -> None:
    """An answer delayed past the Dispatcher's total deadline is a failed (timeout) attempt."""
    hook_receiver.subscribe(live, "party/created", owner="acme")
    hook_receiver.answer(Answer(status=200, delay=30), 200, path="/acme/party/created")
    (delivery,) = live.emit("party/created", {"id": 1}, owner="acme")
    assert live.deliver_due().retried == 1
    (attempt,) = live.attempts(delivery.id, owner="acme")
    assert attempt.error_kind == "timeout"
    assert run_schedule(live).delivered == 1


def test_payloads_count_each_delivery_once_and_filter_by_event(
    hook_receiver: HookReceiver, live: Dispatcher, resthooks_clock: FakeClock
) -> None:
    """payloads() joins the payload lists of distinct deliveries of one event, in order."""
    hook_receiver.subscribe(live, "party/created", owner="acme")
    hook_receiver.subscribe(live, "party/deleted", owner="acme")
    hook_receiver.answer(500, 204, path="/acme/party/created")
    live.emit("party/created", [{"id": 1}, {"id": 2}], owner="acme")
    live.deliver_due()  # the first delivery fails once, and is retried 5 s later
    live.emit("party/deleted", {"id": 9}, owner="acme")
    resthooks_clock.advance(1)
    live.emit("party/created", {"id": 3}, owner="acme")
    run_schedule(live)
    assert len(hook_receiver.received(event="party/created")) == 3
    assert hook_receiver.payloads("party/created") == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert hook_receiver.payloads("party/deleted") == [{"id": 9}]
    assert hook_receiver.payloads(path="/acme/party/deleted") == [{"id": 9}]


def test_wait_for_returns_deliveries_sent_from_another_thread(
    hook_receiver: HookReceiver, live: Dispatcher, resthooks_clock: FakeClock
) -> None:
    """wait_for blocks until deliveries made by another thread have arrived."""
    hook_receiver.subscribe(live, "party/created", owner="acme")
    for n in range(3):
        live.emit("party/created", {"id": n}, owner="acme")
        resthooks_clock.advance(1)  # due times in emit order, so sent in that order
    worker = threading.Thread(target=live.deliver_due)
    worker.start()
    got = hook_receiver.wait_for(3, event="party/created")
    worker.join()
    assert [d.payload for d in got] == [[{"id": 0}], [{"id": 1}], [{"id": 2}]]


def test_wait_for_fails_with_what_did_arrive(hook_receiver: HookReceiver, live: Dispatcher) -> None:
    """When too few deliveries arrive, wait_for raises an AssertionError listing them."""
    hook_receiver.subscribe(live, "party/created", owner="acme")
    live.emit("party/created", {"id": 1}, owner="acme")
    live.deliver_due()
    with pytest.raises(AssertionError) as info:
        hook_receiver.wait_for(2, timeout=0.05, event="party/created")
    message = str(info.value)
    assert "expected 2 deliveries of event 'party/created'" in message
    assert "1 arrived" in message
    assert "POST /acme/party/created event='party/created'" in message
    assert "-> 204" in message


def test_clear_forgets_deliveries_but_keeps_scripts(
    hook_receiver: HookReceiver, live: Dispatcher
) -> None:
    """clear() empties the record; the scripted answers go on where they were."""
    hook_receiver.subscribe(live, "party/created", owner="acme")
    hook_receiver.answer(500, 200, path="/acme/party/created")
    live.emit("party/created", {"id": 1}, owner="acme")
    live.deliver_due()
    hook_receiver.clear()
    assert hook_receiver.deliveries == []
    run_schedule(live)
    assert [d.answer.status for d in hook_receiver.deliveries] == [200]


def test_bad_set_up_is_refused_with_the_field_named(hook_receiver: HookReceiver) -> None:
    """Bad statuses, delays, secrets and paths raise ValidationError naming the field."""
    with pytest.raises(ValidationError, match="status"):
        hook_receiver.answer(99)
    with pytest.raises(ValidationError, match="status"):
        Answer(status=True)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="delay"):
        Answer(delay=-1)
    with pytest.raises(ValidationError, match="secret"):
        hook_receiver.set_secret("not base64!", path="/x")
    with pytest.raises(ValidationError, match="path"):
        hook_receiver.url("no-slash")
    assert hook_receiver.deliveries == []


def test_context_manager_starts_and_stops_the_server() -> None:
    """As a context manager it listens inside the block and leaves no thread behind."""
    before = len(_receiver_threads())
    receiver = HookReceiver()
    with pytest.raises(RuntimeError, match="not started"):
        receiver.url()
    with receiver:
        assert len(_receiver_threads()) == before + 1
        url = receiver.url("/x")
        urllib.request.urlopen(urllib.request.Request(url, data=b"[]", method="POST")).close()
    assert len(_receiver_threads()) == before
    assert [d.body for d in receiver.deliveries] == [b"[]"]


def test_close_cuts_a_delayed_answer_short() -> None:
    """Closing the receiver does not wait out a long scripted delay."""
    receiver = HookReceiver().start()
    receiver.answer(Answer(delay=600))
    dispatcher = Dispatcher(
        MemoryStore(),
        clock=FakeClock(),
        timeouts=Timeouts(connect=5, total=599),
        lease=600,
        network_policy=LOOPBACK_POLICY,
    )
    receiver.subscribe(dispatcher, "party/created", owner="acme")
    dispatcher.emit("party/created", {}, owner="acme")
    sender = threading.Thread(target=dispatcher.deliver_due)
    sender.start()
    receiver.wait_for(1)
    receiver.close()  # returns once the handler thread ended, long before 600 s
    sender.join()
    assert dispatcher.store.stats().deliveries["pending"] == 1, "the cut attempt is retried"


def _send_raw(receiver: HookReceiver, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as conn:
        conn.sendall(data)
        return conn.recv(1024)


def test_a_request_the_server_cannot_handle_is_kept_in_errors() -> None:
    """A request that breaks the handler is kept in errors, not printed, nor recorded."""
    with HookReceiver() as receiver:
        _send_raw(receiver, b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: many\r\n\r\n")
        receiver.close()  # waits for the handler thread, so the error is in by now
    assert [ValueError] == [type(e) for e in receiver.errors]
    assert receiver.deliveries == []


def _post(url: str, results: list[object]) -> threading.Thread:
    def send() -> None:
        try:
            with urllib.request.urlopen(url, b"{}", timeout=30) as answer:
                results.append(answer.status)
        except OSError as exc:
            results.append(exc)

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_hold_records_requests_and_answers_none_until_release() -> None:
    """While held, requests are recorded as they arrive and wait unanswered; release answers
    them (and the next ones at once)."""
    results: list[object] = []
    with HookReceiver() as receiver:
        receiver.hold()
        assert receiver.held
        senders = [_post(receiver.url(f"/h{n}"), results) for n in range(3)]
        assert len(receiver.wait_for(3)) == 3
        threading.Event().wait(0.2)
        assert results == [], "nothing is answered while the gate is closed"
        receiver.release()
        for sender in senders:
            sender.join(30)
        assert results == [204, 204, 204]
        assert not receiver.held
        _post(receiver.url(), results).join(30)
    assert results == [204] * 4


def test_close_cuts_held_requests_short() -> None:
    """Closing a receiver whose gate is closed ends the held requests without an answer."""
    results: list[object] = []
    receiver = HookReceiver().start()
    receiver.hold()
    sender = _post(receiver.url(), results)
    receiver.wait_for(1)
    receiver.close()
    sender.join(30)
    assert not sender.is_alive()
    assert len(results) == 1
    assert isinstance(results[0], OSError), "the held request got no answer"


def test_received_at_is_read_on_the_receivers_clock() -> None:
    """Each request is stamped with the receiver's clock: a FakeClock's time, if given."""
    clock = FakeClock()
    clock.advance(90)
    with HookReceiver(clock=clock) as receiver:
        _post(receiver.url(), []).join(30)
    [got] = receiver.deliveries
    assert clock.now() == got.received_at


def test_keep_alive_answers_on_one_connection_and_close_ends_it() -> None:
    """With keep_alive, two requests go over one connection (HTTP/1.1), and close() returns
    while the sender still holds that connection open."""
    receiver = HookReceiver(keep_alive=True).start()
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    for n in range(2):
        conn.request("POST", "/h", body=b"{}", headers={"webhook-id": "msg_1"})
        answer = conn.getresponse()
        answer.read()
        assert (answer.status, answer.version) == (204, 11), n
    assert conn.sock is not None, "the connection stayed open"
    started = time.monotonic()
    receiver.close()
    assert time.monotonic() - started < 5, "close() must not wait for the sender to hang up"
    assert receiver.webhook_ids() == {"msg_1": 2}
    conn.close()


def test_keep_alive_must_be_a_bool() -> None:
    """keep_alive="yes" is refused, naming the field."""
    with pytest.raises(ValidationError, match="keep_alive"):
        HookReceiver(keep_alive="yes")  # type: ignore[arg-type]
