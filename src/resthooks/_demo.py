"""``resthooks demo``: the whole contract, played on a fast clock, checked as it goes.

Everything is embedded and temporary: a SQLite file in a temporary directory, a receiver on
loopback in this process (allow-listed in the network policy), and a clock that runs
``--speed`` times faster than real time, so Capsule's 36-minute retry schedule plays out in a
few seconds. Five hooks are subscribed through :class:`~resthooks.api.SubscriptionAPI` with
Capsule's request body, and a sixth, batched, through the Dispatcher:

- ``healthy`` answers 200;
- ``flaky`` answers 502 to its first two requests, then 200;
- ``gone`` answers 410 Gone, so its hook is removed at once;
- ``broken`` answers 500, always, so its hook dies when the schedule runs out;
- ``ordered`` (subscribed to ``party/updated``) answers 502 once, then 200: two updates of
  party 11587 emitted with the ordering key ``party:11587`` arrive in emit order, the second
  only once the first, retried, is delivered;
- ``batched`` (subscribed to ``task/created`` with a 60 s :class:`~resthooks.Batching`
  window) answers 200: three tasks emitted one after the other arrive as one POST, one
  ``webhook-id``, the three tasks in emit order.

The scenario emits Capsule's ``party/created`` example, waits for the first outcomes, emits
more events, and checks every outcome against what the contract predicts. The exit status is 0
only when every check passes, so the demo doubles as a smoke test.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ._report import EXIT_FAILED, EXIT_OK, Result, short_id, table
from .api import SubscriptionAPI
from .batching import Batching
from .clock import SystemClock
from .dispatcher import Dispatcher
from .encoding import isoformat_z
from .errors import ValidationError
from .model import Attempt, Delivery, DeliveryState, HookState
from .network import NetworkPolicy
from .retry import RetryPolicy
from .stores import SQLiteStore
from .testing import Answer, FakeClock, HookReceiver, ReceivedDelivery
from .transports import Timeouts
from .verification import VerificationError, verify

if TYPE_CHECKING:
    import argparse


class _Invocation(Protocol):
    """What the demo needs of the command line: its arguments (``--speed``)."""

    args: argparse.Namespace


__all__ = ["DEFAULT_SPEED", "PARTY_CREATED_EXAMPLE", "cmd_demo"]

DEFAULT_SPEED = 600.0
"""Simulated seconds per real second: the 36 min 5 s schedule takes about 4 s."""

OWNER = "demo"

# The example delivery of Capsule's documentation (the payload of ``party/created``),
# kept byte for byte as JSON text.
PARTY_CREATED_EXAMPLE: Mapping[str, Any] = json.loads(
    """{
  "id": 11587,
  "type": "person",
  "about": null,
  "title": null,
  "firstName": "Scott",
  "lastName": "Spacey",
  "jobTitle": "Creative Director",
  "createdAt": "2015-09-15T10:43:23Z",
  "updatedAt": "2015-09-15T10:43:23Z",
  "organisation": null,
  "lastContactedAt": null,
  "addresses": [
    {
      "id": 12135,
      "type": null,
      "city": "Chicago",
      "country": "United States",
      "street": "847 North Rush Street",
      "state": "IL",
      "zip": "65629"
    }
  ],
  "phoneNumbers": [{"id": 12133, "type": null, "number": "773-338-7786"}],
  "websites": [],
  "emailAddresses": [{"id": 12134, "type": "Work", "address": "scott@homestyleshop.co"}],
  "pictureURL": "https://capsulecrm.com/theme/default/images/person_avatar_70.png"
}"""
)

_SECOND_PARTY = {
    "id": 11588,
    "type": "organisation",
    "name": "Homestyle Shop",
    "createdAt": "2015-09-15T10:47:02Z",
}
_THIRD_PARTY = {
    "id": 11589,
    "type": "person",
    "firstName": "Ada",
    "lastName": "Moreno",
    "createdAt": "2015-09-15T11:02:40Z",
}
_KASE = {"id": 200, "name": "Website redesign", "party": {"id": 11588}}
# Two changes of Capsule's example party, in this order, under one ordering key.
_UPDATES = (
    {"id": 11587, "jobTitle": "Founder", "updatedAt": "2015-09-16T08:00:00Z"},
    {"id": 11587, "lastName": "Spacey-Jones", "updatedAt": "2015-09-16T08:00:01Z"},
)
_ORDERING_KEY = "party:11587"
# Three tasks created one after the other: one batch for the batched hook.
_TASKS = (
    {"id": 301, "description": "Call Scott about the redesign", "party": {"id": 11587}},
    {"id": 302, "description": "Send the Homestyle Shop proposal", "party": {"id": 11588}},
    {"id": 303, "description": "Welcome Ada", "party": {"id": 11589}},
)
_BATCHING = Batching(max_wait=60, max_entities=10)

# name -> (description, the receiver's answers in order, the last one repeating, the event)
_HOOKS: dict[str, tuple[str, tuple[int, ...], str]] = {
    "healthy": ("answers 200", (200,), "party/created"),
    "flaky": ("fails twice, then recovers", (502, 502, 200), "party/created"),
    "gone": ("answers 410 Gone", (410,), "party/created"),
    "broken": ("always answers 500", (500,), "party/created"),
    "ordered": ("fails once, keeps a key in order", (502, 200), "party/updated"),
    "batched": ("answers 200, batches 60 s", (200,), "task/created"),
}
_CREATED_HOOKS = sorted(n for n, (_, _, event) in _HOOKS.items() if event == "party/created")


def _receiver(clock: FakeClock) -> HookReceiver:
    """The endpoints, on loopback, stamping every request with its simulated time."""
    receiver = HookReceiver(clock=clock)
    for name, (_, statuses, _) in _HOOKS.items():
        receiver.answer(
            *(
                Answer(
                    status=status,
                    body=json.dumps({"received": status < 300}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                for status in statuses
            ),
            path=f"/{name}",
        )
    receiver.answer(404)
    return receiver


class _Check:
    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []

    def __call__(self, what: str, ok: bool, detail: str = "") -> None:
        self.results.append({"check": what, "ok": bool(ok), "detail": detail})

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r["ok"] for r in self.results)


class _Scenario:
    def __init__(self, speed: float, db: Path) -> None:
        # Real time, sped up: a FakeClock with a rate, starting now.
        self.clock = FakeClock(SystemClock().now(), rate=speed)
        self.db = db
        self.store = SQLiteStore(db)
        # The transport's deadline is real time; the lease is read on the simulated clock.
        # A lease of twice the deadline, in simulated seconds, outlasts any attempt, so no
        # delivery is ever claimed twice while the clock runs fast.
        self.timeouts = Timeouts(connect=1.0, total=2.0)
        self.dispatcher = Dispatcher(
            self.store,
            clock=self.clock,
            timeouts=self.timeouts,
            lease=self.timeouts.total * speed * 2,
            network_policy=NetworkPolicy(allow_networks=["127.0.0.0/8"]),
        )
        self.retry = RetryPolicy()
        self.start = self.clock.now()
        self.names: dict[str, str] = {}  # hook id -> name
        self.ids: dict[str, str] = {}  # name -> hook id
        self.secrets: dict[str, str] = {}  # name -> secret
        self.emits: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.worker_error: BaseException | None = None
        # A real-time budget: the whole schedule at this speed, three times over, plus slack.
        self.budget = 3 * (self.retry.total + 600) / speed + 20

    def elapsed(self, when: datetime) -> float:
        return (when - self.start).total_seconds()

    def subscribe(self, api: SubscriptionAPI, base_url: str, check: _Check) -> None:
        for name, (description, _, event) in _HOOKS.items():
            if name == "batched":  # the host sets batching, through the Dispatcher
                hook = self.dispatcher.subscribe(
                    event,
                    f"{base_url}/{name}",
                    owner=OWNER,
                    description=f"{name}: {description}",
                    batching=_BATCHING,
                )
                check(
                    f"subscribe {name} (Dispatcher.subscribe, batching=...): its window kept",
                    hook.batching == _BATCHING and bool(hook.secret),
                    repr(hook.batching),
                )
                self.ids[name], self.names[hook.id] = hook.id, name
                self.secrets[name] = hook.secret or ""
                continue
            body = {
                "restHook": {
                    "targetUrl": f"{base_url}/{name}",
                    "event": event,
                    "description": f"{name}: {description}",
                }
            }
            response = api.create(json.dumps(body).encode(), owner=OWNER)
            created = response.body["restHook"] if response.body else {}
            check(
                f"subscribe {name}: 201 Created with a signing secret",
                response.status == 201 and bool(created.get("secret")),
                f"status {response.status}",
            )
            self.ids[name] = created["id"]
            self.names[created["id"]] = name
            self.secrets[name] = created["secret"]

    def emit(
        self, event: str, payload: object, label: str, *, ordering_key: str | None = None
    ) -> Sequence[Delivery]:
        deliveries = self.dispatcher.emit(event, payload, owner=OWNER, ordering_key=ordering_key)
        self.emits.append(
            {
                "at": self.elapsed(self.clock.now()),
                "event": event,
                "label": label,
                "deliveries": {self.names[d.hook_id]: d.id for d in deliveries},
            }
        )
        return deliveries

    def run_worker(self) -> None:
        try:
            # Emits in this process wake the worker; polling is for other processes, so a
            # quarter of a real second between looks is plenty.
            self.dispatcher.run(workers=4, stop=self.stop, poll_interval=self.clock.rate / 4)
        except BaseException as exc:  # noqa: BLE001 - reported as a failed check, not a traceback
            self.worker_error = exc

    def wait_for(self, condition: Callable[[], bool], deadline: float) -> bool:
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.005)
        return condition()

    def delivered(self, delivery_id: str) -> bool:
        found = self.store.get_delivery(delivery_id)
        return found is not None and found.state is DeliveryState.DELIVERED

    def final(self, delivery_id: str) -> bool:
        found = self.store.get_delivery(delivery_id)
        return found is not None and found.state.is_final


def cmd_demo(ctx: _Invocation) -> Result:
    speed = float(ctx.args.speed)
    if not 1 <= speed <= 100_000:
        raise ValidationError("speed", f"must be between 1 and 100000; got {speed:g}")
    keep = _kept_database(getattr(ctx.args, "db", None))
    with tempfile.TemporaryDirectory(prefix="resthooks-demo-") as workdir:
        scenario = _Scenario(speed, keep if keep is not None else Path(workdir) / "demo.db")
        try:
            data = _play(scenario)
        finally:
            scenario.stop.set()
            scenario.dispatcher.transport.close()
            scenario.store.close()
    data["db"] = None if keep is None else str(keep)
    return Result(data, render_demo, status=EXIT_OK if data["ok"] else EXIT_FAILED)


def _kept_database(db: object) -> Path | None:
    """``demo --db PATH``: the demo's store is written there and kept, for the other commands
    to look at. A new file only: the demo's checks count everything in its store."""
    if db is None:
        return None
    path = Path(str(db))
    if not str(db).strip():
        raise ValidationError("db", "must be a path")
    if path.exists():
        raise ValidationError(
            "db", f"{str(path)!r} exists: the demo writes a new database (give a new path)"
        )
    if not path.parent.is_dir():
        raise ValidationError("db", f"the directory {str(path.parent)!r} does not exist")
    return path


