"""How an attempt to send something out failed: worth retrying, or never."""

from __future__ import annotations


class PermanentError(Exception):
    """A failure that retrying cannot fix (e.g. SMTP 5xx): dead-letter at once."""


class TransientError(Exception):
    """A failure worth retrying later (e.g. connection refused)."""
