"""The network policy: which URLs and addresses deliveries may reach (protection from SSRF).

A webhook sender dials URLs chosen by its users. Without a policy, a user could subscribe
``http://169.254.169.254/...`` or a name that resolves to ``10.0.0.5`` and make the host's
workers reach into its private network. :class:`NetworkPolicy` says which schemes are allowed
and refuses every address that is not globally routable, from an explicit deny list (never
:attr:`ipaddress.IPv4Address.is_global` alone: its answers changed across CPython patch
releases). IPv4 addresses carried inside IPv6 (IPv4-mapped, IPv4-translated, NAT64, 6to4,
Teredo) are unwrapped and judged as the IPv4 address they reach.

The policy is enforced twice: on the URL at subscribe time when its host is an IP literal (in
any spelling the system resolver understands, such as ``2130706433`` or ``0x7f.1``), and on
the addresses actually dialled at every attempt (see
:class:`~resthooks.transports.Urllib3Transport`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence

import attrs

from .errors import ConfigurationError, TransportError, ValidationError
from .urls import parse_target_url

__all__ = [
    "IPAddress",
    "IPNetwork",
    "NetworkPolicy",
    "Resolver",
    "ip_literal",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]
"""A function ``(host, port) -> addresses``: every IP address (as text) ``host`` resolves to."""

# Most specific first: the first match names the reason.
_DENIED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), reason)
    for net, reason in (
        # IPv4
        ("169.254.169.254/32", "cloud metadata"),
        ("169.254.170.2/32", "cloud metadata"),
        ("100.100.100.200/32", "cloud metadata"),
        ("0.0.0.0/8", "this network (0.0.0.0/8 reaches loopback)"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space (CGNAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved (class E)"),
        # IPv6 (IPv4-mapped, IPv4-translated, NAT64, 6to4 and Teredo are unwrapped first)
        ("fd00:ec2::254/128", "cloud metadata"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001:2::/48", "benchmarking"),
        ("2001:10::/28", "ORCHID"),
        ("2001:20::/28", "ORCHIDv2"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "segment routing (SRv6)"),
        ("fc00::/7", "unique local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)
# The same list as integer ranges: checking an address is a few integer comparisons.
_DENIED_RANGES: tuple[tuple[int, int, int, str], ...] = tuple(
    (net.version, int(net.network_address), int(net.broadcast_address), reason)
    for net, reason in _DENIED
)
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIXTOFOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")
_IPV4_LEGACY = re.compile(r"\A[0-9a-fA-FxX.]{1,64}\Z")


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` denotes if it is an IP literal, in any spelling; else ``None``.

    IPv6 may be bracketed and carry a zone. IPv4 is read the way the system resolver reads
    it (:func:`socket.inet_aton`): besides dotted quads, ``2130706433``, ``0x7f.1``,
    ``127.1`` and ``0177.0.0.1`` all mean ``127.0.0.1``.

    Example:
        >>> [str(ip_literal(h)) for h in ("0x7f.1", "2130706433", "[::ffff:127.0.0.1]")]
        ['127.0.0.1', '127.0.0.1', '::ffff:7f00:1']
        >>> ip_literal("example.com") is None
        True
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    text = text.removesuffix(".")
    if not _IPV4_LEGACY.match(text):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[ipaddress.IPv4Address, str]]:
    """The IPv4 addresses an IPv6 address carries, with the name of the carrier."""
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _MAPPED:
        return [(low32, "IPv4-mapped")]
    if address in _TRANSLATED:
        return [(low32, "IPv4-translated")]
    if address in _NAT64:
        return [(low32, "NAT64")]
    if address in _SIXTOFOUR:
        assert address.sixtofour is not None
        return [(address.sixtofour, "6to4")]
    if address in _TEREDO:
        assert address.teredo is not None
        server, client = address.teredo
        return [(client, "Teredo"), (server, "Teredo server")]
    return []


def _network_list(value: object, name: str, *, allow_everything: bool) -> tuple[IPNetwork, ...]:
    items: Iterable[object]
    if isinstance(value, (str, ipaddress.IPv4Network, ipaddress.IPv6Network)):
        items = [value]
    elif isinstance(value, Iterable):
        items = value
    else:
        raise ConfigurationError(f"{name} must be a list of networks such as '::1/128'")
    networks = []
    for item in items:
        if not isinstance(item, (str, ipaddress.IPv4Network, ipaddress.IPv6Network)):
            raise ConfigurationError(f"{name}: {item!r} is not a network")
        try:
            net = ipaddress.ip_network(item)
        except ValueError as exc:
            raise ConfigurationError(f"{name}: {exc}") from None
        if net.prefixlen == 0 and not allow_everything:
            raise ConfigurationError(
                f"{name}: {net} would allow everything; there is no off switch, "
                "list the networks you need"
            )
        networks.append(net)
    return tuple(networks)


def _networks(value: object) -> tuple[IPNetwork, ...]:
    return _network_list(value, "allow_networks", allow_everything=False)


def _deny_networks(value: object) -> tuple[IPNetwork, ...]:
    return _network_list(value, "deny_networks", allow_everything=True)


def _ports(value: object) -> frozenset[int] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigurationError("allowed_ports must be None or a collection of port numbers")
    ports = set()
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 65535:
            raise ConfigurationError(f"allowed_ports: {item!r} is not a port number (1-65535)")
        ports.add(item)
    if not ports:
        raise ConfigurationError("allowed_ports is empty: no delivery could be made")
    return frozenset(ports)


@attrs.frozen
class NetworkPolicy:
    """Which URLs and addresses deliveries may reach.

    By default the schemes ``http`` and ``https`` are allowed and every address that is not
    globally routable is refused: loopback, ``0.0.0.0/8``, RFC 1918, link-local and cloud
    metadata, CGNAT, benchmarking, documentation, multicast, broadcast, class E, unspecified,
    unique local, IPv6 link- and site-local, and private IPv4 carried inside IPv6. There is no
    switch to turn it off: list the networks a development setup needs in ``allow_networks``.

    Args:
        https_only: Allow only ``https`` targets.
        allow_networks: Networks allowed even though the deny list refuses them, such as
            ``["127.0.0.0/8", "::1/128"]`` for tests that deliver to a local server. An IPv4
            address carried inside IPv6 is allowed when either form is listed.
        deny_networks: Networks refused on top of the built-in list, though they are public:
            a cloud's host services (Azure's ``168.63.129.16``), your own public ranges. They
            win over ``allow_networks``; an IPv4 address carried inside IPv6 is refused when
            its IPv4 form is listed.
        allowed_ports: The only ports deliveries may use (the port given in the URL, or the
            scheme's default), such as ``{443}``; ``None`` (the default) allows any.

    Raises:
        ConfigurationError: If a network cannot be parsed, if ``allow_networks`` holds
            ``0.0.0.0/0`` or ``::/0``, or if a port is not a number from 1 to 65535.

    Example:
        >>> policy = NetworkPolicy()
        >>> policy.refusal("8.8.8.8") is None
        True
        >>> policy.refusal("::ffff:169.254.169.254")
        'IPv4-mapped 169.254.169.254 is cloud metadata'
        >>> NetworkPolicy(allow_networks=["127.0.0.0/8"]).refusal("127.0.0.1") is None
        True
        >>> NetworkPolicy(deny_networks=["168.63.129.16/32"]).refusal("168.63.129.16")
        'denied by the operator (168.63.129.16/32)'

    .. versionchanged:: 0.2.0
        ``deny_networks`` and ``allowed_ports``.
    """

    https_only: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    allow_networks: tuple[IPNetwork, ...] = attrs.field(default=(), converter=_networks)
    deny_networks: tuple[IPNetwork, ...] = attrs.field(default=(), converter=_deny_networks)
    allowed_ports: frozenset[int] | None = attrs.field(default=None, converter=_ports)

    @property
    def schemes(self) -> frozenset[str]:
        """The URL schemes deliveries may use."""
        return frozenset({"https"} if self.https_only else {"http", "https"})

    def _allowed(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.allow_networks)

    def refusal(self, address: str | IPAddress) -> str | None:
        """Why ``address`` may not be dialled, or ``None`` if it may.

        Raises:
            ValueError: If ``address`` is not an IP address (a ``str`` that
                :func:`ipaddress.ip_address` cannot read).
        """
        addr = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
            addr = ipaddress.IPv6Address(str(addr).partition("%")[0])
        for net in self.deny_networks:
            # Before the allow list: an operator's denial wins.
            if addr.version == net.version and addr in net:
                return f"denied by the operator ({net})"
        if self._allowed(addr):
            return None
        if isinstance(addr, ipaddress.IPv6Address):
            carried = _embedded_ipv4(addr)
            if carried:
                for inner, carrier in carried:
                    reason = self.refusal(inner)
                    if reason is not None:
                        return f"{carrier} {inner} is {reason}"
                return None
        value = int(addr)
        for version, first, last, reason in _DENIED_RANGES:
            if version == addr.version and first <= value <= last:
                return reason
        if not addr.is_global:  # a safety net under the explicit list, never instead of it
            return "not globally routable"
        return None

    def port_refusal(self, port: int) -> str | None:
        """Why ``port`` may not be dialled, or ``None`` if it may.

        Example:
            >>> NetworkPolicy(allowed_ports={443}).port_refusal(8443)
            'port 8443 is not allowed (allowed: 443)'

        .. versionadded:: 0.2.0
        """
        if self.allowed_ports is None or port in self.allowed_ports:
            return None
        shown = ", ".join(str(p) for p in sorted(self.allowed_ports)[:10])
        more = ", ..." if len(self.allowed_ports) > 10 else ""
        return f"port {port} is not allowed (allowed: {shown}{more})"

    def check_url(self, url: str, *, field: str = "target_url") -> None:
        """Refuse ``url`` if its scheme or port is not allowed or its host is a refused IP literal.

        The URL is read as the transport reads it (:func:`~resthooks.urls.parse_target_url`).
        Host names are not resolved here (an answer now says nothing about the answer at
        delivery time); their addresses are checked when they are dialled.

        Raises:
            ValidationError: Naming ``field``.

        Example:
            >>> NetworkPolicy().check_url("http://0x7f.1/hook")
            Traceback (most recent call last):
            ...
            resthooks.errors.ValidationError: target_url: host 0x7f.1 is 127.0.0.1: loopback
        """
        parts = parse_target_url(url, field=field)
        if parts.scheme not in self.schemes:
            raise ValidationError(field, f"must use {' or '.join(sorted(self.schemes))}")
        reason = self.port_refusal(parts.port)
        if reason is not None:
            raise ValidationError(field, reason)
        address = ip_literal(parts.host)
        if address is None:
            return
        reason = self.refusal(address)
        if reason is not None:
            raise ValidationError(field, f"host {parts.host} is {address}: {reason}")

    def check_port(self, port: int) -> None:
        """Raise :class:`~resthooks.errors.TransportError` ``blocked`` for a refused port.

        The dial-time twin of the port rule of :meth:`check_url`.

        .. versionadded:: 0.2.0
        """
        reason = self.port_refusal(port)
        if reason is not None:
            raise TransportError("blocked", reason)

    def check_scheme(self, url: str) -> None:
        """Raise :class:`~resthooks.errors.TransportError` ``blocked`` for a refused scheme.

        This is the attempt-time twin of the scheme rule of :meth:`check_url`, for a hook
        subscribed before the policy changed.
        """
        scheme = url.partition(":")[0].lower()
        if scheme not in self.schemes:
            raise TransportError("blocked", f"the scheme {scheme!r} is not allowed")

    def check_resolved(self, host: str, answers: Iterable[str]) -> list[IPAddress]:
        """Validate every address ``host`` resolved to and return them, in order, deduplicated.

        Raises:
            TransportError: ``blocked`` if ANY address is refused (a name answering with
                one public and one private address is refused: the dialler might pick either),
                if an answer is not an IP address, or if there is no answer at all.
        """
        addresses: list[IPAddress] = []
        for answer in answers:
            try:
                address = ipaddress.ip_address(answer)
            except (TypeError, ValueError):
                raise TransportError(
                    "blocked", f"{host} resolved to something that is not an IP address"
                ) from None
            reason = self.refusal(address)
            if reason is not None:
                raise TransportError("blocked", f"{host} resolves to {address}, which is {reason}")
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise TransportError("connection", f"{host} resolved to no address")
        return addresses


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with :func:`socket.getaddrinfo`: one lookup, every address it returns.

    Raises:
        OSError: :class:`socket.gaierror` when the name does not resolve.

    Example:
        >>> system_resolver("127.0.0.1", 80)
        ['127.0.0.1']
    """
    answers: list[str] = []
    for _family, _type, _proto, _name, sockaddr in socket.getaddrinfo(
        host, port, socket.AF_UNSPEC, socket.SOCK_STREAM
    ):
        address = str(sockaddr[0])
        if address not in answers:
            answers.append(address)
    return answers