def _play(s: _Scenario) -> dict[str, Any]:
    check = _Check()
    real_deadline = time.monotonic() + s.budget
    with _receiver(s.clock) as receiver:
        s.subscribe(SubscriptionAPI(s.dispatcher), receiver.url("/").rstrip("/"), check)
        worker = threading.Thread(target=s.run_worker, name="resthooks-demo-worker", daemon=True)
        worker.start()

        s.start = s.clock.now()  # the timeline counts from the first event
        first = {
            s.names[d.hook_id]: d.id
            for d in s.emit(
                "party/created", PARTY_CREATED_EXAMPLE, "Capsule's example: Scott Spacey (11587)"
            )
        }
        s.emit("kase/created", _KASE, "a project no hook is subscribed to")
        check(
            "party/created reaches its four hooks; kase/created reaches none",
            sorted(first) == _CREATED_HOOKS and not s.emits[1]["deliveries"],
        )
        updates = [
            s.emit(
                "party/updated",
                change,
                f"11587 changed ({', '.join(k for k in change if k not in ('id', 'updatedAt'))}), "
                f"key {_ORDERING_KEY}",
                ordering_key=_ORDERING_KEY,
            )[0].id
            for change in _UPDATES
        ]
        tasks = [
            s.emit("task/created", task, f"task {task['id']}, batched")[0].id for task in _TASKS
        ]
        # The second party is created once the flaky hook has recovered and the gone hook
        # has been removed: it must reach healthy, flaky and (still retrying) broken.
        ready = s.wait_for(
            lambda: (
                all(s.final(first[n]) for n in ("healthy", "flaky", "gone"))
                and all(s.final(u) for u in updates)
                and s.final(tasks[0])
            ),
            real_deadline,
        )
        check("the healthy, flaky, gone, ordered and batched deliveries settle", ready)
        second = {
            s.names[d.hook_id]: d.id
            for d in s.emit("party/created", _SECOND_PARTY, "Homestyle Shop (11588)")
        }
        check(
            "a hook removed by 410 receives nothing more",
            sorted(second) == ["broken", "flaky", "healthy"],
            f"went to {sorted(second)}",
        )
        dead = s.wait_for(
            lambda: (
                (h := s.store.get_hook(s.ids["broken"])) is not None and h.state is HookState.DEAD
            ),
            real_deadline,
        )
        check("the broken hook dies when the schedule runs out", dead)
        third = {
            s.names[d.hook_id]: d.id
            for d in s.emit("party/created", _THIRD_PARTY, "Ada Moreno (11589)")
        }
        check(
            "a dead hook receives nothing more",
            sorted(third) == ["flaky", "healthy"],
            f"went to {sorted(third)}",
        )
        idle = s.wait_for(
            lambda: all(s.final(d) for e in s.emits for d in e["deliveries"].values()),
            real_deadline,
        )
        check("every delivery reaches a final state", idle)
        s.stop.set()
        worker.join(timeout=max(real_deadline - time.monotonic(), 5.0))
        check(
            "the worker stops cleanly when asked",
            not worker.is_alive() and s.worker_error is None,
            repr(s.worker_error) if s.worker_error else "",
        )
        requests = receiver.deliveries
    return _verify(
        s, check, requests, first=first, second=second, third=third, updates=updates, tasks=tasks
    )


