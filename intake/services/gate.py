"""The disclosure gate: the one way personal information leaves the system.

The decisions are pure (:mod:`intake.core.disclosure`); this module stores
them and holds the only calls into :mod:`intake.outbound` (import-linter
enforces it):

- :func:`disclose` asks the core for each request, then writes its
  disclosure-ledger row (allowed or refused) and, when allowed and something
  is to be sent, its outbox work item, in the caller's transaction: no ledger
  row, no send. Any error rolls both back, so it fails closed;
- :func:`recheck` decides again at send time with the consent events of that
  moment, so a withdrawal stops messages already queued;
- :func:`send_email` and :func:`post_webhook` hand a message to a sender
  only under an allowed decision, through the destination's circuit breaker
  (:mod:`intake.services.circuits`: paused while the server is down, one probe
  at a time, closed by a success); :func:`senders_from` builds the real
  senders from the settings (tests pass in-memory ones instead).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import EmailMessage
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from intake.core import hashchain
from intake.core.consent import Basis, ConsentEvent, Purpose
from intake.core.disclosure import Decision, DisclosureRefused, Recipient, decide
from intake.core.failures import DeliveryFailure, TransientError
from intake.db.models import ChainHead, Disclosure, Event, WorkItem, utcnow
from intake.outbound import sns
from intake.outbound.interfaces import MailSender, WebhookSender
from intake.outbound.smtp import SmtpConfig, SmtpMailSender
from intake.outbound.webhook import HttpWebhookSender
from intake.outbound.webhook import origin as webhook_origin
from intake.services import circuits
from intake.services.circuits import CircuitPolicy
from intake.services.consent import DISCLOSURE_CHAIN, consent_events, consent_events_of
from intake.services.work import enqueue_many
from intake.settings import Settings


@dataclass(frozen=True)
class DisclosureRequest:
    """One disclosure for :func:`disclose`: to whom, why, and what to queue if allowed."""

    entry_id: int
    recipient: Recipient
    purpose: Purpose
    nature: str
    work_kind: str | None = None
    dedupe_key: str | None = None
    work_payload: Mapping[str, Any] | None = None
    citation: str | None = None
    personal: bool = True
    rule_id: str | None = None
    rules_sha256: str | None = None
    payload_sha256: str | None = None
    actor: str = "system"


@dataclass(frozen=True)
class GateResult:
    """The gate's decision, its ledger row (id and chain seq) and the work item, if any."""

    decision: Decision
    disclosure_id: int
    seq: int
    work_item_id: int | None


def disclose(session: Session, requests: Sequence[DisclosureRequest], *,
             at: datetime | None = None) -> list[GateResult]:
    """The one gate: decide each request, write its ledger row and (if allowed) its work item.

    In the caller's transaction, with one statement a table for the whole
    call: the consent events of all the entries, the work items, the ledger
    rows (the chain's head locked and moved once), their events, the work
    items' ledger ids. A work item whose dedupe key is taken is reused (no
    second item, no second broker message) and names the new ledger row.
    """
    if not requests:
        return []
    when = at or utcnow()
    events = consent_events_of(session, sorted({req.entry_id for req in requests}))
    decisions = [decide(purpose=req.purpose, recipient=req.recipient,
                        consent_events=events[req.entry_id], at=when, citation=req.citation,
                        personal=req.personal) for req in requests]
    conn = session.connection()
    queued = [i for i, (req, decision) in enumerate(zip(requests, decisions, strict=True))
              if decision.allowed and req.work_kind is not None]
    made = enqueue_many(session, [
        (str(req.work_kind), req.dedupe_key or _dedupe_key(req), req.entry_id, req.work_payload)
        for req in (requests[i] for i in queued)])
    items = dict(zip(queued, made, strict=True))  # request index -> (item id, created)
    rows = [_ledger_values(req, decision, when, items[i][0] if i in items else None)
            for i, (req, decision) in enumerate(zip(requests, decisions, strict=True))]
    ledger = _append_ledger(conn, rows)
    conn.execute(_INSERT_EVENTS, [
        _disclosure_event(req, decision, seq, str(row["purpose"]), when)
        for req, decision, row, (_, seq) in zip(requests, decisions, rows, ledger, strict=True)])
    if items:
        # Each item names its latest ledger row; a reused item keeps its own payload.
        reused = sorted({item_id for item_id, created in made if not created})
        stored = {r.id: r.payload for r in conn.execute(_ITEM_PAYLOADS, {"ids": reused})} \
            if reused else {}
        conn.execute(_SET_ITEM_PAYLOAD, [
            {"item_id": item_id, "new_payload": {
                **dict((requests[i].work_payload if created else stored[item_id]) or {}),
                "disclosure_id": ledger[i][0]}}
            for i, (item_id, created) in items.items()])
    return [GateResult(decision, disclosure_id, seq, items[i][0] if i in items else None)
            for i, (decision, (disclosure_id, seq)) in enumerate(zip(decisions, ledger,
                                                                     strict=True))]


