"""Unit tests for the PII detectors (P2, P6)."""

from __future__ import annotations

import ast
import hashlib
import hmac
from pathlib import Path

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.core.pii import SENSITIVE_KINDS, Finding, detect, lexicon, warning_kinds
from intake.core.pii import detectors as d
from intake.core.pii.lexicon import MEDICAL_TERMS

KEY = b"test-key"


def kinds(text: str) -> list[str]:
    return [f.kind for f in detect(text, key=KEY)]


def spans(text: str, kind: str) -> list[str]:
    return [text[f.start : f.end] for f in detect(text, key=KEY) if f.kind == kind]


def detectors_of(text: str) -> set[str]:
    return {f.detector for f in detect(text, key=KEY)}


# --- SSN ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("SSN 518-22-4137", "518-22-4137"),
        ("number 518 22 4137 please", "518 22 4137"),
        ("it is 518-22-4137.", "518-22-4137"),
        ("ssn: 518224137", "518224137"),
        ("Social Security Number 518224137", "518224137"),
        ("seguro social 518224137", "518224137"),
        ("SS# 518224137", "518224137"),
        ("518224137 is my social security number", "518224137"),
    ],
)
def test_ssn_found(text: str, value: str) -> None:
    assert spans(text, "ssn") == [value]


@pytest.mark.parametrize(
    "text",
    [
        "SSN 000-12-3456",  # area 000
        "SSN 666-12-3456",  # area 666
        "SSN 912-34-5678",  # 9xx area
        "SSN 123-00-4567",  # group 00
        "SSN 123-45-0000",  # serial 0000
        "SSN 078-05-1120",  # advertising number (Woolworth wallet card)
        "SSN 219-09-9999",  # advertising number
        "SSN 123-45 6789",  # mixed delimiters
        "SSN 123 45-6789",  # mixed delimiters
        "518224137",  # nine digits, no keyword
        "reference 518224137",
        "SSN 1518224137",  # inside a longer digit run
        "SSN 5182241370",
        "part 1-518-22-4137",
        "part 518-22-4137-9",
    ],
)
def test_ssn_not_found(text: str) -> None:
    assert "ssn" not in kinds(text)


def test_ssn_detector_names() -> None:
    assert "ssn.delimited" in detectors_of("SSN 518-22-4137")
    assert "ssn.keyword" in detectors_of("SSN 518224137")


def test_keyword_reaches_only_the_next_number() -> None:
    text = "account number 301642298. SS# 518224137"
    found = {text[f.start : f.end]: f.kind for f in detect(text, key=KEY)}
    assert found == {"301642298": "bank_account", "518224137": "ssn"}


# --- cards --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111111",  # Visa
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555555555554444",  # Mastercard 51-55
        "2223003122003222",  # Mastercard 2221-2720
        "378282246310005",  # Amex
        "3782 822463 10005",
        "6011111111111117",  # Discover 6011
        "6500000000000002",  # Discover 65
        "3530111333300000",  # JCB
        "30569309025904",  # Diners 300-305
        "38520000023237",  # Diners 38
        "4222222222222",  # Visa 13 digits
    ],
)
def test_card_found(number: str) -> None:
    text = f"card {number} thanks"
    assert spans(text, "card") == [number]
    assert "card.luhn" in detectors_of(text)


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111112",  # bad check digit
        "5555555555554445",
        "378282246310006",
        "1234567812345670",  # Luhn-valid, no issuer
        "0000000000000000",
        "411111111111111",  # Visa prefix, Luhn-valid, wrong length (15)
        "41111111111111111111",  # 20 digits
        "4111  1111 1111 1111",  # double space splits the groups
        "x4111111111111111",
    ],
)
def test_card_not_found(number: str) -> None:
    assert "card" not in kinds(f"card {number} thanks")


def test_card_followed_by_other_numbers() -> None:
    text = "card 4111 1111 1111 1111 2026 expiry"
    assert spans(text, "card") == ["4111 1111 1111 1111"]


