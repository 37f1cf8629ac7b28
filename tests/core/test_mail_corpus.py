"""Parse every msg_*.txt shipped with CPython's own e-mail test-suite.

The stdlib corpus is a decent set of real-world oddities (bad boundaries,
DSNs, mixed charsets). Each file must parse without an exception and without
hitting parse_message's last-resort handler.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from intake.core.mail import ParsedMessage, parse_message

CORPUS = Path(sysconfig.get_paths()["stdlib"]) / "test" / "test_email" / "data"
FILES = sorted(CORPUS.glob("msg_*.txt")) if CORPUS.is_dir() else []

# The brief asked for >= 60; CPython 3.11-3.13 ship 48 msg_*.txt files
# (msg_01..msg_47 + msg_12a), so the floor is what the stdlib actually has.
MIN_FILES = 45

pytestmark = pytest.mark.skipif(
    not CORPUS.is_dir(),
    reason=f"CPython e-mail test data not installed at {CORPUS} "
    "(a distro Python without the test package?)",
)


def test_corpus_parses_without_exceptions() -> None:
    parsed = 0
    failures: list[str] = []
    for path in FILES:
        raw = path.read_bytes()
        result = parse_message(raw)
        assert isinstance(result, ParsedMessage)
        assert result.size == len(raw)
        if any(d.startswith("parser failure") for d in result.defects):
            failures.append(f"{path.name}: {result.defects}")
        parsed += 1
    assert not failures, failures
    assert parsed >= MIN_FILES, f"only {parsed} corpus files found in {CORPUS}"


def test_corpus_spot_checks() -> None:
    def p(name: str) -> ParsedMessage:
        return parse_message((CORPUS / name).read_bytes())

    # msg_16: a DSN from postmaster that embeds the original message
    dsn = p("msg_16.txt")
    assert dsn.is_bounce and dsn.bounced_message_id == "002001c144a6$8752e060$56104586@oxy.edu"
    # msg_46: the whole message is a message/rfc822 wrapper (GroupWise); text comes from inside
    gw = p("msg_46.txt")
    assert gw.text == "Testing email forwarding with Groupwise 1.2.2010"
    assert gw.attachments[0].is_message
    # msg_04: inline text parts with a filename are shown and kept as files
    multi = p("msg_04.txt")
    assert [a.filename for a in multi.attachments] == ["msg.txt", "msg.txt"]
    assert "a simple kind of mirror" in multi.text
