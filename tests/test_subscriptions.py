"""The Dispatcher validates subscriptions, keeps owners apart, and stores nothing it refuses."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dead_hooks import run_out_of_retries
from resthooks import (
    Dispatcher,
    EventCatalogue,
    HookLimitReached,
    HookNotFound,
    HookState,
    ValidationError,
)
from resthooks.errors import ConfigurationError
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock


@pytest.fixture(name="dispatcher")
def _both_faces(any_face: Dispatcher) -> Dispatcher:
    """This module's contract tests run against both faces: sync and asyncio."""
    return any_face


URL = "https://example.com/hooks"


def _refused(dispatcher: Dispatcher, field: str, **kwargs: object) -> ValidationError:
    arguments: dict[str, object] = {
        "event": "party/created",
        "target_url": URL,
        "owner": "acme",
    }
    arguments.update(kwargs)
    with pytest.raises(ValidationError) as info:
        dispatcher.subscribe(**arguments)  # type: ignore[arg-type]
    assert info.value.field == field
    assert dispatcher.store.list_hooks() == []
    return info.value


def test_subscribe_stores_an_active_hook(dispatcher: Dispatcher, clock: FakeClock) -> None:
    """subscribe returns the stored hook: active, timestamped by the clock, with a secret."""
    hook = dispatcher.subscribe("party/created", URL, owner="acme", description="CRM sync")

    assert hook.state is HookState.ACTIVE
    assert (hook.owner, hook.event, hook.target_url) == ("acme", "party/created", URL)
    assert hook.description == "CRM sync"
    assert hook.created_at == hook.updated_at == clock.now()
    assert hook.secret is not None
    assert hook.secret.startswith("whsec_")
    assert dispatcher.store.list_hooks() == [hook]


def test_secrets_differ_per_hook_and_can_be_turned_off(store: MemoryStore) -> None:
    """Each hook gets its own secret; sign_deliveries=False subscribes without one."""
    signing = Dispatcher(store, clock=FakeClock())
    one = signing.subscribe("party/created", URL + "/1", owner="acme")
    two = signing.subscribe("party/created", URL + "/2", owner="acme")
    plain = Dispatcher(MemoryStore(), clock=FakeClock(), sign_deliveries=False)

    assert one.secret != two.secret
    assert plain.subscribe("party/created", URL, owner="acme").secret is None


@pytest.mark.parametrize(
    "url",
    [
        URL,
        "http://example.com",
        "HTTPS://EXAMPLE.COM/path?q=1&r=2",
        "https://example.com:8443/hooks",
        "https://[2606:4700:4700::1111]/hooks",
        "https://example.com/" + "a" * (2048 - len("https://example.com/")),
    ],
)
def test_acceptable_target_urls(dispatcher: Dispatcher, url: str) -> None:
    """Absolute http(s) URLs with a host, up to 2,048 characters, are accepted as given."""
    assert dispatcher.subscribe("party/created", url, owner="acme").target_url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/" + "a" * (2049 - len("https://example.com/")), "2048"),
        ("https://example.com/hooks#section", "fragment"),
        ("https://user:pw@example.com/hooks", "credentials"),
        ("https://example.com/#", "fragment"),
        ("https://example.com/a b", "whitespace"),
        (" https://example.com/", "whitespace"),
        ("https://example.com/\t", "whitespace"),
        ("https://example.com/\n", "whitespace"),
        ("https://example.com/\x00", "control"),
        ("https://example.com/\x7f", "control"),
        ("https://example.com/\x85", "control"),
        ("https://example.com/\u3000", "whitespace"),
        ("https://example.com/\ud800", "surrogate"),
        ("ftp://example.com/", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("example.com/hooks", "http or https"),
        ("//example.com/hooks", "http or https"),
        ("/hooks", "http or https"),
        ("https://", "host"),
        ("https:///hooks", "host"),
        ("http://:80/", "host"),
        ("https://example.com:99999/", "valid URL"),
        ("https://example.com:0/", "port 0"),
        ("http://[::1/", "valid URL"),
        ("https://bücher.example/", "IDNA"),
        ("", "empty"),
    ],
)
def test_refused_target_urls(dispatcher: Dispatcher, url: str, message: str) -> None:
    """A target URL that breaks a rule is refused naming target_url, and nothing is stored."""
    error = _refused(dispatcher, "target_url", target_url=url)

    assert message in error.message


@pytest.mark.parametrize("url", [None, 42, b"https://example.com/", ["https://example.com/"]])
def test_target_url_must_be_a_string(dispatcher: Dispatcher, url: object) -> None:
    """A target URL of another type is a ValidationError, not a TypeError."""
    _refused(dispatcher, "target_url", target_url=url)


