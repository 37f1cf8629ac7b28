"""Redaction with markers (P3, P6) and property tests for detect/redact."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from intake.core.pii import (
    Finding,
    RedactedText,
    Redaction,
    detect,
    redact,
)
from intake.core.pii.redact import marker_for

KEY = b"test-key"

TEXT = (
    "SSN 518-22-4137. Card 4111 1111 1111 1111. Routing number 011000015, "
    "account number 004512398761. password: hunter2. Mother's maiden name is Kowalski. "
    "DOB 01/02/1980. Write to ana@example.com or call (860) 555-0142, "
    "12 Oak Street. I have asthma."
)
ALL_KINDS = [
    "ssn", "card", "aba", "bank_account", "password", "maiden_name", "birth_date",
    "email", "phone", "street_address", "medical",
]  # fmt: skip


def findings() -> list[Finding]:
    found = detect(TEXT, key=KEY)
    assert [f.kind for f in found] == ALL_KINDS
    return found


def value(kind: str) -> str:
    f = next(f for f in findings() if f.kind == kind)
    return TEXT[f.start : f.end]


def redacted_kinds(r: RedactedText) -> list[str]:
    return [x.kind for x in r.redactions]


def test_public_redacts_everything_with_markers_and_reasons() -> None:
    r = redact(TEXT, findings())
    assert redacted_kinds(r) == ALL_KINDS
    for kind in ALL_KINDS:
        assert value(kind) not in r.text
    assert "[redacted: Social Security number]" in r.text
    assert "[redacted: e-mail address]" in r.text
    assert "[redacted: medical information]" in r.text
    reasons = {x.kind: x.reason for x in r.redactions}
    assert reasons["ssn"] == "P6-ssn"
    assert reasons["medical"] == "P6-medical"
    assert reasons["email"] == "P2-email"
    assert reasons["street_address"] == "P2-street_address"
    assert all(x.reason for x in r.redactions)


def test_redaction_offsets_refer_to_original_text() -> None:
    found = findings()
    r = redact(TEXT, found)
    for f, x in zip(found, r.redactions, strict=True):
        assert (x.start, x.end, x.kind) == (f.start, f.end, f.kind)


def test_combination_rendition() -> None:
    text = "DOB 04/15/1988, ZIP 06511, sex: F"
    found = detect(text, key=KEY)
    assert [f.kind for f in found] == ["birth_date", "combination"]
    pub = redact(text, found)
    assert pub.text == "DOB [redacted: birth date], ZIP 06511, [redacted: identifying detail]"
    assert pub.redactions[1].reason == "P2-combination"


def test_caller_supplied_name_finding() -> None:
    text = "From Ana Pérez: hello"
    name = Finding("name", 5, 14, "form.name", "medium", "x")
    assert redact(text, [name]).text == "From [redacted: name]: hello"
    assert redact(text, [name]).redactions == (
        Redaction(5, 14, "name", "P2-name"),
    )


def test_an_unknown_kind_gets_the_generic_marker() -> None:
    f = Finding("passport", 0, 4, "x", "high", "x")
    assert redact("ABCD rest", [f]).text == "[redacted: personal information] rest"


def test_overlapping_and_out_of_range_findings() -> None:
    text = "0123456789"
    fs = [
        Finding("email", 2, 6, "x", "low", "x"),
        Finding("ssn", 4, 8, "x", "high", "x"),
        Finding("phone", 50, 60, "x", "low", "x"),
        Finding("phone", 9, 60, "x", "low", "x"),
        Finding("phone", 3, 3, "x", "low", "x"),
    ]
    r = redact(text, fs)
    assert r.redactions == (
        Redaction(2, 8, "ssn", "P6-ssn"),
        Redaction(9, 10, "phone", "P2-phone"),
    )
    assert r.text == "01[redacted: Social Security number]8[redacted: phone number]"


def test_no_findings() -> None:
    assert redact("hello", []) == RedactedText("hello", ())


# --- properties ---------------------------------------------------------------------

PII_FRAGMENTS = st.sampled_from(
    [
        "518-22-4137", "SSN 301642298", "4111 1111 1111 1111", "378282246310005",
        "ana@example.com", "J.Doe+x@mail.example.org", "(860) 555-0142", "DOB 01/02/1980",
        "123 Main St", "PO Box 12", "password: x", "routing 011000015", "acct 123456",
        "EX-2026-000123", "06103-1234", "maiden name is Ng", "HIV", "sex: F", " ", "\n",
        "-", "@", ".", "0", "9", "SSN", "#",
    ]
)  # fmt: skip
TEXTS = st.one_of(
    st.text(),
    st.lists(st.one_of(PII_FRAGMENTS, st.text(max_size=8)), max_size=12).map("".join),
)

SECRET_KINDS = {"ssn", "card", "email"}


def check_offsets(text: str, r: RedactedText) -> None:
    last = 0
    for x in r.redactions:
        assert 0 <= x.start < x.end <= len(text)
        assert x.start >= last
        last = x.end
        assert x.reason


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(TEXTS)
def test_detect_and_redact_never_raise(text: str) -> None:
    found = detect(text, key=KEY)
    for f in found:
        assert 0 <= f.start < f.end <= len(text)
    for a, b in zip(found, found[1:], strict=False):
        assert a.end <= b.start
    check_offsets(text, redact(text, found))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(TEXTS)
# Found by hypothesis: the middle copy, followed by a superscript one, was not taken for
# a repeat of the first (str.isalnum("¹")) but was detected once the third was redacted.
@example("010.11.0101 010.11.0101\u00b9010.11.0101")
def test_public_leaves_no_ssn_card_or_email(text: str) -> None:
    found = detect(text, key=KEY)
    r = redact(text, found)
    assert len(r.redactions) == len(found)
    secret = {(f.kind, f.value_hash) for f in found if f.kind in SECRET_KINDS}
    for f, x in zip(found, r.redactions, strict=True):
        assert (x.start, x.end) == (f.start, f.end)
    # No SSN, card or e-mail value that was detected can be detected again in
    # the public text.  (The same characters may still occur inside a longer
    # run that is not such a value, e.g. "010.11.01000".)
    again = {(f.kind, f.value_hash) for f in detect(r.text, key=KEY)}
    assert not secret & again
    # And the public text is exactly the original with each span replaced by
    # a marker: nothing of a redacted value is left in place.
    rebuilt, pos = [], 0
    for x in r.redactions:
        rebuilt.append(text[pos : x.start])
        rebuilt.append(marker_for(x.kind))
        pos = x.end
    rebuilt.append(text[pos:])
    assert r.text == "".join(rebuilt)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ssn", "card", "email", "phone", "medical", "name", "other"]),
            st.integers(-5, 40),
            st.integers(-5, 40),
        ),
        max_size=8,
    ),
    st.text(max_size=30),
)
def test_redact_any_findings(raw: list[tuple[str, int, int]], text: str) -> None:
    fs = [Finding(k, s, e, "x", "low", "x") for k, s, e in raw]
    check_offsets(text, redact(text, fs))


def test_a_detected_ssn_is_redacted_where_it_stands_again_without_a_keyword() -> None:
    """Found by the property test above: the same digits once beside "SSN" and once alone.
    The public text must not keep the second (its marker would then sit beside it)."""
    text = "001.11.1000:SSN:001100001 001.11.1000"
    found = detect(text, key=KEY)
    assert [(f.kind, text[f.start:f.end]) for f in found] == [
        ("ssn", "001.11.1000"), ("ssn", "001100001"), ("ssn", "001.11.1000")]
    public = redact(text, found).text
    assert "001.11.1000" not in public and "001100001" not in public
    # The same characters inside a longer run are not that number.
    longer = "SSN 001.11.1000 and 9001.11.10009"
    assert [longer[f.start:f.end] for f in detect(longer, key=KEY)] == ["001.11.1000"]
