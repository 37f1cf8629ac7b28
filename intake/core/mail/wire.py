"""Outgoing mail as it goes on the wire: valid for any SMTP server, or refused here.

RFC 5321 (section 4.5.3.1.6) limits a line to 998 octets before its CRLF, and
a strict server (Postfix with ``smtpd_forbid_bare_newline``, aiosmtpd) answers
"500 Line too long" or refuses bare line feeds. Every message intake sends is
flattened by :func:`wire_bytes` (``email`` with the ``SMTP`` policy: CRLF line
ends, headers folded) and checked; :func:`attach` adds an attachment so that
its part always flattens that way, including an attached e-mail
(``message/rfc822``, as in bounces and forwarded citizen mail).
"""

from __future__ import annotations

import copy
import email.parser
import io
import re
from email.generator import BytesGenerator
from email.message import EmailMessage

from intake.core.mail.policies import SMTP, SMTPUTF8

__all__ = ["MAX_LINE_OCTETS", "NotWireSafe", "attach", "wire_bytes", "wire_problems"]

#: The longest line SMTP allows, without its CRLF (RFC 5321 section 4.5.3.1.6).
MAX_LINE_OCTETS = 998

_LINE_ENDS = re.compile(rb"\r\n|\r|\n")


class NotWireSafe(ValueError):
    """The flattened message would break SMTP (bare CR or LF, a line over 998 octets)."""


def wire_problems(raw: bytes) -> list[str]:
    """What in ``raw`` breaks SMTP: bare CR or LF, lines over 998 octets; [] if nothing."""
    problems = []
    if re.search(rb"\r(?!\n)|(?<!\r)\n", raw):
        problems.append("a bare CR or LF")
    longest = max((len(line) for line in raw.split(b"\r\n")), default=0)
    if longest > MAX_LINE_OCTETS:
        problems.append(f"a line of {longest} octets")
    if raw and not raw.endswith(b"\r\n"):
        problems.append("no CRLF at the end")
    return problems


def wire_bytes(message: EmailMessage, *, utf8: bool = False) -> bytes:
    """The bytes an SMTP server receives for ``message``: no Bcc, CRLF lines; with
    ``utf8`` (an SMTPUTF8 transaction, RFC 6531) headers in UTF-8 rather than encoded
    words.

    Raises:
        NotWireSafe: if they would break SMTP (a bug in how the message was built,
            never something to send and hope).
    """
    outgoing = copy.copy(message)
    del outgoing["Bcc"]
    del outgoing["Resent-Bcc"]
    buffer = io.BytesIO()
    policy = SMTPUTF8 if utf8 else SMTP
    BytesGenerator(buffer, False, policy=policy).flatten(outgoing, linesep="\r\n")
    raw = buffer.getvalue()
    problems = wire_problems(raw)
    if problems:
        raise NotWireSafe("the message is not valid on the wire: " + ", ".join(problems))
    return raw


def attach(message: EmailMessage, content: bytes, content_type: str, filename: str) -> None:
    """Add ``content`` as an attachment named ``filename`` that flattens valid for SMTP.

    Ordinary content is base64 (CRLF, 76 characters a line). An attached e-mail
    (``message/rfc822``) may not be base64 (RFC 2046 section 5.2.1): its line ends
    become CRLF and it is attached as it is (7bit or 8bit) when every line fits;
    one whose lines do not fit (or that does not parse) is attached whole as
    ``application/octet-stream`` in base64, so nothing of it is changed or lost.
    Other ``message/*`` and ``multipart/*`` types, which cannot carry raw bytes,
    go the same way.
    """
    maintype, _, subtype = content_type.lower().partition("/")
    maintype, subtype = maintype or "application", subtype or "octet-stream"
    if (maintype, subtype) == ("message", "rfc822"):
        inner = _attachable_message(content)
        if inner is not None:
            message.add_attachment(inner, filename=filename,
                                   cte="7bit" if content.isascii() else "8bit")
            return
    if maintype in ("message", "multipart"):
        maintype, subtype = "application", "octet-stream"
    message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename,
                           cte="base64")


def _attachable_message(content: bytes) -> EmailMessage | None:
    """``content`` parsed as an e-mail with CRLF line ends, if it can travel as it is."""
    normalised = _LINE_ENDS.sub(b"\r\n", content)
    if not normalised.endswith(b"\r\n"):
        normalised += b"\r\n"
    if any(len(line) > MAX_LINE_OCTETS for line in normalised.split(b"\r\n")):
        return None
    if b"\x00" in normalised:
        return None
    parsed = email.parser.BytesParser(policy=SMTP).parsebytes(normalised)
    if parsed.defects or not isinstance(parsed, EmailMessage) or not parsed.keys():
        return None
    # Check it flattens as it must: the generator refolds only long headers.
    buffer = io.BytesIO()
    try:
        BytesGenerator(buffer, False, policy=SMTP).flatten(parsed, linesep="\r\n")
    except (ValueError, TypeError, LookupError):
        return None
    return parsed if not wire_problems(buffer.getvalue()) else None