def _verify(
    s: _Scenario,
    check: _Check,
    requests: list[ReceivedDelivery],
    *,
    first: dict[str, str],
    second: dict[str, str],
    third: dict[str, str],
    updates: list[str],
    tasks: list[str],
) -> dict[str, Any]:
    deliveries: dict[str, Delivery] = {}
    log: dict[str, list[Attempt]] = {}
    for emitted in s.emits:
        for delivery_id in emitted["deliveries"].values():
            found = s.store.get_delivery(delivery_id)
            if found is not None:
                deliveries[delivery_id] = found
                log[delivery_id] = s.store.attempts(delivery_id)

    def states(ids: list[str]) -> list[tuple[str, int, list[int | None]]]:
        return [
            (deliveries[i].state.value, deliveries[i].attempts, [a.status for a in log[i]])
            for i in ids
            if i in deliveries
        ]

    healthy = [first["healthy"], second["healthy"], third["healthy"]]
    check(
        "healthy: every delivery delivered on its first attempt",
        states(healthy) == [("delivered", 1, [200])] * 3,
        str(states(healthy)),
    )
    check(
        "flaky: 502, 502, then delivered on the third attempt; later ones at once",
        states([first["flaky"]]) == [("delivered", 3, [502, 502, 200])]
        and states([second["flaky"], third["flaky"]]) == [("delivered", 1, [200])] * 2,
        str(states([first["flaky"], second["flaky"], third["flaky"]])),
    )
    check(
        "gone: one attempt answered 410, the delivery cancelled, the hook removed",
        states([first["gone"]]) == [("cancelled", 1, [410])]
        and s.store.get_hook(s.ids["gone"]) is None,
        str(states([first["gone"]])),
    )
    broken = states([first["broken"], second["broken"]])
    failed = [b for b in broken if b[0] == "failed"]
    check(
        "broken: six attempts answered 500, failed for good; its other delivery cancelled",
        len(broken) == 2
        and failed == [("failed", s.retry.max_attempts, [500] * s.retry.max_attempts)]
        and sorted(b[0] for b in broken) == ["cancelled", "failed"],
        str(broken),
    )
    earlier, later = updates
    arrived = [(r.webhook_id, r.answer.status) for r in requests if r.path.strip("/") == "ordered"]
    check(
        f"ordered: the second change of {_ORDERING_KEY} waits for the first (502, retried), "
        "then arrives after it",
        states([earlier, later]) == [("delivered", 2, [502, 200]), ("delivered", 1, [200])]
        and arrived == [(earlier, 502), (earlier, 200), (later, 200)]
        and log[later][0].started_at >= log[earlier][-1].started_at,
        str(arrived),
    )
    batch = [r for r in requests if r.path.strip("/") == "batched"]
    check(
        "batched: three task/created emits, one POST, one webhook-id, the tasks in emit order",
        len(set(tasks)) == 1
        and states(tasks[:1]) == [("delivered", 1, [200])]
        and [(r.webhook_id, r.payload) for r in batch] == [(tasks[0], list(_TASKS))],
        f"{len(batch)} requests: {[r.payload for r in batch]}",
    )
    hook = s.store.get_hook(s.ids["broken"])
    check(
        "broken: the hook is dead, with the last error as the reason",
        hook is not None and hook.state is HookState.DEAD and "500" in (hook.dead_reason or ""),
        repr(hook.dead_reason if hook else None),
    )
    gaps_ok = True
    for attempts in log.values():
        for before, after in itertools.pairwise(attempts):
            delay = s.retry.delay_after(before.number) or 0.0
            if (after.started_at - before.started_at).total_seconds() < delay:
                gaps_ok = False
    broken_log = next(
        (
            log[i]
            for i in (first["broken"], second["broken"])
            if deliveries.get(i) and deliveries[i].state is DeliveryState.FAILED
        ),
        [],
    )
    span = (
        (broken_log[-1].started_at - broken_log[0].started_at).total_seconds()
        if broken_log
        else 0.0
    )
    check(
        "retries wait Capsule's schedule: 5 s, 1 min, 5 min, 15 min, 15 min",
        gaps_ok and span >= s.retry.total,
        f"first to last attempt of the failed delivery: {_clock_text(span)}",
    )

    # What the receiver saw: every request signed, and no delivery sent twice.
    by_id: dict[str, list[ReceivedDelivery]] = {}
    verified = 0
    tolerance = timedelta(seconds=max(300.0, s.timeouts.total * s.clock.rate))
    for request in requests:
        by_id.setdefault(request.webhook_id or "", []).append(request)
        secret = s.secrets.get(request.path.strip("/"))
        if secret is None:
            continue
        try:
            verify(
                request.body, request.headers, secret, tolerance=tolerance, now=request.received_at
            )
        except VerificationError:
            continue
        verified += 1
    check(
        "every request carries a valid Standard Webhooks signature (resthooks.verify)",
        bool(requests) and verified == len(requests),
        f"{verified} of {len(requests)} verified",
    )
    matched = all(
        len(by_id.get(i, [])) >= len([a for a in log[i] if a.status is not None])
        and len(by_id.get(i, []))
        <= len(log[i]) + (1 if deliveries[i].state is DeliveryState.CANCELLED else 0)
        for i in deliveries
    ) and set(by_id) <= set(deliveries)
    check(
        "the receiver got one request per logged attempt: nothing lost, nothing sent twice",
        matched,
        f"{len(requests)} requests, {sum(len(a) for a in log.values())} attempts logged",
    )
    expected = {"event": "party/created", "payload": [PARTY_CREATED_EXAMPLE]}
    bodies = by_id.get(first["healthy"], [])
    check(
        'the body is Capsule\'s: {"event": "party/created", "payload": [ ... ]}',
        bool(bodies) and json.loads(bodies[0].body) == expected,
    )
    return _report(s, check, deliveries, log, verified=verified, requests=len(requests))