def test_luhn_and_issuer_helpers() -> None:
    assert d.luhn_valid("79927398713")
    assert not d.luhn_valid("79927398710")
    assert d.card_issuer("4111111111111111") == "visa"
    assert d.card_issuer("371449635398431") == "amex"
    assert d.card_issuer("9111111111111111") is None


# --- ABA and bank accounts ---------------------------------------------------------


def test_aba_needs_checksum_and_keyword() -> None:
    assert spans("routing number 011000015", "aba") == ["011000015"]
    assert spans("ABA: 021000021", "aba") == ["021000021"]
    assert spans("RTN 026009593", "aba") == ["026009593"]
    assert spans("transit 011900571", "aba") == ["011900571"]
    assert "aba" not in kinds("routing number 011000016")  # bad checksum
    assert "aba" not in kinds("please see 011000015")  # no keyword
    assert d.aba_valid("011000015")
    assert not d.aba_valid("123456789")
    assert not d.aba_valid("991000013")  # invalid prefix


def test_bank_account() -> None:
    assert spans("account number 004512398761", "bank_account") == ["004512398761"]
    assert spans("acct 778812345 checking", "bank_account") == ["778812345"]
    assert spans("número de cuenta: 0098123344556", "bank_account") == ["0098123344556"]
    assert spans("savings 3300-2199-87", "bank_account") == ["3300-2199-87"]
    assert "bank_account" not in kinds("account number 12345")  # too short
    assert "bank_account" not in kinds("case 778812345")
    assert "bank_account" not in kinds("account number 123456789012345678")  # 18 digits


def test_bank_account_does_not_steal_ssn_or_card() -> None:
    assert kinds("account number 4111111111111111") == ["card"]
    assert kinds("checking, SSN 518-22-4137") == ["ssn"]


# --- e-mail ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "addr",
    ["a@example.com", "Jo.Doe+x@mail.example.org", "x_y-z@sub.example.co.uk", "ANA@EXAMPLE.GOV"],
)
def test_email(addr: str) -> None:
    assert spans(f"write to <{addr}>, thanks", "email") == [addr]


@pytest.mark.parametrize("text", ["a@b", "user@localhost", "@example.com", "a..b@example.com"])
def test_not_email(text: str) -> None:
    assert "email" not in kinds(text)


def test_email_hash_is_case_insensitive() -> None:
    a = detect("Ana@Example.com", key=KEY)[0]
    b = detect("ana@example.com", key=KEY)[0]
    assert a.value_hash == b.value_hash


# --- phones -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    ["(860) 555-0142", "860-555-0142", "860.555.0142", "+1 617 555 0199", "1-212-555-0176",
     "8605550161", "(860) 555-0142 ext. 12"],
)  # fmt: skip
def test_phone(phone: str) -> None:
    assert spans(f"call me at {phone} today", "phone") == [phone]
    assert "phone.phonenumbers" in detectors_of(f"call me at {phone} today")


@pytest.mark.parametrize(
    "text",
    [
        "record EX-2026-000123",
        "see 2026-000123",
        "case number 8605550142",
        "Order #2035550187",
        "invoice: 8605550142",
        "ticket 9595550123",
        "confirmation no. 6175550199",
        "part 1234-56-78901",
        "on 2026-01-02",
        "555-0142",
        "ZIP 06103-1234",
    ],
)
def test_not_phone(text: str) -> None:
    assert "phone" not in kinds(text)


def test_shortest_valid_phone_numbers_still_found() -> None:
    # Six digits is the fewest a valid number can have (+43 1112: Austria);
    # the digit prefilter must let it through.
    assert spans("call +43 1112 now", "phone") == ["+43 1112"]
    assert spans("llame al +49 1644", "phone") == ["+49 1644"]


DIGITS = st.sampled_from(list("0123456789") + ["\uff10", "\uff15", "\u0663", "\u0967"])
PUNCTUATION = st.text(alphabet=list("+()-. /#xext:aZ\n"), max_size=6)


@st.composite
def few_digit_texts(draw: st.DrawFn) -> str:
    """Up to five digits (ASCII, full-width, Arabic-Indic, Devanagari) among phone punctuation."""
    digits = draw(st.lists(DIGITS, max_size=d.MIN_PHONE_DIGITS - 1))
    parts = [draw(PUNCTUATION)]
    for digit in digits:
        parts += [digit, draw(PUNCTUATION)]
    return "".join(parts)


@settings(max_examples=2000, deadline=None)
@given(few_digit_texts())
def test_phone_prefilter_skips_only_texts_without_a_valid_number(text: str) -> None:
    """Texts that the digit prefilter skips never hold a number phonenumbers would match."""
    assert not d._ENOUGH_DIGITS_FOR_A_PHONE.search(text)
    matcher = phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.VALID)
    assert list(matcher) == []


@st.composite
def phone_like_texts(draw: st.DrawFn) -> str:
    """Digits of any script among phone punctuation, "+" signs and words."""
    parts = []
    for _ in range(draw(st.integers(0, 24))):
        parts.append(draw(st.one_of(DIGITS, PUNCTUATION, st.sampled_from(
            ["+", "+1 ", " ext. ", " call ", "(", ")", " ", "\n", "-", ".", "/", "#"]))))
    return "".join(parts)


@st.composite
def digit_run_texts(draw: st.DrawFn) -> str:
    """Runs of ASCII digits (one to eleven long) between phone punctuation and words: many
    texts near the prefilter's line of ten digits in four consecutive runs."""
    parts = [draw(PUNCTUATION)]
    for _ in range(draw(st.integers(1, 7))):
        parts.append(draw(st.text(alphabet="0123456789", min_size=1, max_size=11)))
        parts.append(draw(st.one_of(PUNCTUATION.filter(bool), st.sampled_from(
            [" ", "-", ".", " - ", ") ", " x ", " ext. ", "/", "a", " or ", "e", "af", "#",
             ";ext=", "\t", ", ", "  -  ", "~", "[", "] ", "--", "(0)", " anexo ", " int ",
             " extn ", "x.", " ; ", "\u00a0", "\uff0d"]))))
    return "".join(parts)


@st.composite
def valid_phone_texts(draw: st.DrawFn) -> str:
    """Numbers phonenumbers calls valid (US, and reached by "011"), grouped and glued in
    every way, with extensions in their many spellings: what the ASCII chain rule must
    never skip when phonenumbers would keep it."""
    number = draw(st.sampled_from(["8605550142", "18605550142", "2125550123", "0112901234",
                                   "011442079460958", "0114930123456", "2025550188"]))
    cuts = sorted(draw(st.sets(st.integers(1, len(number) - 1), max_size=4)))
    pieces = [number[a:b] for a, b in zip([0, *cuts], [*cuts, len(number)], strict=True)]
    gaps = st.sampled_from([" ", "-", ".", "/", ") ", " (", "x", "~", "  ", " - ", "a", "\n",
                            "--", "[", "]", "e", ", ", " -- ", ").  ", "  -  "])
    text = draw(st.sampled_from(["", "(", "call ", "ref ", "x", "a"])) + pieces[0]
    for piece in pieces[1:]:
        text += draw(gaps) + piece
    return text + draw(st.sampled_from(["", " ext. 12", " x 7", ";ext=12", " anexo 3", "#45",
                                         " extension 2222", " int 5", "e", ".", " or 4"]))


@settings(max_examples=6000, deadline=None)
@given(st.one_of(phone_like_texts(), digit_run_texts(), valid_phone_texts()))
def test_phone_prefilter_never_changes_the_findings(text: str) -> None:
    """Whatever the prefilter skips, the unfiltered detector finds nothing in either."""
    if not d._may_hold_a_phone(text):
        assert list(d._find_phones(text)) == []
    assert list(d.find_phones(text)) == list(d._find_phones(text))


def test_phone_prefilter_counts_digits_in_four_consecutive_runs() -> None:
    assert d._ten_digits_in_four_runs("860 555 0142")
    assert d._ten_digits_in_four_runs("1-860-555-0142")
    assert d._ten_digits_in_four_runs("on 11/14/2026 at 3:45 about permit 12345")  # 4+1+2+5
    assert not d._ten_digits_in_four_runs("on 11/14/2026 at 3:45")  # 9 in any four runs
    assert not d._ten_digits_in_four_runs("1 2 3 4 5 6 7 8 9 10 11 12")  # 15 digits, apart
    assert not d._ten_digits_in_four_runs("ref 4f0a9c21-3-17 and 2-4")
    assert not d._ten_digits_in_four_runs("")


def test_phone_prefilter_chains_runs_by_phone_punctuation_in_ascii_texts() -> None:
    assert d._may_hold_a_phone("call 860 555-0142 or (860) 555.0142 x 12")
    # Ten digits in four runs, but letters between them: a reference, not a number.
    assert d._ten_digits_in_four_runs("Trail report 39a12345-1234")
    assert not d._may_hold_a_phone("Trail report 39a12345-1234")
    assert not d._may_hold_a_phone("case 4417, 2026-11-14 at 10:30")
    # Four punctuation characters between two blocks are as many as phonenumbers takes.
    assert [r.normalised for r in d.find_phones("860 -- 555 -- 0142")] == ["+18605550142"]
    assert list(d._find_phones("860  -  555-0142")) == []
    assert not d._may_hold_a_phone("860  -  555-0142")
    # Outside ASCII the runs alone decide (phonenumbers reads other scripts' digits).
    assert d._may_hold_a_phone("860\uff0d555\uff0d0142")
    assert [r.kind for r in d.find_phones("860\uff0d555\uff0d0142")] == ["phone"]


def test_phone_prefilter_lets_real_numbers_through() -> None:
    for text in ["call (860) 555-0142", "860.555.0142", "+44 20 7946 0958", "18605550142",
                 "1-860-555-0142 ext. 12"]:
        assert d._may_hold_a_phone(text), text
        assert [r.kind for r in d.find_phones(text)] == ["phone"], text
    # Six digits, a record-like token: no "+" and fewer than ten digits: skipped.
    assert not d._may_hold_a_phone("The north trail is closed (0-3-1577) again.")


def test_same_hash_for_same_phone_written_differently() -> None:
    a = detect("call (860) 555-0142", key=KEY)[0]
    b = detect("call 860.555.0142", key=KEY)[0]
    assert a.kind == b.kind == "phone" and a.value_hash == b.value_hash


# --- birth dates --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, date",
    [
        ("DOB 01/02/1980", "01/02/1980"),
        ("date of birth: 1980-01-02", "1980-01-02"),
        ("I was born on January 2, 1980.", "January 2, 1980"),
        ("born 2 Jan 1980", "2 Jan 1980"),
        ("birthday: 2nd of January 1980", "2nd of January 1980"),
        ("Nací el 2 de enero de 1980", "2 de enero de 1980"),
        ("fecha de nacimiento 02-01-1980", "02-01-1980"),
        ("nacida el 2 de enero de 1980", "2 de enero de 1980"),
        ("01/02/1980 is my birthday", "01/02/1980"),
        ("D.O.B. 7/4/76", "7/4/76"),
    ],
)
def test_birth_date(text: str, date: str) -> None:
    assert spans(text, "birth_date") == [date]


@pytest.mark.parametrize(
    "text",
    [
        "The hearing is on 01/02/1980.",
        "January 2, 1980 was a Wednesday.",
        "DOB 02/30/1980",  # not a calendar date
        "DOB 13/13/1980",
        "born in 1980",  # a year is not a date
        "my son was born 3 years ago; the meeting is 01/02/2027",
    ],
)
def test_not_birth_date(text: str) -> None:
    assert "birth_date" not in kinds(text)


def test_birth_date_hash_normalises_format() -> None:
    a = detect("DOB 01/02/1980", key=KEY)[0]
    b = detect("born January 2, 1980", key=KEY)[0]
    c = detect("born 1980-01-02", key=KEY)[0]
    assert a.value_hash == b.value_hash == c.value_hash


def test_keyword_applies_to_the_next_date_only() -> None:
    text = "My son was born 3/4/2020 and my appointment is 5/6/2026"
    assert spans(text, "birth_date") == ["3/4/2020"]


