"""PostgreSQL: ids no row can have are unknown (404), and the fuzzing of every entry point."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import make_dispatcher

import fuzzing
from resthooks import DeliveryNotFound, HookNotFound
from resthooks.api import SubscriptionAPI
from resthooks.testing import FakeClock, RecordingTransport

OWNER = "acme"


@pytest.fixture(name="seeded")
def _seeded(pg_store):
    dispatcher = make_dispatcher(pg_store, clock=FakeClock(), transport=RecordingTransport())
    fuzzing.seed(dispatcher)
    return dispatcher


@pytest.mark.parametrize("bad_id", ["\udc80", "a\x00b", "hook_\ud800"])
def test_impossible_ids_are_unknown_not_a_driver_error(seeded, bad_id):
    """A lone surrogate raised UnicodeEncodeError, a NUL answered 503 (a StoreError from the
    driver): both are unknown ids now, 404 in the API, as on the other stores."""
    before = fuzzing.snapshot(seeded.store)
    for call, error in (
        (lambda: seeded.get_hook(bad_id, owner=OWNER), HookNotFound),
        (lambda: seeded.unsubscribe(bad_id, owner=OWNER), HookNotFound),
        (lambda: seeded.revive(bad_id, owner=OWNER), HookNotFound),
        (lambda: seeded.rotate_secret(bad_id, owner=OWNER), HookNotFound),
        (lambda: seeded.get_delivery(bad_id, owner=OWNER), DeliveryNotFound),
        (lambda: seeded.attempts(bad_id, owner=OWNER), DeliveryNotFound),
        (lambda: seeded.redeliver(bad_id, owner=OWNER), DeliveryNotFound),
    ):
        with pytest.raises(error):
            call()
    api = SubscriptionAPI(seeded)
    assert api.show(bad_id, owner=OWNER).status == 404
    assert api.delete(bad_id, owner=OWNER).status == 404
    assert fuzzing.snapshot(seeded.store) == before


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzz_the_dispatcher_and_the_api_on_postgres(seeded, data):
    """The same fuzzing as on the other stores (tests/fuzzing.py), on PostgreSQL."""
    name, args = data.draw(fuzzing.calls(), label="call")
    fuzzing.call(seeded, name, args)
