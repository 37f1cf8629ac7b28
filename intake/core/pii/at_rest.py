"""Texts as they are stored: the P6 kinds replaced by their markers (promise P6).

What people are asked not to send (``SENSITIVE_KINDS``) is kept only in the
sealed original. Every stored text (an entry's subject and body, a reply's,
and through them the full-text index) holds :func:`redact_at_rest`'s text,
and the detector's findings are re-based onto it, so highlighting and the
renditions made later line up with what is stored without a second scan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .model import SENSITIVE_KINDS, Finding
from .redact import Redaction, marker_for, redact


@dataclass(frozen=True)
class AtRest:
    """A text to store and its findings, with offsets into that text."""

    text: str
    findings: tuple[Finding, ...]
    # The P6 values replaced (for the same values elsewhere: see :func:`redact_values`).
    removed: tuple[tuple[str, str], ...] = ()  # (value, kind)


def redact_at_rest(text: str, findings: Sequence[Finding]) -> AtRest:
    """Return ``text`` with every P6 finding replaced by its marker, and the findings
    re-based onto it: a P6 finding spans its marker (kind kept); any other finding
    keeps covering the same characters (or, where it overlapped a P6 value, the marker)."""
    sensitive = [f for f in findings if f.kind in SENSITIVE_KINDS]
    if not sensitive:
        return AtRest(text, tuple(findings))
    # The public rendition of the P6 findings alone: the same merging of overlaps.
    done = redact(text, sensitive)
    spans: list[tuple[Redaction, int, int]] = []  # (old span, new start, new end)
    shift = 0
    for r in done.redactions:
        start = r.start + shift
        end = start + len(marker_for(r.kind))
        spans.append((r, start, end))
        shift = end - r.end

    def moved(offset: int, *, is_end: bool) -> int:
        delta = 0
        for r, start, end in spans:
            if offset < r.start or (is_end and offset == r.start):
                break
            if offset < r.end or (is_end and offset == r.end):
                return end if is_end else start  # inside a P6 value: its marker
            delta = end - r.end
        return offset + delta

    rebased = tuple(replace(f, start=moved(max(0, min(f.start, len(text))), is_end=False),
                            end=moved(max(0, min(f.end, len(text))), is_end=True))
                    for f in findings)
    removed = tuple((text[r.start:r.end], r.kind) for r, _, _ in spans)
    return AtRest(done.text, rebased, removed)


def redact_values(value: Any, removed: Sequence[tuple[str, str]]) -> Any:
    """``value`` (a JSON document: form answers) with each removed P6 value replaced by its
    marker wherever a string holds it: the answers are the texts' sources, scanned once."""
    if not removed:
        return value
    if isinstance(value, str):
        for found, kind in sorted(removed, key=lambda pair: -len(pair[0])):
            if found:
                value = value.replace(found, marker_for(kind))
        return value
    if isinstance(value, Mapping):
        return {k: redact_values(v, removed) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_values(v, removed) for v in value]
    return value
