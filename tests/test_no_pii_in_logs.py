"""P2/P8: personal data never reaches the logs.

A submission carrying an e-mail address, an SSN and a card number goes
through recording (with PII detection), routing by the embedded worker, the
disclosure gate and delivery over real SMTP (forward and receipt); every log
record at every level is then searched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.core.consent import Purpose
from intake.core.disclosure import Recipient
from intake.db.models import PiiFinding, WorkItem
from intake.runtime import Runtime
from intake.services import gate
from intake.services.records import NewSubmission, SubmitterData, record_submissions
from tests.conftest import DOT, ORIGINALS_KEY, SmtpSink, make_settings, rules_file, wait_for

ADDRESS = "planted.person@example.org"
SSN = "518-22-4137"
CARD = "4111 1111 1111 1111"
NAME = "Planted Person"
SECRETS = (ADDRESS, SSN, CARD, "4111111111111111", "518224137", NAME)


@pytest.fixture
def runtime(tmp_path: Path, db_url: str, sink: SmtpSink) -> Iterator[Runtime]:
    rt = Runtime(make_settings(tmp_path, db_url, INTAKE_RULES=str(rules_file(tmp_path)),
                               INTAKE_SMTP_URL=f"smtp://127.0.0.1:{sink.port}",
                               INTAKE_LOG_LEVEL="DEBUG"))
    rt.rules.load()
    yield rt
    rt.close()


def test_planted_personal_data_never_reaches_the_logs(
    runtime: Runtime, sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    runtime.jobs.start()
    body = (f"My SSN is {SSN} and my card {CARD} was charged twice. "
            f"Write to me at {ADDRESS}. There is also a pothole on Route 9.")
    with runtime.db.session() as s:
        rec = record_submissions(s, [NewSubmission(
            channel="web", kind="contact", raw=body.encode(), content_type="text/plain",
            subject=f"Complaint from {NAME} <{ADDRESS}>", body=body, form_slug="contact",
            submitter=SubmitterData(name=NAME, email=ADDRESS))],
                record_prefix="EX", pii_key=runtime.pii_key,
                    originals_key=ORIGINALS_KEY)[0]

    def routed() -> bool:
        with runtime.db.session() as s:
            return s.scalar(select(WorkItem.state).where(
                WorkItem.entry_id == rec.entry_id, WorkItem.kind == "route")) == "done"

    wait_for(routed, message="routing")
    wait_for(lambda: sink.to(DOT) and sink.to(ADDRESS), message="forward and receipt")
    # The handlers log just after the send: wait for their lines too.
    wait_for(lambda: any("acknowledged" in r.getMessage() for r in caplog.records)
             and any("forwarded to dot" in r.getMessage() for r in caplog.records),
             message="delivery log lines")
    with runtime.db.session() as s:
        kinds = set(s.scalars(select(PiiFinding.kind).where(PiiFinding.entry_id == rec.entry_id)))
        hashes = list(s.scalars(select(PiiFinding.value_hash)))
        gate.disclose(s, [gate.DisclosureRequest(
            entry_id=rec.entry_id, purpose=Purpose.REDIRECT, nature="forward",
            recipient=Recipient(kind="agency", id="dot", name="DOT",
                                address="intake@dot.examplia.gov"))])
    assert {"ssn", "card", "email"} <= kinds  # the detector saw them...
    assert not any(secret in h for h in hashes for secret in SECRETS)  # ...and kept no value

    # Everything logged in this process except the SMTP sink's own logger
    # (aiosmtpd's "mail.log": the stand-in for the agency's mail server).
    logged = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
        if not r.name.startswith("mail.log"))
    assert f"entry {rec.entry_id} recorded" in logged  # the logs did capture the journey
    assert f"entry {rec.entry_id} routed to dot" in logged
    assert f"entry {rec.entry_id} forwarded to dot" in logged
    assert f"entry {rec.entry_id} acknowledged" in logged
    leaked = [secret for secret in SECRETS if secret in logged]
    assert leaked == []
