"""What a ``resthooks`` command returns and how it is shown: shared by the CLI and the demo.

Not public. It imports nothing of the CLI, so the demo (which the CLI loads when asked) needs
nothing from the CLI either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TextIO

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "Result", "short_id", "table"]

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran but something did not work (a demo check, a locked store)
EXIT_BAD_INPUT = 2  # the input was refused; nothing was written


class Result:
    """A command's data and the text a human reads, rendered from that same data."""

    def __init__(
        self,
        data: Any,
        render: Callable[[Any], str],
        *,
        status: int = EXIT_OK,
        compact: bool = False,
        quiet: bool = False,
    ) -> None:
        self.data = data
        self.render = render
        self.status = status
        self.compact = compact  # one line of JSON, for commands that print JSON lines
        self.quiet = quiet  # the command printed as it went (stats --watch): nothing more

    def write(self, out: TextIO, *, as_json: bool) -> None:
        if self.quiet:
            return
        if as_json:
            indent = None if self.compact else 2
            out.write(json.dumps(self.data, indent=indent, ensure_ascii=False) + "\n")
        else:
            text = self.render(self.data)
            if text:
                out.write(text.rstrip("\n") + "\n")


def short_id(value: str, keep: int = 8) -> str:
    """An id cut for a narrow column: its kind prefix and its last ``keep`` characters.

    The end of an id is the part that differs from one id to the next (a time-ordered id
    shares its first characters with every id made in the same second), so that is the end
    kept; the whole id is in ``--json`` and in the tables that have room for it.

    Example:
        >>> short_id("msg_6e0b94f3c1d27a58b917547a0d3962e5")
        'msg_...0d3962e5'
        >>> short_id("msg_1")
        'msg_1'
    """
    prefix, underscore, rest = value.partition("_")
    if not underscore:
        prefix, rest = "", value
    if len(rest) <= keep + 3:
        return value
    return f"{prefix}{underscore}...{rest[-keep:]}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns aligned on the widest cell; ``None`` shows as ``-``.

    Example:
        >>> print(table(["id", "state"], [["hook_1", "active"], ["hook_22", None]]))
        id       state
        hook_1   active
        hook_22  -
    """
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = [list(headers), *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )
