"""The Flask receiver shown in docs/security.md works as printed."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from resthooks import generate_secret, sign

SECURITY_PAGE = Path(__file__).parent.parent / "docs" / "security.md"


@pytest.fixture(name="flask_app")
def _flask_app(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str, list[object]]:
    text = SECURITY_PAGE.read_text(encoding="utf-8")
    match = re.search(r"<!-- the tests run this block -->\n```python\n(.*?)```", text, re.S)
    assert match is not None, "the Flask example is missing from docs/security.md"
    secret = generate_secret()
    monkeypatch.setenv("WEBHOOK_SECRET", secret)
    handled: list[object] = []
    namespace: dict[str, Any] = {"__name__": "receiver", "handle": handled.append}
    exec(compile(match.group(1), str(SECURITY_PAGE), "exec"), namespace)
    return namespace["app"], secret, handled


def test_flask_example_accepts_signed_and_refuses_forged(
    flask_app: tuple[Any, str, list[object]],
) -> None:
    """The documented receiver answers 204 to a signed request and 400 to a forged one."""
    app, secret, handled = flask_app
    client = app.test_client()
    body = b'{"event":"party/created","payload":[{"id":1}]}'
    stamp = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, "msg_1", stamp, body),
        "Content-Type": "application/json",
    }
    assert client.post("/webhooks", data=body, headers=headers).status_code == 204
    assert handled == [{"event": "party/created", "payload": [{"id": 1}]}]
    forged = {**headers, "webhook-signature": sign(generate_secret(), "msg_1", stamp, body)}
    response = client.post("/webhooks", data=body, headers=forged)
    assert response.status_code == 400
    assert b"no_match" in response.data
    assert len(handled) == 1


def test_handshake_receiver_confirms_a_real_subscription(tmp_path: Path) -> None:
    """The documented handshake receiver, served on loopback, confirms a hook subscribed with
    verify_intent through the real transport; then a delivery reaches it."""
    import threading  # noqa: PLC0415

    from werkzeug.serving import make_server  # noqa: PLC0415

    from resthooks import Dispatcher, HookState, NetworkPolicy  # noqa: PLC0415
    from resthooks.stores import SQLiteStore  # noqa: PLC0415

    text = SECURITY_PAGE.read_text(encoding="utf-8")
    match = re.search(r"<!-- the tests run this handshake receiver -->\n```python\n(.*?)```",
                      text, re.S)  # fmt: skip
    assert match is not None, "the handshake receiver is missing from docs/security.md"
    handled: list[bytes] = []
    namespace: dict[str, Any] = {"__name__": "receiver", "handle": handled.append}
    exec(compile(match.group(1), str(SECURITY_PAGE), "exec"), namespace)
    server = make_server("127.0.0.1", 0, namespace["app"], threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    store = SQLiteStore(tmp_path / "hooks.db")
    try:
        dispatcher = Dispatcher(
            store,
            network_policy=NetworkPolicy(allow_networks=["127.0.0.0/8"]),
            verify_intent=True,
        )
        url = f"http://127.0.0.1:{server.server_port}/webhooks"
        hook = dispatcher.subscribe("party/created", url, owner="acme")
        assert hook.state is HookState.ACTIVE
        dispatcher.emit("party/created", {"id": 1}, owner="acme")
        assert dispatcher.deliver_due().delivered == 1
        assert handled == [b'{"event":"party/created","payload":[{"id":1}]}']
    finally:
        server.shutdown()
        thread.join(timeout=5)
        store.close()
