"""What the submitter is given instead of exposing them: relay addresses and status links.

A relay token stands for the submitter's address in every message an agency
sees (``reply+<token>@<relay domain>``); an access link gives the submitter a
private view of their entry. Only the SHA-256 of an access token is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from intake.core.relay import new_relay_token, relay_address
from intake.db.inserts import InsertBatch, PreparedInsert
from intake.db.models import (
    AccessLink,
    RelayToken,
    utcnow,
)


def relay_for(session: Session, entry_id: int, domain: str) -> str:
    """The entry's relay address, created on first use."""
    token = session.scalar(_RELAY_TOKEN_OF, {"e": entry_id})
    if token is None:
        # An entry's forward and its receipt may be sent at the same moment, each asking
        # for the address: one row wins, the other writer waits for it and reads it.
        _INSERT_RELAY_TOKEN.run(session.connection(), [
            {"token": new_relay_token(), "entry_id": entry_id, "created_at": utcnow()}])
        token = session.scalar(_RELAY_TOKEN_OF, {"e": entry_id})
    return relay_address(str(token), domain)


def relays_for(session: Session, entry_ids: Sequence[int], domain: str) -> dict[int, str]:
    """:func:`relay_for` of each entry: the existing addresses in one query; those of the
    entries without one yet (a forward is usually the first to ask) created in one
    INSERT and read in one more query."""
    if not entry_ids:
        return {}
    found = _relay_addresses(session, entry_ids, domain)
    missing = [entry_id for entry_id in entry_ids if entry_id not in found]
    if missing:
        now = utcnow()
        # As in relay_for: a writer that races us wins, and its token is the one read back.
        _INSERT_RELAY_TOKEN.run(session.connection(), [
            {"token": new_relay_token(), "entry_id": entry_id, "created_at": now}
            for entry_id in missing])
        found.update(_relay_addresses(session, missing, domain))
    return found


def _relay_addresses(session: Session, entry_ids: Sequence[int], domain: str
                     ) -> dict[int, str]:
    return {int(entry_id): relay_address(str(token), domain) for entry_id, token in
            session.execute(select(RelayToken.entry_id, RelayToken.token)
                            .where(RelayToken.entry_id.in_(list(entry_ids))))}


_RELAY_TOKEN_OF = select(RelayToken.token).where(RelayToken.entry_id == bindparam("e"))
_INSERT_RELAY_TOKEN = PreparedInsert(cast(Table, RelayToken.__table__),
                                     ("token", "entry_id", "created_at"),
                                     on_conflict_nothing=("entry_id",))


def entry_for_relay_token(session: Session, token: str) -> int | None:
    return session.scalar(select(RelayToken.entry_id).where(RelayToken.token == token.lower()))


def access_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_access_link(session: Session, entry_id: int) -> str:
    """A new private-link token for the submitter; shown once, stored only as a hash."""
    return create_access_links(session, [entry_id])[0]


def create_access_links(session: Session, entry_ids: Sequence[int]) -> list[str]:
    """:func:`create_access_link` for each entry id, in one INSERT."""
    batch = InsertBatch()
    tokens = create_access_links_in(batch, entry_ids)
    batch.run(session.connection())
    return tokens


def create_access_links_in(batch: InsertBatch, entry_ids: Sequence[int]) -> list[str]:
    """:func:`create_access_links` as part of ``batch``: the links work once it has run
    (and its transaction committed)."""
    tokens = new_access_tokens(len(entry_ids))
    now = utcnow()
    # Every confirmation page issues one: a prepared INSERT, no ORM flush.
    batch.add(ACCESS_LINKS_INSERT, [access_link_row(access_token_digest(token), entry_id, now)
                                    for token, entry_id in zip(tokens, entry_ids, strict=True)])
    return tokens


def new_access_tokens(count: int) -> list[str]:
    """Fresh status-link tokens (shown once, stored only as :func:`access_token_digest`)."""
    return [secrets.token_urlsafe(32) for _ in range(count)]


def access_link_row(digest: str, entry_id: int, now: datetime) -> dict[str, Any]:
    return {"token_sha256": digest, "entry_id": entry_id, "created_at": now}


ACCESS_LINKS_INSERT = PreparedInsert(cast(Table, AccessLink.__table__),
                                     ("token_sha256", "entry_id", "created_at"))


def entry_for_access_token(session: Session, token: str) -> int | None:
    if not token or len(token) > 128:
        return None
    return session.scalar(
        select(AccessLink.entry_id).where(AccessLink.token_sha256 == access_token_digest(token))
    )
