"""Delivery: forward entries to agencies, acknowledge submitters, relay the conversation.

Every outgoing message starts as a disclosure-ledger row written by the gate
(:func:`intake.services.gate.disclose`) together with its work item; the
handlers here check it again at send time (:func:`gate.recheck`), build
the message from plain strings (never from parsed inbound header objects),
send it through the gate (:func:`gate.send_email`, :func:`gate.post_webhook`:
only under the allowed send-time decision) with the senders they were given
(:class:`gate.Senders`: real ones from the settings, in-memory ones in tests),
and record the Message-ID.

The steps, one class each, wired together by :class:`Delivery`:

- :class:`DeliveryPlanner` turns a routing decision into gate requests (in
  the routing transaction): a forward per agency and the submitter's receipt;
- :class:`Forwarder` forwards an entry to an agency (e-mail or webhook);
- :class:`Acknowledger` sends the submitter's receipt (rate-limited);
- :class:`ThreadRelay` passes the conversation on: decides a relayed message
  through the gate, then sends it (or a staff reply) to the other side;
- :class:`Notices` tells staff about their work, with no personal data of the
  citizen: the assignment notice (the record number and a link to the staff
  page) and each agency's daily "new entries" digest (record numbers and links;
  :func:`plan_digests` queues it);
- :class:`Outbox` holds what they share: the send-time check, "already
  sent?", building and sending a message, recording it.

Exactly once, as far as SMTP allows: each work item has a fixed Message-ID,
so a retry is recognisably the same message; the send is skipped when that
Message-ID is already recorded; the record and the "done" mark commit
together right after the server accepted the message. A worker killed in the
instant between the server's "250 OK" and that commit makes the retry send
the same message (same Message-ID) again: SMTP has no way to ask whether a
message was accepted, so that window can be made small, not closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from importlib import resources
from typing import Any, cast

import jinja2
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from intake.core.consent import ConsentEvent, Purpose
from intake.core.disclosure import (
    ANONYMOUS_NAME,
    OutgoingMessage,
    Recipient,
    render_for_recipient,
)
from intake.core.disclosure import Decision as GateDecision
from intake.core.disclosure import Submitter as SubmitterView
from intake.core.failures import PermanentError
from intake.core.mail.headers import header_text, mailbox, new_message
from intake.core.mail.policies import recurring_address_header
from intake.core.mail.wire import attach
from intake.core.pii import Finding
from intake.core.rendition import Audience, Rendition
from intake.core.routing import Decision as RoutingOutcome
from intake.db.models import (
    Attachment,
    Disclosure,
    Entry,
    Event,
    SentMessage,
    Submitter,
    ThreadMessage,
    WorkItem,
    utcnow,
)
from intake.services import automail, gate, records, renditions
from intake.services.circuits import CircuitPolicy, read_circuits
from intake.services.citizen_mail import N_, CitizenMail, render_citizen, translate
from intake.services.consent import consent_events, consent_states
from intake.services.findings import findings_by_place_of
from intake.services.links import create_access_link, relay_for, relays_for
from intake.services.routing import RoutedEntry, RulesProvider
from intake.settings import Settings

log = logging.getLogger("intake.delivery")

# What the citizen's messages say outside their templates (translated when sent).
ACK_SUBJECT = N_("We received your message")
STATE_NAME = N_("State of Examplia")
ANY_AGENCY = N_("any state agency")

Handler = Callable[[Session, WorkItem], None]

_INSERT_SENT = insert(cast(Table, SentMessage.__table__))
_INSERT_EVENT = insert(cast(Table, Event.__table__))

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(resources.files("intake") / "templates" / "email")),
    autoescape=False,  # noqa: S701 - plain-text e-mail, never rendered as HTML
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def message_id_for(kind: str, item_id: int, record_number: str, domain: str) -> str:
    """Fixed per work item: a retry sends the same Message-ID."""
    return f"<{kind}.{item_id}.{record_number.lower()}@{domain}>"


def tagged_subject(record_number: str, subject: str) -> str:
    """The subject, decoded and cleaned (:func:`header_text`), with the record tag once."""
    tag = f"[#{record_number}]"
    subject = header_text(subject, 400)
    return subject if tag in subject else f"{tag} {subject}".strip()


def _submitter(session: Session, entry_id: int) -> Submitter | None:
    return session.scalar(select(Submitter).where(Submitter.entry_id == entry_id))


def _submitter_view(submitter: Submitter | None) -> SubmitterView:
    """What the gate's renderer must find nowhere in a message without identity."""
    return SubmitterView(name=submitter.name if submitter else None,
                         email=submitter.email if submitter else None)


# -- planning (called in the routing transaction) ------------------------------------------


