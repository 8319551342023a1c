"""One error tree: public calls given bad input raise typed resthooks errors, never bare ones."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import resthooks
import resthooks.errors
import resthooks.verification
from resthooks import (
    ConfigurationError,
    EventCatalogue,
    ResthooksError,
    RetryPolicy,
    Timeouts,
    TransportError,
    TransportErrorKind,
    ValidationError,
    verify,
)
from resthooks.testing import FakeClock

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HEADERS = {"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,x"}

CALLS: dict[str, tuple[type[ResthooksError], Callable[[], object]]] = {
    "EventCatalogue({})": (ValidationError, lambda: EventCatalogue({})),
    "EventCatalogue(None)": (ValidationError, lambda: EventCatalogue(None)),  # type: ignore[arg-type]
    "EventCatalogue unhashable action": (
        ValidationError,
        lambda: EventCatalogue({"a": [["b"]]}),  # type: ignore[list-item]
    ),
    "RetryPolicy(jitter=2)": (ConfigurationError, lambda: RetryPolicy(jitter=2)),
    "RetryPolicy(jitter='x')": (ConfigurationError, lambda: RetryPolicy(jitter="x")),  # type: ignore[arg-type]
    "RetryPolicy(delays=5)": (ConfigurationError, lambda: RetryPolicy(delays=5)),  # type: ignore[arg-type]
    "RetryPolicy().delay_after(0)": (ValidationError, lambda: RetryPolicy().delay_after(0)),
    "Timeouts(connect=0)": (ConfigurationError, lambda: Timeouts(connect=0)),
    "Timeouts(connect='5')": (ConfigurationError, lambda: Timeouts(connect="5")),  # type: ignore[arg-type]
    "Timeouts(connect=20, total=10)": (ConfigurationError, lambda: Timeouts(connect=20, total=10)),
    "FakeClock().advance(-1)": (ValidationError, lambda: FakeClock().advance(-1)),
    "FakeClock(rate=-1)": (ValidationError, lambda: FakeClock(rate=-1)),
    "FakeClock('2026')": (ValidationError, lambda: FakeClock("2026")),  # type: ignore[arg-type]
    "verify(..., None)": (resthooks.errors.VerificationError, lambda: verify(b"{}", HEADERS, None)),  # type: ignore[arg-type]
    "verify(..., [None])": (
        resthooks.errors.VerificationError,
        lambda: verify(b"{}", HEADERS, [None]),  # type: ignore[list-item]
    ),
    "verify(str body)": (ValidationError, lambda: verify("{}", HEADERS, SECRET)),  # type: ignore[arg-type]
    "verify(tolerance=-1)": (
        ConfigurationError,
        lambda: verify(b"{}", HEADERS, SECRET, tolerance=-1),
    ),
    "verify(now='x')": (ConfigurationError, lambda: verify(b"{}", HEADERS, SECRET, now="x")),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_bad_input_raises_a_typed_resthooks_error(name: str) -> None:
    """Each call raises its resthooks error type (from resthooks.errors), not a bare one."""
    expected, call = CALLS[name]
    with pytest.raises(ResthooksError) as info:
        call()
    assert isinstance(info.value, expected)
    assert type(info.value).__module__ == "resthooks.errors"


def test_verification_error_lives_with_the_others_and_where_it_was() -> None:
    """VerificationError is defined in resthooks.errors and still importable as before."""
    assert resthooks.errors.VerificationError is resthooks.verification.VerificationError
    assert resthooks.VerificationError is resthooks.errors.VerificationError
    assert issubclass(resthooks.errors.VerificationError, ResthooksError)


def test_transport_error_kinds_are_an_enum() -> None:
    """TransportError.kind is a TransportErrorKind; its value is the word attempts log, and a
    custom transport's unknown word reads as protocol."""
    assert TransportErrorKind.TIMEOUT is TransportError("timeout", "slow").kind
    assert TransportError(TransportErrorKind.TLS, "bad cert").kind == "tls"
    assert TransportErrorKind.PROTOCOL is TransportError("dns", "odd").kind
    assert [k.value for k in TransportErrorKind] == [
        "timeout",
        "connection",
        "tls",
        "blocked",
        "protocol",
        "too_large",
    ]


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (TimeoutError(), TransportErrorKind.TIMEOUT),
        (ConnectionResetError(), TransportErrorKind.CONNECTION),
        (OSError("unreachable"), TransportErrorKind.CONNECTION),
        (RuntimeError("odd"), TransportErrorKind.PROTOCOL),
    ],
)
def test_the_shared_table_maps_exceptions_to_kinds(
    exc: BaseException, kind: TransportErrorKind
) -> None:
    """The transports' shared table gives each exception its kind (unknown ones: protocol)."""
    from resthooks.transports._rules import classify, error_table  # noqa: PLC0415

    assert kind is classify(exc, error_table())
