"""parse_message on hand-made hostile fixtures (tests/data/mail) + fuzzing."""

from __future__ import annotations

import hashlib
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.core.mail import (
    Address,
    Attachment,
    ParsedMessage,
    all_recipient_addresses,
    decode_bytes,
    decode_encoded_words,
    find_record_tags,
    html_to_text,
    parse_message,
    sanitize_filename,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "mail"
FIXTURES = sorted(DATA.glob("*.eml"))


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def parse(name: str, **kw: int | str) -> ParsedMessage:
    return parse_message(load(name), **kw)  # type: ignore[arg-type]


def header_strings(p: ParsedMessage) -> list[str]:
    out = [
        p.subject,
        p.message_id or "",
        *p.in_reply_to,
        *p.references,
        *p.delivered_to,
        *p.defects,
    ]
    for a in (p.from_, *p.to, *p.cc, *p.reply_to):
        if a is not None:
            out += [a.name, a.address]
    for att in p.attachments:
        out += [att.filename, att.content_id or "", att.declared_type]
    return out


def assert_no_crlf(p: ParsedMessage) -> None:
    for s in header_strings(p):
        assert "\r" not in s and "\n" not in s, repr(s)


def test_fixture_directory_is_populated() -> None:
    assert len(FIXTURES) >= 25


# ----------------------------------------------------------------- headers


def test_rfc2047_subject_and_names() -> None:
    p = parse("rfc2047_headers.eml")
    assert p.subject == "Grüße aus Köln und Straße €"
    assert p.from_ == Address("Jürgen Müller", "jm@example.de")
    assert p.to == (
        Address("François Lefèvre", "f@example.fr"),
        Address("Plain Name", "plain@example.org"),
    )
    assert p.cc == (Address("Иван Петров", "ivan@example.ru"),)
    assert p.message_id == "abc.123@Example.DE"  # case kept, brackets stripped
    assert p.date == datetime(2026, 3, 3, 10, 15, tzinfo=timezone(timedelta(hours=1)))
    assert p.text == "Hallo Welt – grüße."
    assert p.defects == ()


def test_encoded_word_split_inside_multibyte_character() -> None:
    assert parse("split_multibyte_ew.eml").subject == "äöü"


def test_raw_8bit_utf8_headers() -> None:
    p = parse("raw_utf8_headers.eml")
    assert p.subject == "Grüße aus Köln – Antrag"
    assert p.from_ == Address("Jürgen König", "jk@example.de")
    assert p.to == (Address("Ämter", "intake@agency.example.gov"),)
    assert any("8-bit" in d for d in p.defects)
    assert "\ufffd" not in p.subject + p.from_.name


def test_crlf_injection_in_encoded_words() -> None:
    p = parse("crlf_injection.eml")
    assert_no_crlf(p)
    assert p.subject == "hi Bcc: evil@x.com"
    # The encoded word must not create extra addresses.
    assert p.from_ == Address("Eve Bcc: evil@x.com", "eve@example.com")
    assert [a.address for a in p.to] == ["intake@agency.example.gov"]
    assert [a.address for a in p.reply_to] == ["eve@example.com"]
    assert p.attachments[0].filename == "ab.txt"


def test_bad_headers_do_not_crash_and_are_recorded() -> None:
    p = parse("bad_headers.eml")
    assert p.date is None
    assert p.message_id == "not-bracketed@example.com"
    assert any(d.startswith("date:") for d in p.defects)
    assert [a.address for a in p.cc] == ["c@example.com"]
    assert_no_crlf(p)


def test_threading_headers_and_recipients() -> None:
    p = parse("alternative.eml")
    assert p.in_reply_to == ("orig-1@agency.example.gov",)
    assert p.references == ("orig-0@agency.example.gov", "orig-1@agency.example.gov")
    q = parse("nested_mixed.eml")
    assert q.delivered_to == ("records+ex@agency.example.gov", "intake@agency.example.gov")
    assert all_recipient_addresses(q) == [
        "intake@agency.example.gov",
        "clerk@agency.example.gov",
        "records+ex@agency.example.gov",
    ]


def test_date_without_zone_is_utc() -> None:
    p = parse("record_tags.eml")
    assert p.date == datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
    assert p.date is not None and p.date.tzinfo is not None


# ----------------------------------------------------------------- record tags


def test_record_tags_in_subject() -> None:
    p = parse("record_tags.eml")
    # spaces inside brackets tolerated, case normalised, other prefixes ignored, deduplicated
    assert p.record_tags == ("EX-2026-000123", "EX-2025-42")
    assert parse("record_tags.eml", record_tag_prefix="OTHER").record_tags == ("OTHER-2026-1",)
    assert parse("alternative.eml").record_tags == ("EX-2026-000123",)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Fwd: [#EX-2026-000123] x", ("EX-2026-000123",)),
        ("[# EX-2026-000123 ]", ("EX-2026-000123",)),
        ("[EX-2026-000123]", ("EX-2026-000123",)),
        ("EX-2026-000123 without brackets", ()),
        ("[#EX-26-1]", ()),
        ("[#EXAMPLE-2026-1]", ()),
    ],
)
def test_find_record_tags(subject: str, expected: tuple[str, ...]) -> None:
    assert find_record_tags(subject, "EX") == expected