# --- addresses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, address",
    [
        ("mail it to 123 Main St please", "123 Main St"),
        ("I live at 4500 N Elm Avenue Apt 2 now", "4500 N Elm Avenue Apt 2"),
        ("use PO Box 12", "PO Box 12"),
        ("P.O. Box 1234, Mystic, CT 06355", "P.O. Box 1234, Mystic, CT 06355"),
        (
            "at 55 Trumbull Street, Hartford, CT 06103-1234.",
            "55 Trumbull Street, Hartford, CT 06103-1234",
        ),
        ("house at 77 farmington ave", "77 farmington ave"),
    ],
)  # fmt: skip
def test_street_address(text: str, address: str) -> None:
    assert spans(text, "street_address") == [address]


@pytest.mark.parametrize(
    "text",
    [
        "We had 12 people at the meeting on Main Street.",
        "Between 1998 and 2004 the road was never repaved.",
        "Box 12 of the archive",
        "Route 9 was closed",
        "123 apples",
    ],
)
def test_not_street_address(text: str) -> None:
    assert "street_address" not in kinds(text)


def test_address_detectors_named() -> None:
    assert detectors_of("123 Main St") == {"street_address.usaddress"}
    assert detectors_of("PO Box 12") == {"street_address.po_box"}


# --- passwords, maiden names, medical -----------------------------------------------------


@pytest.mark.parametrize(
    "text, secret",
    [
        ("password: hunter2", "hunter2"),
        ("my password is Tr0ub4dor&3.", "Tr0ub4dor&3"),
        ("Password = 'correct horse'", "correct horse"),
        ("my PIN is 1234", "1234"),
        ("PIN: 987654", "987654"),
        ("mi contraseña es Azul#7781", "Azul#7781"),
    ],
)
def test_password(text: str, secret: str) -> None:
    assert spans(text, "password") == [secret]


@pytest.mark.parametrize(
    "text",
    [
        "my password is not working",
        "How do I reset my password?",
        "password reset link expired",
        "Where is my PIN? The letter never came.",
        "my PIN is wrong",
        "mi contraseña es incorrecta",
    ],
)
def test_not_password(text: str) -> None:
    assert "password" not in kinds(text)


def test_maiden_name() -> None:
    assert spans("my mother's maiden name is Kowalski.", "maiden_name") == ["Kowalski"]
    assert spans("Maiden name: Ferreira", "maiden_name") == ["Ferreira"]
    assert spans("mother’s maiden name was De Souza", "maiden_name") == ["De Souza"]
    assert "maiden_name" not in kinds("Is the maiden name required?")
    assert "maiden_name" not in kinds("my mother's maiden name is not on file")


def test_medical_lexicon() -> None:
    assert len(MEDICAL_TERMS) >= 40
    assert spans("I was diagnosed with diabetes", "medical") == ["diagnosed", "diabetes"]
    assert spans("Tengo cáncer y estoy embarazada", "medical") == ["cáncer", "embarazada"]
    assert spans("my HIV medication", "medical") == ["HIV", "medication"]
    found = detect("on chemotherapy", key=KEY)
    assert [(f.kind, f.severity, f.detector) for f in found] == [
        ("medical", "review", "medical.lexicon")
    ]
    # Not inside other words, and the acronyms are case-sensitive.
    assert "medical" not in kinds("the cancerous rumour; aids to navigation; candiabetes")


# --- combination -----------------------------------------------------------------------


def test_combination_raises_severity() -> None:
    text = "DOB 04/15/1988, I live at 88 Whitney Ave, New Haven, CT 06510. Sex: F"
    found = detect(text, key=KEY)
    by_kind = {f.kind: f for f in found}
    assert set(by_kind) == {"birth_date", "street_address", "combination"}
    assert by_kind["birth_date"].severity == "high"
    assert by_kind["street_address"].severity == "high"
    combo = by_kind["combination"]
    assert combo.severity == "high" and combo.detector == "combination.dob_zip_gender"
    assert text[combo.start : combo.end] == "Sex: F"


