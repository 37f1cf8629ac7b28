"""header_text and mailbox: public text can never become another header or address."""

from __future__ import annotations

import email
import email.policy
from email import base64mime, quoprimime
from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from intake.core.mail.headers import header_text, mailbox, new_message

HEADERS = ["From", "To", "Subject", "Content-Type", "Content-Transfer-Encoding", "MIME-Version"]
AGENCY = "parks@examplia.gov"


def encoded(text: str, charset: str = "utf-8", encoding: str = "q") -> str:
    """An RFC 2047 encoded word carrying ``text`` (an unknown charset carries UTF-8 bytes)."""
    data = text.encode("utf-8" if charset.startswith("x-") else charset, "surrogatepass")
    if encoding == "b":
        return str(base64mime.header_encode(data, charset))
    return str(quoprimime.header_encode(data, charset))


def sent_and_read(subject: str, name: str) -> EmailMessage:
    """Build a message the way delivery does, serialise it, parse it as a recipient would."""
    msg = new_message()
    msg["From"] = mailbox(name, "intake@examplia.gov")
    msg["To"] = AGENCY
    msg["Subject"] = subject
    msg.set_content("body")
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def assert_reads_back(read: str, written: str, folded: str) -> None:
    """The reader gets ``written`` back, but for CPython 3.11 whitespace bugs at folds.

    The folder can move a space at the end of an encoded word into the fold (lost on
    reading) or fold before the first word (a leading space on reading), and the address
    parser keeps the folding whitespace between two encoded words (gh-128110; RFC 2047
    6.2 says to drop it). All touch only whitespace, and only in a folded header.
    """
    if read != written:
        assert "\r\n" in folded, (read, written)
        assert "".join(read.split()) == "".join(written.split())


def assert_one_clean_line(value: str) -> None:
    parsed = sent_and_read(value, value)
    assert parsed.keys() == HEADERS
    raw = dict(parsed.raw_items())
    assert_reads_back(str(parsed["Subject"]), value, str(raw["Subject"]))
    (address,) = parsed["From"].addresses
    assert address.addr_spec == "intake@examplia.gov"
    # Names are cut at 200 characters, and the shorter text can hold an encoded word
    # ("=?q?=C2...") that the longer one did not: header_text decodes it.
    name = mailbox(value, "intake@examplia.gov").display_name
    assert name in (header_text(value, 200), "")
    assert_reads_back(address.display_name, name, str(raw["From"]))
    assert [str(a) for a in parsed["To"].addresses] == [AGENCY]


def test_text_that_fits_on_a_line_reads_back_exactly() -> None:
    for text in ["Pothole on Route 9", "Se\u00f1ora Mu\u00f1oz \u8def", '"Eve" <e@x>, Bcc: y']:
        parsed = sent_and_read(text, text)
        assert str(parsed["Subject"]) == text
        assert parsed["From"].addresses[0].display_name == text


HOSTILE = {
    "q-crlf": (encoded("Hi\r\nX-Injected: pwned"), "Hi X-Injected: pwned"),
    "q-lf": (encoded("Hi\nX-Injected: pwned"), "Hi X-Injected: pwned"),
    "q-cr": (encoded("Hi\rX-Injected: pwned"), "Hi X-Injected: pwned"),
    "b-crlf-bcc": (encoded("Hi\r\nBcc: evil@x.example", encoding="b"),
                   "Hi Bcc: evil@x.example"),
    "nul": (encoded("a\x00b"), "a b"),
    "u2028": (encoded("a\u2028Bcc: evil@x.example"), "a Bcc: evil@x.example"),
    "u2029": (encoded("a\u2029b", encoding="b"), "a b"),
    "u0085": (encoded("a\x85Bcc: evil@x.example"), "a Bcc: evil@x.example"),
    "literal-separators": ("a\u2028b\x85c\x0bd\x1ce\x7ff", "a b c d e f"),
    "folded": ("Pothole\r\n on\r\n\tRoute 9", "Pothole on Route 9"),
    "folded-encoded": (encoded("Pot") + "\r\n " + encoded("hole"), "Pothole"),
    "double": (encoded(encoded("Hi\r\nX-Injected: pwned")), "Hi X-Injected: pwned"),
    "triple-b": (encoded(encoded(encoded("Hi\r\nBcc: e@x.example"), "utf-8", "b")),
                 "Hi Bcc: e@x.example"),
    "latin-1": (encoded("caf\xe9\r\nBcc: e@x.example", "iso-8859-1"), "caf\xe9 Bcc: e@x.example"),
    "mixed": (encoded("Stra\xdfe", "iso-8859-1") + " " + encoded("\u8def", "utf-8", "b") + " ok",
              "Stra\xdfe\u8def ok"),
    "unknown-charset": (encoded("ab\r\ncd", "x-unknown"), "ab cd"),
    "bidi-override": ("invoice\u202egnp.exe", "invoice gnp.exe"),
    "not-an-encoded-word": ("2+2 =? 4 and =?utf-8?q?broken", "2+2 =? 4 and =?utf-8?q?broken"),
    "quotes-and-commas": ('"Eve" <eve@evil.example>, Bcc: x', '"Eve" <eve@evil.example>, Bcc: x'),
}