# ----------------------------------------------------------------- charsets


def test_misdeclared_us_ascii_with_utf8() -> None:
    p = parse("misdeclared_ascii_utf8.eml")
    assert p.text == "Café – naïve"
    assert any("us-ascii" in d and "UTF-8" in d for d in p.defects)


def test_misdeclared_us_ascii_with_cp1252() -> None:
    p = parse("misdeclared_ascii_cp1252.eml")
    assert p.text == "\u201cQuoted\u201d \u2013 café"
    assert any("cp1252" in d for d in p.defects)


def test_misdeclared_latin1_that_is_utf8() -> None:
    assert parse("misdeclared_latin1_utf8.eml").text == "München €"


def test_unknown_charset() -> None:
    p = parse("unknown_charset.eml")
    assert p.text == "Café crème € 5"
    assert p.subject == "café"
    assert "message: charset 'x-unknown' unknown; decoded as cp1252" in p.defects


def test_bogus_charset_name() -> None:
    p = parse("bogus_charset.eml")
    assert p.text == "naïve"
    assert any("'foo-bar-1234' unknown" in d for d in p.defects)


def test_charset_aliases() -> None:
    p = parse("charset_aliases.eml")
    assert p.text.split("\n\n") == ["안녕하세요", "你好 丂", "Café ™", "שלום", "A日本語"]
    assert p.defects == ()


@pytest.mark.parametrize(
    ("data", "charset", "expected"),
    [
        (b"caf\xe9", "iso-8859-1", "café"),
        (b"\x93x\x94", "latin1", "\u201cx\u201d"),  # WHATWG: latin-1 label read as cp1252
        (b"caf\xc3\xa9", "utf-8", "café"),
        (b"caf\xe9", "utf-8", "café"),  # invalid utf-8 → cp1252
        (b"caf\xe9", '"UTF-8"', "café"),
        (b"\x81\x8d", None, "\x81\x8d"),  # undefined in cp1252 → latin-1
        (b"abc", "unicode_escape", "abc"),  # dangerous codecs refused
        (b"+2D8-", "utf-7", "\ufffd"),  # lone surrogates scrubbed
        (b"a\x00b", "utf-8", "ab"),  # NULs dropped (databases reject them)
    ],
)
def test_decode_bytes(data: bytes, charset: str | None, expected: str) -> None:
    assert decode_bytes(data, charset)[0] == expected


def test_encoded_word_in_quotes_and_bad_base64() -> None:
    assert decode_encoded_words('"=?utf-8?B?w6RiYy5wZGY=?="')[0] == '"äbc.pdf"'
    text, _ = decode_encoded_words("=?utf-8?B?w6RiYy5wZGY?=")  # missing padding
    assert text == "äbc.pdf"


# ----------------------------------------------------------------- bodies


def test_no_content_type_at_all() -> None:
    p = parse("no_content_type.eml")
    assert p.text == "Plain body with 8-bit: äöü"
    assert p.html_sanitized is None
    assert p.attachments == ()


def test_empty_body() -> None:
    p = parse("empty_body.eml")
    assert p.text == ""
    assert p.attachments == ()
    assert parse("headers_only.eml").subject == "no separator"