def test_combination_with_zip_keyword_and_spanish() -> None:
    text = "fecha de nacimiento 2 de enero de 1980, código postal 06511, sexo: femenino"
    assert "combination" in kinds(text)


def test_no_combination_without_all_three() -> None:
    assert "combination" not in kinds("DOB 04/15/1988, gender: female")
    assert "combination" not in kinds("ZIP 06511, gender: female")
    assert "combination" not in kinds("DOB 04/15/1988, ZIP 06511")
    found = detect("DOB 04/15/1988, ZIP 06511", key=KEY)
    assert [f.severity for f in found] == ["medium"]


# --- Finding, hashing, overlaps, API -------------------------------------------------


def test_finding_carries_hmac_not_value() -> None:
    text = "SSN 518-22-4137"
    (f,) = detect(text, key=KEY)
    expected = hmac.new(KEY, b"518224137", hashlib.sha256).hexdigest()
    assert f.value_hash == expected
    assert f.to_dict() == {
        "kind": "ssn", "start": 4, "end": 15, "detector": "ssn.delimited",
        "severity": "high", "value_hash": expected,
        "confidence": 0.99, "evidence": ["stdnum:valid", "context:+ssn"],
    }  # fmt: skip
    assert "518" not in repr(f) and "4137" not in repr(f)
    assert detect(text, key=b"other")[0].value_hash != expected


def test_findings_sorted_and_non_overlapping() -> None:
    text = (
        "Email 8605550142@vtext.example.com, card 4111 1111 1111 1111, "
        "SSN 518-22-4137, call (860) 555-0142, account number 4111111111111111"
    )
    found = detect(text, key=KEY)
    assert [f.start for f in found] == sorted(f.start for f in found)
    for a, b in zip(found, found[1:], strict=False):
        assert a.end <= b.start
    assert [f.kind for f in found] == ["email", "card", "ssn", "phone", "card"]


def test_finding_is_frozen() -> None:
    f = Finding("ssn", 0, 1, "ssn.delimited", "high", "00")
    with pytest.raises(AttributeError):
        f.kind = "card"  # type: ignore[misc]


def test_sensitive_kinds_and_warning_kinds() -> None:
    assert SENSITIVE_KINDS == {
        "ssn", "card", "aba", "bank_account", "birth_date", "password", "maiden_name", "medical",
    }  # fmt: skip
    text = "I have asthma. SSN 518-22-4137, DOB 01/02/1980, e-mail a@example.com, SSN 301642298"
    assert warning_kinds(detect(text, key=KEY)) == ["ssn", "birth_date", "medical"]
    assert warning_kinds([]) == []
    assert warning_kinds(detect("mail a@example.com", key=KEY)) == []


@pytest.mark.parametrize(
    "text",
    ["", " ", "\x00", "\ud800", "٥١٨-٢٢-٤١٣٧", "１２３-４５-６７８９", "a" * 10000, "1" * 5000,
     "@" * 300, "1 " * 3000, "SSN " * 500, "123 Main St " * 200, "(((((" * 100],
)  # fmt: skip
def test_detect_never_raises(text: str) -> None:
    assert isinstance(detect(text, key=KEY), list)


def test_non_ascii_digits_are_not_numbers() -> None:
    assert kinds("SSN ٥١٨-٢٢-٤١٣٧") == []


def test_core_stays_pure() -> None:
    forbidden = {
        "flask", "werkzeug", "sqlalchemy", "dramatiq", "imaplib", "smtplib", "http",
        "urllib", "requests", "httpx", "socket", "imapclient",
    }  # fmt: skip
    pkg = Path(d.__file__).parent
    for path in pkg.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def test_a_repeated_ssn_is_found_every_time() -> None:
    # Found by hypothesis: only the occurrence next to the keyword used to be
    # flagged, so the public rendition leaked the repeat.
    from intake.core.pii import detect as _detect

    text = "SSN:518224137, I repeat 518224137"
    spans = [(f.kind, text[f.start:f.end]) for f in _detect(text, key=b"k")]
    assert spans == [("ssn", "518224137"), ("ssn", "518224137")]


