"""Batched deliveries: the emits of a hook's event within a window, delivered as one POST.

A hook subscribed with a :class:`Batching` gets no delivery per emit: each emit of its event
joins the hook's *open batch* (a pending delivery that no worker has claimed yet), whose
body's ``payload`` list grows by the emit's entities, in emit order. A batch is one delivery:
one ``webhook-id``, one attempt log, retried as a whole. The rules, written once here and
applied by every store (:func:`plan`):

- The open batch is sealed when a worker claims it: a claimed batch never gains entities
  (the next emit opens a new batch).
- It is sealed, and due at once, when it holds ``max_entities`` entities or ``max_bytes``
  bytes of body, or when the next emit does not fit in it (that emit opens a new batch).
  An emit is never split: one with more entities than ``max_entities``, or a body larger
  than ``max_bytes``, is a batch of its own, sealed at once.
- A new batch is due ``max_wait`` after its first emit (at once if it is sealed already).
- Ordering keys: the emits with an ordering key join the hook's open *keyed* batch, and the
  hook's keyed batches are sent one at a time, in order (they share the ordering key
  :data:`~resthooks.batching.BATCH_ORDERING_KEY`, so a keyed batch waits while an earlier
  one is open, as deliveries of one key do); a batch never reorders a key. Emits without a
  key join the open batch without keys; those batches go in parallel, as deliveries without
  a key do.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NamedTuple

import attrs

from ._durations import seconds
from .errors import ValidationError

__all__ = [
    "BATCH_ORDERING_KEY",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ENTITIES",
    "MAX_BATCH_WAIT",
    "BatchPlan",
    "Batching",
    "batch_lane",
    "count_entities",
    "join_bodies",
    "plan",
]

BATCH_ORDERING_KEY = "*"
"""The ordering key of every batch that holds entities emitted with ordering keys, so that
the keyed batches of one hook go one at a time, in order. No emit's own key is ever stored
on a batched hook's deliveries, so it cannot clash with one."""

MAX_BATCH_WAIT = 3600.0
"""The longest ``max_wait`` a hook may have: an hour."""

MAX_BATCH_ENTITIES = 10_000
"""The most entities a batch may be allowed to hold."""

MAX_BATCH_BYTES = 16 * 1024 * 1024
"""The largest body a batch may be allowed (a Dispatcher also holds it to
``limits.payload_bytes``, the largest body it sends)."""


def _wait(value: object) -> float:
    if isinstance(value, timedelta) or (
        isinstance(value, (int, float)) and not isinstance(value, bool)
    ):
        number = seconds(value, "batching.max_wait", positive=True, config=False)
        if number <= MAX_BATCH_WAIT:
            return number
    raise ValidationError(
        "batching.max_wait",
        f"must be a number of seconds (or a timedelta) above 0 and at most {MAX_BATCH_WAIT:g}",
    )