def test_html_only_is_sanitised_and_converted() -> None:
    p = parse("html_only_script.eml")
    assert p.text == (
        "Pothole report\n\nThere is a pothole on Main St & 5th.\n\n"
        "click me or see map (https://city.example.gov/map)\n\n- first\n- second\n\nThanks"
    )
    h = p.html_sanitized
    assert h is not None
    low = h.lower()
    for bad in (
        "<script",
        "alert",
        "onerror",
        "onload",
        "javascript:",
        "<style",
        "tracker.example",
        "cid:",
        "ignore me",
    ):
        assert bad not in low, bad
    assert 'href="https://city.example.gov/map"' in h
    assert "<h1>Pothole report</h1>" in h


def test_alternative_prefers_plain_and_unflows() -> None:
    p = parse("alternative.eml")
    assert p.text == "This is the plain text which is flowed across two lines."
    assert p.html_sanitized == "<p>This is the <b>HTML</b> version.</p>"


def test_alternative_with_empty_plain_uses_html() -> None:
    assert parse("alternative_empty_plain.eml").text == "Only the HTML has content"


def test_nested_mixed_with_inline_image_and_attachments() -> None:
    p = parse("nested_mixed.eml")
    assert p.text == "See the photo and the PDF.\n\nFooter text part."
    assert p.html_sanitized == "<p>See the photo <img> and the PDF.</p>"
    names = [a.filename for a in p.attachments]
    assert names == ["attachment-1.png", "report.pdf", "not-really.pdf"]
    img, pdf, exe = p.attachments
    assert img.inline and img.content_id == "img1@example.com"
    assert img.sniffed_type == "image/png" and img.declared_type == "image/png"
    assert not pdf.inline and pdf.sniffed_type == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert pdf.sha256 == hashlib.sha256(pdf.content).hexdigest() and pdf.size == len(pdf.content)
    # the name says pdf, the bytes say executable
    assert exe.sniffed_type == "application/x-msdownload"


def test_forwarded_message_keeps_its_attachment() -> None:
    p = parse("forwarded_rfc822.eml")
    assert p.text == "Forwarding this, see attached."
    eml, inner_pdf = p.attachments
    assert eml.is_message and eml.filename == "message-1.eml"
    assert eml.declared_type == "message/rfc822"
    assert b"Message-ID: <inner-1@example.net>" in eml.content
    inner = parse_message(eml.content)
    assert inner.subject == "Original with attachment"
    assert [a.filename for a in inner.attachments] == ["inner.pdf"]
    assert inner_pdf.filename == "msg1-inner.pdf" and not inner_pdf.is_message
    assert inner_pdf.content.startswith(b"%PDF-")
    assert inner_pdf.sha256 == inner.attachments[0].sha256


def test_path_traversal_and_unsafe_filenames() -> None:
    p = parse("path_traversal.eml")
    names = [a.filename for a in p.attachments]
    assert names == ["passwd", "evil.dll", "invoicetxt.exe", "attachment-4.txt"]
    for n in names:
        assert "/" not in n and "\\" not in n and not n.startswith(".")
    assert any("../../etc/passwd" in d for d in p.defects)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\a.doc", "a.doc"),
        ("a\x00b\r\n.txt", "ab.txt"),
        ("...", ""),
        ("CON.txt", "_CON.txt"),
        ("a:b*c?.txt", "a_b_c_.txt"),
        ("x" * 300 + ".pdf", "x" * 196 + ".pdf"),
    ],
)
def test_sanitize_filename(raw: str, expected: str) -> None:
    assert sanitize_filename(raw) == expected


def test_rfc2231_and_encoded_word_filenames() -> None:
    p = parse("rfc2231_filename.eml")
    assert [a.filename for a in p.attachments] == ["€ rates 2026.pdf", "äbc.pdf", "Straße.pdf"]


def test_attachment_over_cap() -> None:
    p = parse("huge_attachment.eml", max_attachment_bytes=1024)
    big, small = p.attachments
    assert p.truncated
    assert big.content == b"" and big.size == 10240
    assert big.sha256 == hashlib.sha256(bytes(range(256)) * 40).hexdigest()
    assert small.content == b"a,b\r\n1,2" and small.sniffed_type == "text/csv"
    assert any("over the 1024-byte cap" in d for d in p.defects)
    q = parse("huge_attachment.eml")
    assert not q.truncated and q.attachments[0].content == bytes(range(256)) * 40


