"""The disclosure gate on a real database: one call for many entries, work items reused
by their dedupe key, and no way out (in-memory senders here) without an allowed decision."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, select

from intake.core.consent import ConsentAction, ConsentMethod, Purpose
from intake.core.disclosure import Decision, DisclosureRefused, Recipient, decide
from intake.core.failures import TransientError
from intake.db.models import ChainHead, Disclosure, Event, WorkItem, utcnow
from intake.outbound.memory import MemoryMailSender, MemoryWebhookSender
from intake.outbound.smtp import SmtpConfig, SmtpMailSender
from intake.outbound.webhook import HttpWebhookSender
from intake.runtime import Runtime
from intake.services import gate
from intake.services.consent import (
    DISCLOSURE_CHAIN,
    ensure_policy_text,
    record_consent,
    verify_chains,
)
from intake.services.records import NewSubmission, SubmitterData, record_submissions
from tests.conftest import _truncate_postgres, make_settings

DOT = Recipient(kind="agency", id="dot", name="Department of Transportation",
                address="intake@dot.examplia.gov")
POLICY = ("share-identity-2026-01", "I agree that the agency may see my name and address.")


def _entry(rt: Runtime, email: str) -> int:
    with rt.db.session() as s:
        ensure_policy_text(s, *POLICY)
        return record_submissions(s, [NewSubmission(
            channel="web", kind="contact", raw=email.encode(), content_type="text/plain",
            subject="Pothole", body="Pothole on Route 9",
            submitter=SubmitterData(name="Maria Lopez", email=email))], record_prefix="EX",
            originals_key=rt.originals_key)[0].entry_id


def _grant(rt: Runtime, entry_id: int, recipient_class: str) -> None:
    with rt.db.session() as s:
        record_consent(s, entry_id=entry_id, action=ConsentAction.GRANT,
                               purpose=Purpose.SHARE_IDENTITY, recipient_class=recipient_class,
                               policy_version=POLICY[0], method=ConsentMethod.WEB_CHECKBOX,
                               evidence=b"consent_share=on")


def _queued(rt: Runtime) -> int:
    """Broker messages sent and not consumed (no worker runs in these tests)."""
    return sum(q.qsize() for q in rt.jobs.broker.queues.values())  # type: ignore[attr-defined]


def _requests(first: int, second: int) -> list[gate.DisclosureRequest]:
    citizen = Recipient(kind="submitter", id=f"entry:{first}", name="Maria Lopez",
                        address="maria@example.org")
    forward = gate.DisclosureRequest(entry_id=first, recipient=DOT, purpose=Purpose.REDIRECT,
                                     nature="forward", work_kind="deliver",
                                     dedupe_key=f"deliver:{first}:dot", work_payload={"n": 1})
    return [
        forward,
        gate.DisclosureRequest(entry_id=first, recipient=citizen, purpose=Purpose.RESPOND,
                               nature="acknowledge", work_kind="acknowledge"),
        gate.DisclosureRequest(entry_id=second, recipient=DOT, purpose=Purpose.REDIRECT,
                               nature="forward", work_kind="deliver", rule_id="roads",
                               rules_sha256="a" * 64),
        # Refused (no consent for the second entry): no work item.
        gate.DisclosureRequest(entry_id=second, recipient=DOT, purpose=Purpose.SHARE_IDENTITY,
                               nature="share", work_kind="deliver"),
        # The first request's dedupe key again: its item is reused.
        replace(forward, nature="forward-cc", work_payload={"n": 5}),
        gate.DisclosureRequest(entry_id=second, recipient=DOT, purpose=Purpose.LEGAL,
                               nature="legal", citation="KRS 61.878(5)", actor="staff:1"),
    ]


def _written(rt: Runtime) -> tuple[list[Any], ...]:
    """Everything the gate wrote: ledger rows, work items, events, the chain's head."""
    with rt.db.session() as s:
        ledger = [tuple(getattr(r, c.name) for c in Disclosure.__table__.columns)
                  for r in s.scalars(select(Disclosure).order_by(Disclosure.id))]
        items = [(i.id, i.kind, i.dedupe_key, i.entry_id, i.payload, i.state)
                 for i in s.scalars(select(WorkItem).order_by(WorkItem.id))]
        events = [(e.id, e.entry_id, e.kind, e.actor, e.detail)
                  for e in s.scalars(select(Event).where(Event.kind.like("disclosure%"))
                                     .order_by(Event.id))]
        head = s.get(ChainHead, DISCLOSURE_CHAIN)
        assert head is not None
        assert all(report.verdict.ok for report in verify_chains(s))
        return ledger, items, events, [(head.seq, head.head_hash)]


