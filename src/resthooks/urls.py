"""Validation of target URLs, and masking of URLs for logs and messages."""

from __future__ import annotations

import re
import urllib.parse

from .errors import ValidationError

__all__ = ["MAX_URL_LENGTH", "mask_url", "redact_url", "validate_target_url"]

MAX_URL_LENGTH = 2048
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def validate_target_url(url: object, *, field: str = "target_url") -> str:
    """Return ``url`` if it is an acceptable target: absolute ``http``/``https`` with a host.

    Rules: a string of at most 2,048 characters; scheme ``http`` or ``https``; a host; no
    fragment; no whitespace or control characters anywhere; a valid port if one is given.
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
    """
    if not isinstance(url, str):
        raise ValidationError(field, f"must be a string, not {type(url).__name__}")
    if not url:
        raise ValidationError(field, "must not be empty")
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError(field, f"must be at most {MAX_URL_LENGTH} characters")
    if _FORBIDDEN.search(url):
        raise ValidationError(field, "must not contain whitespace or control characters")
    if _SURROGATE.search(url):
        raise ValidationError(field, "must be valid Unicode text (no lone surrogates)")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(field, f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationError(field, "must be an http or https URL")
    if not parts.hostname:
        raise ValidationError(field, "must have a host")
    if "#" in url:
        raise ValidationError(field, "must not have a fragment")
    if port == 0:
        raise ValidationError(field, "must not use port 0")
    try:
        url.encode("ascii")
    except UnicodeEncodeError:
        # Non-ASCII hosts must be sent in their IDNA form: ask for it rather than guess.
        try:
            parts.hostname.encode("ascii")
        except UnicodeEncodeError:
            raise ValidationError(
                field, "host must be ASCII (use the IDNA 'xn--' form of the name)"
            ) from None
    return url


def mask_url(url: str) -> str:
    """``url`` without credentials and query string, safe to log.

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
    query = "***" if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_url(text: str, url: str) -> str:
    """``text`` with ``url``'s credentials and query string masked wherever they appear.

    For error messages of HTTP clients, which quote the URL (or just its path and query) they
    failed on.

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
        return text
    if parts.query:
        text = text.replace("?" + parts.query, "?***")
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if userinfo:
        text = text.replace(userinfo + "@", "***@")
    if parts.password:
        text = text.replace(parts.password, "***")
    return text