@dataclass(frozen=True)
class RecheckInputs:
    """What :func:`recheck` reads, read beforehand (for a batch of sends, one query a
    table): the ledger row (None: none with that id) and its entry's consent events."""

    row: Disclosure | None
    consent_events: Sequence[ConsentEvent]


def recheck(session: Session, disclosure_id: int, at: datetime | None = None, *,
            inputs: RecheckInputs | None = None) -> Decision:
    """Decide again at send time. Refused if the disclosure is unknown or consent changed.

    A disclosure that was allowed with the submitter's identity is refused
    when that consent no longer holds; the refusal is written to the ledger.
    ``inputs``: the row and consent events as read shortly before (else read here);
    the decision is the same.
    """
    row = inputs.row if inputs is not None else session.get(Disclosure, disclosure_id)
    if row is None or not row.allowed:
        return Decision(allowed=False, reason="no-ledger-row", basis=Basis.FORBIDDEN,
                        purpose=None, include_identity=False, consent_event_id=None,
                        citation=None)
    recipient = Recipient(kind=row.recipient_kind, id=row.recipient_id,
                          name=row.recipient_name, address=row.recipient_address)
    when = at or utcnow()
    now = decide(purpose=Purpose(row.purpose), recipient=recipient,
                 consent_events=(list(inputs.consent_events) if inputs is not None
                                 else consent_events(session, row.entry_id)), at=when,
                 citation=row.citation)
    # Still allowed, and not about to show an identity that consent no longer covers.
    if now.allowed and (now.include_identity or not row.include_identity):
        return Decision(allowed=True, reason=now.reason, basis=now.basis, purpose=now.purpose,
                        include_identity=row.include_identity,
                        consent_event_id=now.consent_event_id, citation=now.citation)
    reason = "consent-withdrawn" if row.include_identity and now.allowed else now.reason
    conn = session.connection()
    [(_, seq)] = _append_ledger(conn, [{
        "entry_id": row.entry_id, "at": when, "nature": row.nature, "purpose": row.purpose,
        "basis": now.basis.value, "allowed": False, "reason": reason,
        "include_identity": False, "recipient_kind": row.recipient_kind,
        "recipient_id": row.recipient_id, "recipient_name": row.recipient_name,
        "recipient_address": row.recipient_address, "consent_event_id": None,
        "citation": row.citation, "rule_id": row.rule_id, "rules_sha256": row.rules_sha256,
        "payload_sha256": row.payload_sha256, "work_item_id": row.work_item_id,
        "actor": "send-time-check"}])
    conn.execute(_INSERT_EVENTS, [{
        "entry_id": row.entry_id, "at": when, "actor": "send-time-check",
        "kind": "disclosure-refused",
        "detail": {"disclosure_seq": seq, "reason": reason, "recipient": row.recipient_id}}])
    return Decision(allowed=False, reason=reason, basis=now.basis, purpose=now.purpose,
                    include_identity=False, consent_event_id=None, citation=None)


# -- the way out -----------------------------------------------------------------------


@dataclass(frozen=True)
class Senders:
    """The ways out the delivery handlers use: mail (None: no SMTP server configured yet,
    so mail waits) and webhooks."""

    mail: MailSender | None
    webhook: WebhookSender


def mail_waits() -> TransientError:
    """The failure of mail while no SMTP server is configured: retried until one is."""
    return TransientError("INTAKE_SMTP_URL is not set; mail waits until it is",
                          reason="no mail server is configured yet (INTAKE_SMTP_URL); "
                                 "the mail waits until there is one")


