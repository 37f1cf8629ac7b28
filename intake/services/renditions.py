"""Renditions of stored entries: load what :func:`intake.core.rendition.render` needs.

Every view and every way out (forward, webhook, relayed reply, staff pages,
status page) asks here for the rendition of its audience instead of reading
the stored entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.core.consent import ConsentEvent
from intake.core.pii import Finding
from intake.core.publication import Mark
from intake.core.rendition import Audience, EntryValues, Release, Rendition, render
from intake.db.models import Entry, Submitter, ThreadMessage, utcnow
from intake.services.consent import (
    consent_events,
    consent_events_of,
    consent_states,
    disclosures_for,
)
from intake.services.findings import findings_by_place, findings_of
from intake.services.links import relay_for, relays_for

__all__ = ["Audience", "ConsentLine", "consent_lines", "entry_values", "render_entry",
           "render_many", "render_many_subjects"]


#: ``submitter=`` not given: read it.
_READ = object()


def entry_values(session: Session, entry: Entry, *, thread: bool = True,
                 extra: Mapping[str, str] | None = None,
                 submitter: Submitter | None | object = _READ) -> EntryValues:
    """The entry's texts (and its thread's, if ``thread``), fields and submitter
    (``submitter``: the entry's row, or None, as the caller already read it)."""
    if submitter is _READ:
        submitter = session.scalar(select(Submitter).where(Submitter.entry_id == entry.id))
    assert submitter is None or isinstance(submitter, Submitter)
    texts = {"subject": entry.subject, "body": entry.body}
    if thread:
        for m in session.scalars(select(ThreadMessage).where(ThreadMessage.entry_id == entry.id)):
            texts[f"thread:{m.id}:subject"] = m.subject
            texts[f"thread:{m.id}:body"] = m.body
    texts.update(extra or {})
    return EntryValues(
        texts=texts, fields=dict(entry.fields or {}),
        name=submitter.name if submitter else None,
        email=submitter.email if submitter else None,
        phone=submitter.phone if submitter else None,
        postal_address=submitter.postal_address if submitter else None,
    )


def _stored_findings(session: Session, entry_id: int,
                     by_place: Mapping[str, Sequence[Finding]] | None = None
                     ) -> dict[str, Sequence[Finding]]:
    found: dict[str, Sequence[Finding]] = dict(
        findings_by_place(session, entry_id) if by_place is None else by_place)
    # Subject and body were scanned when the entry was stored: no row means nothing found.
    found.setdefault("subject", [])
    found.setdefault("body", [])
    return found


def render_entry(session: Session, entry: Entry, audience: Audience, *,
                 agency_id: str | None, relay_domain: str, reveal: bool = False,
                 thread: bool = True, consents: Sequence[ConsentEvent] | None = None,
                 extra: Mapping[str, str] | None = None,
                 at: datetime | None = None, marks: Sequence[Mark] = (),
                 releases: Sequence[Release] = (),
                 submitter: Submitter | None | object = _READ,
                 relay_address: str | None = None,
                 findings: Mapping[str, Sequence[Finding]] | None = None) -> Rendition:
    """The rendition of ``entry`` for ``audience`` (``agency_id``: the agency it is for).

    ``consents`` overrides the recorded consent events (a send-time decision
    without identity passes none); ``extra`` adds texts by place (a relayed
    reply's body is scanned by the renderer itself); ``marks`` are the records
    officers' redaction marks and ``releases`` the values they released under law
    (``public`` and ``records_officer`` renditions). ``submitter`` (the entry's
    submitter row, or None), ``relay_address`` (its relay address) and ``findings``
    (its stored findings by place, :func:`~intake.services.findings.findings_by_place`)
    save the queries of a caller that already read them.
    """
    return render(
        entry_values(session, entry, thread=thread, extra=extra, submitter=submitter),
        audience,
        consents=consent_events(session, entry.id) if consents is None else consents,
        findings=_stored_findings(session, entry.id, findings), agency_id=agency_id,
        relay_address=relay_address or relay_for(session, entry.id, relay_domain),
        at=at or utcnow(), reveal=reveal, marks=marks, releases=releases,
    )


def render_many_subjects(session: Session, entries: Sequence[tuple[int, str]],
                         audience_of: Mapping[int, tuple[Audience, str | None]],
                         relay_domain: str) -> dict[int, str]:
    """The subject line of each ``(entry id, stored subject)`` for its viewer's audience."""
    ids = [entry_id for entry_id, _ in entries]
    if not ids:
        return {}
    # One query a table for the whole page (a page is 50 rows).
    submitters = {s.entry_id: s for s in session.scalars(
        select(Submitter).where(Submitter.entry_id.in_(ids)))}
    findings = findings_of(session, ids, "subject")
    consents = consent_events_of(session, ids)
    relays = relays_for(session, ids, relay_domain)
    now = utcnow()
    subjects: dict[int, str] = {}
    for entry_id, subject in entries:
        s = submitters.get(entry_id)
        audience, agency_id = audience_of[entry_id]
        rendition = render(
            EntryValues(texts={"subject": subject}, name=s.name if s else None,
                        email=s.email if s else None, phone=s.phone if s else None,
                        postal_address=s.postal_address if s else None),
            audience, consents=consents[entry_id], findings={"subject": findings[entry_id]},
            agency_id=agency_id, relay_address=relays[entry_id], at=now)
        subjects[entry_id] = rendition.subject
    return subjects


def render_many(session: Session, entries: Sequence[tuple[int, Mapping[str, str]]],
                audience_of: Mapping[int, tuple[Audience, str | None]],
                relay_domain: str) -> dict[int, Rendition]:
    """The rendition of each ``(entry id, its texts by place)`` (stored subject, body:
    places with stored findings) for its viewer's audience; one query a table."""
    ids = [entry_id for entry_id, _ in entries]
    if not ids:
        return {}
    places = sorted({place for _, texts in entries for place in texts})
    submitters = {s.entry_id: s for s in session.scalars(
        select(Submitter).where(Submitter.entry_id.in_(ids)))}
    findings = {place: findings_of(session, ids, place) for place in places}
    consents = consent_events_of(session, ids)
    relays = relays_for(session, ids, relay_domain)
    now = utcnow()
    out: dict[int, Rendition] = {}
    for entry_id, texts in entries:
        s = submitters.get(entry_id)
        audience, agency_id = audience_of[entry_id]
        out[entry_id] = render(
            EntryValues(texts=dict(texts), name=s.name if s else None,
                        email=s.email if s else None, phone=s.phone if s else None,
                        postal_address=s.postal_address if s else None),
            audience, consents=consents[entry_id],
            findings={place: findings[place][entry_id] for place in texts},
            agency_id=agency_id, relay_address=relays[entry_id], at=now)
    return out


@dataclass(frozen=True)
class ConsentLine:
    """One consent as its submitter sees it: what happened, in order, and where it stands."""

    purpose: str
    recipient_class: str
    live: ConsentEvent | None
    steps: tuple[tuple[str, datetime, str], ...]  # ("given"|"withdrawn"|"shared", when, with whom)
    shared_since_withdrawal: bool
    withdrawn_at: datetime | None


def consent_lines(session: Session, entry_id: int, agencies: Mapping[str, str]
                  ) -> list[ConsentLine]:
    """Each consent's grants, withdrawals and the identity disclosures it covered.

    From the consent events and the disclosure ledger, so the page says what
    happened ("shared with X on ...; withdrawn on ...; not shared since"),
    not only what is live now.
    """
    events = consent_events(session, entry_id)
    states = consent_states(session, entry_id)
    shared = [d for d in disclosures_for(session, entry_id)
              if d.allowed and d.include_identity and d.recipient_kind == "agency"]
    lines: list[ConsentLine] = []
    for state in states:
        cls = state.recipient_class
        own = [e for e in events if e.purpose == state.purpose and e.recipient_class == cls]

        def covers(agency_id: str, cls: str = cls) -> bool:
            return cls == "agency" or cls == f"agency:{agency_id}"

        steps: list[tuple[str, datetime, str]] = [
            ("given" if e.action == "grant" else "withdrawn", e.at, "") for e in own]
        steps += [("shared", d.at, agencies.get(d.recipient_id, d.recipient_name))
                  for d in shared if covers(d.recipient_id)]
        steps.sort(key=lambda step: step[1])
        withdrawn_at = own[-1].at if own and own[-1].action == "withdraw" else None
        late = withdrawn_at is not None and any(
            d.at > withdrawn_at for d in shared if covers(d.recipient_id))
        lines.append(ConsentLine(state.purpose.value, cls, state.live, tuple(steps), late,
                                 withdrawn_at))
    return lines
