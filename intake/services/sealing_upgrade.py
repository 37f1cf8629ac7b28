"""Sealing the personal data written before sealing began (``intake db seal``).

Originals, thread replies' raw bytes and attachments' content stored before
revision 0008/0010 are still plaintext: the readers open them as they are
(their SHA-256 is the stored digest, see
:func:`intake.services.records.open_sealed`), but a database dump shows them
and deleting the entry's key cannot dispose of them. A migration has no key to
seal them with; this one-off pass, run by an operator, does.

It writes in batches, each its own transaction: interrupted, it leaves sealed
batches sealed and the rest as they were, and running it again finds only the
rest. Rows are recognised afresh inside each batch's transaction, so a row
sealed meanwhile (by another run) is left alone.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Column, Connection, Table, bindparam, select, update
from sqlalchemy.orm import Session

from intake.db import Database
from intake.db.append_only import guard_lifted
from intake.db.mail_models import QuarantinedMessage
from intake.db.models import Attachment, Original, ThreadMessage
from intake.services.mail_intake import seal_quarantined
from intake.services.records import seal_for_entry

log = logging.getLogger("intake.sealing_upgrade")

#: Rows sealed per transaction (and read per query while counting).
BATCH = 200


@dataclass(frozen=True)
class _Kind:
    """A column of sealed bytes, and how to tell its plaintext rows."""

    name: str
    table: Table
    data: str  # the column of the bytes
    append_only: bool  # its guard (migrations 0001, 0003) is lifted to update it

    def column(self, name: str) -> Column[Any]:
        return self.table.c[name]


#: Sealed under their entry's key; plaintext when their bytes' SHA-256 is the stored one.
ENTRY_KINDS = (
    _Kind("originals", cast(Table, Original.__table__), "raw", append_only=True),
    _Kind("thread messages", cast(Table, ThreadMessage.__table__), "raw", append_only=True),
    _Kind("attachments", cast(Table, Attachment.__table__), "content", append_only=True),
)
QUARANTINED = "quarantined messages"
_QUARANTINE = cast(Table, QuarantinedMessage.__table__)


@dataclass(frozen=True)
class SealReport:
    """The plaintext rows found, by kind, and how many of them this run sealed."""

    found: dict[str, int]
    sealed: int

    @property
    def total(self) -> int:
        return sum(self.found.values())


def seal_plaintext(db: Database, originals_key: bytes, *, apply: bool,
                   progress: Callable[[int, int], None] | None = None,
                   batch: int = BATCH) -> SealReport:
    """Count the rows still plaintext; with ``apply``, seal them ``batch`` rows a transaction.

    Originals, thread replies and attachments are sealed under their entry's key
    (an entry stored before revision 0008 is given one); quarantined messages each
    under a new key of their own. Nothing else in the rows changes. ``progress``
    is called with (sealed so far, total) after each batch.
    """
    found = {kind.name: _plaintext_ids(db, kind) for kind in ENTRY_KINDS}
    with db.engine.connect() as conn:
        found[QUARANTINED] = list(conn.execute(
            select(_QUARANTINE.c.id).where(_QUARANTINE.c.wrapped_key.is_(None))
            .order_by(_QUARANTINE.c.id)).scalars())
    counts = {name: len(ids) for name, ids in found.items()}
    sealed = 0
    if apply:
        total = sum(counts.values())
        for kind in ENTRY_KINDS:
            for ids in _chunks(found[kind.name], batch):
                with db.session() as session:
                    sealed += _seal_entry_rows(session, kind, ids, originals_key)
                if progress:
                    progress(sealed, total)
        for ids in _chunks(found[QUARANTINED], batch):
            with db.session() as session:
                sealed += _seal_quarantined(session.connection(), ids, originals_key)
            if progress:
                progress(sealed, total)
        log.info("sealed %d rows written before sealing began", sealed)
    return SealReport(counts, sealed)


def _chunks(ids: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _is_plaintext(data: bytes | None, digest: str | None) -> bool:
    """Bytes stored as received: their SHA-256 is the stored one, which no ciphertext's can be."""
    return (data is not None and digest is not None
            and hashlib.sha256(bytes(data)).hexdigest() == digest)


def _plaintext_ids(db: Database, kind: _Kind) -> list[int]:
    """The ids of ``kind``'s plaintext rows, read ``BATCH`` rows a query (bytes can be large)."""
    ids: list[int] = []
    row_id, data, digest = kind.column("id"), kind.column(kind.data), kind.column("sha256")
    page = (select(row_id, data, digest).where(row_id > bindparam("after"), data.is_not(None))
            .order_by(row_id).limit(BATCH))
    after = 0
    with db.engine.connect() as conn:
        while rows := conn.execute(page, {"after": after}).all():
            ids.extend(r[0] for r in rows if _is_plaintext(r[1], r[2]))
            after = rows[-1][0]
    return ids


def _seal_entry_rows(session: Session, kind: _Kind, ids: list[int],
                     originals_key: bytes) -> int:
    """Seal those of ``ids`` still plaintext, in the session's transaction; how many it sealed."""
    conn = session.connection()
    row_id, data = kind.column("id"), kind.column(kind.data)
    change = update(kind.table).where(row_id == bindparam("row_id")).values(
        {kind.data: bindparam("sealed")})
    # Lifted first: on PostgreSQL that locks the table, so the rows read next stay as read.
    with guard_lifted(conn, (kind.table.name,) if kind.append_only else ()):
        rows = conn.execute(select(row_id, kind.column("entry_id"), data, kind.column("sha256"))
                            .where(row_id.in_(ids))).all()
        values = [{"row_id": r[0], "sealed": seal_for_entry(session, r[1], originals_key,
                                                            bytes(r[2]), r[3])}
                  for r in rows if _is_plaintext(r[2], r[3])]
        if values:
            conn.execute(change, values)
    return len(values)


def _seal_quarantined(conn: Connection, ids: list[int], originals_key: bytes) -> int:
    """Seal those of ``ids`` still without a key, in ``conn``'s transaction; how many it sealed."""
    q = _QUARANTINE.c
    rows = conn.execute(select(q.id, q.raw, q.sha256)
                        .where(q.id.in_(ids), q.wrapped_key.is_(None))).all()
    values = []
    for row_id, raw, digest in rows:
        sealed, wrapped_key = seal_quarantined(bytes(raw), digest, originals_key)
        values.append({"row_id": row_id, "sealed": sealed, "wrapped": wrapped_key})
    if values:
        # The key's absence checked again: a row sealed since the SELECT is left alone.
        conn.execute(update(_QUARANTINE)
                     .where(q.id == bindparam("row_id"), q.wrapped_key.is_(None))
                     .values(raw=bindparam("sealed"), wrapped_key=bindparam("wrapped")),
                     values)
    return len(values)
