"""Logging exceptions without personal data.

An exception's message and a traceback's locals can carry what a person
sent (an SQL error quotes its parameters; an IMAP error quotes the server).
Logs get the exception's class and where it was raised, nothing else.
"""

from __future__ import annotations

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
