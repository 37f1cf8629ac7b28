"""PII detectors (privacy promise P2, P6).

``detect(text, key=...)`` runs every detector below over one text (a subject,
a body, or the extracted text of an attachment) and returns non-overlapping
``Finding`` objects sorted by offset.  Each detector is named
(``Finding.detector``) and validates its candidates:

================================  ==========================================
detector                          candidate -> validation
================================  ==========================================
``ssn.delimited``                 ddd-dd-dddd / ddd dd dddd / ddd.dd.dddd,
                                  same delimiter twice; ``stdnum.us.ssn``
                                  (rejects 000/666/9xx areas, 00 group, 0000
                                  serial, advertising numbers)
``ssn.keyword``                   nine bare digits + SSN keyword nearby
                                  (SSN, SS#, social security, seguro social)
                                  + ``stdnum.us.ssn``
``card.luhn``                     13-19 digits, optional single space/dash
                                  between groups; Luhn AND issuer prefix and
                                  length (Visa, Mastercard, Amex, Discover,
                                  JCB, Diners)
``aba.checksum``                  nine digits, ABA 3-7-1 checksum, valid
                                  Federal Reserve prefix, keyword nearby
                                  (routing, ABA, RTN, transit)
``bank_account.keyword``          6-17 digits after "account number", "acct",
                                  "checking", "savings", "cuenta", ...
``email.regex``                   RFC-ish address with a dotted domain
``phone.phonenumbers``            ``phonenumbers.PhoneNumberMatcher`` (US,
                                  leniency VALID) minus record numbers
                                  (EX-2026-000123), dates and numbers labelled
                                  case/order/ticket/invoice/...
``birth_date.keyword``            a date (numeric, ISO, "January 2, 1980",
                                  "2 Jan 1980", "2 de enero de 1980") that is
                                  a real calendar date AND has a birth keyword
                                  nearby (born, DOB, birthday, fecha de
                                  nacimiento, nacido/a ...)
``street_address.usaddress``      "123 Main St[, Apt 2][, City, ST 06103]"
                                  by regex, confirmed by ``usaddress``
                                  (AddressNumber + StreetName +
                                  StreetNamePostType)
``street_address.po_box``         "PO Box 12" confirmed by ``usaddress``
                                  (USPSBoxType)
``password.keyword``              "password: xyz", "my password is xyz",
                                  "contraseña: xyz" (span = the secret only)
``password.pin``                  "PIN is 1234" (4-12 digits)
``maiden_name.keyword``           "mother's maiden name is Smith",
                                  "maiden name: Smith" (span = the name)
``medical.lexicon``               medical lexicon (English + Spanish),
                                  severity "review"
``combination.dob_zip_gender``    a birth date + a ZIP code + a gender
                                  statement in the same text: the gender
                                  statement becomes a ``combination`` finding
                                  and the birth date and ZIP-bearing address
                                  findings are raised to severity "high"
================================  ==========================================

"Nearby" means within a short window before the candidate (after it for a
few detectors) with no other number in between, so in "routing 011000015,
account 123456789" the word "routing" does not reach the second number.

Names of people are NOT detected: they cannot be found reliably in free text.
The submitter's own name comes from a form field and is handled elsewhere
(callers may add their own ``Finding(kind="name", ...)`` for ``redact``).

Overlaps are resolved by keeping the more specific / severe finding (SSN and
card over bank account over phone ...), then the longer one.

``detect`` never raises on a ``str``; it does not return or log values: each
finding carries ``value_hash`` = HMAC-SHA256(key, normalised value), where
numbers are normalised to their digits, e-mail addresses to lower case and
birth dates to ISO ``YYYY-MM-DD``.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import functools
import re
from collections.abc import Iterable, Iterator, Sequence

import phonenumbers
import usaddress
from stdnum import iban as stdnum_iban
from stdnum.us import ssn as stdnum_ssn

from . import lexicon
from .model import DEFAULT_THRESHOLD, THRESHOLDS, Finding, value_hash

# --- helpers -----------------------------------------------------------------

_DIGIT = re.compile(r"[0-9]")
_NOT_DIGIT = re.compile(r"[^0-9]")
_CLAUSE_END = re.compile(r"[0-9.;\n]")
_NUMBER_OR_LINE = re.compile(r"[0-9\n]")
_NUMBER_KEYWORDS = (
    lexicon.SSN_KEYWORDS,
    lexicon.ABA_KEYWORDS,
    lexicon.BANK_KEYWORDS,
    lexicon.REFERENCE_KEYWORDS,
)

# A number candidate must not touch letters/digits on either side, nor be
# glued to another number by a delimiter (123-45-6789-1).
_LB = r"(?<![0-9A-Za-z_])(?<![0-9][-./])"
_LA = r"(?![0-9A-Za-z_])(?![-./][0-9])"


def _digits(s: str) -> str:
    return _NOT_DIGIT.sub("", s)


_WORD = re.compile(r"\w+")


def _fold(word: str) -> str:
    return "".join(c.casefold()[:1] or c for c in word)


def _first_words(phrases: Iterable[str]) -> frozenset[str]:
    """The folded first word of each phrase (see :func:`_anchored`), also as the keyword
    patterns let it be written: without its apostrophe ("moms", "crohns") or hyphen
    ("login" for "log-in")."""
    variants = (v for p in phrases
                for v in (p, p.replace("'", ""), p.replace("’", ""), p.replace("-", "")))
    return frozenset(_fold(m.group(0)) for v in variants if (m := _WORD.match(v)))


_LOWER_MEMO: tuple[str, str | None] = ("", "")


def _ascii_lower(text: str) -> str | None:
    """The lower case of an ASCII *text* (same offsets, and the key IGNORECASE matching
    uses), or None for any other text; remembered for the last text (the detectors of
    one ``detect`` call ask in turn). The memo is one tuple, replaced whole: threads
    that share it never see one text's key with another's value."""
    global _LOWER_MEMO
    memo = _LOWER_MEMO
    if memo[0] is text:
        return memo[1]
    low = text.lower() if text.isascii() else None
    _LOWER_MEMO = (text, low)
    return low


@functools.lru_cache(maxsize=8)
def _ascii_words(text: str) -> list[str]:
    """The words (``\\w+`` runs) of an ASCII *text*, lower-cased; cached for the few
    detectors of one ``detect`` call that look words up (not to be changed)."""
    return _WORD.findall(_ascii_lower(text) or text.lower())


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _anchored(pattern: re.Pattern[str], text: str, first_words: frozenset[str]
              ) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)`` for a pattern whose every match begins at the start
    of a word of *text* that folds to one of *first_words* (a keyword list matched
    case-insensitively after ``\\b`` or ``(?<!\\w)``). In an ASCII text the pattern is
    tried only where those words stand (found with ``str.find``), instead of at every
    character: a long alternation is slow to scan. Other texts are scanned as they are.
    Matches do not overlap, as with ``finditer``."""
    low = _ascii_lower(text)
    if low is None:
        yield from pattern.finditer(text)
        return
    present = first_words.intersection(_ascii_words(text))
    if not present:
        return
    n = len(low)
    positions: list[int] = []
    for word in present:
        i = low.find(word)
        while i >= 0:
            j = i + len(word)
            if (i == 0 or not _is_word_char(low[i - 1])) and (j == n or not _is_word_char(low[j])):
                positions.append(i)
            i = low.find(word, j)
    positions.sort()
    last = 0
    for pos in positions:
        if pos < last:
            continue
        m = pattern.match(text, pos)
        if m:
            last = m.end()
            yield m


