"""P2/P8: personal data never reaches the logs.

A submission carrying an e-mail address, an SSN and a card number goes
through recording (with PII detection), routing by the embedded worker, and
the disclosure gate; every log record at every level is then searched.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from intake.core.consent import Purpose
from intake.core.disclosure import Recipient
from intake.db.models import PiiFinding, WorkItem
from intake.runtime import Runtime
from intake.services import privacy
from intake.services.records import NewSubmission, SubmitterData, record_submission
from tests.conftest import wait_for

ADDRESS = "planted.person@example.org"
SSN = "518-22-4137"
CARD = "4111 1111 1111 1111"
NAME = "Planted Person"
SECRETS = (ADDRESS, SSN, CARD, "4111111111111111", "518224137", NAME)


def test_planted_personal_data_never_reaches_the_logs(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    runtime.jobs.start()
    body = (f"My SSN is {SSN} and my card {CARD} was charged twice. "
            f"Write to me at {ADDRESS}. There is also a pothole on Route 9.")
    with runtime.db.session() as s:
        rec = record_submission(s, NewSubmission(
            channel="web", kind="contact", raw=body.encode(), content_type="text/plain",
            subject=f"Complaint from {NAME} <{ADDRESS}>", body=body, form_slug="contact",
            submitter=SubmitterData(name=NAME, email=ADDRESS)), "EX", pii_key=runtime.pii_key)

    def routed() -> bool:
        with runtime.db.session() as s:
            return s.scalar(select(WorkItem.state).where(
                WorkItem.entry_id == rec.entry_id, WorkItem.kind == "route")) == "done"

    wait_for(routed, message="routing")
    with runtime.db.session() as s:
        kinds = set(s.scalars(select(PiiFinding.kind).where(PiiFinding.entry_id == rec.entry_id)))
        hashes = list(s.scalars(select(PiiFinding.value_hash)))
        privacy.disclose(s, entry_id=rec.entry_id, purpose=Purpose.REDIRECT, nature="forward",
                         recipient=Recipient(kind="agency", id="dot", name="DOT",
                                             address="intake@dot.examplia.gov"))
    assert {"ssn", "card", "email"} <= kinds  # the detector saw them...
    assert not any(secret in h for h in hashes for secret in SECRETS)  # ...and kept no value

    logged = "\n".join(
        f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert f"entry {rec.entry_id} recorded" in logged  # the logs did capture the journey
    assert f"entry {rec.entry_id} routed to dot" in logged
    leaked = [secret for secret in SECRETS if secret in logged]
    assert leaked == []
