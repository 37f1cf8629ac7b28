"""``header_map`` reads only a message's header block (``_header_block``) instead of letting
the header parser split the whole body into lines: the fields it returns must be exactly
those of a parse of the whole message, for every way of ending lines and headers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.core.mail import automatic
from intake.core.mail.automatic import header_map

DATA = Path(__file__).resolve().parents[1] / "data" / "mail"
CORPUS = sorted(DATA.rglob("*.eml"))


def whole_message_map(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """What ``header_map`` returned when the parser was given all of ``raw``."""
    with monkeypatch.context() as m:
        m.setattr(automatic, "_header_block", lambda data: data)
        return header_map(raw)


def test_the_corpus_is_there() -> None:
    assert len(CORPUS) >= 50


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(DATA)))
def test_every_corpus_message_maps_as_a_whole_parse_does(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = path.read_bytes()
    assert header_map(raw) == whole_message_map(raw, monkeypatch)


ENDS = st.sampled_from([b"\r\n", b"\n", b"\r"])
NAMES = st.sampled_from([b"Subject", b"From", b"Auto-Submitted", b"X-Spam-Flag",
                         b"Precedence", b"List-Id", b"Return-Path", b"X-Odd name"])
VALUES = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A header block of fields, folded lines, lines that are no field and blank-looking
    lines, each line ended by CRLF, CR or LF, then maybe an empty line and a body that
    itself looks like headers."""
    raw = b""
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["field", "fold", "junk", "spaces"]))
        if kind == "field":
            raw += draw(NAMES) + b":" + draw(VALUES)
        elif kind == "fold":
            raw += draw(st.sampled_from([b" ", b"\t"])) + draw(VALUES)
        elif kind == "junk":
            raw += draw(VALUES)
        else:
            raw += b"  "
        raw += draw(ENDS)
    if draw(st.booleans()):
        raw += draw(ENDS)  # the empty line
    body_lines = draw(st.lists(st.tuples(NAMES, VALUES, ENDS), max_size=4))
    raw += b"".join(n + b": " + v + e for n, v, e in body_lines)
    return raw + draw(st.sampled_from([b"", b"\r", b"\n", b"tail"]))


@settings(max_examples=400, deadline=None)
@given(raw=messages())
def test_any_line_endings_map_as_a_whole_parse_does(raw: bytes) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert header_map(raw) == whole_message_map(raw, monkeypatch)


def test_the_body_is_not_read_as_header_fields() -> None:
    raw = (b"From: a@example.org\r\nSubject: hello\r\n\r\n"
           b"Auto-Submitted: auto-replied\r\nX-Spam-Flag: YES\r\n" + b"x" * 100_000)
    assert header_map(raw) == {"from": ["a@example.org"], "subject": ["hello"]}
    # The cut leaves the body out, which is what makes it cheaper.
    assert len(automatic._header_block(raw)) < 100