class DeliveryPlanner:
    """Turns routing decisions into the gate's requests: forwards and receipts."""

    def __init__(self, rules: RulesProvider) -> None:
        self.rules = rules

    def plan(self, session: Session, entry: RoutedEntry, decision: RoutingOutcome,
             decision_id: int) -> None:
        """Create the deliveries for a routing decision through the gate.

        One forward per agency (route and cc) and the submitter's receipt, in
        one call of :func:`gate.disclose` (the ledger rows and the work items).
        """
        self.plan_many(session, [(entry, decision, decision_id)])

    def plan_many(self, session: Session,
                  routed: list[tuple[RoutedEntry, RoutingOutcome, int]]) -> None:
        """:meth:`plan` for a batch of routed entries, in one call of the gate."""
        gate.disclose(session, [request for entry, decision, decision_id in routed
                                for request in self._requests(session, entry, decision,
                                                              decision_id)])

    def _requests(self, session: Session, entry: RoutedEntry, decision: RoutingOutcome,
                  decision_id: int) -> list[gate.DisclosureRequest]:
        category = entry.fields.get("_auto_category")
        if category:
            # Automatic mail (auto-reply, bounce, bulk, spam, challenge) is kept as a
            # record and shown to staff; nobody is sent anything about it.
            session.add(Event(entry_id=entry.id, kind="delivery-skipped",
                              detail={"reason": "automatic-mail", "category": str(category)}))
            session.add(Event(entry_id=entry.id, kind="acknowledgement-skipped",
                              detail={"reason": "auto-submitted"}))
            return []
        agencies = self.rules.current().agencies
        requests: list[gate.DisclosureRequest] = []
        for agency_id in (decision.route_to, *decision.cc):
            agency = agencies.get(agency_id)
            if agency is None:  # the rules loader guarantees it; stay safe anyway
                log.error("entry %s: agency %s not in rules; not delivered", entry.id, agency_id)
                continue
            requests.append(gate.DisclosureRequest(
                entry_id=entry.id,
                recipient=Recipient(kind="agency", id=agency.id, name=agency.name,
                                    address=agency.email or agency.webhook or ""),
                purpose=Purpose.REDIRECT,
                nature="forward" if agency_id == decision.route_to else "forward-cc",
                rule_id=decision.decided_by, rules_sha256=decision.rules_sha256,
                work_kind="deliver",
                dedupe_key=f"deliver:{entry.id}:{agency.id}:{decision_id}",
            ))
        acknowledgement = self._acknowledgement(session, entry.id, entry.fields,
                                                entry.submitter_name, entry.submitter_email)
        if acknowledgement is not None:
            requests.append(acknowledgement)
        return requests

    def _acknowledgement(self, session: Session, entry_id: int, fields: dict[str, Any],
                         name: str | None, email: str | None
                         ) -> gate.DisclosureRequest | None:
        """The receipt to the submitter, if they gave an address and are not a robot."""
        if not email:
            return None
        if fields.get("_auto_submitted"):
            # Never acknowledge an auto-reply or a bounce: that is how loops start.
            session.add(Event(entry_id=entry_id, kind="acknowledgement-skipped",
                              detail={"reason": "auto-submitted"}))
            return None
        return gate.DisclosureRequest(
            entry_id=entry_id,
            recipient=Recipient(kind="submitter", id=f"entry:{entry_id}",
                                name=name or "", address=email),
            purpose=Purpose.RESPOND, nature="acknowledge", work_kind="acknowledge",
            dedupe_key=f"acknowledge:{entry_id}",
        )


# -- what every send shares ----------------------------------------------------------------


