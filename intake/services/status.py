"""The submitter's status page: the entry a private link opens.

The link's token is the only key; :func:`entry_for_link` turns it into the
entry (or None, which the page answers with a 404).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from intake.db.models import Entry
from intake.services.links import entry_for_access_token

__all__ = ["entry_for_link"]


def entry_for_link(session: Session, token: str) -> Entry | None:
    """The entry whose private link carries ``token``, or None for an unknown token."""
    entry_id = entry_for_access_token(session, token)
    return None if entry_id is None else session.get(Entry, entry_id)
