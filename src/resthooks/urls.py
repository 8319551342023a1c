"""Validation of target URLs, and masking of URLs for logs and messages.

One parser decides what a target URL means: urllib3's :func:`~urllib3.util.parse_url`, the
one the transport dials with. A URL that ``urllib.parse`` would read differently (another
host, port or scheme), or whose reading depends on the parser (a backslash, a percent-encoded
host), is refused: what is checked is then what is dialled.
"""

from __future__ import annotations

import functools
import re
import urllib.parse

import attrs
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .errors import ValidationError

__all__ = [
    "MAX_URL_LENGTH",
    "TargetURL",
    "mask_url",
    "parse_target_url",
    "redact_text",
    "redact_url",
    "validate_target_url",
]

MAX_URL_LENGTH = 2048
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@attrs.frozen
class TargetURL:
    """A target URL as the transport reads it.

    Attributes:
        scheme: ``http`` or ``https``, lower case.
        host: The host, lower case; IPv6 addresses without brackets.
        port: The port dialled: the one given, or the scheme's default.
        path: The path (may be empty).
        has_credentials: Whether the URL carries ``user:password@``.

    .. versionadded:: 0.2.0
    """

    scheme: str
    host: str
    port: int
    path: str
    has_credentials: bool = False


def _split(url: str) -> TargetURL | str:
    """The URL's parts as urllib3 reads them, or why it is not an acceptable URL.

    The shape rules, with nothing about credentials (see :func:`validate_target_url`).
    """
    if not url:
        return "must not be empty"
    if len(url) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    if _FORBIDDEN.search(url):
        return "must not contain whitespace or control characters"
    if _SURROGATE.search(url):
        return "must be valid Unicode text (no lone surrogates)"
    if "\\" in url:
        # urllib3 ends the host at a backslash, urllib.parse and browsers do not: the two
        # would dial different hosts.
        return "must not contain a backslash"
    if "#" in url:
        return "must not have a fragment"
    try:
        # The error messages of both parsers quote the URL: never pass them on.
        ours = parse_url(url)
        theirs = urllib.parse.urlsplit(url)
        their_port = theirs.port
    except (LocationParseError, ValueError):
        return "is not a valid URL"
    scheme = (ours.scheme or "").lower()
    if scheme not in _DEFAULT_PORTS:
        return "must be an http or https URL"
    if not ours.host or not theirs.hostname:
        return "must have a host"
    authority = theirs.netloc.rpartition("@")[2]
    if "%" in authority:
        return "host must not be percent-encoded (nor carry an IPv6 zone)"
    try:
        url.encode("ascii")
    except UnicodeEncodeError:
        try:
            theirs.hostname.encode("ascii")
        except UnicodeEncodeError:
            # Non-ASCII hosts must be sent in their IDNA form: ask for it rather than guess.
            return "host must be ASCII (use the IDNA 'xn--' form of the name)"
    host = ours.host.lower().strip("[]")
    if (
        host != theirs.hostname.lower()
        or ours.port != their_port
        or scheme != theirs.scheme.lower()
        or bool(ours.auth) != ("@" in theirs.netloc)
    ):
        return "is read differently by different URL parsers; write it plainly"
    if ours.port == 0:
        return "must not use port 0"
    return TargetURL(
        scheme=scheme,
        host=host,
        port=ours.port if ours.port is not None else _DEFAULT_PORTS[scheme],
        path=ours.path or "",
        has_credentials="@" in theirs.netloc,
    )


@functools.lru_cache(maxsize=1024)
def _split_cached(url: str) -> TargetURL | str:
    # The transport checks the shape of every URL it sends to: once per URL is enough.
    return _split(url)


def parse_target_url(url: object, *, field: str = "target_url") -> TargetURL:
    """The parts of a target URL, read as the transport reads them; refuse a bad shape.

    The shape rules: a string of at most 2,048 characters; scheme ``http`` or ``https``; a
    host, in ASCII and not percent-encoded; no fragment; no whitespace, control character or
    backslash anywhere; a port other than 0 if one is given; and one meaning for urllib3 and
    ``urllib.parse`` alike. Credentials are not judged here (see
    :func:`validate_target_url`): the transport applies these rules to every URL it sends
    to, and never sends credentials.

    Raises:
        ValidationError: Naming ``field``. The message never quotes the URL.

    Example:
        >>> parse_target_url("https://Example.com/hooks?x=1")  # doctest: +NORMALIZE_WHITESPACE
        TargetURL(scheme='https', host='example.com', port=443, path='/hooks',
                  has_credentials=False)
        >>> parse_target_url("http://127.0.0.1\\\\@example.com/")
        Traceback (most recent call last):
        ...
        resthooks.errors.ValidationError: target_url: must not contain a backslash

    .. versionadded:: 0.2.0
    """
    if not isinstance(url, str):
        raise ValidationError(field, f"must be a string, not {type(url).__name__}")
    parts = _split_cached(url)
    if isinstance(parts, str):
        raise ValidationError(field, parts)
    return parts


