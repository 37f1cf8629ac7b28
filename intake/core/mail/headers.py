"""Header values for outgoing mail, built from text the public wrote.

``email`` (policy ``default``/``SMTP``) decodes RFC 2047 encoded words when a
header is set, and this Python (before the CVE-2024-6923 fix) emits a decoded
CR/LF as a line break: ``=?UTF-8?Q?Hi=0D=0AX-Injected:_x?=`` would become a
header of its own. Other line separators (U+2028, U+0085) make the same call
raise, which would dead-letter the delivery. So every header value made from
public text goes through :func:`header_text` first: it decodes with the very
parser the outgoing message applies, until nothing changes, then removes what
may not be in a one-line header. The result is a fixed point: setting it as a
header value and parsing the serialised message gives back the same text.
"""

from __future__ import annotations

import re
import unicodedata
from email import message_from_bytes
from email.headerregistry import Address
from email.message import EmailMessage

from intake.core.mail.policies import DEFAULT, SMTP

# Decoding shrinks the text (an encoded word is longer than what it decodes to),
# so a few rounds reach the fixed point; the bound only guards against surprises.
_MAX_ROUNDS = 8

# Bidirectional embeddings, overrides and isolates (and the marks) can make a
# subject display as something else than it is; other format characters (ZWJ,
# ZWNJ) are part of ordinary writing and stay.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069\ufeff")

# Unicode categories removed: controls (all of C0, DEL, C1 including U+0085),
# line and paragraph separators.
_REMOVED_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def _decoded(value: str) -> str:
    """Decode encoded words exactly as an outgoing Subject header would."""
    return str(SMTP.header_factory("subject", value))


def _one_line(value: str) -> str:
    chars = []
    for c in value:
        category = unicodedata.category(c)
        if category in _REMOVED_CATEGORIES or c in _BIDI_CONTROLS:
            chars.append(" ")
        elif category == "Cs":  # undecodable bytes (surrogate escapes) cannot be encoded
            chars.append("\ufffd")
        else:
            chars.append(c)
    return " ".join("".join(chars).split())


def header_text(value: str, limit: int = 900) -> str:
    """Return ``value`` as one clean header line of at most ``limit`` characters.

    Args:
        value: text from the public (a subject, a name, a file name), maybe with
            RFC 2047 encoded words, control characters and line breaks.
        limit: the most characters kept.

    Returns:
        The decoded text without control, line-separator or bidi control
        characters, whitespace collapsed, truncated; setting it as a header and
        parsing the serialised message gives back exactly this text.
    """
    text = _one_line(str(value))[:limit].rstrip()
    for _ in range(_MAX_ROUNDS):
        decoded = _decoded(text)
        if decoded == text:
            return text
        text = _one_line(decoded)[:limit].rstrip()
    # Still changing (never seen): break what the parser keeps taking for encoded words.
    return text.replace("=?", "= ?")


def mailbox(display_name: str, addr_spec: str) -> Address:
    """Return an address object with a clean display name for From, To or Reply-To.

    An ``Address`` object, unlike a ``formataddr`` string, keeps the name and the
    address apart. The message still re-parses and folds it on the way out; should
    the receiving side read another name (beyond the whitespace CPython's folder
    moves) or another address, the name is left out rather than sent as something
    else. Long names with quotes and backslashes did: folded, ``"0…:;\\" 0…"``
    came back as a group, two addresses, or the address inside the name.

    Raises:
        ValueError: if ``addr_spec`` is not one bare address.
    """
    address = Address(display_name=header_text(display_name, 200), addr_spec=addr_spec)
    if len(address.display_name) <= _PLAIN_LENGTH and _PLAIN_NAME.fullmatch(
            address.display_name) and _PLAIN_ADDRESS.fullmatch(addr_spec):
        # Words of letters and digits and an everyday address: nothing in them to quote,
        # encode or fold differently, so they are read back as they are (the re-read
        # of the others costs a message built and parsed; tests/core hold the two
        # paths equal).
        return address
    read = _reread(address)
    if read is None or read[1] != address.addr_spec \
            or read[0].split() != address.display_name.split():
        return Address(addr_spec=addr_spec)
    return address


# What skips the re-read: an empty name or ASCII words of letters, digits, hyphens and
# apostrophes (atext, no quoting), short enough that the header line never folds; an
# address of the same plain kind (dot-atom local part and domain).
_PLAIN_LENGTH = 40
_PLAIN_NAME = re.compile(r"(?:[A-Za-z0-9'-]+(?: [A-Za-z0-9'-]+)*)?")
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
                            r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def _reread(address: Address) -> tuple[str, str] | None:
    """The (display name, address) a receiver reads from the header as sent: folded by
    the SMTP policy, flattened, and parsed again; None if it is not one address."""
    try:
        message = EmailMessage(policy=SMTP)
        message["To"] = address
        sent = message.as_bytes()
        found = message_from_bytes(sent, policy=DEFAULT)["To"].addresses
    except Exception:  # noqa: BLE001 - the stdlib's errors on hostile names are no closed set
        return None
    if len(found) != 1:
        return None
    return found[0].display_name, found[0].addr_spec


def new_message() -> EmailMessage:
    """Return an empty outgoing message (policy SMTP: CRLF line ends, RFC-conform folding)."""
    return EmailMessage(policy=SMTP)