def _report(
    s: _Scenario,
    check: _Check,
    deliveries: dict[str, Delivery],
    log: dict[str, list[Attempt]],
    *,
    verified: int,
    requests: int,
) -> dict[str, Any]:
    timeline: list[dict[str, Any]] = []
    for number, emitted in enumerate(s.emits, 1):
        timeline.append(
            {
                "at": emitted["at"],
                "hook": "-",
                "delivery": None,
                "attempt": None,
                "outcome": f"emit {emitted['event']}: {emitted['label']} -> "
                f"{len(emitted['deliveries'])} "
                f"{'delivery' if len(emitted['deliveries']) == 1 else 'deliveries'}",
                "order": (emitted["at"], 0, number),
            }
        )
    for delivery_id, attempts in log.items():
        delivery = deliveries[delivery_id]
        name = s.names[delivery.hook_id]
        for attempt in attempts:
            last = attempt is attempts[-1]
            timeline.append(
                {
                    "at": s.elapsed(attempt.started_at),
                    "hook": name,
                    "delivery": delivery_id,
                    "attempt": attempt.number,
                    "outcome": _attempt_outcome(s, attempt, delivery, last=last),
                    "order": (s.elapsed(attempt.started_at), 1, attempt.number),
                }
            )
        if delivery.state is DeliveryState.CANCELLED and not (
            attempts and attempts[-1].status == 410
        ):
            timeline.append(
                {
                    "at": s.elapsed(delivery.updated_at),
                    "hook": name,
                    "delivery": delivery_id,
                    "attempt": None,
                    "outcome": "cancelled: its hook died",
                    "order": (s.elapsed(delivery.updated_at), 2, 0),
                }
            )
    timeline.sort(key=lambda row: row.pop("order"))

    hooks = []
    for name, hook_id in s.ids.items():
        hook = s.store.get_hook(hook_id)
        hooks.append(
            {
                "name": name,
                "id": hook_id,
                "behaviour": _HOOKS[name][0],
                "state": "removed (410)" if hook is None else hook.state.value,
                "delivered": sum(
                    1
                    for d in deliveries.values()
                    if d.hook_id == hook_id and d.state is DeliveryState.DELIVERED
                ),
                "deliveries": sum(1 for d in deliveries.values() if d.hook_id == hook_id),
            }
        )
    rows = [
        {
            "id": d.id,
            "hook": s.names[d.hook_id],
            "event": d.event,
            "state": d.state.value,
            "attempts": d.attempts,
            "last_error": d.last_error,
        }
        for d in sorted(deliveries.values(), key=lambda d: (d.created_at, s.names[d.hook_id]))
    ]
    return {
        "speed": s.clock.rate,
        "started_at": isoformat_z(s.start),
        "simulated_seconds": round(s.elapsed(s.clock.now()), 1),
        "timeline": timeline,
        "hooks": hooks,
        "deliveries": rows,
        "requests": requests,
        "signatures_verified": verified,
        "checks": check.results,
        "ok": check.ok,
    }


