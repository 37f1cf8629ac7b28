"""Logging exceptions without personal data, and log lines without control characters.

An exception's message and a traceback's locals can carry what a person
sent (an SQL error quotes its parameters; an IMAP error quotes the server).
Logs get the exception's class and where it was raised, nothing else; and
every line goes out through :class:`OneLineFormatter`, which escapes what
input could forge a line with.
"""

from __future__ import annotations

import logging
import re
import traceback
from pathlib import Path


def describe(error: BaseException, frames: int = 3) -> str:
    """``Class at lib.py:9 f <- ours.py:12 g``: the raising frame, then the nearest
    frames outside installed libraries (our own code). No message, no values."""
    stack = traceback.extract_tb(error.__traceback__)
    if not stack:
        return type(error).__name__
    ours = [f for f in stack[:-1] if "site-packages" not in f.filename][-frames:]
    chosen = [stack[-1], *reversed(ours)]
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in chosen)
    return f"{type(error).__name__} at {where}"


# C0 and C1 controls, DEL, the Unicode line and paragraph separators, and the
# bidirectional overrides and isolates ("Trojan Source"): none may reach a log line raw.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def escape_controls(text: str) -> str:
    r"""``text`` with every control character written as its escape (``\n``, ``\x1b``,
    ``\u202e``): what someone sent can never start a log line of its own, or move the
    terminal's cursor, or turn the reading direction of the rest of a line."""
    return _CONTROLS.sub(_escaped, text)


class OneLineFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose every record is one line, with nothing raw from
    input: the final text (message, arguments, exception text alike) goes through
    :func:`escape_controls`. The one place that keeps forged lines out of the logs
    (OWASP ASVS 5.0 V16.4.1: log injection), whatever a logger call formats."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_controls(super().format(record))