def test_truncated_multipart() -> None:
    p = parse("truncated_multipart.eml")
    assert p.text == "Body before the cut."
    (att,) = p.attachments
    assert att.filename == "cut.pdf" and att.content.startswith(b"%PDF-1.4")
    assert any("CloseBoundaryNotFound" in d for d in p.defects)


def test_garbage_bytes() -> None:
    raw = load("garbage.eml")
    p = parse_message(raw)
    assert isinstance(p, ParsedMessage)
    assert p.size == len(raw)
    assert_no_crlf(p)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n",
        b"\x00" * 10,
        b"From: \r\n\r\n",
        b"--\r\n",
        b"Content-Type: multipart/mixed\r\n\r\n--",
    ],
)
def test_degenerate_inputs(raw: bytes) -> None:
    p = parse_message(raw)
    assert p.size == len(raw) and p.text == p.text.strip()


# ----------------------------------------------------------------- auto-replies / bounces


def test_out_of_office() -> None:
    p = parse("out_of_office.eml")
    assert p.auto_submitted == "auto-submitted: auto-replied"
    assert not p.is_bounce
    assert p.record_tags == ("EX-2026-000123",)


def test_precedence_bulk_and_lists() -> None:
    assert parse("precedence_bulk.eml").auto_submitted == "precedence: bulk"
    assert parse("list_message.eml").auto_submitted == "list"


def test_human_mail_is_not_automatic() -> None:
    for name in (
        "rfc2047_headers.eml",
        "alternative.eml",
        "nested_mixed.eml",
        "forwarded_rfc822.eml",
    ):
        p = parse(name)
        assert p.auto_submitted is None, name
        assert not p.is_bounce


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Auto-Submitted: auto-generated", "auto-submitted: auto-generated"),
        ("Auto-Submitted: no", None),
        ("X-Autoreply: yes", "x-autoreply"),
        ("X-Autorespond: whatever", "x-autorespond"),
        ("X-Autoresponder: 1", "x-autoresponder"),
        ("Precedence: junk", "precedence: junk"),
        ("Precedence: list", "precedence: list"),
        ("Precedence: first-class", None),
        ("X-Auto-Response-Suppress: DR, OOF", "x-auto-response-suppress: DR, OOF"),
        ("X-Auto-Response-Suppress: RN", None),
        ("X-Loop: intake@agency.example.gov", "x-loop"),
        ("List-Unsubscribe: <mailto:x@y>", "list"),
        ("Return-Path: <>", "null-return-path"),
    ],
)
def test_auto_reply_headers(header: str, reason: str | None) -> None:
    raw = f"From: a@example.com\r\nSubject: s\r\n{header}\r\n\r\nbody\r\n".encode()
    assert parse_message(raw).auto_submitted == reason


def test_dsn_bounce_with_rfc822_headers() -> None:
    p = parse("dsn_bounce.eml")
    assert p.is_bounce
    assert p.bounced_message_id == "Outgoing-42@agency.example.gov"
    assert p.auto_submitted is not None
    assert p.text.startswith("This is the mail system")
    assert [a.declared_type for a in p.attachments] == [
        "message/delivery-status",
        "text/rfc822-headers",
    ]


def test_postmaster_bounce_with_embedded_message() -> None:
    p = parse("dsn_bounce_rfc822.eml")
    assert p.is_bounce
    assert p.bounced_message_id == "sent-99@agency.example.gov"
    assert p.auto_submitted == "report: delivery-status"


# ----------------------------------------------------------------- invariants / API


def test_result_is_frozen_and_typed() -> None:
    p = parse("nested_mixed.eml")
    with pytest.raises(AttributeError):
        p.subject = "x"  # type: ignore[misc]
    assert {f.name for f in fields(Attachment)} == {
        "filename",
        "declared_type",
        "sniffed_type",
        "size",
        "sha256",
        "content",
        "inline",
        "content_id",
        "is_message",
    }
    assert isinstance(p.attachments, tuple) and isinstance(p.defects, tuple)