def test_unknown_event_is_refused(dispatcher: Dispatcher) -> None:
    """An event outside the catalogue is refused naming event, listing the entity's actions."""
    error = _refused(dispatcher, "event", event="party/exploded")

    assert "created, updated, deleted" in error.message


@pytest.mark.parametrize("event", [None, 1, "", "party", "party/created/x", "PARTY/created"])
def test_malformed_events_are_refused(dispatcher: Dispatcher, event: object) -> None:
    """Anything but an exact catalogue name is refused naming event."""
    _refused(dispatcher, "event", event=event)


def test_description_length_is_capped_and_configurable(store: MemoryStore) -> None:
    """Descriptions up to max_description_length (default 255) are accepted, longer refused."""
    default = Dispatcher(store, clock=FakeClock())
    default.subscribe("party/created", URL, owner="acme", description="d" * 255)
    _refused(Dispatcher(MemoryStore(), clock=FakeClock()), "description", description="d" * 256)
    short = Dispatcher(MemoryStore(), clock=FakeClock(), max_description_length=10)

    short.subscribe("party/created", URL, owner="acme", description="d" * 10)
    error = _refused(
        Dispatcher(MemoryStore(), clock=FakeClock(), max_description_length=10),
        "description",
        description="d" * 11,
    )
    assert "10" in error.message


@pytest.mark.parametrize("description", [None, 5, b"bytes", "nul\x00", "bell\x07", "\udfff"])
def test_bad_descriptions_are_refused(dispatcher: Dispatcher, description: object) -> None:
    """A description that is not text, or holds NUL/controls/lone surrogates, is refused."""
    _refused(dispatcher, "description", description=description)


def test_descriptions_may_hold_tabs_newlines_and_any_language(dispatcher: Dispatcher) -> None:
    """Multi-line, tabbed and non-ASCII descriptions are kept as given."""
    text = "Ligne 1\n\tdeuxième ligne — 日本語 🎉"

    assert (
        dispatcher.subscribe("party/created", URL, owner="acme", description=text).description
        == text
    )


@pytest.mark.parametrize("owner", [None, 7, "", "x" * 256, "a\nb", "\ud800"])
def test_bad_owners_are_refused(dispatcher: Dispatcher, owner: object) -> None:
    """An owner that is not a short, printable, non-empty string is refused naming owner."""
    _refused(dispatcher, "owner", owner=owner)


def test_cap_of_20_hooks_per_owner(dispatcher: Dispatcher) -> None:
    """The default cap is Capsule's 20 per owner; the 21st is refused; other owners unaffected."""
    for n in range(20):
        dispatcher.subscribe("party/created", f"{URL}/{n}", owner="acme")

    with pytest.raises(HookLimitReached) as info:
        dispatcher.subscribe("party/created", f"{URL}/20", owner="acme")

    assert info.value.limit == 20
    assert len(dispatcher.hooks(owner="acme")) == 20
    dispatcher.subscribe("party/created", f"{URL}/20", owner="other")


def test_cap_is_configurable_and_can_be_lifted(store: MemoryStore, clock: FakeClock) -> None:
    """max_hooks_per_owner sets the cap; None removes it."""
    capped = Dispatcher(store, clock=clock, max_hooks_per_owner=2)
    capped.subscribe("party/created", URL + "/1", owner="acme")
    capped.subscribe("party/created", URL + "/2", owner="acme")
    with pytest.raises(HookLimitReached):
        capped.subscribe("party/created", URL + "/3", owner="acme")

    uncapped = Dispatcher(MemoryStore(), clock=clock, max_hooks_per_owner=None)
    for n in range(25):
        uncapped.subscribe("party/created", f"{URL}/{n}", owner="acme")
    assert len(uncapped.hooks(owner="acme")) == 25


@pytest.mark.parametrize("cap", [0, -1, 1.5, "20"])
def test_a_cap_that_cannot_work_is_a_configuration_error(cap: object) -> None:
    """A cap that is not None or a positive int is refused when the Dispatcher is built."""
    with pytest.raises(ConfigurationError):
        Dispatcher(MemoryStore(), max_hooks_per_owner=cap)  # type: ignore[arg-type]


