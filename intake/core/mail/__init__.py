"""E-mail parsing core: raw bytes in, ``ParsedMessage`` out; never raises.

Public API::

    from intake.core.mail import parse_message, ParsedMessage, Attachment, Address
    from intake.core.mail import all_recipient_addresses

See ``parse.py`` for the design notes (header fallbacks, embedded messages)
and ``autoreply.py`` for the list of ``auto_submitted`` reason strings.
"""

from .charset import decode_bytes, decode_encoded_words
from .html import html_to_text, sanitize_html
from .message import Address, Attachment, ParsedMessage
from .parse import parse_message, sanitize_filename
from .threads import all_recipient_addresses, find_record_tags

__all__ = [
    "Address",
    "Attachment",
    "ParsedMessage",
    "all_recipient_addresses",
    "decode_bytes",
    "decode_encoded_words",
    "find_record_tags",
    "html_to_text",
    "parse_message",
    "sanitize_filename",
    "sanitize_html",
]
