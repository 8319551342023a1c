"""JSON encoding of event bodies: done once per emit, never per hook."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import attrs

from .errors import PayloadError

__all__ = ["encode_body", "isoformat_z"]


def isoformat_z(value: datetime) -> str:
    """Format an aware datetime as ISO 8601 in UTC with a ``Z``.

    Naive datetimes are taken to be UTC.

    Example:
        >>> from datetime import datetime, timezone, timedelta
        >>> isoformat_z(datetime(2015, 9, 15, 12, 43, 23, tzinfo=timezone(timedelta(hours=2))))
        '2015-09-15T10:43:23Z'
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    text = value.replace(tzinfo=None).isoformat()
    return text + "Z"


def _default(value: object) -> Any:
    if isinstance(value, datetime):
        return isoformat_z(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise PayloadError(f"cannot encode non-finite Decimal {value!r}")
        return float(value) if value != value.to_integral_value() else int(value)
    if attrs.has(type(value)):
        return attrs.asdict(value, recurse=False)  # type: ignore[arg-type]
    if isinstance(value, Mapping):
        # json only knows dict; any other mapping (MappingProxyType, a custom Mapping) is
        # accepted as an entity, so its values must be encodable too.
        return dict(value)
    raise PayloadError(
        f"cannot encode a {type(value).__name__} as JSON "
        "(supported: JSON types, datetime, date, UUID, Decimal, attrs instances)"
    )


# One encoder for every emit: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(
    default=_default, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _is_entity(value: object) -> bool:
    return isinstance(value, Mapping) or attrs.has(type(value))


def encode_body(event: str, payload: object, *, max_bytes: int) -> bytes:
    """Serialise ``{"event": event, "payload": [...]}`` as compact UTF-8 JSON.

    ``payload`` is one entity (a mapping or attrs instance) or a sequence of entities; the
    body always carries a list of objects (Capsule's shape), so anything else is refused.

    Raises:
        PayloadError: If something cannot be encoded, or the body exceeds ``max_bytes``.

    Example:
        >>> encode_body("party/created", {"id": 1}, max_bytes=1024)
        b'{"event":"party/created","payload":[{"id":1}]}'
    """
    entities: list[object]
    if _is_entity(payload):
        entities = [payload]
    elif isinstance(payload, Sequence) and not isinstance(payload, (str, bytes, bytearray)):
        entities = list(payload)
        for index, entity in enumerate(entities):
            if not _is_entity(entity):
                raise PayloadError(
                    f"entity {index} must be a mapping or an attrs instance, "
                    f"not {type(entity).__name__}"
                )
    else:
        raise PayloadError(
            f"must be a mapping or a sequence of mappings, not {type(payload).__name__}"
        )
    try:
        text = _ENCODER.encode({"event": event, "payload": entities})
    except PayloadError:
        raise
    except (TypeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"cannot be encoded as JSON: {exc}") from None
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PayloadError(f"contains a string that is not valid Unicode: {exc.reason}") from None
    if len(body) > max_bytes:
        raise PayloadError(f"body is {len(body)} bytes, more than the limit of {max_bytes}")
    return body