def test_the_same_subscription_returns_the_existing_hook(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """Subscribing the same (owner, event, URL) again returns the first hook, unchanged."""
    first = dispatcher.subscribe("party/created", URL, owner="acme", description="first")
    clock.advance(60)

    again = dispatcher.subscribe("party/created", URL, owner="acme", description="second")

    assert again == first
    assert dispatcher.hooks(owner="acme") == [first]


def test_a_duplicate_does_not_count_against_the_cap(store: MemoryStore) -> None:
    """At the cap, re-subscribing an existing subscription still returns it."""
    dispatcher = Dispatcher(store, clock=FakeClock(), max_hooks_per_owner=1)
    hook = dispatcher.subscribe("party/created", URL, owner="acme")

    assert dispatcher.subscribe("party/created", URL, owner="acme") == hook


def test_differences_make_new_hooks(dispatcher: Dispatcher) -> None:
    """Another event, URL or owner is another subscription."""
    hooks = {
        dispatcher.subscribe("party/created", URL, owner="acme").id,
        dispatcher.subscribe("party/updated", URL, owner="acme").id,
        dispatcher.subscribe("party/created", URL + "/2", owner="acme").id,
        dispatcher.subscribe("party/created", URL, owner="other").id,
    }

    assert len(hooks) == 4
    assert len(dispatcher.store.list_hooks()) == 4


def test_resubscribing_a_dead_hook_makes_it_active(
    dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """A dead hook subscribed again comes back active, with the same id."""
    hook = dispatcher.subscribe("party/created", URL, owner="acme")
    run_out_of_retries(dispatcher, hook)
    clock.advance(timedelta(minutes=5))

    again = dispatcher.subscribe("party/created", URL, owner="acme")

    assert (again.id, again.state, again.dead_reason) == (hook.id, HookState.ACTIVE, None)
    assert again.updated_at == clock.now()


def test_owners_never_see_each_others_hooks(dispatcher: Dispatcher) -> None:
    """get_hook, hooks and unsubscribe treat another owner's hook as nonexistent."""
    mine = dispatcher.subscribe("party/created", URL, owner="acme")
    theirs = dispatcher.subscribe("party/created", URL, owner="globex")

    assert dispatcher.hooks(owner="acme") == [mine]
    assert dispatcher.get_hook(mine.id, owner="acme") == mine
    with pytest.raises(HookNotFound):
        dispatcher.get_hook(theirs.id, owner="acme")
    with pytest.raises(HookNotFound):
        dispatcher.unsubscribe(theirs.id, owner="acme")
    assert dispatcher.get_hook(theirs.id, owner="globex") == theirs


def test_unsubscribe_removes_the_hook(dispatcher: Dispatcher) -> None:
    """After unsubscribe the hook is gone for its owner; unsubscribing again is HookNotFound."""
    hook = dispatcher.subscribe("party/created", URL, owner="acme")

    dispatcher.unsubscribe(hook.id, owner="acme")

    assert dispatcher.hooks(owner="acme") == []
    with pytest.raises(HookNotFound) as info:
        dispatcher.unsubscribe(hook.id, owner="acme")
    assert info.value.id == hook.id


def test_hooks_filters_by_event_and_state(dispatcher: Dispatcher, clock: FakeClock) -> None:
    """hooks(event=..., state=...) narrows the owner's list; unknown filters are refused."""
    created = dispatcher.subscribe("party/created", URL, owner="acme")
    clock.advance(1)
    updated = dispatcher.subscribe("party/updated", URL, owner="acme")
    run_out_of_retries(dispatcher, updated)

    assert dispatcher.hooks(owner="acme", event="party/created") == [created]
    assert [h.id for h in dispatcher.hooks(owner="acme", state="dead")] == [updated.id]
    assert [h.id for h in dispatcher.hooks(owner="acme")] == [created.id, updated.id]
    with pytest.raises(ValidationError, match="state"):
        dispatcher.hooks(owner="acme", state="zombie")
    with pytest.raises(ValidationError, match="event"):
        dispatcher.hooks(owner="acme", event="party/exploded")


def test_a_custom_catalogue_is_what_subscribe_checks(store: MemoryStore) -> None:
    """A Dispatcher built with its own catalogue accepts its events and refuses Capsule's."""
    dispatcher = Dispatcher(
        store, clock=FakeClock(), events=EventCatalogue({"invoice": ["paid", "voided"]})
    )

    assert dispatcher.subscribe("invoice/paid", URL, owner="acme").event == "invoice/paid"
    with pytest.raises(ValidationError, match="invoice supports: paid, voided"):
        dispatcher.subscribe("invoice/created", URL, owner="acme")
    with pytest.raises(ValidationError, match="entity one of: invoice"):
        dispatcher.subscribe("party/created", URL, owner="acme")


def test_events_must_be_a_catalogue() -> None:
    """A Dispatcher refuses events= that is not an EventCatalogue."""
    with pytest.raises(ConfigurationError):
        Dispatcher(MemoryStore(), events={"party": ["created"]})  # type: ignore[arg-type]