def test_html_to_text_edge_cases() -> None:
    assert html_to_text("<p>a</p><p>b</p>") == "a\n\nb"
    assert html_to_text("<p>t</p><pre>  x\n  y</pre>") == "t\n\n  x\n  y"
    assert html_to_text("a<br>b<br/>c") == "a\nb\nc"
    assert html_to_text('<a href="mailto:x@y.gov">x@y.gov</a>') == "x@y.gov"
    assert html_to_text("<style>p{}</style><script>x()</script>&lt;ok&gt;") == "<ok>"
    assert html_to_text("<p>unclosed <b>tags") == "unclosed tags"


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_fixture_parses_cleanly(path: Path) -> None:
    raw = path.read_bytes()
    p = parse_message(raw, max_attachment_bytes=1024)
    assert p.size == len(raw)
    assert_no_crlf(p)
    for s in [*header_strings(p), p.text, p.html_sanitized or ""]:
        assert "\x00" not in s
        assert not any("\ud800" <= c <= "\udfff" for c in s)
    for a in p.attachments:
        assert a.filename and "/" not in a.filename and "\\" not in a.filename
        assert len(a.sha256) == 64
        assert a.content == b"" or len(a.content) == a.size


# ----------------------------------------------------------------- fuzzing

_FIXTURE_BYTES = [p.read_bytes() for p in FIXTURES]


@st.composite
def mutated_fixture(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_FIXTURE_BYTES)))
    for _ in range(draw(st.integers(1, 12))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "chunk"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(
                st.sampled_from(
                    [
                        b"\r\n",
                        b"\n--",
                        b"=?",
                        b"?=",
                        b"\xff",
                        b"\x00",
                        b":",
                        b"<",
                        b'"',
                        b"=?utf-8?q?=0D=0A?=",
                        b"\r\n\r\n",
                    ]
                )
            )
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "chunk":
            data[pos:pos] = draw(st.binary(max_size=32))
    return bytes(data)


def _check(raw: bytes) -> None:
    p = parse_message(raw, max_attachment_bytes=512)
    assert isinstance(p, ParsedMessage)
    assert p.size == len(raw)
    assert not any(d.startswith("parser failure") for d in p.defects), p.defects
    assert_no_crlf(p)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_fuzz_arbitrary_bytes(raw: bytes) -> None:
    _check(raw)


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_fixture())
def test_fuzz_mutated_fixtures(raw: bytes) -> None:
    _check(raw)


# ----------------------------------------------------------------- resource limits


def test_deeply_nested_mime_keeps_headers() -> None:
    raw = b"From: a@example.com\r\nSubject: deep\r\n"
    for i in range(600):
        raw += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
    raw += b"Content-Type: text/plain\r\n\r\nhi\r\n"
    p = parse_message(raw)
    assert p.subject == "deep" and p.from_ == Address("", "a@example.com")
    assert not any(d.startswith("parser failure") for d in p.defects)


def test_huge_headers_use_linear_fallback() -> None:
    # policy.default's header parser would need gigabytes for this subject.
    raw = b"From: a@example.com\r\nSubject: " + b"=?utf-8?q?a?= " * 100_000 + b"\r\n"
    raw += b"To: " + b"x@example.com, " * 20_000 + b"\r\n\r\nbody"
    p = parse_message(raw)
    assert p.subject == "a" * 100_000
    assert len(p.to) == 20_000
    assert any("header longer than" in d for d in p.defects)


def test_pathologically_nested_html_is_not_given_to_nh3() -> None:
    raw = b"Content-Type: text/html\r\n\r\n" + b"<div>" * 50_000 + b"<script>x</script>hello"
    p = parse_message(raw)
    assert p.text == "hello"
    assert p.html_sanitized == "<pre>hello</pre>"


def test_bare_cr_in_a_part_content_type_does_not_survive() -> None:
    # Found by hypothesis in CI: "message/delivery-status\r dns; ..." kept its CR.
    raw = (b"From: a@b.example\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
           b"Content-Type: message/delivery-status\r dns; mx.example\r\n\r\nAction: failed\r\n"
           b"--x--\r\n")
    parsed = parse_message(raw)
    assert_no_crlf(parsed)