def senders_from(settings: Settings) -> Senders:
    """The real senders: SMTP from ``INTAKE_SMTP_URL``, webhooks signed with the webhook key."""
    timeout = settings.smtp_timeout_seconds
    mail = None
    if settings.smtp_url:
        config = SmtpConfig.from_url(settings.smtp_url, timeout=timeout)
        if settings.smtp_oauth2 is not None:  # XOAUTH2 (INTAKE_SMTP_OAUTH2_FILE)
            config = replace(config, username=settings.smtp_oauth2_user, password=None,
                             oauth2=settings.smtp_oauth2)
        mail = SmtpMailSender(config)
    secret = (settings.webhook_secret.encode() if settings.webhook_secret
              else settings.derived_key("webhook signatures"))
    return Senders(mail=mail, webhook=HttpWebhookSender(secret, timeout=timeout))


def close_senders(senders: Senders) -> None:
    """End what the senders keep open (the SMTP sender's kept sessions), at shutdown."""
    close = getattr(senders.mail, "close", None)
    if close is not None:
        close()


def check_mail_server(settings: Settings) -> tuple[str, str] | None:
    """(destination, "login ok …") for the SMTP server: connect and log in, send nothing
    (``intake mailboxes check``). None without INTAKE_SMTP_URL. Raises
    :class:`~intake.core.failures.TransientError` (its ``reason`` is plain words)."""
    sender = senders_from(settings).mail
    if not isinstance(sender, SmtpMailSender):
        return None
    return sender.destination, sender.check()


def sns_get(url: str, *, certificate: bool) -> bytes:
    """GET an Amazon SNS URL for the inbound push: a signing certificate, or a
    subscription's confirmation link. Nothing about anyone leaves: only URLs on
    ``sns.<region>.amazonaws.com`` (:func:`intake.core.inbound.sns_url_allowed`)."""
    return sns.https_get(url, certificate=certificate)


@dataclass(frozen=True)
class Breaker:
    """The circuit breakers a send goes through: the send's session and the policy;
    ``known``, circuit rows read shortly before (:func:`read_circuits`), by destination."""

    session: Session
    policy: CircuitPolicy
    known: Mapping[str, Any] | None = None


def read_circuits(session: Session, senders: Senders, webhook_urls: Sequence[str] = ()
                  ) -> dict[str, Any]:
    """The circuits of the mail server and of ``webhook_urls`` in one query, for a batch
    of sends (:class:`Breaker`'s ``known``)."""
    destinations = {webhook_origin(url) for url in webhook_urls}
    if senders.mail is not None:
        destinations.add(senders.mail.destination)
    return circuits.read_circuits(session, sorted(destinations))


def send_email(decision: Decision, sender: MailSender | None, message: EmailMessage, *,
               envelope_from: str, recipients: Sequence[str],
               breaker: Breaker | None = None) -> None:
    """Hand ``message`` to ``sender``, only under an allowed decision of the gate.

    No sender (no SMTP server configured) is a transient failure: the mail waits.
    With ``breaker`` (every delivery), the send goes through the SMTP server's
    circuit (:mod:`intake.services.circuits`): refused at once while it is open.
    """
    _require_allowed(decision)
    if sender is None:
        raise mail_waits()
    with _through(breaker, sender.destination):
        sender.send(message, envelope_from=envelope_from, recipients=recipients)


def post_webhook(decision: Decision, sender: WebhookSender, url: str,
                 payload: dict[str, Any], *, idempotency_key: str,
                 breaker: Breaker | None = None) -> None:
    """POST ``payload`` to an agency's webhook, only under an allowed decision of the gate;
    through the circuit of the URL's origin with ``breaker``."""
    _require_allowed(decision)
    with _through(breaker, webhook_origin(url)):
        sender.post(url, payload, idempotency_key=idempotency_key)


@contextmanager
def _through(breaker: Breaker | None, destination: str) -> Iterator[None]:
    """Admit the send to ``destination`` (or raise DestinationPaused), name the destination
    on its failure, close the circuit on its success."""
    report = breaker is not None and (
        circuits.admit(breaker.session, destination, breaker.policy,
                       known=breaker.known[destination])
        if breaker.known is not None and destination in breaker.known
        else circuits.admit(breaker.session, destination, breaker.policy))
    try:
        yield
    except DeliveryFailure as failure:
        failure.destination = failure.destination or destination
        raise
    if breaker is not None and report:  # closed without failures: nothing to reset
        circuits.succeeded(breaker.session, destination)


