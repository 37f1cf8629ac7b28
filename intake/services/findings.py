"""Where the PII detector found personal data in an entry: kind, place, detector, keyed hash.

Never the value: a finding says where to redact and lets the same value be
recognised elsewhere (the keyed hash), nothing more. :func:`store_findings`
is the one writer of ``pii_findings``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from intake.core.pii import Finding
from intake.db.inserts import InsertBatch, PreparedInsert
from intake.db.models import (
    PiiFinding,
)

# The detector over named texts needs no database: it is with the submissions' scan.
from intake.services.submissions import detect_places as detect_places


def store_findings(batch: InsertBatch,
                   found: Sequence[tuple[int, Mapping[str, Sequence[Finding]]]]) -> None:
    """Store where PII was found, as part of ``batch`` (the caller runs it): for each
    ``(entry id, place -> findings)``, kind, place, detector, keyed hash, confidence and
    evidence; never the value. The one writer of ``pii_findings``."""
    batch.add(FINDINGS_INSERT, [
        {"entry_id": entry_id, "place": place, "kind": f.kind, "start": f.start,
         "end": f.end, "detector": f.detector, "severity": f.severity,
         "value_hash": f.value_hash, "confidence": f.confidence,
         "evidence": " ".join(f.evidence)[:255]}
        for entry_id, findings in found for place, places in findings.items() for f in places])


FINDINGS_INSERT = PreparedInsert(cast(Table, PiiFinding.__table__), (
    "entry_id", "place", "kind", "start", "end", "detector", "severity", "value_hash",
    "confidence", "evidence"))


def _finding(r: PiiFinding) -> Finding:
    return Finding(kind=r.kind, start=r.start, end=r.end, detector=r.detector,
                   severity=r.severity, value_hash=r.value_hash, confidence=r.confidence,
                   evidence=tuple(r.evidence.split()))


def findings_for(session: Session, entry_id: int, place: str) -> list[Finding]:
    rows = session.scalars(select(PiiFinding).where(PiiFinding.entry_id == entry_id,
                                                    PiiFinding.place == place)
                           .order_by(PiiFinding.start))
    return [_finding(r) for r in rows]


def findings_by_place(session: Session, entry_id: int) -> dict[str, list[Finding]]:
    """All of an entry's findings in one query, grouped by place, in text order."""
    grouped: dict[str, list[Finding]] = {}
    rows = session.scalars(select(PiiFinding).where(PiiFinding.entry_id == entry_id)
                           .order_by(PiiFinding.place, PiiFinding.start))
    for r in rows:
        grouped.setdefault(r.place, []).append(_finding(r))
    return grouped


def findings_by_place_of(session: Session, entry_ids: Sequence[int]
                         ) -> dict[int, dict[str, list[Finding]]]:
    """:func:`findings_by_place` of each entry, in one query."""
    grouped: dict[int, dict[str, list[Finding]]] = {entry_id: {} for entry_id in entry_ids}
    if grouped:
        for r in session.scalars(select(PiiFinding)
                                 .where(PiiFinding.entry_id.in_(list(grouped)))
                                 .order_by(PiiFinding.entry_id, PiiFinding.place,
                                           PiiFinding.start)):
            grouped[r.entry_id].setdefault(r.place, []).append(_finding(r))
    return grouped


def findings_of(session: Session, entry_ids: Sequence[int], place: str
                ) -> dict[int, list[Finding]]:
    """:func:`findings_for` of each entry at ``place``, in one query."""
    found: dict[int, list[Finding]] = {entry_id: [] for entry_id in entry_ids}
    for r in session.scalars(select(PiiFinding).where(PiiFinding.entry_id.in_(list(entry_ids)),
                                                      PiiFinding.place == place)
                             .order_by(PiiFinding.entry_id, PiiFinding.start)):
        found[r.entry_id].append(_finding(r))
    return found