def _reset(rt: Runtime, db_url: str, request: pytest.FixtureRequest) -> None:
    """Back to the freshly migrated database (identities restart at 1)."""
    rt.db.dispose()
    if db_url.startswith("sqlite"):
        path = Path(str(make_url(db_url).database))
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    else:
        _truncate_postgres(db_url)


def test_one_call_for_several_entries_writes_what_calls_one_by_one_write(
        runtime: Runtime, db_url: str, request: pytest.FixtureRequest) -> None:
    when = utcnow() + timedelta(hours=1)
    outcomes = []
    for one_by_one in (True, False):
        first, second = _entry(runtime, "maria@example.org"), _entry(runtime, "li@example.org")
        _grant(runtime, first, "agency:dot")
        queued = _queued(runtime)
        requests = _requests(first, second)
        if one_by_one:
            results = []
            for req in requests:
                with runtime.db.session() as s:
                    results += gate.disclose(s, [req], at=when)
        else:
            with runtime.db.session() as s:
                results = gate.disclose(s, requests, at=when)
        outcomes.append((results, _written(runtime), _queued(runtime) - queued))
        _reset(runtime, db_url, request)
    (results, written, sent), batched = outcomes
    assert batched == outcomes[0]
    # The same decisions too: consent, the submitter's own address, notice, no consent,
    # consent again (the reused key), a cited law.
    assert [(r.decision.allowed, r.decision.include_identity, r.decision.reason)
            for r in results] == [
        (True, True, "consent"), (True, True, "notice"), (True, False, "notice"),
        (False, False, "no-consent"), (True, True, "consent"), (True, True, "law")]
    ledger, items, _events, _head = written
    assert [r.seq for r in results] == [1, 2, 3, 4, 5, 6]
    reused = results[0].work_item_id
    assert reused is not None and results[4].work_item_id == reused
    assert results[3].work_item_id is None and results[5].work_item_id is None
    # Three items created (route items aside), one message each; the reused one named
    # the later ledger row.
    assert sent == 3
    payloads = {i[0]: i[4] for i in items if i[1] != "route"}
    assert payloads[reused] == {"n": 1, "disclosure_id": results[4].disclosure_id}
    assert len(ledger) == 6


def test_a_taken_dedupe_key_reuses_the_work_item(runtime: Runtime) -> None:
    entry_id = _entry(runtime, "maria@example.org")
    req = gate.DisclosureRequest(entry_id=entry_id, recipient=DOT, purpose=Purpose.REDIRECT,
                                 nature="forward", work_kind="deliver", dedupe_key="deliver:x",
                                 work_payload={"n": 1})
    before = _queued(runtime)
    with runtime.db.session() as s:
        [first] = gate.disclose(s, [req])
    assert _queued(runtime) == before + 1
    with runtime.db.session() as s:
        [again] = gate.disclose(s, [replace(req, nature="forward-again",
                                            work_payload={"n": 2})])
    assert again.decision.allowed and again.work_item_id == first.work_item_id
    assert _queued(runtime) == before + 1  # no second broker message
    with runtime.db.session() as s:
        items = s.scalars(select(WorkItem).where(WorkItem.dedupe_key == "deliver:x")).all()
        assert [(i.id, i.payload) for i in items] == [
            (first.work_item_id, {"n": 1, "disclosure_id": again.disclosure_id})]
        rows = s.scalars(select(Disclosure).order_by(Disclosure.seq)).all()
        assert [(r.id, r.nature, r.work_item_id) for r in rows] == [
            (first.disclosure_id, "forward", first.work_item_id),
            (again.disclosure_id, "forward-again", first.work_item_id)]


