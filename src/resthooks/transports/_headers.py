"""A response's headers read without the email package, where that reads them the same.

``http.client`` reads every response's header block with :mod:`email.parser`: about a fifth
of the client's CPU time for a small response on loopback, more than everything the
Dispatcher does for a delivery. Webhook receivers answer with a few plain header lines,
which need none of it. :class:`HeadersResponse` is ``http.client.HTTPResponse`` with one
change: a header block whose every line is a plain ``name: value`` (a token, a colon,
printable ASCII or tabs) is split here; any other block (folded lines, a bare CR, a form
feed, non-ASCII bytes, a line without a colon...) goes to the email parser exactly as
``http.client.parse_headers`` would send it, so the headers, and with them the framing of
the response (``Content-Length``, ``Transfer-Encoding``, ``Connection``), are the same in
every case. ``tests/test_transport_wire.py`` checks that against the stdlib, with
hypothesis.
"""

from __future__ import annotations

import email.parser
import http.client
import re
from typing import Any

__all__ = ["HeadersResponse", "parse_header_lines", "unfold"]

# A line the email parser reads as exactly (name, value): the name an RFC 9110 token, the
# value printable ASCII and tabs after optional spaces or tabs (kept as they are at its end,
# as the email parser keeps them), the line ended by CRLF or LF. Anything else is left to the
# email parser (it also splits lines on a bare CR, form feeds and other separators that
# str.splitlines knows, reads folded lines as one header, and stops at a line without a name).
_PLAIN = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\t\x20-\x7e]*)\r?\n")
_END = (b"\r\n", b"\n", b"")
# An obsolete line folding (RFC 9112 5.2) and the spaces around it, as urllib3 2.x replaces
# them: with one space. Only a block the email parser read can hold one.
_OBSOLETE_FOLD = re.compile(r"(?:(?<![ \t])[ \t]+)?\r\n[ \t]+")


def unfold(value: str) -> str:
    """``value`` with each obsolete line folding replaced by one space (as urllib3 does)."""
    return _OBSOLETE_FOLD.sub(" ", value) if "\r\n" in value else value


def parse_header_lines(lines: list[bytes]) -> http.client.HTTPMessage:
    """The ``HTTPMessage`` ``http.client.parse_headers`` makes of these header lines (as
    ``http.client._read_headers`` returns them, the blank line or EOF last)."""
    message = http.client.HTTPMessage()
    plain = _PLAIN.fullmatch
    for line in lines:
        if line in _END:
            continue
        found = plain(line)
        if found is None:
            text = b"".join(lines).decode("iso-8859-1")
            parsed: http.client.HTTPMessage = email.parser.Parser(
                _class=http.client.HTTPMessage
            ).parsestr(text)
            return parsed
        message.set_raw(found[1].decode("ascii"), found[2].decode("ascii"))
    return message


class HeadersResponse(http.client.HTTPResponse):
    """``http.client.HTTPResponse`` reading its header block with :func:`parse_header_lines`.

    ``begin`` is the stdlib's (the same in CPython 3.10 to 3.13) but for that call.
    """

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:  # past any 100 Continue
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            http.client._read_headers(self.fp)
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        lines = http.client._read_headers(self.fp)
        self.headers = self.msg = parse_header_lines(lines)
        transfer_encoding = self.headers.get("transfer-encoding")
        this: Any = self  # attributes the stdlib sets and the type stubs do not all declare
        if transfer_encoding and transfer_encoding.lower() == "chunked":
            this.chunked = True
            this.chunk_left = None
        else:
            this.chunked = False
        this.will_close = this._check_close()
        this.length = None
        length = self.headers.get("content-length")
        if length and not this.chunked:
            try:
                this.length = int(length)
            except ValueError:
                this.length = None
            else:
                if this.length < 0:
                    this.length = None
        if (
            status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED)
            or 100 <= status < 200
            or this._method == "HEAD"
        ):
            this.length = 0
        if not this.will_close and not this.chunked and this.length is None:
            this.will_close = True
