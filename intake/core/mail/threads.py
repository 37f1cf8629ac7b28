"""Threading hints: record tags in subjects and the recipient address list."""

from __future__ import annotations

import re
from functools import lru_cache

from .message import ParsedMessage

__all__ = ["find_record_tags", "all_recipient_addresses"]


@lru_cache(maxsize=16)
def _tag_re(prefix: str) -> re.Pattern[str]:
    # "[#EX-2026-000123]", tolerant of spaces inside the brackets and of a
    # missing "#" ("[ # EX-2026-000123 ]", "[EX-2026-000123]"). Case-insensitive.
    return re.compile(
        r"\[\s*#?\s*(" + re.escape(prefix) + r")-(\d{4})-(\d{1,12})\s*\]",
        re.IGNORECASE,
    )


def find_record_tags(subject: str, prefix: str = "EX") -> tuple[str, ...]:
    """Record numbers in ``subject`` as ``PREFIX-YYYY-NNNNNN``, in order, deduplicated."""
    if not prefix:
        return ()
    found: list[str] = []
    for m in _tag_re(prefix).finditer(subject):
        tag = f"{prefix.upper()}-{m.group(2)}-{m.group(3)}"
        if tag not in found:
            found.append(tag)
    return tuple(found)


def all_recipient_addresses(parsed: ParsedMessage) -> list[str]:
    """To + Cc + Delivered-To/X-Original-To/Envelope-To, lowercased, deduplicated, in order."""
    out: list[str] = []
    for addr in (
        [a.address for a in parsed.to] + [a.address for a in parsed.cc] + list(parsed.delivered_to)
    ):
        low = addr.strip().lower()
        if low and low not in out:
            out.append(low)
    return out