def _count(field: str, low: int, high: int) -> Callable[[Any, Any, Any], None]:
    def check(_: object, attribute: object, value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValidationError(f"batching.{field}", f"must be an int from {low} to {high}")

    return check


@attrs.frozen
class Batching:
    """How a hook's emits are batched: the window of one batch.

    An immutable value, given to :meth:`Dispatcher.subscribe <resthooks.Dispatcher.subscribe>`
    (``batching=``); a hook keeps it for its life. See :mod:`resthooks.batching` for the
    rules.

    Attributes:
        max_wait: Seconds from a batch's first emit until it is due (a float, or a
            :class:`~datetime.timedelta` given): the longest an entity waits for others.
            Above 0, at most :data:`~resthooks.batching.MAX_BATCH_WAIT`. Default 1 s.
        max_entities: The most entities one batch holds (1 to
            :data:`~resthooks.batching.MAX_BATCH_ENTITIES`). Default 100.
        max_bytes: The largest body of one batch, in bytes (64 to
            :data:`~resthooks.batching.MAX_BATCH_BYTES`; a Dispatcher also wants at most its
            ``limits.payload_bytes``). Default 256 KiB.

    Raises:
        ValidationError: Naming the field (``batching.max_wait``...), for a value out of
            range or of the wrong type.

    Example:
        >>> from datetime import timedelta
        >>> Batching(max_wait=timedelta(seconds=5), max_entities=50)
        Batching(max_wait=5.0, max_entities=50, max_bytes=262144)
        >>> Batching(max_entities=0)
        Traceback (most recent call last):
        ...
        resthooks.errors.ValidationError: batching.max_entities: must be an int from 1 to 10000

    .. versionadded:: 0.2.0
    """

    max_wait: float = attrs.field(default=1.0, converter=_wait)
    max_entities: int = attrs.field(
        default=100, validator=_count("max_entities", 1, MAX_BATCH_ENTITIES)
    )
    max_bytes: int = attrs.field(
        default=256 * 1024, validator=_count("max_bytes", 64, MAX_BATCH_BYTES)
    )

    def to_text(self) -> str:
        """The value as a short text, how the SQL stores keep it; :meth:`from_text` reads it.

        Example:
            >>> Batching(max_wait=0.25, max_entities=10, max_bytes=4096).to_text()
            '0.25 10 4096'
        """
        return f"{self.max_wait!r} {self.max_entities} {self.max_bytes}"

    @classmethod
    def from_text(cls, text: str) -> Batching:
        """The value :meth:`to_text` wrote.

        Raises:
            ValueError: If ``text`` is not such a value (a damaged row).

        Example:
            >>> Batching.from_text("0.25 10 4096")
            Batching(max_wait=0.25, max_entities=10, max_bytes=4096)
        """
        wait, entities, size = text.split(" ")
        number = float(wait)
        if not math.isfinite(number):
            raise ValueError(f"not a batching value: {text!r}")
        return cls(max_wait=number, max_entities=int(entities), max_bytes=int(size))

    def is_full(self, entities: int, size: int) -> bool:
        """Whether a batch of ``entities`` entities and a body of ``size`` bytes is sealed.

        Example:
            >>> Batching(max_entities=2).is_full(2, 100), Batching(max_entities=3).is_full(2, 100)
            (True, False)
        """
        return entities >= self.max_entities or size >= self.max_bytes


def batch_lane(ordering_key: str | None) -> str | None:
    """The ordering key of the batch an emit with ``ordering_key`` joins: every keyed emit
    goes to the hook's keyed batches (:data:`~resthooks.batching.BATCH_ORDERING_KEY`), the
    others to batches without a key.

    Example:
        >>> batch_lane("party:1"), batch_lane(None)
        ('*', None)
    """
    return None if ordering_key is None else BATCH_ORDERING_KEY


def _prefix(event: str) -> bytes:
    # The shape encode_body writes: compact, the event first.
    return b'{"event":' + json.dumps(event, ensure_ascii=False).encode() + b',"payload":['


def count_entities(body: bytes) -> int:
    """How many entities an emit's body carries (the length of its ``payload`` list).

    Example:
        >>> count_entities(b'{"event":"party/created","payload":[{"id":1},{"id":2}]}')
        2
    """
    payload = json.loads(body)["payload"]
    if not isinstance(payload, list):
        raise ValueError("the body's payload is not a list")
    return len(payload)


def join_bodies(event: str, batch: bytes, body: bytes) -> bytes:
    """The body of a batch of ``event`` once the emit whose body is ``body`` has joined it:
    the emit's entities appended to the batch's ``payload``, in order.

    Raises:
        ValueError: If either body is not of the shape :func:`~resthooks.encode_body`
            writes for ``event``.

    Example:
        >>> join_bodies("party/created", b'{"event":"party/created","payload":[{"id":1}]}',
        ...             b'{"event":"party/created","payload":[{"id":2}]}')
        b'{"event":"party/created","payload":[{"id":1},{"id":2}]}'
    """
    prefix = _prefix(event)
    for what in (batch, body):
        if not (what.startswith(prefix) and what.endswith(b"]}")):
            raise ValueError("a body to batch is not the shape encode_body writes")
    added = body[len(prefix) : -2]
    if not added:
        return batch
    if len(batch) == len(prefix) + 2:  # an empty payload so far
        return prefix + added + b"]}"
    return batch[:-2] + b"," + added + b"]}"


class BatchPlan(NamedTuple):
    """What a store writes for one emit to a batched hook (:func:`plan`'s answer).

    A named tuple.

    Attributes:
        joins: ``True``: write ``body`` and ``entities`` onto the open batch; ``False``:
            start a new batch with them (and seal the open batch first, due at once, if
            ``seal_open``).
        body: The batch's body after the emit.
        entities: The batch's entity count after the emit.
        sealed: Whether that batch is sealed now (due at once, it takes no more entities).
        seal_open: For a new batch: the open batch did not have room, so seal it, due at
            once (so that no later emit joins a batch older than this one).
    """

    joins: bool
    body: bytes
    entities: int
    sealed: bool
    seal_open: bool = False


def plan(
    batching: Batching,
    event: str,
    body: bytes,
    *,
    open_body: bytes | None = None,
    open_entities: int = 0,
) -> BatchPlan:
    """What an emit of ``event`` with ``body`` does to a hook batched with ``batching``
    whose open batch (of the emit's lane, see :func:`batch_lane`) has ``open_body`` and
    ``open_entities``, or has none (``open_body=None``).

    Pure: a store calls it under the lock of the open batch's row, in the emit's
    transaction, and writes what it says.

    Example:
        >>> b = Batching(max_entities=2)
        >>> one = b'{"event":"task/created","payload":[{"id":1}]}'
        >>> first = plan(b, "task/created", one)
        >>> first.joins, first.entities, first.sealed
        (False, 1, False)
        >>> second = plan(b, "task/created", one, open_body=first.body, open_entities=1)
        >>> second.joins, second.entities, second.sealed
        (True, 2, True)
    """
    entities = count_entities(body)
    if open_body is not None:
        joined = join_bodies(event, open_body, body)
        total = open_entities + entities
        if total <= batching.max_entities and len(joined) <= batching.max_bytes:
            return BatchPlan(
                joins=True,
                body=joined,
                entities=total,
                sealed=batching.is_full(total, len(joined)),
            )
    return BatchPlan(
        joins=False,
        body=body,
        entities=entities,
        sealed=batching.is_full(entities, len(body)),
        seal_open=open_body is not None,
    )