def validate_target_url(url: object, *, field: str = "target_url") -> str:
    """Return ``url`` if it is an acceptable target: the shape rules, and no credentials.

    See :func:`parse_target_url` for the shape rules. A URL with ``user:password@`` is
    refused too: resthooks does not send credentials from a URL, and storing them would
    keep a password in the hook's URL for every reader of the store and of the API.
    (The network policy adds its own rules on top.)

    Raises:
        ValidationError: Naming ``field``.

    Example:
        >>> validate_target_url("https://example.com/hooks?x=1")
        'https://example.com/hooks?x=1'
        >>> validate_target_url("ftp://example.com/")
        Traceback (most recent call last):
        ...
        resthooks.errors.ValidationError: target_url: must be an http or https URL
        >>> validate_target_url("https://user:pw@example.com/")
        Traceback (most recent call last):
        ...
        resthooks.errors.ValidationError: target_url: must not contain credentials \
(user:password@); authenticate the receiver by the request's signature instead
    """
    parts = parse_target_url(url, field=field)
    if parts.has_credentials:
        raise ValidationError(
            field,
            "must not contain credentials (user:password@); authenticate the receiver by the "
            "request's signature instead",
        )
    assert isinstance(url, str)
    return url


def mask_url(url: str) -> str:
    """``url`` without credentials and query string, safe to log.

    What remains is the scheme, host, port and path; ``***`` marks what was removed.

    Example:
        >>> mask_url("https://user:pw@example.com/hook?token=s3cret")
        'https://***@example.com/hook?***'
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    # A backslash ends the path for some parsers: mask from there on as well.
    path, backslash, _ = parts.path.partition("\\")
    query = "***" if parts.query or backslash else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, query, ""))


# A URL quoted in a message, up to the first character that cannot be part of it.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]*")
# A query string quoted on its own ("POST /h?k=v HTTP/1.1"), or what a URL pattern left.
_QUERY_IN_TEXT = re.compile(r"\?[^\s'\"<>`]+")
_MASKED_QUERY = "?***"


def redact_text(text: str) -> str:
    """``text`` with every URL in it masked, and every query string, wherever it comes from.

    For messages of other libraries (urllib3's log records, an HTTP client's errors), which
    quote the URL, or only its path and query, in forms of their own (percent-encoded, say).
    Over-masking prose that contains ``?`` followed by text is the accepted price.

    Example:
        >>> redact_text("Failed to parse headers (url=http://u:pw@h:8080/x?api_key=k): bad")
        'Failed to parse headers (url=http://***@h:8080/x?*** bad'
        >>> redact_text('"POST /hook?api_key=k HTTP/1.1" 200 2')
        '"POST /hook?*** HTTP/1.1" 200 2'

    .. versionadded:: 0.2.0
    """
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: mask_url(m.group()), text)
    if "?" in text:
        text = _QUERY_IN_TEXT.sub(_MASKED_QUERY, text)
    return text


def redact_url(text: str, url: str) -> str:
    """``text`` with ``url``'s credentials and query string masked wherever they appear.

    For error messages of HTTP clients, which quote the URL (or just its path and query) they
    failed on. The known parts of ``url`` are masked first, then anything
    :func:`redact_text` recognises.

    Example:
        >>> redact_url("Failed to parse: https://u:pw@h/x?k=v", "https://u:pw@h/x?k=v")
        'Failed to parse: https://***@h/x?***'
        >>> redact_url("GET /x?k=v failed", "https://h/x?k=v")
        'GET /x?*** failed'
    """
    text = text.replace(url, mask_url(url))
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return redact_text(text)
    if parts.query:
        text = text.replace("?" + parts.query, _MASKED_QUERY)
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if userinfo:
        text = text.replace(userinfo + "@", "***@")
    if parts.password:
        text = text.replace(parts.password, "***")
    return redact_text(text)
