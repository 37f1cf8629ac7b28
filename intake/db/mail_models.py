"""Tables of the e-mail intake (mailbox state, quarantine). Filled by that work."""

from __future__ import annotations