class Outbox:
    """The steps every handler's send shares, bound to the settings and the senders."""

    def __init__(self, settings: Settings, senders: gate.Senders) -> None:
        self.settings = settings
        self.senders = senders
        self.circuit = CircuitPolicy.from_settings(settings)

    def ledger(self, session: Session, item: WorkItem, *, fallback: bool = False,
               inputs: gate.RecheckInputs | None = None
               ) -> tuple[Disclosure, GateDecision] | None:
        """The item's ledger row and the send-time decision; None if it must not be sent.
        ``inputs``: the gate's inputs for it, read beforehand with a batch's."""
        disclosure_id = item.payload.get("disclosure_id")
        if not isinstance(disclosure_id, int):
            raise PermanentError("work item has no disclosure ledger row")
        # Held while the gate rechecks: its session.get finds it in the identity map
        # instead of reading it again (and so does the one below).
        held = inputs.row if inputs is not None else session.get(Disclosure, disclosure_id)
        decision = gate.recheck(session, disclosure_id, inputs=inputs)
        if not decision.allowed and decision.reason == "consent-withdrawn" and fallback:
            redone = self._disclose_without_identity(session, disclosure_id)
            if isinstance(redone, tuple):
                return redone
            decision = redone
        if not decision.allowed:
            session.add(Event(entry_id=item.entry_id, kind="delivery-stopped",
                              detail={"reason": decision.reason, "work_item": item.id}))
            log.info("work item %s stopped at send time: %s", item.id, decision.reason)
            return None
        row = held if inputs is not None else session.get(Disclosure, disclosure_id)
        assert row is not None and (held is None or row is held)
        return row, decision

    def _disclose_without_identity(self, session: Session, disclosure_id: int
                                   ) -> tuple[Disclosure, GateDecision] | GateDecision:
        """The submitter withdrew consent to share their identity after this was queued:
        the agency still gets the content (notice basis), without identity, under a new
        ledger row of its own; the refusal if even that is not allowed."""
        old = session.get(Disclosure, disclosure_id)
        assert old is not None
        [redo] = gate.disclose(session, [gate.DisclosureRequest(
            entry_id=old.entry_id, purpose=Purpose(old.purpose),
            recipient=Recipient(kind=old.recipient_kind, id=old.recipient_id,
                                name=old.recipient_name, address=old.recipient_address),
            nature=old.nature, rule_id=old.rule_id, rules_sha256=old.rules_sha256,
            actor="send-time-check")])
        if redo.decision.allowed and not redo.decision.include_identity:
            new_row = session.get(Disclosure, redo.disclosure_id)
            assert new_row is not None
            return new_row, redo.decision
        return redo.decision

    def entry(self, session: Session, item: WorkItem) -> Entry:
        entry = session.get(Entry, item.entry_id) if item.entry_id is not None else None
        if entry is None:
            raise PermanentError("work item without an entry")
        return entry

    def message_id(self, kind: str, item: WorkItem, entry: Entry) -> str:
        return message_id_for(kind, item.id, entry.record_number, self.settings.relay_domain)

    def already_sent(self, session: Session, message_id: str) -> bool:
        return session.scalar(
            select(SentMessage.id).where(SentMessage.message_id == message_id)
        ) is not None

    def record_sent(self, session: Session, item: WorkItem, entry: Entry, message_id: str,
                    kind: str, recipient_kind: str, recipient_id: str) -> None:
        # A plain INSERT now (no ORM object for the flush to work out at commit): the row
        # commits with the item's "done" mark all the same.
        session.connection().execute(_INSERT_SENT, {
            "message_id": message_id, "entry_id": entry.id, "work_item_id": item.id,
            "kind": kind, "recipient_kind": recipient_kind, "recipient_id": recipient_id,
            "created_at": utcnow()})

    def relay_address(self, session: Session, entry_id: int) -> str:
        return relay_for(session, entry_id, self.settings.relay_domain)

    def email(self, *, to: str, subject: str, body: str, message_id: str, reply_to: str,
              from_name: str, auto: str, record_number: str,
              sender: str | None = None, to_name: str = "",
              html: str | None = None, to_agency: bool = False) -> EmailMessage:
        """A message whose headers are address objects and :func:`header_text` lines.

        ``to``, ``reply_to`` and ``sender`` are bare addresses: anything else is refused
        (ValueError) rather than parsed into other recipients. ``to_agency``: ``to`` is an
        agency's, whose parsed header is kept for the next forward (never a citizen's).
        """
        msg = new_message()
        msg["From"] = mailbox(from_name, sender or self.settings.mail_from)
        recipient = mailbox(to_name, to)
        msg["To"] = recurring_address_header("To", recipient) if to_agency else recipient
        msg["Reply-To"] = mailbox("", reply_to)
        msg["Subject"] = header_text(subject)
        msg["Message-ID"] = message_id
        msg["Date"] = formatdate(localtime=False)
        # RFC 3834: automatic messages say so, so that robots don't answer them.
        if auto != "no":
            msg["Auto-Submitted"] = auto
            msg["X-Auto-Response-Suppress"] = "All"
        if record_number:
            msg["X-Intake-Record"] = header_text(record_number)
        msg.set_content(body)
        if html is not None:
            # multipart/alternative: the citizen's mail program shows the part it prefers.
            msg.add_alternative(html, subtype="html")
        return msg

    def require_mail(self) -> None:
        """Fails (to be retried) before building mail that cannot be sent yet."""
        if self.senders.mail is None:
            raise gate.mail_waits()

    def send(self, session: Session, decision: GateDecision, msg: EmailMessage,
             recipients: list[str], sender: str | None = None, *,
             circuits: Mapping[str, Any] | None = None) -> None:
        """Through the gate; ``circuits``: the circuit rows read with a batch's reads."""
        gate.send_email(decision, self.senders.mail, msg,
                        envelope_from=sender or self.settings.mail_from, recipients=recipients,
                        breaker=gate.Breaker(session, self.circuit, circuits))

    def post(self, session: Session, decision: GateDecision, url: str,
             payload: dict[str, Any], message_id: str, *,
             circuits: Mapping[str, Any] | None = None) -> None:
        gate.post_webhook(decision, self.senders.webhook, url, payload,
                          idempotency_key=message_id.strip("<>"),
                          breaker=gate.Breaker(session, self.circuit, circuits))


class _Step:
    """A sending step: the shared :class:`Outbox`, the settings and the rules."""

    def __init__(self, outbox: Outbox, rules: RulesProvider) -> None:
        self.outbox = outbox
        self.settings = outbox.settings
        self.rules = rules


# -- forwarding to agencies ----------------------------------------------------------------


@dataclass(frozen=True)
class ForwardReads:
    """What forwarding a list of deliver items reads, one query a table (:meth:`Forwarder.read`):
    each item's ledger row (append-only), its entry with the entry's submitter, stored
    findings, relay address and attachments, the Message-IDs already recorded, and the
    circuits of their destinations. Not the consent events: the gate reads them for each
    item as it is sent (:meth:`Forwarder.send`), so a consent withdrawn while a batch is
    sent holds for every item not yet sent."""

    ledger: dict[int, Disclosure]
    entries: dict[int, Entry]
    submitters: dict[int, Submitter]
    findings: dict[int, dict[str, list[Finding]]]
    relays: dict[int, str]
    attachments: dict[int, list[Any]]
    sent: frozenset[str]
    circuits: dict[str, Any]