def _require_allowed(decision: Decision) -> None:
    if not isinstance(decision, Decision):
        raise TypeError("a send needs the gate's Decision")
    if not decision.allowed:
        raise DisclosureRefused(decision)


# -- the ledger ------------------------------------------------------------------------


def _dedupe_key(req: DisclosureRequest) -> str:
    return f"{req.work_kind}:{req.entry_id}:{req.recipient.kind}:{req.recipient.id}"


def _ledger_values(req: DisclosureRequest, decision: Decision, at: datetime,
                   work_item_id: int | None) -> dict[str, Any]:
    """The chained fields of the ledger row for one decision of the gate."""
    return {
        "entry_id": req.entry_id, "at": at, "nature": req.nature,
        "purpose": decision.purpose.value if decision.purpose else str(req.purpose),
        "basis": decision.basis.value, "allowed": decision.allowed, "reason": decision.reason,
        "include_identity": decision.include_identity, "recipient_kind": req.recipient.kind,
        "recipient_id": req.recipient.id, "recipient_name": req.recipient.name,
        "recipient_address": req.recipient.address,
        "consent_event_id": decision.consent_event_id, "citation": decision.citation,
        "rule_id": req.rule_id, "rules_sha256": req.rules_sha256,
        "payload_sha256": req.payload_sha256, "work_item_id": work_item_id, "actor": req.actor,
    }


def _disclosure_event(req: DisclosureRequest, decision: Decision, seq: int, purpose: str,
                      at: datetime) -> dict[str, Any]:
    return {"entry_id": req.entry_id, "at": at, "actor": req.actor,
            "kind": "disclosure" if decision.allowed else "disclosure-refused",
            "detail": {"disclosure_seq": seq, "nature": req.nature, "purpose": purpose,
                       "recipient": req.recipient.id, "reason": decision.reason}}


def _append_ledger(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """Append ledger rows (their chained fields), in order, to the disclosure chain, its
    head locked and moved once; each row's (id, seq)."""
    head = conn.execute(_LOCK_HEAD, {"c": DISCLOSURE_CHAIN}).one()
    seq, head_hash = int(head.seq), str(head.head_hash)
    chained: list[dict[str, Any]] = []
    for values in rows:
        seq += 1
        row_hash = hashchain.link_hash(head_hash, seq, values)
        chained.append({**values, "seq": seq, "prev_hash": head_hash, "row_hash": row_hash})
        head_hash = row_hash
    ids = [int(i) for i in conn.execute(_INSERT_DISCLOSURES, chained).scalars()]
    conn.execute(_MOVE_HEAD, {"c": DISCLOSURE_CHAIN, "new_seq": seq, "new_hash": head_hash})
    return [(i, row["seq"]) for i, row in zip(ids, chained, strict=True)]


_DISCLOSURES = cast(Table, Disclosure.__table__)
_WORK_ITEMS = cast(Table, WorkItem.__table__)
_HEADS = cast(Table, ChainHead.__table__)
# (SQLite renders no FOR UPDATE: its transactions here begin IMMEDIATE, the write lock.)
_LOCK_HEAD = select(_HEADS.c.seq, _HEADS.c.head_hash).where(
    _HEADS.c.chain == bindparam("c")).with_for_update()
_MOVE_HEAD = (update(_HEADS).where(_HEADS.c.chain == bindparam("c"))
              .values(seq=bindparam("new_seq"), head_hash=bindparam("new_hash")))
_INSERT_DISCLOSURES = insert(_DISCLOSURES).returning(_DISCLOSURES.c.id,
                                                     sort_by_parameter_order=True)
_ITEM_PAYLOADS = select(_WORK_ITEMS.c.id, _WORK_ITEMS.c.payload).where(
    _WORK_ITEMS.c.id.in_(bindparam("ids", expanding=True)))
_SET_ITEM_PAYLOAD = (update(_WORK_ITEMS).where(_WORK_ITEMS.c.id == bindparam("item_id"))
                     .values(payload=bindparam("new_payload")))
_INSERT_EVENTS = insert(cast(Table, Event.__table__))
