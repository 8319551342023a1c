"""The cost of ``validate_payloads=True`` on emit, against the same emit unchecked, in one run.

Run from the repository root: ``python bench/bench_schemas.py [--rounds 7] [--emits 5000]``.

One Dispatcher per side, on a MemoryStore with one hook, emits Capsule's ``party/created``
example (a party with a name, an email and an address: 14 fields) ``--emits`` times; one side
checks every payload against a JSON Schema of that entity (types, required fields, a nested
address through ``$defs``), the other does not. Rounds interleave the two sides and the
ratio checked / unchecked of each round's emits per second is reported (median of rounds),
so the machine's load weighs on both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

from resthooks import Dispatcher, EventCatalogue
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock, RecordingTransport

PARTY = {
    "id": 11587,
    "type": "person",
    "firstName": "Scott",
    "lastName": "Spacey",
    "title": "Mr",
    "jobTitle": "Director",
    "about": "A party of Capsule's example",
    "createdAt": "2015-09-15T10:43:23Z",
    "updatedAt": "2015-09-15T10:43:23Z",
    "emailAddresses": [{"id": 1, "type": "Work", "address": "scott@example.com"}],
    "phoneNumbers": [{"id": 2, "type": "Work", "number": "+44 1234 567890"}],
    "addresses": [{"id": 3, "type": "Office", "city": "Manchester", "country": "UK"}],
    "tags": [],
    "pictureURL": "https://example.com/p.png",
}
SCHEMA = {
    "type": "object",
    "required": ["id", "type", "createdAt"],
    "properties": {
        "id": {"type": "integer"},
        "type": {"enum": ["person", "organisation"]},
        "firstName": {"type": "string"},
        "lastName": {"type": "string"},
        "createdAt": {"type": "string"},
        "updatedAt": {"type": "string"},
        "emailAddresses": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["address"],
                "properties": {"address": {"type": "string"}},
            },
        },
        "addresses": {"type": "array", "items": {"$ref": "#/$defs/address"}},
        "tags": {"type": "array"},
    },
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        }
    },
}


def _dispatcher(validate: bool) -> Dispatcher:
    events = EventCatalogue({"party": ["created"]}, schemas={"party/created": SCHEMA})
    dispatcher = Dispatcher(
        MemoryStore(),
        events=events,
        clock=FakeClock(),
        transport=RecordingTransport(),
        validate_payloads=validate,
    )
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    return dispatcher


def emits_per_second(validate: bool, emits: int) -> float:
    dispatcher = _dispatcher(validate)
    start = time.perf_counter()
    for _ in range(emits):
        dispatcher.emit("party/created", PARTY, owner="acme")
    return emits / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--emits", type=int, default=5000)
    args = parser.parse_args()
    emits_per_second(True, 200)  # warm up: imports, the validator's first run
    ratios, plain, checked = [], [], []
    for _ in range(args.rounds):
        off = emits_per_second(False, args.emits)
        on = emits_per_second(True, args.emits)
        plain.append(off)
        checked.append(on)
        ratios.append(on / off)
    print(f"unchecked emit: {statistics.median(plain):,.0f}/s (median of {args.rounds} rounds)")
    print(f"validate_payloads=True: {statistics.median(checked):,.0f}/s")
    print(
        f"ratio checked / unchecked: {statistics.median(ratios):.2f} "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
    )


if __name__ == "__main__":
    main()