def _keyword_near(
    text: str, start: int, end: int, pattern: re.Pattern[str], before: int = 40, after: int = 0
) -> bool:
    """True if *pattern* occurs just before (or after) text[start:end].

    The before-window is clipped at the nearest other digit so that a keyword
    only reaches the first number after it.  The after-window ("123456789 is
    my SSN") is clipped at the next digit or sentence end and is only used
    when no keyword for another kind of number precedes the candidate.
    """
    lo = max(0, start - before)
    window = text[lo:start]
    last_digit = None
    for m in _DIGIT.finditer(window):
        last_digit = m.end()
    if last_digit is not None:
        window = window[last_digit:]
    if pattern.search(window):
        return True
    if after and not any(other.search(window) for other in _NUMBER_KEYWORDS):
        window = text[end : end + after]
        m2 = _CLAUSE_END.search(window)
        if m2:
            window = window[: m2.start()]
        if pattern.search(window):
            return True
    return False


class _Intervals:
    """Possibly overlapping half-open intervals, queried for overlap in O(log n)."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        spans = sorted(spans)
        self._starts = [s for s, _ in spans]
        self._max_end: list[int] = []
        best = -1
        for _, e in spans:
            best = max(best, e)
            self._max_end.append(best)

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect.bisect_left(self._starts, end)  # spans[:i] start before `end`
        return i > 0 and self._max_end[i - 1] > start


@dataclasses.dataclass
class _Raw:
    kind: str
    start: int
    end: int
    detector: str
    severity: str
    normalised: str
    confidence: float = 0.9
    evidence: tuple[str, ...] = ()


_LAST_DIGIT = re.compile(r"(?s:.*)[0-9]")


_LAST: dict[re.Pattern[str], re.Pattern[str]] = {}


def _last_match(pattern: re.Pattern[str], window: str) -> int:
    """End offset of the rightmost match of *pattern* in *window*, or -1 (one call: a
    greedy ``.*`` before the pattern, compiled once per pattern)."""
    last = _LAST.get(pattern)
    if last is None:
        last = _LAST[pattern] = re.compile(r"(?s:.*)(?:" + pattern.pattern + ")", pattern.flags)
    m = last.match(window)
    return m.end() if m else -1


def _context(
    text: str, start: int, end: int, boost: re.Pattern[str], reject: re.Pattern[str],
    before: int = 40, after: int = 45, reject_after: bool = True,
    clause_end: re.Pattern[str] = _CLAUSE_END,
) -> tuple[bool, bool]:
    """(boosted, rejected): context words on both sides of text[start:end].

    Before the candidate, the window is clipped at the nearest other digit (a word
    reaches only the first number after it) and the nearer of a boosting and a
    rejecting word wins ("claim 2026-11 and my SSN is ..." is boosted, "SSN form,
    case no. ..." rejected). After it, up to the end of the clause, a boosting word
    outweighs a rejecting word before it ("order 4111... sorry, that's my card number"),
    and a rejecting word after it counts when nothing boosted.
    """
    lo = max(0, start - before)
    window = text[lo:start]
    digit = _LAST_DIGIT.match(window)
    if digit:
        window = window[digit.end():]
    b = _last_match(boost, window)
    r = _last_match(reject, window)
    if b > r:
        return (True, False)
    tail = text[end : end + after]
    m2 = clause_end.search(tail)
    if m2:
        tail = tail[: m2.start()]
    if boost.search(tail):  # "order 4111... sorry, that's my card number"
        return (True, False)
    if r >= 0:
        return (False, True)
    return (False, reject_after and bool(reject.search(tail)))


# --- SSN -----------------------------------------------------------------------

_SSN_DELIMITED = re.compile(
    _LB + r"(?<![0-9] )([0-9]{3})([-. ])([0-9]{2})\2([0-9]{4})" + _LA + r"(?! [0-9])"
)
_NINE_DIGITS = re.compile(_LB + r"[0-9]{9}" + _LA)


def _ssn_valid(digits: str) -> bool:
    return len(digits) == 9 and bool(stdnum_ssn.is_valid(digits))


def _ssn_context(text: str, start: int, end: int) -> tuple[bool, bool]:
    return _context(text, start, end, lexicon.SSN_KEYWORDS, lexicon.REFERENCE_KEYWORDS)


def find_ssn(text: str) -> Iterator[_Raw]:
    """SSN-shaped numbers that python-stdnum accepts (it rejects area 000/666/9xx,
    group 00, serial 0000 and the advertised 078-05-1120, 219-09-9999, 457-55-5462),
    scored by context: an SSN word nearby raises the confidence, a reference word
    (case, claim, docket, order, permit, tracking, expediente, factura ...) lowers a
    delimited one below the threshold; a bare nine-digit number needs an SSN word."""
    found: set[str] = set()
    for m in _SSN_DELIMITED.finditer(text):
        digits = m.group(1) + m.group(3) + m.group(4)
        if not _ssn_valid(digits):
            continue
        boosted, rejected = _ssn_context(text, m.start(), m.end())
        if boosted:
            confidence, evidence = 0.99, ("stdnum:valid", "context:+ssn")
        elif rejected:
            confidence, evidence = 0.2, ("stdnum:valid", "context:-reference")
        else:
            confidence, evidence = 0.8, ("stdnum:valid", "shape:ddd-dd-dddd")
        if confidence >= THRESHOLDS["ssn"]:
            found.add(digits)
        yield _Raw("ssn", m.start(), m.end(), "ssn.delimited", "high", digits,
                   confidence, evidence)
    bare = []
    for m in _NINE_DIGITS.finditer(text):
        digits = m.group(0)
        if _ssn_valid(digits) and _ssn_context(text, m.start(), m.end())[0]:
            found.add(digits)
            yield _Raw("ssn", m.start(), m.end(), "ssn.keyword", "high", digits,
                       0.95, ("stdnum:valid", "context:+ssn"))
        else:
            bare.append(m)
    # The same number again, further from its keyword ("SSN: 518224137, again
    # 518224137") is the same SSN: once one occurrence is known, all are.
    for m in bare:
        if m.group(0) in found:
            yield _Raw("ssn", m.start(), m.end(), "ssn.repeated", "high", m.group(0),
                       0.95, ("stdnum:valid", "repeated"))


# --- payment cards ------------------------------------------------------------

_DIGIT_GROUPS = re.compile(r"(?<![0-9A-Za-z_.,/-])[0-9]+(?:[ -][0-9]+)*(?![0-9A-Za-z_])")
_GROUP = re.compile(r"[0-9]+")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_issuer(digits: str) -> str | None:
    """The issuer whose prefix and length match *digits*, or None."""
    n = len(digits)
    p1, p2, p3, p4 = (int(digits[:k]) for k in (1, 2, 3, 4))
    p6 = int(digits[:6])
    if p1 == 4 and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if (p4 == 6011 or p2 == 65 or 644 <= p3 <= 649 or 622126 <= p6 <= 622925) and 16 <= n <= 19:
        return "discover"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (p2 in (36, 38) or 300 <= p3 <= 305) and 14 <= n <= 19:
        return "diners"
    return None


def card_valid(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and luhn_valid(digits) and card_issuer(digits) is not None


def find_cards(text: str) -> Iterator[_Raw]:
    for run in _DIGIT_GROUPS.finditer(text):
        groups = [(g.start(), g.end()) for g in _GROUP.finditer(run.group(0))]
        base = run.start()
        i = 0
        while i < len(groups):
            best: int | None = None
            count = 0
            for j in range(i, len(groups)):
                count += groups[j][1] - groups[j][0]
                if count > 19:
                    break
                if count >= 13:
                    s, e = base + groups[i][0], base + groups[j][1]
                    if card_valid(_digits(text[s:e])):
                        best = j
            if best is None:
                i += 1
                continue
            s, e = base + groups[i][0], base + groups[best][1]
            digits = _digits(text[s:e])
            # Only a reference word before the number rejects a valid card number, and a
            # card word after it, up to the next number or line, outweighs it ("order
            # 4111... sorry, that's my card number").
            boosted, rejected = _context(text, s, e, lexicon.CARD_KEYWORDS,
                                         lexicon.CARD_REJECT_KEYWORDS, after=60,
                                         reject_after=False, clause_end=_NUMBER_OR_LINE)
            evidence: tuple[str, ...] = ("luhn:valid", f"issuer:{card_issuer(digits)}")
            if boosted:
                confidence, evidence = 0.99, (*evidence, "context:+card")
            elif rejected:
                confidence, evidence = 0.3, (*evidence, "context:-reference")
            else:
                confidence = 0.9
            yield _Raw("card", s, e, "card.luhn", "high", digits, confidence, evidence)
            i = best + 1


# --- ABA routing numbers and bank accounts ---------------------------------------

_ABA_WEIGHTS = (3, 7, 1, 3, 7, 1, 3, 7, 1)


def aba_valid(digits: str) -> bool:
    if len(digits) != 9 or not digits.isascii() or not digits.isdigit():
        return False
    prefix = int(digits[:2])
    if not (prefix <= 12 or 21 <= prefix <= 32 or 61 <= prefix <= 72 or prefix == 80):
        return False
    return sum(w * int(d) for w, d in zip(_ABA_WEIGHTS, digits, strict=True)) % 10 == 0


def find_aba(text: str) -> Iterator[_Raw]:
    for m in _NINE_DIGITS.finditer(text):
        digits = m.group(0)
        if aba_valid(digits) and _keyword_near(
            text, m.start(), m.end(), lexicon.ABA_KEYWORDS, before=40, after=20
        ):
            yield _Raw("aba", m.start(), m.end(), "aba.checksum", "high", digits,
                       0.97, ("aba:checksum", "context:+routing"))


_ACCOUNT_CANDIDATE = re.compile(_LB + r"[0-9](?:-?[0-9]){5,16}" + _LA)


_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?"
                   r"(?![A-Za-z0-9])")
_IBAN_HINT = re.compile(r"[A-Z]{2}[0-9]{2}")


def _non_bank(text: str, start: int, end: int) -> bool:
    """A customer / utility / library account ("customer account number", "account no.
    ... on my water bill", "cuenta de cliente"): the qualifier stands in the keyword's
    window before the number or in the rest of its clause."""
    return _context(text, start, end, lexicon.BANK_KEYWORDS_STRONG, lexicon.NON_BANK_ACCOUNT,
                    before=40)[1]


def find_bank_accounts(text: str) -> Iterator[_Raw]:
    for m in _ACCOUNT_CANDIDATE.finditer(text):
        if _keyword_near(text, m.start(), m.end(), lexicon.BANK_KEYWORDS, before=40):
            digits = _digits(m.group(0))
            evidence: tuple[str, ...]
            if _non_bank(text, m.start(), m.end()):
                confidence, evidence = 0.3, ("context:+account", "context:-non_bank")
            else:
                confidence, evidence = 0.85, ("context:+account",)
            yield _Raw("bank_account", m.start(), m.end(), "bank_account.keyword", "high",
                       digits, confidence, evidence)
    if not _IBAN_HINT.search(text):
        return
    for m in _IBAN.finditer(text):
        compact = m.group(0).replace(" ", "")
        if stdnum_iban.is_valid(compact):
            yield _Raw("bank_account", m.start(), m.end(), "bank_account.iban", "high",
                       compact, 0.97, ("stdnum:iban",))


# --- e-mail ---------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w%+-](?:[\w.%+-]{0,62}[\w%+-])?@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w-])"
)


def find_emails(text: str) -> Iterator[_Raw]:
    if "@" not in text:  # the pattern's one literal: most texts have none to look for
        return
    for m in _EMAIL.finditer(text):
        value = m.group(0)
        if ".." in value:
            continue
        yield _Raw("email", m.start(), m.end(), "email.regex", "low", value.lower(),
                   0.95, ("shape:email",))


# --- dates ---------------------------------------------------------------------

_EN_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4,
    "apr": 4, "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11,
    "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip
_ES_MONTHS = {
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7,
    "agosto": 8, "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11,
    "diciembre": 12,
}  # fmt: skip
_EN_MONTH_RE = "|".join(sorted(_EN_MONTHS, key=len, reverse=True))
_ES_MONTH_RE = "|".join(sorted(_ES_MONTHS, key=len, reverse=True))

_DATE_NUMERIC = re.compile(
    r"(?<![0-9A-Za-z_/.-])(?P<a>[0-9]{1,2})(?P<sep>[/.-])(?P<b>[0-9]{1,2})(?P=sep)"
    r"(?P<y>[0-9]{4}|[0-9]{2})(?![0-9A-Za-z_])(?![/.-][0-9])"
)
_DATE_ISO = re.compile(
    r"(?<![0-9A-Za-z_/.-])(?P<y>[0-9]{4})(?P<sep>[-/.])(?P<m>[0-9]{1,2})(?P=sep)"
    r"(?P<d>[0-9]{1,2})(?![0-9A-Za-z_])(?![/.-][0-9])"
)
_DATE_MDY = re.compile(
    r"(?i:\b(?P<mon>" + _EN_MONTH_RE + r")\.?\s+(?P<d>[0-9]{1,2})(?:st|nd|rd|th)?,?\s+"
    r"(?P<y>[0-9]{4}))(?![0-9])"
)
_DATE_DMY = re.compile(
    r"(?i:(?<![0-9A-Za-z_])(?P<d>[0-9]{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mon>"
    + _EN_MONTH_RE
    + r")\.?,?\s+(?P<y>[0-9]{4}))(?![0-9])"
)
_DATE_ES = re.compile(
    r"(?i:(?<![0-9A-Za-z_])(?P<d>[0-9]{1,2})\s+de\s+(?P<mon>" + _ES_MONTH_RE + r")\s+"
    r"(?:de|del)\s+(?P<y>[0-9]{4}))(?![0-9])"
)


def _mkdate(y: int, m: int, d: int) -> datetime.date | None:
    if not 1900 <= y <= 2099:
        return None
    try:
        return datetime.date(y, m, d)
    except ValueError:
        return None


def _year(s: str) -> int:
    y = int(s)
    if len(s) == 2:
        y += 2000 if y < 30 else 1900
    return y


# Every date pattern above needs four ASCII digits or more (1/2/80 has four), and the
# ones with a month name a four-digit year: most texts skip most of the patterns.
_FOUR_ASCII_DIGITS = re.compile(r"(?:[0-9][^0-9]*){4}")
_YEAR_DIGITS = re.compile(r"[0-9]{4}")


def find_dates(text: str) -> Iterator[tuple[int, int, datetime.date]]:
    """Every calendar date in *text* (not only birth dates)."""
    if not _FOUR_ASCII_DIGITS.search(text):
        return
    yield from _find_dates(text, named=bool(_YEAR_DIGITS.search(text)))


def _find_dates(text: str, *, named: bool = True) -> Iterator[tuple[int, int, datetime.date]]:
    """:func:`find_dates` without the prefilter (the tests compare the two)."""
    for m in _DATE_NUMERIC.finditer(text):
        a, b, y = int(m.group("a")), int(m.group("b")), _year(m.group("y"))
        date = _mkdate(y, a, b) or _mkdate(y, b, a)
        if date:
            yield m.start(), m.end(), date
    for m in _DATE_ISO.finditer(text):
        date = _mkdate(int(m.group("y")), int(m.group("m")), int(m.group("d")))
        if date:
            yield m.start(), m.end(), date
    for pattern, months in ((_DATE_MDY, _EN_MONTHS), (_DATE_DMY, _EN_MONTHS),
                            (_DATE_ES, _ES_MONTHS)) if named else ():
        for m in pattern.finditer(text):
            month = months.get(m.group("mon").lower())
            if month is None:
                continue
            date = _mkdate(int(m.group("y")), month, int(m.group("d")))
            if date:
                yield m.start(), m.end(), date


# A birth date is kept only with a birth keyword near it (lexicon.BIRTH_KEYWORDS, searched
# in a window of the text), and every keyword holds one of these pieces of it, letter for
# letter under the same IGNORECASE matching: a text with none of them holds no birth date,
# whatever dates it has. (Not the keywords themselves: a window's edge can make a word
# boundary that the whole text lacks, as in "reborn" or "born1".)
_BIRTH_STEMS = re.compile(r"(?i:born|birth|b-?day|dob|d\.o\.b|nac|cumpleaños)")
# The same for an ASCII text (the usual case; its letters match as their lower case does),
# about four times faster than that IGNORECASE alternation.
_ASCII_BIRTH_STEMS = ("born", "birth", "bday", "b-day", "dob", "d.o.b", "nac")


def _may_hold(text: str, stems: re.Pattern[str], ascii_stems: tuple[str, ...]) -> bool:
    """Whether ``text`` holds one of the ``stems`` (an IGNORECASE pattern); for an ASCII
    text, by a substring test of its lower case against ``ascii_stems``, the same stems."""
    low = _ascii_lower(text)
    if low is not None:
        return _ascii_stems(ascii_stems).search(low) is not None
    return stems.search(text) is not None


@functools.cache
def _ascii_stems(stems: tuple[str, ...]) -> re.Pattern[str]:
    """The stems as one pattern over a lower-cased ASCII text (one C-level search)."""
    return re.compile("|".join(re.escape(stem) for stem in stems))


def _may_hold_a_birth_keyword(text: str) -> bool:
    return _may_hold(text, _BIRTH_STEMS, _ASCII_BIRTH_STEMS)


def find_birth_dates(text: str) -> Iterator[_Raw]:
    if not _may_hold_a_birth_keyword(text):
        return
    yield from _find_birth_dates(text)


def _find_birth_dates(text: str) -> Iterator[_Raw]:
    """:func:`find_birth_dates` without the prefilter (the tests compare the two)."""
    for start, end, date in find_dates(text):
        if _keyword_near(text, start, end, lexicon.BIRTH_KEYWORDS, before=45, after=30):
            yield _Raw("birth_date", start, end, "birth_date.keyword", "medium",
                       date.isoformat(), 0.9, ("date:valid", "context:+birth"))


# --- phone numbers ------------------------------------------------------------

_REFERENCE_BEFORE = re.compile(
    lexicon.PHONE_REFERENCE_KEYWORDS.pattern + r"(?:\s+(?:is|was|es))?[\s:#.,()-]*$"
)


# Web addresses: digits in a path or query are never a phone number. A match is in a
# URL when the run of non-space characters it ends (or continues) looks like one.
_URL_TOKEN = re.compile(
    r"(?i:(?:[a-z][a-z0-9+.-]*://|www\.)|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}/|[?&=/])"
)


def _in_url(text: str, start: int) -> bool:
    lo = start
    while lo > 0 and not text[lo - 1].isspace() and start - lo < 2048:
        lo -= 1
    return lo < start and bool(_URL_TOKEN.search(text, lo, start))

_EXTENSION = re.compile(r"(?i)\s*(?:ext\.?|extension|x|#)\s*[0-9]+\s*$")
_NANP_GROUPS = frozenset({(10,), (11,), (3, 3, 4), (1, 3, 3, 4), (3, 7), (1, 3, 7), (1, 10)})


def _nanp_grouping(raw: str) -> bool:
    """Digits grouped like a North American number (3-3-4, 1-3-3-4, 10 digits).

    International numbers written with "+" are accepted as matched.
    """
    if raw.lstrip().startswith("+"):
        return True
    raw = _EXTENSION.sub("", raw)
    groups = tuple(len(g) for g in re.findall(r"[0-9]+", raw))
    return groups in _NANP_GROUPS


# Every number phonenumbers can call valid has at least six digits (country code
# plus national number: Austria and Germany have 2 + 4; US numbers 10), and
# PhoneNumberMatcher is by far the slowest detector: texts with fewer decimal
# digits (any script's, as phonenumbers reads them) skip it.
MIN_PHONE_DIGITS = 6
_ENOUGH_DIGITS_FOR_A_PHONE = re.compile(rf"(?:\d\D*){{{MIN_PHONE_DIGITS}}}")
# And of what it matches, only a number written with "+" or grouped like a North
# American one is kept (see _nanp_grouping): at most four groups of ASCII digits,
# ten or eleven digits in all. A match is a piece of the text, so its groups are
# pieces of at most four consecutive runs of ASCII digits of the text: a text with
# no "+" and no four consecutive runs holding ten digits can yield no phone finding
# (a reference like "4f0a9c21-3-17" or "11/14/2026 at 3:45" is skipped).
_ASCII_DIGIT_RUN = re.compile(r"[0-9]+")
_MOST_NANP_GROUPS = max(len(groups) for groups in _NANP_GROUPS)
_FEWEST_NANP_DIGITS = min(sum(groups) for groups in _NANP_GROUPS)


# In an ASCII text those runs are moreover apart by phone punctuation only: what lies
# between two digit blocks of a match is one to four of phonenumbers' punctuation
# characters (its _VALID_PUNCTUATION; in ASCII "-x ().[]/~"). An extension that
# _EXTENSION leaves in place (";ext=12") would bring letters between runs, but its digits
# would be a last group of their own, and a NANP grouping whose last group (4, 7, 10 or 11
# digits) is that leaves at most seven digits for the number before it: shorter than any
# valid one (ten digits in the US; "011", a country code and a number). So a reference like
# "39a12345-1234" or "case 4417, 2026-11-14 at 10:30" is skipped. Other scripts' digits and
# punctuation (full-width, Arabic-Indic) are read by phonenumbers too: a text with any
# non-ASCII character is judged by the runs alone.
_PHONE_CHAIN = re.compile(r"[0-9]+(?:[-x ().\[\]/~]{1,4}[0-9]+)*")


def _ten_digits_in_four_runs(text: str) -> bool:
    runs = [len(run) for run in _ASCII_DIGIT_RUN.findall(text)]
    width = _MOST_NANP_GROUPS
    return any(sum(runs[i:i + width]) >= _FEWEST_NANP_DIGITS
               for i in range(max(1, len(runs) - width + 1)))


def _ten_digits_in_four_chained_runs(text: str) -> bool:
    return any(_ten_digits_in_four_runs(chain.group(0))
               for chain in _PHONE_CHAIN.finditer(text)
               if len(chain.group(0)) >= _FEWEST_NANP_DIGITS)


def _may_hold_a_phone(text: str) -> bool:
    if not _ENOUGH_DIGITS_FOR_A_PHONE.search(text):
        return False
    if "+" in text:
        return True
    if text.isascii():
        return _ten_digits_in_four_chained_runs(text)
    return _ten_digits_in_four_runs(text)


def find_phones(text: str) -> Iterator[_Raw]:
    if not _may_hold_a_phone(text):
        return
    yield from _find_phones(text)


def _find_phones(text: str) -> Iterator[_Raw]:
    """:func:`find_phones` without the prefilter (the tests compare the two)."""
    try:
        matcher = phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.VALID)
        matches = [(m.start, m.end, m.number) for m in matcher]
    except Exception:  # noqa: BLE001 - third-party parser must not break detection
        return
    if not matches:
        return
    blocked = _Intervals(
        [(r.start(), r.end()) for r in lexicon.RECORD_NUMBER.finditer(text)]
        + [(s, e) for s, e, _ in find_dates(text)]
    )
    for start, end, number in matches:
        if blocked.overlaps(start, end) or _in_url(text, start):
            continue
        if _REFERENCE_BEFORE.search(text[max(0, start - 40) : start]):
            continue
        if not _nanp_grouping(text[start:end]):
            continue
        normalised = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        yield _Raw("phone", start, end, "phone.phonenumbers", "low", normalised,
                   0.9, ("phonenumbers:valid",))


# --- street addresses ----------------------------------------------------------

_STATE_RE = "|".join(lexicon.US_STATES) + "|" + lexicon.STATE_NAMES
_SUFFIX = (
    r"(?i:street|st|avenue|ave|av|road|rd|boulevard|blvd|drive|dr|lane|ln|court|ct|place|pl"
    r"|terrace|ter|way|circle|cir|parkway|pkwy|highway|hwy|turnpike|tpke|square|sq|trail|trl"
    r"|plaza|plz|alley|aly|extension|ext|pike|row|path|crossing|xing|heights|hts)\.?"
)
_DIR = (
    r"(?i:north|south|east|west|northeast|northwest|southeast|southwest"
    r"|[nsew]\.?|n\.?[ew]\.?|s\.?[ew]\.?)"
)
_UNIT = (
    r"(?:,?\s*(?i:apt|apartment|suite|ste|unit|fl|floor|rm|room|#)\.?\s*#?\s*"
    r"[A-Za-z0-9-]{1,6}(?![\w]))"
)
_CITY_STATE_ZIP = (
    r"(?:,?\s+[A-Z][A-Za-z.'-]*(?:\s+[A-Z][A-Za-z.'-]*){0,3},?\s+(?:" + _STATE_RE + r")\.?"
    r"(?:,?\s+[0-9]{5}(?:-[0-9]{4})?(?![\w-]))?)"
)
_STREET = re.compile(
    r"(?<![0-9A-Za-z_#/.-])[0-9]{1,6}[A-Za-z]?(?:-[0-9]{1,4})?\s+(?:" + _DIR + r"\s+)?"
    r"(?P<name>(?:[A-Za-z0-9][A-Za-z0-9'.-]*\s+){0,3}?[A-Za-z0-9][A-Za-z0-9'-]*)\s+"
    + _SUFFIX
    + r"(?![\w])"
    + _UNIT
    + "?"
    + _CITY_STATE_ZIP
    + "?"
)
_PO_BOX = re.compile(
    r"(?i:\b(?:p\.?\s?o\.?\s*box|post\s+office\s+box)\s+#?\s*[0-9]{1,6})(?![\w])"
    + _CITY_STATE_ZIP
    + "?"
)
_RURAL_ROUTE = re.compile(
    r"(?i:\b(?:rr|r\.r\.|rural\s+route|rural\s+rte\.?|hc|h\.c\.|highway\s+contract(?:\s+route)?"
    r"|star\s+route)\s*#?\s*[0-9]{1,3},?\s+box\s+#?\s*[0-9]{1,5})(?![\w])"
    + _CITY_STATE_ZIP + "?"
)
# "the corner of Main and 5th", "corner of Oak Rd & Elm St", "esquina de la calle Luna y
# la calle Sol": two street names (capitalised words, ordinals, street suffixes).
_STREET_WORDS = (r"(?:(?:(?i:de|del)\s+(?:(?i:la|las|los)\s+)?)?[A-Z0-9][\w'.-]*"
                 r"(?:\s+(?:[A-Z0-9][\w'.-]*|de|del|la|las|los)){0,4})")
_CORNER = re.compile(
    r"(?i:\bcorner\s+of)\s+(?:the\s+)?" + _STREET_WORDS + r"\s+(?:and|&)\s+" + _STREET_WORDS
    + r"|(?i:\besquina\s+(?:de\s+)?(?:la\s+)?(?:calle|avenida|ave\.?|c/)?)\s*" + _STREET_WORDS
    + r"\s+(?i:y|con|e)\s+(?i:(?:la\s+)?(?:calle|avenida|ave\.?|c/)\s+)?" + _STREET_WORDS
)
# Spanish forms: "Calle Luna 45, apto 3B", "Calle Sol núm. 25", "Avenida Ponce de León
# 1500", "1204 Calle San Francisco", "Apartado 1234, Ponce, PR 00730".
_ES_STREET_TYPE = (r"(?:[Cc]alle|CALLE|C/|[Aa]venida|AVENIDA|[Aa]vda\.?|[Cc]arretera|[Cc]amino"
                   r"|[Pp]aseo|[Cc]alle[jJ][oó]n)")
_ES_UNIT = (r"(?:,?\s*(?i:apto|apt|apartamento|depto|departamento|piso|int|interior|suite)\.?"
            r"\s*#?\s*[A-Za-z0-9-]{1,6}(?![\w]))")
_ES_CITY_ZIP = (r"(?:,?\s+[A-ZÁÉÍÓÚ][\w.'-]*(?:\s+[A-ZÁÉÍÓÚ][\w.'-]*){0,3}(?:,?\s+(?:" + _STATE_RE
                + r"))?,?\s+[0-9]{5}(?:-[0-9]{4})?(?![\w-]))")
_ES_STREET = re.compile(
    r"(?<![\w])" + _ES_STREET_TYPE + r"\s+(?P<name>" + _STREET_WORDS + r")\s*,?\s+"
    r"(?:(?i:n[uú]m\.?|n[uú]mero|no\.|#)\s*)?[0-9]{1,5}[A-Za-z]?(?![\w])"
    + _ES_UNIT + "?" + _ES_CITY_ZIP + "?"
    + r"|(?<![\w#/.-])[0-9]{1,5}[A-Za-z]?\s+" + _ES_STREET_TYPE + r"\s+" + _STREET_WORDS
    + _ES_UNIT + "?" + _ES_CITY_ZIP + "?"
    + r"|(?i:\bapartado(?:\s+postal)?)\s+[0-9]{1,6}" + _ES_CITY_ZIP
)
# Each pattern below needs one of its stems (a PO box and a rural route need "box"): a
# text without them skips it. ASCII texts by a substring test of their lower case.
_BOX_STEMS = (re.compile(r"(?i:box)"), ("box",))
_CORNER_STEMS = (re.compile(r"(?i:corner|esquina)"), ("corner", "esquina"))
_ES_STREET_STEMS = (re.compile(r"(?i:calle|c/|avenida|avda|carretera|camino|paseo|apartado)"),
                    ("calle", "c/", "avenida", "avda", "carretera", "camino", "paseo", "apartado"))

_ZIP_IN = re.compile(r"(?<![0-9-])[0-9]{5}(?:-[0-9]{4})?(?![\w-])")


def _usaddress_labels(candidate: str) -> set[str]:
    try:
        tagged, _kind = usaddress.tag(candidate)
        return set(tagged)
    except usaddress.RepeatedLabelError:
        pass
    except Exception:  # noqa: BLE001 - third-party parser must not break detection
        return set()
    try:
        return {label for _token, label in usaddress.parse(candidate)}
    except Exception:  # noqa: BLE001
        return set()


def find_addresses(text: str) -> Iterator[_Raw]:
    for m in _STREET.finditer(text):
        words = m.group("name").split()
        if any(w.casefold() in lexicon.NOT_A_STREET_WORD for w in words):
            continue
        labels = _usaddress_labels(m.group(0))
        if {"AddressNumber", "StreetName", "StreetNamePostType"} <= labels:
            value = " ".join(m.group(0).split()).casefold()
            evidence: tuple[str, ...] = (
                "usaddress:AddressNumber+StreetName+StreetNamePostType",)
            if "OccupancyIdentifier" in labels:
                evidence = (*evidence, "usaddress:OccupancyIdentifier")
            yield _Raw("street_address", m.start(), m.end(), "street_address.usaddress",
                       "medium", value, 0.9, evidence)
    low = _ascii_lower(text)
    if low is not None:
        box = "box" in low
        corner = "corner" in low or "esquina" in low
        spanish = _ascii_stems(_ES_STREET_STEMS[1]).search(low) is not None
    else:
        box = _BOX_STEMS[0].search(text) is not None
        corner = _CORNER_STEMS[0].search(text) is not None
        spanish = _ES_STREET_STEMS[0].search(text) is not None
    for m in _PO_BOX.finditer(text) if box else ():
        labels = _usaddress_labels(m.group(0))
        if "USPSBoxType" in labels:
            value = " ".join(m.group(0).split()).casefold()
            yield _Raw("street_address", m.start(), m.end(), "street_address.po_box", "medium",
                       value, 0.9, ("usaddress:USPSBoxType",))
    for pattern, detector, confidence, fired, wanted in (
        (_RURAL_ROUTE, "street_address.rural_route", 0.85, "pattern:rural_route", box),
        (_CORNER, "street_address.corner", 0.75, "pattern:corner_of", corner),
        (_ES_STREET, "street_address.es", 0.85, "pattern:calle", spanish),
    ):
        for m in pattern.finditer(text) if wanted else ():
            if pattern is _ES_STREET and m.group("name") is not None and any(
                    w.casefold() in lexicon.NOT_A_STREET_WORD for w in m.group("name").split()):
                continue
            value = " ".join(m.group(0).split()).casefold()
            yield _Raw("street_address", m.start(), m.end(), detector, "medium", value,
                       confidence, (fired,))


def find_zip_spans(text: str, addresses: list[_Raw]) -> list[tuple[int, int]]:
    """ZIP codes: inside an address, after "ZIP"/"código postal", or after a state."""
    spans: list[tuple[int, int]] = []
    for a in addresses:
        for z in _ZIP_IN.finditer(text, a.start, a.end):
            spans.append((z.start(), z.end()))
    for pattern in (lexicon.ZIP_KEYWORD, lexicon.STATE_ZIP):
        for m in pattern.finditer(text):
            spans.append((m.start("zip"), m.end("zip")))
    return spans


# --- passwords, maiden names, medical ---------------------------------------------

_ASSIGN_SEP = r"(?:\s*[:=]\s*|\s+(?:is|was|es|era)\s*[:=]?\s*)"
_PASSWORD = re.compile(
    r"(?i:\b(?:" + lexicon.SECRET_WORDS + r")(?![\w]))"
    + r"(?P<sep>" + _ASSIGN_SEP + r"|\s+)"
    + r"(?:[\"'“‘](?P<quoted>[^\"'”’\n]{1,64})[\"'”’]|(?P<bare>[^\s\"'“”]{3,64}))"
)
# "PIN: 1234", "my PIN is 1234", "the PIN for my EBT card is 1234", "el NIP de mi tarjeta es 1234".
_PIN = re.compile(
    r"(?i:\b(?:" + lexicon.PIN_WORDS + r")(?:\s*(?:number|no\.?|#))?)"
    r"(?:[^0-9.\n]{0,30}?(?<![\w])(?i:is|was|es|era)\s*[:=]?\s*|\s*[:=#]\s*)"
    r"(?P<pin>[0-9]{4,12})(?![\w])"
)
# "login jdoe / Secret123", "username: jdoe, Secret123": a user name, a slash or comma,
# then something shaped like a secret.
_LOGIN = re.compile(
    r"(?i:\b(?:" + lexicon.LOGIN_WORDS + r")(?![\w]))\s*[:=]?\s*[\w.@+-]{2,64}\s*(?:/|,|\|)\s*"
    r"(?P<secret>[^\s\"'“”]{4,64})"
)


def _looks_secret(value: str) -> bool:
    """A token written without "is" or ":" counts only if shaped like a secret: a digit
    or a symbol in it, or a capital letter after the first character."""
    core = value.rstrip(".,;:)!?")
    if len(core) < 4:
        return False
    return (any(c.isdigit() for c in core) or any(not c.isalnum() for c in core)
            or any(c.isupper() for c in core[1:]))


_MAIDEN = re.compile(
    r"(?i:\b(?:" + lexicon.MAIDEN_WORDS + r")(?![\w]))\)?"
    r"(?P<sep>\s*[:=]\s*|,?\s+(?i:(?:it|that)\s+)?(?i:is|was|es|era)\s*[:=]?\s*|,\s*|\s+)"
    r"(?P<name>[^\W\d_][\w'’-]{0,40}(?:[ -][A-Z][\w'’-]{0,40})?)"
)


# A password, PIN or maiden-name finding needs its keyword, and every keyword of those
# patterns holds one of these pieces of it, letter for letter under the same IGNORECASE
# matching: a text with none of them holds no such finding. For an ASCII text (whose
# letters match as their lower case does) a substring test of its lower case says the same.
_SECRET_STEMS = re.compile(r"(?i:pass|pw|contrase|clave|pin|nip|c[oó]digo|code|secret|log|user"
                           r"|usuario)")
_ASCII_SECRET_STEMS = ("pass", "pw", "contrase", "clave", "pin", "nip", "codigo", "code",
                       "secret", "log", "user", "usuario")
_MAIDEN_STEMS = re.compile(r"(?i:maiden|soltera|apellido|marriage|surname)")
_ASCII_MAIDEN_STEMS = ("maiden", "soltera", "apellido", "marriage", "surname")


def find_passwords(text: str) -> Iterator[_Raw]:
    if not _may_hold(text, _SECRET_STEMS, _ASCII_SECRET_STEMS):
        return
    yield from _find_passwords(text)


_PIN_STEMS = (re.compile(r"(?i:pin|nip|clave)"), ("pin", "nip", "clave"))
_LOGIN_STEMS = (re.compile(r"(?i:log|user|usuario)"), ("log", "user", "usuario"))


def _find_passwords(text: str) -> Iterator[_Raw]:
    """:func:`find_passwords` without the prefilter (the tests compare the two)."""
    yield from _find_secrets(text)
    if _may_hold(text, *_PIN_STEMS):
        yield from _find_pins(text)
    if _may_hold(text, *_LOGIN_STEMS):
        yield from _find_logins(text)


_SECRET_FIRST = _first_words(lexicon.SECRET_PHRASES)
_PIN_FIRST = _first_words(lexicon.PIN_PHRASES)
_LOGIN_FIRST = _first_words(lexicon.LOGIN_PHRASES)
_MAIDEN_FIRST = _first_words(lexicon.MAIDEN_PHRASES)


def _find_secrets(text: str) -> Iterator[_Raw]:
    for m in _anchored(_PASSWORD, text, _SECRET_FIRST):
        group = "quoted" if m.group("quoted") is not None else "bare"
        start, end = m.start(group), m.end(group)
        value = text[start:end]
        assigned = bool(m.group("sep").strip())
        if group == "bare":
            stripped = value.rstrip(".,;:)")
            end -= len(value) - len(stripped)
            value = stripped
            if len(value) < 3 or value.casefold() in lexicon.NOT_A_SECRET:
                continue
            if not assigned and not _looks_secret(value):
                continue
        if not value.strip():
            continue
        evidence = ("lexicon:password", "context:assigned" if assigned else "shape:secret")
        yield _Raw("password", start, end, "password.keyword", "high", value,
                   0.9 if assigned else 0.8, evidence)


def _find_pins(text: str) -> Iterator[_Raw]:
    for m in _anchored(_PIN, text, _PIN_FIRST):
        yield _Raw("password", m.start("pin"), m.end("pin"), "password.pin", "high",
                   m.group("pin"), 0.9, ("lexicon:pin",))


def _find_logins(text: str) -> Iterator[_Raw]:
    for m in _anchored(_LOGIN, text, _LOGIN_FIRST):
        value = m.group("secret").rstrip(".,;:)")
        if value.casefold() in lexicon.NOT_A_SECRET or not _looks_secret(value):
            continue
        start = m.start("secret")
        yield _Raw("password", start, start + len(value), "password.login", "high", value,
                   0.8, ("lexicon:login", "shape:secret"))


def find_maiden_names(text: str) -> Iterator[_Raw]:
    if not _may_hold(text, _MAIDEN_STEMS, _ASCII_MAIDEN_STEMS):
        return
    yield from _find_maiden_names(text)


def _find_maiden_names(text: str) -> Iterator[_Raw]:
    """:func:`find_maiden_names` without the prefilter (the tests compare the two)."""
    for m in _anchored(_MAIDEN, text, _MAIDEN_FIRST):
        name = m.group("name")
        first = name.split()[0].split("-")[0]
        if first.casefold() in lexicon.NOT_A_NAME:
            continue
        sep = m.group("sep").strip()
        if sep in ("", ",") and not name[:1].isupper():
            continue
        yield _Raw(
            "maiden_name", m.start("name"), m.end("name"), "maiden_name.keyword", "high",
            " ".join(name.split()).casefold(), 0.9, ("lexicon:maiden_name",),
        )  # fmt: skip


# A medical term begins with a whole word of the text (the pattern has word boundaries):
# a text none of whose words is a term's first word skips the long alternation. Words
# are compared by a key that every IGNORECASE match shares (the pattern matches letter
# by letter: the first letter of each one's case-folding, which maps "İ" and "i", "ſ"
# and "s", "K" (Kelvin) and "k" alike). It may let through more than matches.
_MEDICAL_FIRST_WORDS = _first_words(lexicon.MEDICAL_TERMS)


def _may_hold_medical(text: str) -> bool:
    if _ascii_lower(text) is not None:  # the usual case: one lower() is the same key
        return not _MEDICAL_FIRST_WORDS.isdisjoint(_ascii_words(text))
    return any(_fold(w) in _MEDICAL_FIRST_WORDS for w in _WORD.findall(text))


def find_medical(text: str) -> Iterator[_Raw]:
    if not _may_hold_medical(text):
        return
    yield from _find_medical(text)


def _find_medical(text: str) -> Iterator[_Raw]:
    """:func:`find_medical` without the prefilter (the tests compare the two)."""
    for m in _anchored(lexicon.MEDICAL, text, _MEDICAL_FIRST_WORDS):
        value = " ".join(m.group(0).split()).casefold()
        if value.replace("’", "'") not in lexicon.AMBIGUOUS_MEDICAL:
            yield _Raw("medical", m.start(), m.end(), "medical.lexicon", "review", value,
                       0.85, ("lexicon:medical",))
            continue
        around = text[max(0, m.start() - 40):m.start()] + " " + text[m.end():m.end() + 30]
        evidence: tuple[str, ...]
        if lexicon.PERSONAL_CONTEXT.search(around):
            confidence, evidence = 0.75, ("lexicon:medical:ambiguous", "context:+personal")
        else:
            confidence, evidence = 0.4, ("lexicon:medical:ambiguous",)
        yield _Raw("medical", m.start(), m.end(), "medical.lexicon", "review", value,
                   confidence, evidence)


# --- combination -------------------------------------------------------------------


def _combination(text: str, kept: list[_Raw], addresses: list[_Raw]) -> list[_Raw]:
    """Birth date + ZIP + gender: raise severities and add a combination finding."""
    births = [r for r in kept if r.kind == "birth_date"]
    if not births:
        return kept
    zips = find_zip_spans(text, [r for r in kept if r.kind == "street_address"] or addresses)
    if not zips:
        return kept
    genders = list(lexicon.GENDER.finditer(text))
    if not genders:
        return kept
    out: list[_Raw] = []
    for r in kept:
        if r.kind == "birth_date" or (
            r.kind == "street_address" and any(r.start <= s and e <= r.end for s, e in zips)
        ):
            r = dataclasses.replace(r, severity="high")
        out.append(r)
    g = genders[0]
    group = "value" if g.group("value") is not None else "value2"
    out.append(
        _Raw(
            "combination", g.start(), g.end(), "combination.dob_zip_gender", "high",
            g.group(group).casefold(), 0.9, ("birth_date+zip+gender",),
        )
    )  # fmt: skip
    return out


# --- resolution and entry point -------------------------------------------------------

_PRIORITY = {
    "ssn": 100,
    "card": 100,
    "aba": 90,
    "password": 85,
    "maiden_name": 85,
    "bank_account": 80,
    "combination": 75,
    "email": 70,
    "birth_date": 65,
    "phone": 60,
    "street_address": 50,
    "medical": 10,
}


def _resolve(raws: list[_Raw]) -> list[_Raw]:
    """Drop findings that overlap a more specific/severe (then longer) one."""
    ordered = sorted(raws, key=lambda r: (-_PRIORITY.get(r.kind, 0), -(r.end - r.start), r.start))
    kept: list[_Raw] = []
    starts: list[int] = []  # kept is non-overlapping, so sorted by start == sorted by end
    for r in ordered:
        if r.end <= r.start:
            continue
        i = bisect.bisect_right(starts, r.start)
        if i > 0 and kept[i - 1].end > r.start:
            continue
        if i < len(kept) and kept[i].start < r.end:
            continue
        kept.insert(i, r)
        starts.insert(i, r.start)
    return kept


# A Social Security or card number found once is that number wherever else the same
# characters stand on their own, keyword or not: redacting only the first would leave
# the value in the public text.
_REPEATED_KINDS = frozenset({"ssn", "card"})


def _repeats(text: str, kept: Sequence[_Raw]) -> list[_Raw]:
    out: list[_Raw] = []
    for r in kept:
        if r.kind not in _REPEATED_KINDS:
            continue
        # "On their own" by the detectors' own boundaries (_LB, _LA): with any other
        # test (str.isalnum takes "¹" for a digit) a copy the detectors would find once
        # its neighbour is redacted could be left in the public text.
        for m in re.finditer(_LB + re.escape(text[r.start:r.end]) + _LA, text):
            if m.start() == r.start:
                continue
            out.append(_Raw(r.kind, m.start(), m.end(), r.detector, r.severity, r.normalised,
                            r.confidence, (*r.evidence, "repeated")))
    return out


def detect(text: str, *, key: bytes) -> list[Finding]:
    """All PII findings in *text*, sorted by start offset, non-overlapping."""
    if not isinstance(text, str) or not text:
        return []
    raws: list[_Raw] = []
    raws.extend(find_ssn(text))
    raws.extend(find_cards(text))
    raws.extend(find_aba(text))
    raws.extend(find_bank_accounts(text))
    raws.extend(find_emails(text))
    raws.extend(find_phones(text))
    raws.extend(find_birth_dates(text))
    addresses = list(find_addresses(text))
    raws.extend(addresses)
    raws.extend(find_passwords(text))
    raws.extend(find_maiden_names(text))
    raws.extend(find_medical(text))
    raws = [r for r in raws if r.confidence >= THRESHOLDS.get(r.kind, DEFAULT_THRESHOLD)]
    kept = _resolve(raws)
    kept = _resolve(_combination(text, kept, addresses))
    kept = _resolve(kept + _repeats(text, kept))
    return [
        Finding(r.kind, r.start, r.end, r.detector, r.severity, value_hash(key, r.normalised),
                r.confidence, r.evidence)
        for r in kept
    ]
