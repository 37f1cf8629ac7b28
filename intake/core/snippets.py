"""Search snippets: a short piece of a text with the searched words marked.

Pure: the caller passes the text its viewer may see (a rendition, never the stored
text), and gets back pieces ``(text, marked)`` to escape and wrap (``<mark>``) itself.
Words match as the stemmed search does (English, roughly: "potholes" marks
"pothole" and "potholes"): the database decides what matches, this only shows where.
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"\w+")
SNIPPET_CHARS = 200
MAX_TERMS = 16


def stem(word: str) -> str:
    """A light English stem, enough to mark the forms the search engines match."""
    w = unicodedata.normalize("NFKD", word.lower())
    w = "".join(c for c in w if not unicodedata.combining(c))
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 3:
        w = w[:-1]
    if w.endswith("ing") and len(w) > 5:
        w = w[:-3]
    elif w.endswith("ed") and len(w) > 4:
        w = w[:-2]
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    return w


def terms_of(query: str) -> frozenset[str]:
    """The stems of a query's words (at most :data:`MAX_TERMS`, of two letters or more)."""
    return frozenset(stem(w) for w in _WORD.findall(query)[:MAX_TERMS] if len(w) > 1)


def snippet(text: str, query: str, width: int = SNIPPET_CHARS
            ) -> tuple[tuple[str, bool], ...]:
    """Up to ``width`` characters of ``text`` around its first searched word, as pieces
    ``(text, marked)``; empty when no word of ``query`` is in ``text``."""
    terms = terms_of(query)
    if not terms:
        return ()
    hits = [m.span() for m in _WORD.finditer(text) if stem(m.group()) in terms]
    if not hits:
        return ()
    first = hits[0][0]
    start = max(0, first - width // 3)
    if start > 0:  # start at a word boundary
        space = text.rfind(" ", 0, start)
        start = space + 1 if space >= 0 and first - space <= width // 2 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > first else end
    pieces: list[tuple[str, bool]] = []
    if start > 0:
        pieces.append(("…", False))
    pos = start
    for a, b in hits:
        if a < start or b > end:
            continue
        if a > pos:
            pieces.append((text[pos:a], False))
        pieces.append((text[a:b], True))
        pos = b
    if pos < end:
        pieces.append((text[pos:end], False))
    if end < len(text):
        pieces.append(("…", False))
    return tuple(pieces)