class Forwarder(_Step):
    """Forwards an entry to an agency: the agency's rendition, by e-mail or webhook.

    The deliver items due together are claimed together (:class:`intake.jobs.system.
    Together`): :meth:`read` reads for all of them at once, :meth:`send` sends one with
    those reads, and commits alone. :meth:`deliver` is the batch of one.
    """

    def deliver(self, session: Session, item: WorkItem) -> None:
        """Forward an entry to an agency (e-mail or webhook)."""
        self.send(session, item, self.read(session, [item]))

    def read(self, session: Session, items: list[WorkItem]) -> ForwardReads:
        """What forwarding ``items`` needs, one query a table."""
        disclosure_ids = sorted({i for i in (item.payload.get("disclosure_id") for item in items)
                                 if isinstance(i, int)})
        entry_ids = sorted({item.entry_id for item in items if item.entry_id is not None})
        ledger = {row.id: row for row in session.scalars(
            select(Disclosure).where(Disclosure.id.in_(disclosure_ids)))} if disclosure_ids \
            else {}
        entries = {entry.id: entry for entry in session.scalars(
            select(Entry).where(Entry.id.in_(entry_ids)))} if entry_ids else {}
        entry_ids = sorted(entries)
        message_ids = [self.outbox.message_id("forward", item, entries[item.entry_id])
                       for item in items if item.entry_id in entries]
        sent = frozenset(session.scalars(select(SentMessage.message_id).where(
            SentMessage.message_id.in_(message_ids)))) if message_ids else frozenset()
        agencies = self.rules.current().agencies
        hooks = sorted({agencies[row.recipient_id].webhook or "" for row in ledger.values()
                        if row.recipient_id in agencies} - {""})
        return ForwardReads(
            ledger=ledger, entries=entries,
            submitters={s.entry_id: s for s in session.scalars(
                select(Submitter).where(Submitter.entry_id.in_(entry_ids)))} if entry_ids else {},
            findings=findings_by_place_of(session, entry_ids),
            relays=relays_for(session, entry_ids, self.settings.relay_domain),
            attachments=self._attachment_rows(session, entry_ids),
            sent=sent,
            circuits=gate.read_circuits(session, self.outbox.senders, hooks))

    def refresh(self, session: Session, reads: ForwardReads) -> ForwardReads:
        """The reads after an item of the batch failed: its failure may have opened or
        counted on a circuit, which the items left must see (an open one pauses them
        without a try); nothing else the reads hold changes with a failure."""
        return replace(reads, circuits=read_circuits(session, list(reads.circuits)))

    def send(self, session: Session, item: WorkItem, reads: ForwardReads) -> None:
        """Forward one entry to an agency with the reads of its batch: the gate's send-time
        decision (consent, stopped deliveries, the circuit) taken for this item alone."""
        disclosure_id = item.payload.get("disclosure_id")
        entry = reads.entries.get(item.entry_id) if item.entry_id is not None else None
        inputs = None
        events: list[ConsentEvent] = []
        if isinstance(disclosure_id, int) and entry is not None:
            # The consent events as they are now, in this item's own transaction: the
            # gate's decision and the rendition both take them.
            events = consent_events(session, entry.id)
            inputs = gate.RecheckInputs(reads.ledger.get(disclosure_id), events)
        ledger = self.outbox.ledger(session, item, fallback=True, inputs=inputs)
        if ledger is None:
            return
        row, decision = ledger
        if entry is None:
            raise PermanentError("work item without an entry")
        agency = self.rules.current().agencies.get(row.recipient_id)
        if agency is None:
            raise PermanentError(f"agency '{row.recipient_id}' is no longer in the rules")
        message_id = self.outbox.message_id("forward", item, entry)
        if message_id in reads.sent:
            return
        if not agency.webhook:
            self.outbox.require_mail()  # before the rendition: it would be thrown away
        relay = reads.relays[entry.id]
        files = self._attachments(session, entry.id, reads.attachments.get(entry.id, []))
        outgoing, rendition = self._forward_rendition(
            session, entry, reads.submitters.get(entry.id), decision, relay, row,
            tuple(f[0] for f in files), reads.findings.get(entry.id, {}), events)
        if agency.webhook:
            self.outbox.post(session, decision, agency.webhook,
                             _webhook_payload(entry, outgoing, rendition, message_id), message_id,
                             circuits=reads.circuits)
        else:
            msg = self.outbox.email(
                to=agency.email or "", to_name=agency.name, to_agency=True,
                subject=outgoing.subject, body=outgoing.quoted_text, message_id=message_id,
                reply_to=outgoing.reply_to, from_name=f"{outgoing.from_name} via intake",
                auto="auto-generated", record_number=entry.record_number,
            )
            # outgoing.attachment_names is the rendition of the stored names, in order.
            for (_, content_type, content), name in zip(files, outgoing.attachment_names,
                                                       strict=True):
                attach(msg, content, content_type, header_text(name))
            self.outbox.send(session, decision, msg, [agency.email or ""],
                             circuits=reads.circuits)
        self.outbox.record_sent(session, item, entry, message_id, "forward", "agency", agency.id)
        session.connection().execute(_INSERT_EVENT, {
            "entry_id": entry.id, "kind": "forwarded", "at": utcnow(), "actor": "system",
            "detail": {"agency": agency.id, "via": "webhook" if agency.webhook else "email",
                       "message_id": message_id, "identity_shared": decision.include_identity,
                       "disclosure_seq": row.seq}})
        log.info("entry %s forwarded to %s (work item %s)", entry.id, agency.id, item.id)

    def _forward_rendition(self, session: Session, entry: Entry, submitter: Submitter | None,
                           decision: GateDecision, relay: str, row: Disclosure,
                           names: tuple[str, ...], findings: Mapping[str, Sequence[Finding]],
                           consents: Sequence[ConsentEvent]
                           ) -> tuple[OutgoingMessage, Rendition]:
        # What the agency may see comes from the one rendition, with the consent events the
        # send-time decision took; a decision without identity renders as if no consent had
        # ever been given.
        rendition = renditions.render_entry(
            session, entry, Audience.CC_AGENCY if row.nature == "forward-cc" else Audience.AGENCY,
            agency_id=row.recipient_id, relay_domain=self.settings.relay_domain, thread=False,
            consents=consents if decision.include_identity else (),
            extra={f"attachment:{i}": n for i, n in enumerate(names)},
            submitter=submitter, relay_address=relay, findings=findings)
        identity = decision.include_identity and rendition.identity_shared
        # Feedback and survey answers come without contact details: nobody can be answered.
        anonymous = submitter is None or not submitter.email
        contact = ("anonymous: no reply possible" if anonymous else
                   f"{rendition.name.value or ANONYMOUS_NAME} <{rendition.email.value or relay}>")
        text = _templates.get_template("forward.txt").render(
            record_number=entry.record_number, received_at=entry.received_at.strftime(
                "%Y-%m-%d %H:%M UTC"), channel=entry.channel, form=entry.form_slug,
            subject=rendition.subject, fields=list(rendition.fields), contact=contact,
            body=rendition.body, identity=identity, rule=row.rule_id, anonymous=anonymous,
        )
        message = OutgoingMessage(
            from_name=rendition.name.value or ANONYMOUS_NAME,
            from_address=rendition.reply_to, reply_to=rendition.reply_to,
            subject=tagged_subject(entry.record_number, rendition.subject),
            body=rendition.body, quoted_text=text,
            attachment_names=tuple(rendition.text(f"attachment:{i}") for i in range(len(names))),
        )
        # The gate's renderer checks the whole message once more (template text
        # included) and refuses if any trace of the address survived.
        return render_for_recipient(message, _submitter_view(submitter), decision,
                                    relay), rendition

    @staticmethod
    def _attachment_rows(session: Session, entry_ids: Sequence[int]) -> dict[int, list[Any]]:
        """The entries' own attachments (not their replies'), sealed, in order."""
        found: dict[int, list[Any]] = {entry_id: [] for entry_id in entry_ids}
        if found:
            for r in session.execute(
                    select(Attachment.entry_id, Attachment.filename, Attachment.sniffed_type,
                           Attachment.content, Attachment.sha256)
                    .where(Attachment.entry_id.in_(list(found)),
                           Attachment.thread_message_id.is_(None),
                           Attachment.content.is_not(None))
                    .order_by(Attachment.entry_id, Attachment.id)):
                found[r.entry_id].append(r)
        return found

    def _attachments(self, session: Session, entry_id: int, rows: Sequence[Any]
                     ) -> list[tuple[str, str, bytes]]:
        if not rows:
            return []
        key = self.settings.originals_key()
        try:
            return [(r.filename, r.sniffed_type,
                     records.open_sealed(session, entry_id, key, r.content, r.sha256))
                    for r in rows]
        except records.OriginalUnavailable:
            # The entry's key was destroyed (retention): its attachments with it.
            raise PermanentError("original destroyed") from None


