"""Tables of the staff inbox (accounts, access log, read markers). Filled by that work."""

from __future__ import annotations
