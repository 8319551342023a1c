"""An egress proxy, as both transports take it: one parse of the URL, one rule for what may
be said about it.

A host that must send from fixed addresses puts a forward proxy in front of its workers (an
SSRF-safe one such as smokescreen, or squid with an ACL) and gives its URL to the transport.
Targets on ``https`` go through an HTTP ``CONNECT`` tunnel, inside which TLS runs end to end
with the receiver (its certificate is the one checked); targets on ``http`` are sent to the
proxy in absolute form. The proxy's credentials go in ``Proxy-Authorization`` and nowhere
else: not in a repr, an error message or a log record.
"""

from __future__ import annotations

import base64
import urllib.parse

import attrs

from ..errors import ConfigurationError

__all__ = ["Proxy", "parse_proxy", "proxy_unreachable", "tunnel_refused"]


@attrs.frozen
class Proxy:
    """An egress proxy, as a transport's ``proxy`` attribute holds it (read from the URL
    given as ``proxy=``; either transport takes one too).

    Attributes:
        host: The proxy's host name or address.
        port: Its port.
        authorization: The ``Proxy-Authorization`` header value (``Basic ...``) made from
            the URL's credentials, or ``None``. Not in the repr.

    .. versionadded:: 0.2.0

    Example:
        >>> from resthooks.transports import Urllib3Transport
        >>> Urllib3Transport(proxy="http://egress:s3cret@10.0.0.5:4750").proxy
        Proxy('http://***@10.0.0.5:4750')
    """

    host: str  # without brackets
    port: int
    authorization: str | None = attrs.field(default=None, repr=False)

    @property
    def safe(self) -> str:
        """``http://host:port``, with ``***@`` when it has credentials: what may be shown.

        .. versionadded:: 0.2.0
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        who = "***@" if self.authorization is not None else ""
        return f"http://{who}{host}:{self.port}"

    def __repr__(self) -> str:
        return f"Proxy({self.safe!r})"


def parse_proxy(url: object) -> Proxy:
    """Read a proxy URL: ``http://[user:password@]host:port`` (a :class:`Proxy` is taken as
    it is, so that one transport's proxy can be handed to another).

    Credentials are percent-decoded (``%40`` for an ``@`` in a password) and sent as Basic
    authentication. Only ``http://`` proxies: the connection to the proxy is plain (a TLS
    tunnel to the receiver runs inside it for ``https`` targets); a proxy URL has no path,
    query or fragment.

    Raises:
        ConfigurationError: Naming ``proxy``, for anything else. The message never quotes the
            credentials.

    Example:
        >>> parse_proxy("http://egress:s3cret@10.0.0.5:4750")
        Proxy('http://***@10.0.0.5:4750')
        >>> parse_proxy("http://10.0.0.5:4750").authorization is None
        True
    """
    if isinstance(url, Proxy):
        return url
    if not isinstance(url, str):
        raise ConfigurationError(f"proxy must be a URL string, not {type(url).__name__}")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise ConfigurationError("proxy must be a URL like http://host:port") from None
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise ConfigurationError("proxy must not contain whitespace or control characters")
    if parts.scheme.lower() != "http":
        raise ConfigurationError(
            "proxy must be an http:// URL (https targets go through a CONNECT tunnel inside "
            "it, TLS end to end with the receiver); https:// and socks proxies are not supported"
        )
    if not host:
        raise ConfigurationError("proxy must name a host: http://host:port")
    if port is None or port == 0:
        raise ConfigurationError("proxy must give its port: http://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ConfigurationError("proxy must be only http://[user:password@]host:port")
    authorization = None
    if parts.username is not None or parts.password is not None:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        if ":" in user:
            raise ConfigurationError("proxy: the user name must not contain ':'")
        try:
            credentials = f"{user}:{password}".encode()
        except UnicodeEncodeError:
            raise ConfigurationError("proxy: the credentials are not valid Unicode") from None
        token = base64.b64encode(credentials).decode("ascii")
        authorization = f"Basic {token}"
    return Proxy(host=host, port=port, authorization=authorization)


def tunnel_refused(target: str, status: int | str, reason: str) -> str:
    """The message for a ``CONNECT`` the proxy answered with ``status`` (both transports)."""
    return (
        f"the proxy refused the tunnel to {target}: {status} {reason}".rstrip()
        + " (an SSRF-safe proxy refuses targets its policy denies)"
    )


def proxy_unreachable(proxy: Proxy, reason: str) -> str:
    """The message for a proxy that could not be reached (both transports)."""
    host = f"[{proxy.host}]" if ":" in proxy.host else proxy.host
    return f"cannot connect to the proxy {host}:{proxy.port}: {reason}"
