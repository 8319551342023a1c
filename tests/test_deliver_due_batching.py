"""How ``Dispatcher.deliver_due`` claims: whole batches, sent one request at a time."""

from __future__ import annotations

from resthooks import DeliveryState, Dispatcher
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock, RecordingTransport
from resthooks.transports import Request, Response

URL = "https://receiver.example/hooks"


def test_deliver_due_claims_a_whole_batch_to_one_host_despite_the_per_host_limit() -> None:
    """With ``max_in_flight_per_host=2``, deliver_due claims all five deliveries to one host
    at once (it sends one request at a time, so the limit is not what bounds it)."""
    store = MemoryStore()
    claimed_at_each_send: list[int] = []

    def answer(request: Request) -> Response:
        in_flight = store.list_deliveries(owner="acme", state=DeliveryState.IN_FLIGHT)
        claimed_at_each_send.append(len(in_flight))
        return Response(status=204)

    dispatcher = Dispatcher(
        store,
        clock=FakeClock(),
        transport=RecordingTransport(answer),
        max_in_flight_per_host=2,
    )
    dispatcher.subscribe("party/created", URL, owner="acme")
    for i in range(5):
        dispatcher.emit("party/created", {"id": i}, owner="acme")

    assert dispatcher.deliver_due().delivered == 5
    # The batch's outcomes are recorded together after the last send.
    assert claimed_at_each_send == [5, 5, 5, 5, 5]


def test_deliver_due_still_respects_batch_size() -> None:
    """deliver_due claims at most ``batch_size`` deliveries per round, and still sends all."""
    store = MemoryStore()
    claimed_at_each_send: list[int] = []

    def answer(request: Request) -> Response:
        in_flight = store.list_deliveries(owner="acme", state=DeliveryState.IN_FLIGHT)
        claimed_at_each_send.append(len(in_flight))
        return Response(status=204)

    dispatcher = Dispatcher(store, clock=FakeClock(), transport=RecordingTransport(answer))
    dispatcher.subscribe("party/created", URL, owner="acme")
    for i in range(5):
        dispatcher.emit("party/created", {"id": i}, owner="acme")

    assert dispatcher.deliver_due(batch_size=3).delivered == 5
    assert claimed_at_each_send == [3, 3, 3, 2, 2]