# --- prefilters: what they skip, the full detectors find nothing in -----------------------


@st.composite
def date_like_texts(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.one_of(
        st.sampled_from(list("0123456789") + ["\uff11", "\u0663"]),
        st.sampled_from(["/", "-", ".", " ", ", ", "st", "th", " of ", " de ", " del ", "\n"]),
        st.sampled_from(["Jan", "January", "march", "Sept.", "diciembre", "enero", "born",
                         "DOB", "1980", "2026", "19", "20"]),
    ), max_size=20))
    return "".join(parts)


@settings(max_examples=3000, deadline=None)
@given(date_like_texts())
def test_date_prefilter_never_changes_the_dates(text: str) -> None:
    assert list(d.find_dates(text)) == list(d._find_dates(text))


BIRTH_WORDS = ["born", "Born", "BORN", "reborn", "born1", "unborn", "birth", "Birthday",
               "BIRTHDATE", "rebirth", "b-day", "B-Day", "bday", "dob", "DOB", "d.o.b.",
               "D.O.B", "date of birth", "date\nof  birth", "fecha de nacimiento",
               "nacimiento", "nacido", "Nacida", "nací", "NACI", "cumpleaños", "CUMPLEAÑOS",
               "f. nac.", "F.nac", "bİrth", "bırth", "b\u0130RTH", "fecha", "day", "do b"]


@st.composite
def birth_like_texts(draw: st.DrawFn) -> str:
    """Dates, digits and birth keywords, whole, cut, glued to words and digits, in any case."""
    parts = draw(st.lists(st.one_of(
        st.sampled_from(["12/03/1980", "1980-03-12", "March 12, 1980", "12 de marzo de 1980",
                         "3rd of May 1975", "1/2/80", "2026", "7", " ", ": ", ", ", "\n",
                         "my ", "x", "was ", "is "]),
        st.sampled_from(BIRTH_WORDS),
    ), max_size=12))
    return "".join(parts)


@settings(max_examples=3000, deadline=None)
@given(birth_like_texts())
def test_birth_date_prefilter_never_changes_the_findings(text: str) -> None:
    assert list(d.find_birth_dates(text)) == list(d._find_birth_dates(text))
    if text.isascii():  # the ASCII shortcut says what the pattern says
        assert d._may_hold_a_birth_keyword(text) == bool(d._BIRTH_STEMS.search(text))


def test_birth_date_prefilter_passes_every_birth_keyword() -> None:
    found = [w for w in BIRTH_WORDS if lexicon.BIRTH_KEYWORDS.search(w)]
    assert len(found) >= 20  # the list exercises the keywords, not only near-misses
    for word in found:
        assert d._BIRTH_STEMS.search(word), word
        assert d._may_hold_a_birth_keyword(word), word
    text = "Case 2026-4417 was opened on 11/14/2026; see the notes of 2025-12-01."
    assert list(d._find_dates(text)) and not d._BIRTH_STEMS.search(text)
    assert list(d.find_birth_dates("I was born on 12/03/1980.")) == list(
        d._find_birth_dates("I was born on 12/03/1980.")) != []


@st.composite
def medical_like_texts(draw: st.DrawFn) -> str:
    term = draw(st.sampled_from(lexicon.MEDICAL_TERMS))
    # Case changes, the long s and Kelvin sign (IGNORECASE matches them to s and k),
    # a dotted capital I, cut or glued words.
    term = draw(st.sampled_from([term, term.upper(), term.lower(), term.title(),
                                 term.replace("s", "\u017f"), term.replace("k", "\u212a"),
                                 term.replace("i", "\u0130"), term[:-1], term + "s",
                                 term.replace(" ", "\n  ")]))
    before = draw(st.sampled_from(["", " ", "my ", "x", "_", "(", "no-", "é"]))
    after = draw(st.sampled_from(["", " ", ".", "s", "'s", "x", ")", "\u2019"]))
    return before + term + after