def test_a_refused_decision_queues_nothing(runtime: Runtime) -> None:
    entry_id = _entry(runtime, "maria@example.org")
    before = _queued(runtime)
    with runtime.db.session() as s:
        [refused] = gate.disclose(s, [gate.DisclosureRequest(
            entry_id=entry_id, recipient=DOT, purpose=Purpose.SHARE_IDENTITY, nature="share",
            work_kind="deliver", dedupe_key="share:1")])
    assert not refused.decision.allowed and refused.decision.reason == "no-consent"
    assert refused.work_item_id is None and _queued(runtime) == before
    with runtime.db.session() as s:
        assert s.scalar(select(WorkItem.id).where(WorkItem.dedupe_key == "share:1")) is None
        row = s.get(Disclosure, refused.disclosure_id)
        assert row is not None and not row.allowed and row.seq == refused.seq


# -- the way out -------------------------------------------------------------------------


def _decision(purpose: Purpose) -> Decision:
    return decide(purpose=purpose, recipient=DOT, consent_events=[], at=utcnow())


def _message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "intake@examplia.gov", DOT.address, "Forward"
    msg.set_content("A pothole on Route 9.")
    return msg


@pytest.mark.parametrize("purpose", [Purpose.SHARE_IDENTITY, Purpose.MARKETING])
def test_send_email_sends_nothing_under_a_refused_decision(purpose: Purpose) -> None:
    outbox = MemoryMailSender()
    refused = _decision(purpose)
    assert not refused.allowed
    with pytest.raises(DisclosureRefused):
        gate.send_email(refused, outbox, _message(), envelope_from="intake@examplia.gov",
                        recipients=[DOT.address])
    gate.send_email(_decision(Purpose.REDIRECT), outbox, _message(),
                    envelope_from="intake@examplia.gov", recipients=[DOT.address])
    assert [(m.mail_from, m.rcpt_tos) for m in outbox.all()] == [
        ("intake@examplia.gov", (DOT.address,))]


def test_post_webhook_posts_nothing_under_a_refused_decision() -> None:
    hooks = MemoryWebhookSender()
    url = "https://hooks.examplia.gov/intake"
    with pytest.raises(DisclosureRefused):
        gate.post_webhook(_decision(Purpose.SHARE_IDENTITY), hooks, url, {"n": 1},
                          idempotency_key="k1")
    gate.post_webhook(_decision(Purpose.REDIRECT), hooks, url, {"n": 2}, idempotency_key="k2")
    assert [(p.url, p.body, p.idempotency_key) for p in hooks.all()] == [(url, b'{"n": 2}', "k2")]


def test_a_send_needs_a_decision_of_the_gate() -> None:
    outbox = MemoryMailSender()
    with pytest.raises(TypeError):
        gate.send_email(True, outbox, _message(),  # type: ignore[arg-type]
                        envelope_from="intake@examplia.gov", recipients=[DOT.address])
    assert outbox.all() == []


def test_mail_waits_while_no_smtp_server_is_configured(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'gate.db'}")
    senders = gate.senders_from(settings)
    assert settings.smtp_url is None and senders.mail is None
    with pytest.raises(TransientError, match="INTAKE_SMTP_URL is not set"):
        gate.send_email(_decision(Purpose.REDIRECT), senders.mail, _message(),
                        envelope_from="intake@examplia.gov", recipients=[DOT.address])


def test_the_settings_pick_the_real_senders(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'gate.db'}",
                             INTAKE_SMTP_URL="smtp+starttls://relay.examplia.gov",
                             INTAKE_SMTP_TIMEOUT="7", INTAKE_WEBHOOK_SECRET="w" * 40)
    senders = gate.senders_from(settings)
    assert isinstance(senders.mail, SmtpMailSender)
    assert senders.mail.config == SmtpConfig("relay.examplia.gov", 587, "starttls", timeout=7.0)
    assert isinstance(senders.webhook, HttpWebhookSender)
    assert (senders.webhook.secret, senders.webhook.timeout) == (b"w" * 40, 7.0)
