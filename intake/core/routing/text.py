"""Text folding shared by rule compilation and matching.

Everything the router compares is *folded* first:

1. NFKC (full-width ``ＡＢＣ`` -> ``ABC``, ligatures ``ﬁ`` -> ``fi``),
2. ``str.casefold`` (``ß`` -> ``ss``, ``İ`` -> ``i̇``),
3. accents removed: NFD, then the combining diacritical marks
   (U+0300-036F, U+1AB0-1AFF, U+1DC0-1DFF, U+20D0-20FF, U+FE20-FE2F) are
   dropped, and a few letters whose "accent" is not a combining mark are
   mapped to their base letter (``ı ł ø đ ħ ŧ``),
4. NFC again.

So ``Señal``, ``SEÑAL``, ``senal`` and ``ＳＥＮＡＬ`` all fold to ``senal``.
``norm`` additionally collapses runs of white space to one space and strips
the ends; keyword, equality and prefix/suffix tests use it.  Regular
expressions run on ``fold`` (white space kept as typed).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["fold", "norm", "fold_pattern", "is_word_char", "original_span"]

_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
_EXTRA = str.maketrans({"ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŧ": "t"})
# For regex patterns we cannot casefold (it would break escapes such as \S),
# but a handful of letters only ever occur folded in the text.
_PATTERN_EXTRA = str.maketrans(
    {"ß": "ss", "ẞ": "ss", "ı": "i", "ł": "l", "Ł": "l", "ø": "o", "Ø": "o",
     "đ": "d", "Đ": "d", "ħ": "h", "Ħ": "h", "ŧ": "t", "Ŧ": "t"}
)


def fold(text: str) -> str:
    """Case-, width- and accent-insensitive form of ``text``."""
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _MARKS.sub("", unicodedata.normalize("NFD", text)).translate(_EXTRA)
    return unicodedata.normalize("NFC", text)


def norm(text: str) -> str:
    """``fold`` with white space collapsed to single spaces and stripped."""
    return " ".join(fold(text).split())


def fold_pattern(pattern: str) -> str:
    """Fold accents (and width) out of a regex pattern without casefolding it."""
    if pattern.isascii():
        return pattern
    pattern = unicodedata.normalize("NFKC", pattern)
    pattern = _MARKS.sub("", unicodedata.normalize("NFD", pattern)).translate(_PATTERN_EXTRA)
    return unicodedata.normalize("NFC", pattern)


def is_word_char(ch: str) -> bool:
    """Same notion of a word character as ``re``'s ``\\w`` on str patterns."""
    return ch.isalnum() or ch == "_"


def original_span(raw: str, folded: str, start: int, end: int) -> str:
    """Map a span of ``fold(raw)`` back to the text as the citizen typed it.

    Falls back to the folded text when the mapping is not exact (rare: e.g.
    Hangul jamo that only compose across characters).
    """
    if raw.isascii():
        return raw[start:end]
    src: list[int] = []
    pieces: list[str] = []
    for i, ch in enumerate(raw):
        piece = fold(ch)
        pieces.append(piece)
        src.extend([i] * len(piece))
    if "".join(pieces) != folded or start >= end or end > len(src):
        return folded[start:end]
    lo = src[start]
    hi = src[end - 1] + 1
    while hi < len(raw) and pieces[hi] == "":  # trailing combining marks
        hi += 1
    return raw[lo:hi]