def _webhook_payload(entry: Entry, outgoing: OutgoingMessage, rendition: Rendition,
                     message_id: str) -> dict[str, Any]:
    """The JSON an agency's webhook receives: the agency's rendition, never more."""
    return {
        "record_number": entry.record_number,
        "message_id": message_id.strip("<>"),
        "received_at": entry.received_at.isoformat(),
        "channel": entry.channel,
        "form": entry.form_slug,
        "subject": outgoing.subject,
        "body": rendition.body,
        "fields": dict(rendition.fields),
        "reply_to": rendition.reply_to,
        "submitter": {
            "name": rendition.name.value or ANONYMOUS_NAME,
            "email": rendition.email.value or rendition.reply_to,
            "identity_shared": rendition.identity_shared,
        },
        "attachments": list(outgoing.attachment_names),
    }


# -- the submitter's receipt ---------------------------------------------------------------


class Acknowledger(_Step):
    """Sends the submitter's receipt: record number, next steps, the private status link."""

    def acknowledge(self, session: Session, item: WorkItem) -> None:
        """The submitter's receipt: record number, next steps, the private status link."""
        ledger = self.outbox.ledger(session, item)
        if ledger is None:
            return
        row, decision = ledger
        entry = self.outbox.entry(session, item)
        message_id = self.outbox.message_id("ack", item, entry)
        if self.outbox.already_sent(session, message_id):
            return
        if automail.is_undeliverable(session, self.settings.derived_key(automail.KEY_PURPOSE),
                                     row.recipient_address):
            # An earlier acknowledgement to this address bounced.
            session.add(Event(entry_id=entry.id, kind="acknowledgement-skipped",
                              detail={"reason": "undeliverable", "work_item": item.id}))
            log.info("entry %s: acknowledgement skipped (address undeliverable)", entry.id)
            return
        if self._limit_reached(session, row.recipient_address):
            session.add(Event(entry_id=entry.id, kind="acknowledgement-skipped",
                              detail={"reason": "rate-limit"}))
            log.info("entry %s: acknowledgement skipped (rate limit)", entry.id)
            return
        self.outbox.require_mail()
        lang = entry.language
        mail = self._body(session, entry)
        msg = self.outbox.email(
            to=row.recipient_address, subject=tagged_subject(
                entry.record_number, translate(ACK_SUBJECT, lang)),
            body=mail.text, html=mail.html, message_id=message_id,
            reply_to=self.outbox.relay_address(session, entry.id),
            from_name=translate(STATE_NAME, lang), auto="auto-replied",
            record_number=entry.record_number,
        )
        self.outbox.send(session, decision, msg, [row.recipient_address])
        self.outbox.record_sent(session, item, entry, message_id, "acknowledge", "submitter",
                                row.recipient_id)
        session.add(Event(entry_id=entry.id, kind="acknowledged",
                          detail={"message_id": message_id}))
        log.info("entry %s acknowledged (work item %s)", entry.id, item.id)

    def _body(self, session: Session, entry: Entry) -> CitizenMail:
        """The receipt (text and HTML, in the entry's language), with a new status link and
        the consents that hold now."""
        token = create_access_link(session, entry.id)
        agencies = self.rules.current().agencies
        agency = agencies.get(entry.agency_id or "")
        live = [s for s in consent_states(session, entry.id) if s.live]
        consents = ", ".join(
            translate(ANY_AGENCY, entry.language) if s.recipient_class == "agency"
            else agencies[s.recipient_class.split(":", 1)[1]].name
            if s.recipient_class.split(":", 1)[1] in agencies else s.recipient_class
            for s in live
        )
        return render_citizen(
            "acknowledge", entry.language,
            record_number=entry.record_number, agency_name=agency.name if agency else None,
            status_url=f"{self.settings.public_url}/status/{token}", consents=consents,
            limit=self.settings.ack_limit_per_hour,
            # Live Help: the address was given for a copy of the transcript (as stored:
            # what people are asked not to send shows as its marker).
            transcript=entry.body if entry.channel == "chat" else None,
        )

    def _limit_reached(self, session: Session, address: str) -> bool:
        limit = self.settings.ack_limit_per_hour
        if limit <= 0:
            return True
        since = utcnow() - timedelta(hours=1)
        sent = session.scalar(
            select(func.count()).select_from(SentMessage)
            .join(Submitter, Submitter.entry_id == SentMessage.entry_id)
            .where(SentMessage.kind == "acknowledge", SentMessage.created_at >= since,
                   func.lower(Submitter.email) == address.lower())
        )
        return int(sent or 0) >= limit