@pytest.mark.parametrize(("raw", "expected"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_text_becomes_one_clean_line(raw: str, expected: str) -> None:
    text = header_text(raw)
    assert text == expected
    assert_one_clean_line(text)


def test_unmodified_email_would_inject_a_header() -> None:
    """Why header_text exists: without it, this Python emits the decoded CR/LF."""
    msg = EmailMessage()
    msg["Subject"] = encoded("Hi\r\nX-Injected: pwned")
    msg.set_content("body")
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    if parsed["X-Injected"] is None:  # a Python with the CVE-2024-6923 fix
        pytest.skip("this Python has the CVE-2024-6923 fix and quotes the decoded line "
                    "break itself; the test runs on Pythons without it (3.11.7, CI's)")
    assert parsed["X-Injected"] == "pwned"


def test_invalid_bytes_in_an_encoded_word_become_replacement_characters() -> None:
    assert header_text("=?utf-8?q?a=FF=FEb?=") == "a\ufffd\ufffdb"
    assert_one_clean_line(header_text("=?utf-8?q?a=FF=FEb?="))


def test_long_text_is_truncated_to_the_limit() -> None:
    word = "\u00e9" * 5000
    assert header_text(word) == "\u00e9" * 900
    assert header_text("x " * 2000, limit=11) == "x x x x x x"
    assert_one_clean_line(header_text(("Pothole " + encoded("\u8def\n")) * 300))


def test_an_encoded_word_cut_by_the_limit_stays_literal() -> None:
    text = header_text(encoded("Hi\r\nX-Injected: pwned"), limit=20)
    assert text == encoded("Hi\r\nX-Injected: pwned")[:20]
    assert_one_clean_line(text)


def test_ordinary_writing_is_kept() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467 family"  # ZWJ stays
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # ZWNJ stays
    for text in ["Pothole on Route 9", "Se\u00f1ora Mu\u00f1oz", "\u0645\u0631\u062d\u0628\u0627",
                 family, persian]:
        assert header_text(text) == text
        assert_one_clean_line(text)


def test_mailbox_keeps_a_hostile_name_inside_the_display_name() -> None:
    name = encoded("Eve") + " <eve@evil.example>, " + encoded("x\r\nBcc: e@evil.example")
    parsed = sent_and_read("s", name)
    assert parsed.keys() == HEADERS
    (address,) = parsed["From"].addresses
    assert address.addr_spec == "intake@examplia.gov"
    assert address.display_name == "Eve <eve@evil.example>, x Bcc: e@evil.example"


def test_mailbox_leaves_out_a_name_the_message_would_read_as_another_address() -> None:
    """The address parser takes an unterminated encoded word up to the end of the header."""
    name = "=?UTF16?Q?=00"
    assert header_text(name) == name  # the Subject's parser leaves it alone
    address = mailbox(name, AGENCY)
    assert (address.display_name, address.addr_spec) == ("", AGENCY)
    msg = new_message()
    msg["To"] = address
    msg.set_content("body")
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert [a.addr_spec for a in parsed["To"].addresses] == [AGENCY]
    assert mailbox(name, "intake@examplia.gov").display_name == name  # harmless there


def test_mailbox_refuses_anything_but_one_bare_address() -> None:
    for bad in ["a@b.example, c@d.example", "Eve <e@x.example>", "a@b.example\r\nBcc: c@d"]:
        with pytest.raises(ValueError, match="."):
            mailbox("name", bad)


SPECIAL = "\r\n\x00\x85\u2028\u2029\x7f\t \"'<>,;:@=?_\u202e\u200d\xe9\u8def\U0001f600"
PLAIN_TEXT = st.text(alphabet=st.sampled_from(SPECIAL) | st.characters(), max_size=60)
CHARSETS = st.sampled_from(["utf-8", "UTF-8", "iso-8859-1", "x-unknown", "utf-16"])


def _encode(text: str, charset: str, encoding: str) -> str:
    if charset == "iso-8859-1":
        text = text.encode("iso-8859-1", "replace").decode("iso-8859-1")
    return encoded(text, charset, encoding)


HEADER_TEXT = st.recursive(
    PLAIN_TEXT,
    lambda inner: st.builds(_encode, inner, CHARSETS, st.sampled_from("qbQB"))
    | st.lists(inner, max_size=4).map(" ".join)
    | st.lists(inner, max_size=4).map("".join)
    | st.lists(inner, max_size=3).map("\r\n ".join),
    max_leaves=8,
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HEADER_TEXT, st.integers(min_value=1, max_value=1000))
# Found by this test in CI: names whose quote and backslash, once folded, made the
# receiver read a group, two addresses, or the address inside the name.
@example('=?utf-8?q?0000000000000000000000000000=3A=3B=22=5C_0000000000000000000000000000000000'
         '0000000?=', 94)
@example('=?utf-8?q?00000000000000000000000000000=2C=22=5C_000000000000000000000000000000000000'
         '00000?=', 92)
@example('=?utf-8?q?000000000000000000000000000000=22=5C_0000000000000000000000000000000000000000'
         '0?=', 90)
def test_header_text_survives_the_round_trip_unchanged(raw: str, limit: int) -> None:
    text = header_text(raw, limit)
    assert len(text) <= limit
    assert header_text(text, limit) == text
    assert_one_clean_line(text)


PLAIN_WORD = st.text(alphabet="AZaz09'-Oo", min_size=1, max_size=12)
PLAIN_NAMES = st.lists(PLAIN_WORD, max_size=5).map(" ".join)
ATOM = st.text(alphabet="az09_%+-", min_size=1, max_size=10)
PLAIN_ADDRESSES = st.builds("{}{}@{}.{}".format, ATOM,
                            st.sampled_from(["", ".x", ".first.last"]),
                            st.sampled_from(["examplia", "dot-1", "a"]),
                            st.sampled_from(["gov", "example", "co.uk"]))


@settings(max_examples=500, deadline=None)
@given(PLAIN_NAMES, PLAIN_ADDRESSES)
@example("O'Brien-Smith", "relay+3f9a.b1@relay.examplia.gov")
@example("", "intake@examplia.gov")
def test_a_plain_name_and_address_skip_the_reread_and_read_back_the_same(
        name: str, addr: str) -> None:
    """The fast path of ``mailbox`` (no message built and parsed) gives what the re-read
    gives: the name and address as a receiver reads them back."""
    from intake.core.mail import headers

    address = mailbox(name, addr)
    assert (address.display_name, address.addr_spec) == (name, addr)
    if len(name) <= headers._PLAIN_LENGTH:
        assert headers._PLAIN_NAME.fullmatch(name) and headers._PLAIN_ADDRESS.fullmatch(addr)
    read = headers._reread(address)
    assert read is not None
    assert (read[0].split(), read[1]) == (name.split(), addr)


def test_names_with_more_than_plain_words_are_still_reread() -> None:
    """Quotes, commas, angle brackets, encoded words, non-ASCII: the slow path decides."""
    from intake.core.mail import headers

    for name in ['Eve "x" <e@x>', "a, b", "=?utf-8?q?x?=", "Se\u00f1ora Mu\u00f1oz", "a.b",
                 "x" * 41]:
        assert not (len(name) <= headers._PLAIN_LENGTH and headers._PLAIN_NAME.fullmatch(name))
    for addr in ['"quoted"@examplia.gov', "a@[127.0.0.1]", "jos\u00e9@examplia.gov",
                 "a..b@examplia.gov", "a@localhost"]:
        assert not headers._PLAIN_ADDRESS.fullmatch(addr)
