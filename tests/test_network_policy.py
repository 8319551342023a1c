"""The network policy: which addresses and URLs deliveries may reach."""

from __future__ import annotations

import ipaddress

import pytest

from resthooks import ConfigurationError, Dispatcher, NetworkPolicy, TransportError, ValidationError
from resthooks.network import ip_literal
from resthooks.stores import MemoryStore
from resthooks.testing import FakeClock, RecordingTransport

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.15.255.255",  # just below 172.16/12
    "172.32.0.0",  # just above
    "192.167.255.255",
    "223.255.255.254",
    "::ffff:8.8.8.8",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "2a00:1450:4001:80b::200e",
    "64:ff9b::808:808",  # NAT64 of a public address
    "2002:808:808::1",  # 6to4 of a public address
]

# (address, the reason the policy gives)
BLOCKED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("0.0.0.0", "this network (0.0.0.0/8 reaches loopback)"),
    ("0.1.2.3", "this network (0.0.0.0/8 reaches loopback)"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("169.254.1.1", "link-local"),
    ("100.64.0.1", "shared address space (CGNAT)"),
    ("100.127.255.254", "shared address space (CGNAT)"),
    ("192.0.0.8", "IETF protocol assignments"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved (class E)"),
    ("255.255.255.255", "broadcast"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::127.0.0.1", "IPv4-compatible (deprecated)"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fec0::1", "site-local (deprecated)"),
    ("fc00::1", "unique local"),
    ("fd12:3456:789a::1", "unique local"),
    ("fd00:ec2::254", "cloud metadata"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("2001:2::1", "benchmarking"),
    ("100::1", "discard-only"),
    ("64:ff9b:1::1", "local-use NAT64"),
    ("::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1 is loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped 169.254.169.254 is cloud metadata"),
    ("::ffff:10.0.0.1", "IPv4-mapped 10.0.0.1 is private"),
    ("::ffff:0:7f00:1", "IPv4-translated 127.0.0.1 is loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 169.254.169.254 is cloud metadata"),
    ("64:ff9b::7f00:1", "NAT64 127.0.0.1 is loopback"),
    ("2002:7f00:1::", "6to4 127.0.0.1 is loopback"),
    ("2002:c0a8:101::1", "6to4 192.168.1.1 is private"),
    # Teredo: server 65.54.227.120, client 192.0.2.45 (obfuscated in the low 32 bits)
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo 192.0.2.45 is documentation"),
    # Teredo whose client is 10.0.0.1
    ("2001:0:4136:e378::f5ff:fffe", "Teredo 10.0.0.1 is private"),
]


def test_table_covers_both_families() -> None:
    """The table has at least 35 addresses, IPv4 and IPv6 both allowed and blocked."""
    addresses = ALLOWED + [a for a, _ in BLOCKED]
    versions = {ipaddress.ip_address(a).version for a in addresses}
    assert len(addresses) >= 35
    assert {4, 6} == versions
    assert {4, 6} == {ipaddress.ip_address(a).version for a in ALLOWED}


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    """Globally routable addresses, bare or carried in IPv6, pass the default policy."""
    assert None is NetworkPolicy().refusal(address)


@pytest.mark.parametrize(("address", "reason"), BLOCKED)
def test_blocked_addresses_are_refused_by_the_explicit_list(address: str, reason: str) -> None:
    """Every non-global kind is refused with its own reason, never by is_global alone."""
    assert reason == NetworkPolicy().refusal(address)


@pytest.mark.parametrize(("address", "reason"), BLOCKED)
def test_any_blocked_answer_refuses_the_whole_resolution(address: str, reason: str) -> None:
    """A name answering one public and one refused address is refused."""
    with pytest.raises(TransportError) as info:
        NetworkPolicy().check_resolved("hooks.example", ["8.8.8.8", address])
    assert info.value.kind == "blocked"
    assert reason in info.value.message


def test_allow_list_admits_listed_networks_only() -> None:
    """allow_networks lets listed networks through, including IPv4 carried in IPv6."""
    policy = NetworkPolicy(allow_networks=["127.0.0.0/8", "::1/128"])
    assert None is policy.refusal("127.0.0.1")
    assert None is policy.refusal("::1")
    assert None is policy.refusal("::ffff:127.0.0.1")
    assert policy.refusal("10.0.0.1") == "private"
    assert policy.refusal("169.254.169.254") == "cloud metadata"


@pytest.mark.parametrize("networks", [["0.0.0.0/0"], ["::/0"], ["not a network"], ["10.0.0.1/8"]])
def test_allow_list_has_no_off_switch_and_rejects_nonsense(networks: list[str]) -> None:
    """Allowing everything, or an unreadable network, is a configuration error."""
    with pytest.raises(ConfigurationError):
        NetworkPolicy(allow_networks=networks)


def test_allow_list_accepts_a_single_string() -> None:
    """A single network string is one network, not a list of characters."""
    assert (ipaddress.ip_network("::1/128"),) == NetworkPolicy(
        allow_networks="::1/128"
    ).allow_networks


def test_resolver_answer_that_is_not_an_address_is_blocked() -> None:
    """A resolver answering a name instead of an address is refused, not dialled."""
    with pytest.raises(TransportError) as info:
        NetworkPolicy().check_resolved("h", ["evil.example"])
    assert info.value.kind == "blocked"


def test_empty_resolution_is_a_connection_error() -> None:
    """No address at all is a connection failure, not a policy refusal."""
    with pytest.raises(TransportError) as info:
        NetworkPolicy().check_resolved("h", [])
    assert info.value.kind == "connection"


LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "2130706433",
    "0x7f000001",
    "0x7f.1",
    "127.1",
    "0177.0.0.1",
    "0177.0.0.01",
    "127.0.0.1.",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_ip_literal_reads_every_spelling(host: str) -> None:
    """Legacy IPv4 forms and bracketed IPv6 are read as the resolver reads them."""
    address = ip_literal(host)
    assert address is not None
    assert address.is_loopback or (
        isinstance(address, ipaddress.IPv6Address)
        and address.ipv4_mapped == ipaddress.IPv4Address("127.0.0.1")
    )


@pytest.mark.parametrize("host", ["example.com", "1.2.3.4.example", "0x7f.example", "localhost"])
def test_names_are_not_literals(host: str) -> None:
    """Host names are left to the resolver at delivery time."""
    assert None is ip_literal(host)


@pytest.fixture(name="guarded")
def _guarded() -> Dispatcher:
    return Dispatcher(MemoryStore(), clock=FakeClock(), transport=RecordingTransport())


@pytest.mark.parametrize("host", [*LOOPBACK_SPELLINGS, "169.254.169.254", "[fd00:ec2::254]"])
def test_subscribe_refuses_ip_literal_targets(guarded: Dispatcher, host: str) -> None:
    """Subscribing a refused IP literal, in any spelling, fails on target_url; nothing is stored."""
    with pytest.raises(ValidationError) as info:
        guarded.subscribe("party/created", f"http://{host}:8080/hook", owner="acme")
    assert info.value.field == "target_url"
    assert guarded.hooks(owner="acme") == []


def test_subscribe_accepts_names_and_public_literals(guarded: Dispatcher) -> None:
    """Names are not resolved at subscribe time; public literals pass."""
    for url in ("https://hooks.example.com/h", "https://8.8.8.8/h", "https://[2606:4700::1]/h"):
        assert url == guarded.subscribe("party/created", url, owner="acme").target_url


def test_subscribe_with_allow_list_accepts_loopback() -> None:
    """With 127.0.0.0/8 allow-listed, a loopback literal may be subscribed."""
    dispatcher = Dispatcher(
        MemoryStore(),
        clock=FakeClock(),
        transport=RecordingTransport(),
        network_policy=NetworkPolicy(allow_networks=["127.0.0.0/8"]),
    )
    hook = dispatcher.subscribe("party/created", "http://0x7f.1:8080/h", owner="acme")
    assert hook.target_url == "http://0x7f.1:8080/h"


def test_https_only_refuses_http_at_subscribe() -> None:
    """https_only=True refuses an http target at subscribe time, naming target_url."""
    dispatcher = Dispatcher(
        MemoryStore(),
        clock=FakeClock(),
        transport=RecordingTransport(),
        network_policy=NetworkPolicy(https_only=True),
    )
    with pytest.raises(ValidationError) as info:
        dispatcher.subscribe("party/created", "http://hooks.example.com/h", owner="acme")
    assert info.value.field == "target_url"
    assert dispatcher.subscribe("party/created", "https://hooks.example.com/h", owner="acme")


def test_dispatcher_refuses_a_policy_of_the_wrong_type() -> None:
    """network_policy must be a NetworkPolicy."""
    with pytest.raises(ConfigurationError):
        Dispatcher(MemoryStore(), network_policy=["127.0.0.0/8"])  # type: ignore[arg-type]