@settings(max_examples=3000, deadline=None)
@given(medical_like_texts())
def test_medical_prefilter_never_changes_the_findings(text: str) -> None:
    assert list(d.find_medical(text)) == list(d._find_medical(text))


SECRET_WORDS = ["password", "Password", "PASSWORD", "passwd", "passcode", "pass code",
                "pass\n code", "pwd", "PWD", "contraseña", "CONTRASEÑA", "contrasena", "clave",
                "clave de acceso", "Clave De Acceso", "pin", "PIN", "pin number", "pin code",
                "PIN no.", "pin #", "maiden name", "Maiden Name", "mother's maiden name",
                "Mom\u2019s maiden name", "mum's maiden  name", "apellido de soltera",
                "apellido de soltera de mi madre", "pa\u017f\u017fword", "\u0130pin",
                "p\u0130n", "maide", "passw", "word", "code", "soltero", "spin", "pinned"]


@st.composite
def secret_like_texts(draw: st.DrawFn) -> str:
    """Password, PIN and maiden-name keywords, whole, cut, glued, in any case, with
    separators and values around them."""
    parts = draw(st.lists(st.one_of(
        st.sampled_from(SECRET_WORDS),
        st.sampled_from(SECRET_WORDS).map(str.upper),
        st.sampled_from(SECRET_WORDS).map(lambda w: w[1:]),
        st.sampled_from([" ", ": ", " = ", " is ", " es ", "\"", "'", "\u201c", "\u201d",
                         "hunter2", "Tr0ub4dor&3", "1234", "98765432", "Smith", "García",
                         "secret", "x", "my ", ".", "\n"]),
    ), max_size=10))
    return "".join(parts)


@settings(max_examples=3000, deadline=None)
@given(secret_like_texts())
def test_password_and_maiden_name_prefilters_never_change_the_findings(text: str) -> None:
    assert list(d.find_passwords(text)) == list(d._find_passwords(text))
    assert list(d.find_maiden_names(text)) == list(d._find_maiden_names(text))
    if text.isascii():  # the ASCII shortcut says what the pattern says
        assert d._may_hold(text, d._SECRET_STEMS, d._ASCII_SECRET_STEMS) == bool(
            d._SECRET_STEMS.search(text))
        assert d._may_hold(text, d._MAIDEN_STEMS, d._ASCII_MAIDEN_STEMS) == bool(
            d._MAIDEN_STEMS.search(text))


def test_password_and_maiden_name_prefilters_pass_what_the_detectors_find() -> None:
    found = [text for word in SECRET_WORDS for text in (f"my {word}: hunter2x",
                                                        f"my {word} is Smith", f"{word} 4321")
             if list(d._find_passwords(text)) or list(d._find_maiden_names(text))]
    assert len(found) >= 25  # the list exercises the keywords, not only near-misses
    for text in found:
        assert list(d.find_passwords(text)) == list(d._find_passwords(text)), text
        assert list(d.find_maiden_names(text)) == list(d._find_maiden_names(text)), text
    quiet = "The north trail at Lake Park is closed. Could someone look at the trees?"
    assert not d._may_hold(quiet, d._SECRET_STEMS, d._ASCII_SECRET_STEMS)
    assert not d._may_hold(quiet, d._MAIDEN_STEMS, d._ASCII_MAIDEN_STEMS)


def test_stored_hashes_and_form_macs_keep_their_values() -> None:
    # Hashes are stored (PII findings) and signatures travel in pages already sent (form
    # tokens): a faster way of computing them must give the same values.
    import hashlib
    import hmac

    from intake.core.forms import _token_mac
    from intake.core.pii.model import value_hash

    key = b"k" * 32
    assert value_hash(key, "078-05-1120") == hmac.new(
        key, b"078-05-1120", hashlib.sha256).hexdigest()
    assert value_hash(key, "caf\u00e9") == hmac.new(
        key, "caf\u00e9".encode(), hashlib.sha256).hexdigest()
    assert _token_mac(key, "contact", 1764619200) == hmac.new(
        key, b"form-token|contact|1764619200", hashlib.sha256).hexdigest()[:32]