# -- the conversation ----------------------------------------------------------------------


class ThreadRelay(_Step):
    """Passes the conversation on: citizen <-> agency through the relay address, and staff
    replies to the submitter."""

    def relay(self, session: Session, item: WorkItem) -> None:
        """Decide a relayed message (mail to reply+token@...) through the gate."""
        entry = self.outbox.entry(session, item)
        message = session.get(ThreadMessage, item.payload.get("thread_message_id"))
        if message is None:
            raise PermanentError("relay without its thread message")
        recipient, purpose = self._other_side(session, entry, message)
        if recipient is None:
            return
        gate.disclose(session, [gate.DisclosureRequest(
            entry_id=entry.id, recipient=recipient, purpose=purpose, nature="relay",
            work_kind="relay-send", dedupe_key=f"relay-send:{message.id}",
            work_payload={"thread_message_id": message.id})])

    def _other_side(self, session: Session, entry: Entry, message: ThreadMessage
                    ) -> tuple[Recipient | None, Purpose]:
        """Who a thread message goes to (the agency or the submitter) and why; no recipient
        (and a "relay-held" event) when that side has no e-mail address."""
        if message.author_kind == "submitter":
            agency = self.rules.current().agencies.get(entry.agency_id or "")
            if agency is None or not agency.email:
                session.add(Event(entry_id=entry.id, kind="relay-held",
                                  detail={"reason": "no e-mail agency to relay to",
                                          "thread_message": message.id}))
                return None, Purpose.REDIRECT
            return Recipient(kind="agency", id=agency.id, name=agency.name,
                             address=agency.email), Purpose.REDIRECT
        submitter = _submitter(session, entry.id)
        if submitter is None or not submitter.email:
            session.add(Event(entry_id=entry.id, kind="relay-held",
                              detail={"reason": "no submitter address",
                                      "thread_message": message.id}))
            return None, Purpose.RESPOND
        return Recipient(kind="submitter", id=f"entry:{entry.id}",
                         name=submitter.name or "", address=submitter.email), Purpose.RESPOND

    def relay_send(self, session: Session, item: WorkItem) -> None:
        """Send a relayed message the gate allowed (see :meth:`relay`)."""
        self._send(session, item, kind="relay")

    def reply(self, session: Session, item: WorkItem) -> None:
        """A staff reply to the submitter (created by the inbox through the gate)."""
        self._send(session, item, kind="reply")

    def _send(self, session: Session, item: WorkItem, kind: str) -> None:
        ledger = self.outbox.ledger(session, item)
        if ledger is None:
            return
        row, decision = ledger
        entry = self.outbox.entry(session, item)
        message = session.get(ThreadMessage, item.payload.get("thread_message_id"))
        if message is None:
            raise PermanentError(f"{kind} without its thread message")
        message_id = self.outbox.message_id(kind, item, entry)
        if self.outbox.already_sent(session, message_id):
            return
        self.outbox.require_mail()
        relay = self.outbox.relay_address(session, entry.id)
        html: str | None = None
        if row.recipient_kind == "agency":
            outgoing = self._to_agency(session, entry, message, row, decision, relay)
            sender, from_name = relay, f"{outgoing.from_name} via intake"
        else:
            # A staff reply names the agency that wrote it (in its work item); a relayed
            # e-mail the agency the entry is with.
            agency_id = item.payload.get("agency_id", entry.agency_id)
            outgoing, html = self._to_submitter(session, entry, message, relay,
                                                agency_id if isinstance(agency_id, str) else None)
            sender, from_name = self.settings.mail_from, outgoing.from_name
        msg = self.outbox.email(
            to=row.recipient_address, subject=outgoing.subject, body=outgoing.body,
            message_id=message_id, reply_to=outgoing.reply_to, from_name=from_name,
            auto="auto-generated" if kind == "relay" else "no",
            record_number=entry.record_number, sender=sender, html=html)
        self.outbox.send(session, decision, msg, [row.recipient_address], sender=sender)
        self.outbox.record_sent(session, item, entry, message_id, kind, row.recipient_kind,
                                row.recipient_id)
        session.add(Event(entry_id=entry.id, kind="relayed" if kind == "relay" else "replied",
                          detail={"to": row.recipient_kind, "message_id": message_id,
                                  "thread_message": message.id,
                                  "identity_shared": decision.include_identity}))
        log.info("entry %s: %s sent to %s (work item %s)", entry.id, kind, row.recipient_kind,
                 item.id)

    def _to_agency(self, session: Session, entry: Entry, message: ThreadMessage,
                   row: Disclosure, decision: GateDecision, relay: str) -> OutgoingMessage:
        """The citizen's reply as the agency may see it: the agency's rendition, like the
        first message (no contact data without consent, sensitive numbers (P6) never)."""
        rendition = renditions.render_entry(
            session, entry, Audience.AGENCY, agency_id=row.recipient_id,
            relay_domain=self.settings.relay_domain, thread=False,
            consents=None if decision.include_identity else (),
            extra={"reply:subject": message.subject or entry.subject,
                   "reply:body": message.body})
        body = _templates.get_template("relay.txt").render(
            body=rendition.text("reply:body"), record_number=entry.record_number)
        outgoing = OutgoingMessage(
            from_name=ANONYMOUS_NAME, from_address=relay, reply_to=relay,
            subject=tagged_subject(entry.record_number, rendition.text("reply:subject")),
            body=body, quoted_text="", attachment_names=(),
        )
        return render_for_recipient(outgoing, _submitter_view(_submitter(session, entry.id)),
                                    decision, relay)

    def _to_submitter(self, session: Session, entry: Entry, message: ThreadMessage,
                      relay: str, agency_id: str | None) -> tuple[OutgoingMessage, str]:
        """The agency's (or staff's) message to the submitter, from the system address, in
        the submitter's language, signed with ``agency_id``'s name: its text part and its
        HTML part, each with the record number and a private status link."""
        agency = self.rules.current().agencies.get(agency_id or "")
        sender_name = agency.name if agency else translate(STATE_NAME, entry.language)
        token = create_access_link(session, entry.id)
        mail = render_citizen(
            "to_citizen", entry.language, body=message.body,
            record_number=entry.record_number, sender_name=sender_name,
            status_url=f"{self.settings.public_url}/status/{token}")
        return OutgoingMessage(
            from_name=sender_name, from_address=self.settings.mail_from, reply_to=relay,
            subject=tagged_subject(entry.record_number, message.subject or entry.subject),
            body=mail.text, quoted_text="", attachment_names=(),
        ), mail.html


