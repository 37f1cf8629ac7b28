"""The values a parsed e-mail is made of: ``ParsedMessage`` and its addresses and attachments.

They live apart from the parser so that helpers reading a parsed message
(``threads.all_recipient_addresses``) need not import the parser itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["Address", "Attachment", "ParsedMessage"]


@dataclass(frozen=True)
class Address:
    name: str
    address: str


@dataclass(frozen=True)
class Attachment:
    filename: str
    declared_type: str
    sniffed_type: str
    size: int
    sha256: str
    content: bytes = field(repr=False)
    inline: bool
    content_id: str | None
    is_message: bool


@dataclass(frozen=True)
class ParsedMessage:
    subject: str
    from_: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    delivered_to: tuple[str, ...]
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    date: datetime | None
    text: str
    html_sanitized: str | None
    attachments: tuple[Attachment, ...]
    defects: tuple[str, ...]
    auto_submitted: str | None
    is_bounce: bool
    bounced_message_id: str | None
    record_tags: tuple[str, ...]
    size: int
    truncated: bool