def _attempt_outcome(s: _Scenario, attempt: Attempt, delivery: Delivery, *, last: bool) -> str:
    status = f"HTTP {attempt.status}" if attempt.status is not None else attempt.summary or "?"
    if attempt.succeeded:
        return f"{status}: delivered"
    if attempt.status == 410:
        return f"{status}: gone, hook removed"
    if last and delivery.state is DeliveryState.FAILED:
        return f"{status}: failed for good, hook dead"
    if last and delivery.state is DeliveryState.CANCELLED:
        return f"{status}: no retry, its hook died"
    delay = s.retry.delay_after(attempt.number)
    return f"{status}: retry in {_delay_text(delay or 0.0)}"


def _delay_text(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 60 else f"{seconds / 60:g} min"


def _clock_text(seconds: float) -> str:
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes):02d}:{rest:04.1f}"


def render_demo(data: dict[str, Any]) -> str:
    """The demo's report for a human: the timeline, the hooks, the deliveries, the checks."""

    store = "a temporary SQLite store" if not data.get("db") else f"the SQLite store {data['db']}"
    out = [
        f"resthooks demo: {len(data['hooks'])} hooks, a receiver on loopback, {store}, "
        f"the clock at {data['speed']:g}x",
        "",
        table(
            ["time", "hook", "delivery", "attempt", "outcome"],
            [
                [
                    _clock_text(r["at"]),
                    r["hook"],
                    r["delivery"] and short_id(r["delivery"]),
                    r["attempt"],
                    r["outcome"],
                ]
                for r in data["timeline"]
            ],
        ),
        f"(simulated time: each real millisecond of work moves the clock "
        f"{data['speed'] / 1000:g} s, so attempts come a little after their schedule)",
        "",
        "hooks",
        table(
            ["hook", "id", "behaviour", "state", "delivered"],
            [
                [
                    h["name"],
                    h["id"],
                    h["behaviour"],
                    h["state"],
                    f"{h['delivered']}/{h['deliveries']}",
                ]
                for h in data["hooks"]
            ],
        ),
        "",
        "deliveries",
        table(
            ["delivery", "hook", "event", "state", "attempts", "last_error"],
            [
                [d["id"], d["hook"], d["event"], d["state"], d["attempts"], d["last_error"]]
                for d in data["deliveries"]
            ],
        ),
        "",
        f"{data['requests']} requests received, {data['signatures_verified']} signatures "
        f"verified, {_clock_text(data['simulated_seconds'])} simulated",
        "",
    ]
    for result in data["checks"]:
        mark = "ok  " if result["ok"] else "FAIL"
        detail = f" ({result['detail']})" if result["detail"] and not result["ok"] else ""
        out.append(f"{mark} {result['check']}{detail}")
    passed = sum(1 for r in data["checks"] if r["ok"])
    verdict = "every outcome is the one the contract predicts" if data["ok"] else "FAILED"
    out.append(f"\n{passed}/{len(data['checks'])} checks passed: {verdict}")
    if data.get("db"):
        out.append(
            f"\nthe store is kept in {data['db']} (its times are the simulated ones): "
            f"resthooks --db {data['db']} deliveries list"
        )
    return "\n".join(out)