# -- notices to staff: assignment, daily digest ----------------------------------------------

ASSIGNMENT_NOTICE = "assignment-notice"
DIGEST = "digest"
#: Record numbers listed in one digest; the rest are counted.
DIGEST_LISTED = 200


def _staff_link(settings: Settings, entry_id: int) -> str:
    return f"{settings.public_url}/staff/entries/{entry_id}"


class Notices(_Step):
    """Mail to staff about their work: never a citizen's name, address or words.

    Each is queued through the gate (:func:`gate.disclose`: a ledger row naming the
    entry and the staff address) and sent under the send-time decision, like every
    other message (without identity, as it never carries one: a withdrawn consent
    does not stop it).
    """

    def assignment_notice(self, session: Session, item: WorkItem) -> None:
        """Tell a staff member an entry is assigned to them: record number and link."""
        from intake.db.staff_models import EntryAssignment, StaffAccount

        ledger = self.outbox.ledger(session, item, fallback=True)
        if ledger is None:
            return
        row, decision = ledger
        entry = self.outbox.entry(session, item)
        staff_id = item.payload.get("staff_id")
        account = session.get(StaffAccount, staff_id) if isinstance(staff_id, int) else None
        assignment = session.get(EntryAssignment, entry.id)
        if account is None or account.disabled or assignment is None \
                or assignment.staff_id != account.id or entry.agency_id != account.agency_id:
            session.add(Event(entry_id=entry.id, kind="assignment-notice-skipped",
                              detail={"work_item": item.id, "reason": "no-longer-assigned"}))
            return
        message_id = self.outbox.message_id("assigned", item, entry)
        if self.outbox.already_sent(session, message_id):
            return
        self.outbox.require_mail()
        agency = self.rules.current().agencies.get(entry.agency_id or "")
        body = _templates.get_template("assigned.txt").render(
            record_number=entry.record_number,
            agency_name=agency.name if agency else entry.agency_id,
            link=_staff_link(self.settings, entry.id))
        msg = self.outbox.email(
            to=row.recipient_address, subject=f"[#{entry.record_number}] Assigned to you",
            body=body, message_id=message_id, reply_to=self.settings.mail_from,
            from_name="intake", auto="auto-generated", record_number=entry.record_number)
        self.outbox.send(session, decision, msg, [row.recipient_address])
        self.outbox.record_sent(session, item, entry, message_id, ASSIGNMENT_NOTICE, "staff",
                                str(account.id))
        session.add(Event(entry_id=entry.id, kind="assignment-notice-sent",
                          detail={"staff_id": account.id, "message_id": message_id}))

    def digest(self, session: Session, item: WorkItem) -> None:
        """An agency's "new entries" digest for one day: record numbers and links."""
        ledger = self.outbox.ledger(session, item, fallback=True)
        if ledger is None:
            return
        row, decision = ledger
        entry = self.outbox.entry(session, item)  # the first entry of the digest
        payload = item.payload
        agency_id, day = str(payload.get("agency")), str(payload.get("day"))
        message_id = message_id_for("digest", item.id, f"{agency_id}.{day}",
                                    self.settings.relay_domain)
        if self.outbox.already_sent(session, message_id):
            return
        self.outbox.require_mail()
        ids = [i for i in payload.get("entry_ids", []) if isinstance(i, int)]
        numbers = {r.id: r.record_number for r in session.execute(
            select(Entry.id, Entry.record_number).where(Entry.id.in_(ids)))}
        total = int(payload.get("total", len(ids)))
        agency = self.rules.current().agencies.get(agency_id)
        agency_name = agency.name if agency else agency_id
        body = _templates.get_template("digest.txt").render(
            agency_name=agency_name, day=day, total=total,
            entries=[(numbers[i], _staff_link(self.settings, i)) for i in ids if i in numbers],
            more=max(0, total - len(ids)), inbox=f"{self.settings.public_url}/staff/inbox",
            recipient=row.recipient_address)
        msg = self.outbox.email(
            to=row.recipient_address, subject=f"New entries for {agency_name} on {day}: {total}",
            body=body, message_id=message_id, reply_to=self.settings.mail_from,
            from_name="intake", auto="auto-generated", record_number="")
        self.outbox.send(session, decision, msg, [row.recipient_address])
        self.outbox.record_sent(session, item, entry, message_id, DIGEST, "digest", agency_id)


