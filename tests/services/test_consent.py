"""The privacy service on a real database: consent ledger, the gate, tamper evidence,
the submitter's own view."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from intake import create_app
from intake.core.consent import ConsentAction, ConsentMethod, Purpose
from intake.core.disclosure import Recipient
from intake.db import Database
from intake.db.models import AccessLink, Disclosure, WorkItem, utcnow
from intake.runtime import Runtime
from intake.services import gate
from intake.services.consent import (
    PolicyTextConflict,
    consent_states,
    ensure_policy_text,
    record_consent,
    verify_chains,
)
from intake.services.links import create_access_link, entry_for_relay_token, relay_for
from intake.services.records import NewSubmission, SubmitterData, record_submissions
from tests.conftest import ORIGINALS_KEY, REPO, intake_command, subprocess_env

POLICY_VERSION = "share-identity-2026-01"
POLICY_TEXT = ("I agree that the state agency that handles my message may see my name and "
               "e-mail address so that it can answer me directly.")
DOT = Recipient(kind="agency", id="dot", name="Department of Transportation",
                address="intake@dot.examplia.gov")


def _entry(db: Database, email: str = "maria@example.org") -> int:
    with db.session() as s:
        ensure_policy_text(s, POLICY_VERSION, POLICY_TEXT)
        return record_submissions(s, [NewSubmission(
            channel="web", kind="contact", raw=email.encode(), content_type="text/plain",
            subject="Pothole", body="Pothole on Route 9",
            submitter=SubmitterData(name="Maria Lopez", email=email))], record_prefix="EX",
                    originals_key=ORIGINALS_KEY)[0].entry_id


def _consent(db: Database, entry_id: int, action: ConsentAction, recipient_class: str = "agency",
             purpose: Purpose = Purpose.SHARE_IDENTITY) -> None:
    with db.session() as s:
        record_consent(s, entry_id=entry_id, action=action, purpose=purpose,
                               recipient_class=recipient_class, policy_version=POLICY_VERSION,
                               method=ConsentMethod.WEB_CHECKBOX, evidence=b"consent_share=on")


def _disclose(db: Database, entry_id: int, purpose: Purpose, **kw: object) -> gate.GateResult:
    with db.session() as s:
        [result] = gate.disclose(s, [gate.DisclosureRequest(
            entry_id=entry_id, recipient=kw.pop("recipient", DOT),  # type: ignore[arg-type]
            purpose=purpose, nature="forward", work_kind="deliver", **kw)])  # type: ignore[arg-type]
        return result


def _row(db: Database, disclosure_id: int) -> Disclosure:
    with db.session() as s:
        row = s.get(Disclosure, disclosure_id)
        assert row is not None
        s.expunge(row)
        return row


@pytest.fixture
def db(runtime: Runtime) -> Database:
    return runtime.db


def _count(db: Database, model: type) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_redirect_without_consent_forwards_content_only(db: Database) -> None:
    entry_id = _entry(db)
    result = _disclose(db, entry_id, Purpose.REDIRECT)
    assert result.decision.allowed and not result.decision.include_identity
    assert result.decision.reason == "notice"
    assert result.work_item_id is not None
    with db.session() as s:
        item = s.get(WorkItem, result.work_item_id)
        row = s.get(Disclosure, result.disclosure_id)
        assert item is not None and row is not None
        assert item.payload["disclosure_id"] == row.id and row.work_item_id == item.id
        assert (row.allowed, row.basis, row.recipient_address) == (
            True, "notice", "intake@dot.examplia.gov")


def test_redirect_with_consent_includes_identity(db: Database) -> None:
    entry_id = _entry(db)
    _consent(db, entry_id, ConsentAction.GRANT, "agency:dot")
    result = _disclose(db, entry_id, Purpose.REDIRECT)
    assert result.decision.allowed and result.decision.include_identity
    assert _row(db, result.disclosure_id).consent_event_id is not None


def test_refusal_is_recorded_and_nothing_is_queued(db: Database) -> None:
    entry_id = _entry(db)
    result = _disclose(db, entry_id, Purpose.SHARE_IDENTITY)
    assert not result.decision.allowed and result.decision.reason == "no-consent"
    assert result.work_item_id is None
    assert _count(db, WorkItem) == 1  # only the entry's route item
    with db.session() as s:
        row = s.get(Disclosure, result.disclosure_id)
        assert row is not None and not row.allowed and row.reason == "no-consent"


@pytest.mark.parametrize("purpose", [Purpose.SALE, Purpose.LEASE, Purpose.MARKETING])
def test_forbidden_purposes_are_refused_whatever_the_consent(db: Database,
                                                            purpose: Purpose) -> None:
    entry_id = _entry(db)
    _consent(db, entry_id, ConsentAction.GRANT, "agency", purpose=purpose)
    result = _disclose(db, entry_id, purpose)
    assert not result.decision.allowed and result.decision.reason == "forbidden-purpose"
    assert result.work_item_id is None


def test_legal_obligation_needs_a_citation(db: Database) -> None:
    entry_id = _entry(db)
    refused = _disclose(db, entry_id, Purpose.LEGAL, dedupe_key="legal-1")
    assert refused.decision.reason == "citation-required" and refused.work_item_id is None
    allowed = _disclose(db, entry_id, Purpose.LEGAL, citation="KRS 61.878(5)",
                        dedupe_key="legal-2")
    assert allowed.decision.allowed
    assert _row(db, allowed.disclosure_id).citation == "KRS 61.878(5)"


def test_withdrawal_stops_a_queued_message_at_send_time(db: Database) -> None:
    entry_id = _entry(db)
    _consent(db, entry_id, ConsentAction.GRANT, "agency")
    queued = _disclose(db, entry_id, Purpose.REDIRECT)
    assert queued.decision.include_identity
    with db.session() as s:
        assert gate.recheck(s, queued.disclosure_id).allowed
    _consent(db, entry_id, ConsentAction.WITHDRAW, "agency")
    with db.session() as s:
        again = gate.recheck(s, queued.disclosure_id)
    assert not again.allowed and again.reason == "consent-withdrawn"
    with db.session() as s:
        reasons = s.scalars(select(Disclosure.reason).order_by(Disclosure.seq)).all()
    assert reasons == ["consent", "consent-withdrawn"]


def test_content_only_message_still_goes_after_a_withdrawal(db: Database) -> None:
    entry_id = _entry(db)
    queued = _disclose(db, entry_id, Purpose.REDIRECT)
    _consent(db, entry_id, ConsentAction.GRANT, "agency")
    _consent(db, entry_id, ConsentAction.WITHDRAW, "agency")
    with db.session() as s:
        decision = gate.recheck(s, queued.disclosure_id)
    assert decision.allowed and not decision.include_identity


def test_no_ledger_row_no_send(db: Database) -> None:
    with db.session() as s:
        assert gate.recheck(s, 987654).reason == "no-ledger-row"


def test_policy_texts_are_immutable(db: Database) -> None:
    with db.session() as s:
        ensure_policy_text(s, "v9", "Exact text.")
        ensure_policy_text(s, "v9", "Exact text.")
    with pytest.raises(PolicyTextConflict), db.session() as s:
        ensure_policy_text(s, "v9", "Exact text, edited.")


# -- tamper evidence ---------------------------------------------------------------


@contextmanager
def _triggers_disabled(db: Database, table: str) -> Iterator[None]:
    """What someone with database access could do to bypass append-only triggers."""
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only"))
        else:
            conn.execute(text(f"DROP TRIGGER {table}_no_update"))
            conn.execute(text(f"DROP TRIGGER {table}_no_delete"))
    try:
        yield
    finally:
        if db.dialect == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only"))


def _ledger(db: Database, n: int = 4) -> int:
    entry_id = _entry(db)
    for i in range(n):
        _disclose(db, entry_id, Purpose.REDIRECT, dedupe_key=f"d{i}")
    return entry_id


def _verdicts(db: Database) -> dict[str, tuple[bool, int | None, str]]:
    with db.session() as s:
        return {r.chain: (r.verdict.ok, r.verdict.broken_at_seq, r.verdict.reason)
                for r in verify_chains(s)}


def test_intact_chains_verify(db: Database) -> None:
    entry_id = _ledger(db)
    _consent(db, entry_id, ConsentAction.GRANT)
    assert _verdicts(db) == {"consent_events": (True, None, "ok"),
                             "disclosures": (True, None, "ok")}


@pytest.mark.parametrize(("tamper", "seq", "reason"), [
    ("UPDATE disclosures SET recipient_address = 'x@evil.example' WHERE seq = 2", 2, "edited"),
    ("DELETE FROM disclosures WHERE seq = 2", 3, "deleted"),
    ("UPDATE disclosures SET seq = CASE seq WHEN 2 THEN 3 WHEN 3 THEN 2 END "
     "WHERE seq IN (2, 3)", 3, "reordered"),
    ("DELETE FROM disclosures WHERE seq = 4", None, "truncated"),
])
def test_audit_finds_the_first_broken_link(db: Database, tamper: str, seq: int | None,
                                           reason: str | None) -> None:
    _ledger(db)
    with _triggers_disabled(db, "disclosures"), db.engine.begin() as conn:
        if db.dialect == "postgresql" and "CASE" in tamper:
            conn.execute(text("ALTER TABLE disclosures DROP CONSTRAINT uq_disclosures_seq"))
            conn.execute(text(tamper))
            conn.execute(text("ALTER TABLE disclosures ADD CONSTRAINT uq_disclosures_seq "
                              "UNIQUE (seq)"))
        elif "CASE" in tamper:
            conn.execute(text("UPDATE disclosures SET seq = -seq WHERE seq IN (2, 3)"))
            conn.execute(text("UPDATE disclosures SET seq = CASE seq WHEN -2 THEN 3 "
                              "WHEN -3 THEN 2 END WHERE seq IN (-2, -3)"))
        else:
            conn.execute(text(tamper))
    ok, broken_at, why = _verdicts(db)["disclosures"]
    assert not ok
    if seq is not None:
        assert broken_at == seq
    if reason is not None:
        assert why == reason
    assert _verdicts(db)["consent_events"][0] is True


def test_audit_verify_command(tmp_path: object, db: Database, settings: object) -> None:
    _ledger(db)
    env = subprocess_env(INTAKE_DATABASE_URL=db.url)
    ok = subprocess.run(intake_command() + ["audit", "verify"], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "disclosures: 4 rows, chain intact" in ok.stdout
    with _triggers_disabled(db, "disclosures"), db.engine.begin() as conn:
        conn.execute(text("UPDATE disclosures SET reason = 'consent' WHERE seq = 3"))
    bad = subprocess.run(intake_command() + ["audit", "verify"], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "disclosures: BROKEN at seq 3 (edited)" in bad.stderr


# -- relay and the submitter's own view -----------------------------------------------


def test_two_deliveries_asking_for_one_entrys_relay_at_once_get_the_same(db: Database) -> None:
    """The forward and the receipt of one entry run in two workers: the second to ask
    waits for the first's uncommitted row and reads it, instead of failing on it (it
    did, on PostgreSQL: an IntegrityError, and a retry of the delivery)."""
    import threading

    entry_id = _entry(db)
    second: list[str] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            with db.session() as s:
                second.append(relay_for(s, entry_id, "relay.examplia.gov"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with db.session() as s:
        first = relay_for(s, entry_id, "relay.examplia.gov")  # not committed yet
        other = threading.Thread(target=ask)
        other.start()
        other.join(0.5)  # it waits for this transaction (row lock, or SQLite's writer turn)
        assert other.is_alive() and second == []
    other.join(10)
    assert errors == [] and second == [first]


def test_relay_address_is_stable_per_entry(db: Database) -> None:
    entry_id = _entry(db)
    with db.session() as s:
        first = relay_for(s, entry_id, "relay.examplia.gov")
    with db.session() as s:
        assert relay_for(s, entry_id, "relay.examplia.gov") == first
        token = first.split("+", 1)[1].split("@", 1)[0]
        assert entry_for_relay_token(s, token) == entry_id
    assert first.startswith("reply+") and first.endswith("@relay.examplia.gov")


def test_status_page_shows_status_consents_and_accounting(runtime: Runtime) -> None:
    db = runtime.db
    entry_id = _entry(db)
    _consent(db, entry_id, ConsentAction.GRANT, "agency")
    _disclose(db, entry_id, Purpose.REDIRECT)
    with db.session() as s:
        token = create_access_link(s, entry_id)
        stored = s.scalars(select(AccessLink.token_sha256)).all()
    assert token not in stored  # only the hash is kept
    client = create_app(runtime=runtime).test_client()

    page = client.get(f"/status/{token}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "EX-" in html and "Department of Transportation" in html
    assert "Withdraw this consent" in html
    assert "maria@example.org" not in html  # the page never echoes the address
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]

    done = client.post(f"/status/{token}/withdraw",
                       data={"purpose": "share-identity", "recipient_class": "agency"})
    assert done.status_code == 303
    after = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Your consent has been withdrawn." in after
    assert "Withdraw this consent" not in after
    with db.session() as s:
        live = [st for st in consent_states(s, entry_id) if st.live]
    assert live == []


def test_status_page_rejects_unknown_tokens_and_bad_posts(runtime: Runtime) -> None:
    client = create_app(runtime=runtime).test_client()
    assert client.get("/status/not-a-token").status_code == 404
    assert client.post("/status/not-a-token/withdraw",
                       data={"purpose": "share-identity"}).status_code == 404
    entry_id = _entry(runtime.db)
    with runtime.db.session() as s:
        token = create_access_link(s, entry_id)
    assert client.post(f"/status/{token}/withdraw", data={"purpose": "nonsense"}).status_code == 400
    # Nothing live to withdraw.
    assert client.post(f"/status/{token}/withdraw",
                       data={"purpose": "share-identity",
                             "recipient_class": "agency"}).status_code == 400


def test_consent_in_the_future_is_not_live_yet(db: Database) -> None:
    entry_id = _entry(db)
    with db.session() as s:
        record_consent(s, entry_id=entry_id, action=ConsentAction.GRANT,
                               purpose=Purpose.SHARE_IDENTITY, recipient_class="agency",
                               policy_version=POLICY_VERSION, method=ConsentMethod.STAFF_RECORDED,
                               evidence=b"phone call", at=utcnow() + timedelta(days=1),
                               actor="staff:1")
    assert not _disclose(db, entry_id, Purpose.REDIRECT).decision.include_identity