@dataclass(frozen=True)
class DigestPlan:
    agency_id: str
    recipient: str
    entries: int
    queued: bool  # False: nothing new that day, or that day's digest was queued before


def plan_digests(session: Session, settings: Settings, rules: RulesProvider, day: date
                 ) -> list[DigestPlan]:
    """Queue the "new entries" digest of ``day`` (UTC) for every agency in
    ``INTAKE_DIGEST_RECIPIENTS`` that received entries that day, once per agency and day.

    Through the gate: a ledger row for each entry listed (the record number and link
    reach the digest's address), the first with the work item that sends the mail.
    """
    start = datetime.combine(day, time.min, tzinfo=UTC)
    agencies = rules.current().agencies
    plans: list[DigestPlan] = []
    for agency_id, recipient in sorted(settings.digest_recipients.items()):
        key = f"{DIGEST}:{agency_id}:{day.isoformat()}"
        window = (Entry.agency_id == agency_id, Entry.received_at >= start,
                  Entry.received_at < start + timedelta(days=1))
        total = session.scalar(select(func.count()).select_from(Entry).where(*window)) or 0
        if total == 0 or agency_id not in agencies or session.scalar(
                select(WorkItem.id).where(WorkItem.dedupe_key == key)) is not None:
            plans.append(DigestPlan(agency_id, recipient, total, False))
            continue
        ids = list(session.scalars(select(Entry.id).where(*window)
                                   .order_by(Entry.received_at, Entry.id).limit(DIGEST_LISTED)))
        agency = agencies[agency_id]
        recipient_of = Recipient(kind="agency", id=agency_id, name=f"{agency.name} digest",
                                 address=recipient)
        payload = {"agency": agency_id, "day": day.isoformat(), "entry_ids": ids,
                   "total": total}
        gate.disclose(session, [gate.DisclosureRequest(
            entry_id=entry_id, recipient=recipient_of, purpose=Purpose.REDIRECT,
            nature="digest", personal=False, actor="digest",
            # The first row carries the one mail; the others record the entries it lists.
            work_kind=DIGEST if n == 0 else None, dedupe_key=key if n == 0 else None,
            work_payload=payload if n == 0 else None)
            for n, entry_id in enumerate(ids)])
        plans.append(DigestPlan(agency_id, recipient, total, True))
    return plans


# -- the whole ------------------------------------------------------------------------------


class Delivery:
    """The delivery steps bound to settings, rules and senders: planning and the handlers."""

    def __init__(self, settings: Settings, rules: RulesProvider, senders: gate.Senders) -> None:
        outbox = Outbox(settings, senders)
        self.planner = DeliveryPlanner(rules)
        self.forwarder = Forwarder(outbox, rules)
        self.acknowledger = Acknowledger(outbox, rules)
        self.thread_relay = ThreadRelay(outbox, rules)
        self.notices = Notices(outbox, rules)

    def plan(self, session: Session, entry: RoutedEntry, decision: RoutingOutcome,
             decision_id: int) -> None:
        """See :meth:`DeliveryPlanner.plan`."""
        self.planner.plan(session, entry, decision, decision_id)

    def plan_many(self, session: Session,
                  routed: list[tuple[RoutedEntry, RoutingOutcome, int]]) -> None:
        """See :meth:`DeliveryPlanner.plan_many`."""
        self.planner.plan_many(session, routed)

    def handlers(self) -> dict[str, Handler]:
        """The work-item handlers, by work kind (those of :meth:`together` apart)."""
        return {
            "acknowledge": self.acknowledger.acknowledge,
            "relay": self.thread_relay.relay,
            "relay-send": self.thread_relay.relay_send,
            "reply": self.thread_relay.reply,
            ASSIGNMENT_NOTICE: self.notices.assignment_notice,
            DIGEST: self.notices.digest,
        }

    def together(self) -> dict[str, tuple[Callable[[Session, list[WorkItem]], Any],
                                          Callable[[Session, WorkItem, Any], None],
                                          Callable[[Session, Any], Any]]]:
        """The kinds whose due items are claimed and read for together, then sent and
        committed one by one: (read for a list of items, send one with those reads, read
        again what a failure changes)."""
        return {"deliver": (self.forwarder.read, self.forwarder.send, self.forwarder.refresh)}
