"""/metrics: off by default, guarded by addresses or a token, figures from the database,
no personal data in any label or value.

Over HTTP (Flask test client) on SQLite and PostgreSQL; the scrape is parsed with
prometheus-client's own text parser.
"""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from intake import create_app
from intake.runtime import Runtime
from intake.services import mailboxes
from intake.services.mail_intake import quarantine
from intake.services.records import NewSubmission, SubmitterData, record_submissions
from intake.services.work import enqueue
from tests.conftest import ORIGINALS_KEY, make_settings, wait_for

TOKEN = "metrics-token-0123456789abcdef"
NAME, ADDRESS, PHONE = "Zebulon Quartermaine", "zebulon.q@example.org", "(217) 555-0199"


def _client(tmp_path: Path, db_url: str, **env: str) -> tuple[Runtime, FlaskClient]:
    runtime = Runtime(make_settings(tmp_path, db_url, **env))
    runtime.rules.load()
    return runtime, create_app(runtime=runtime).test_client()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_are_a_404_unless_configured(tmp_path: Path, sqlite_url: str) -> None:
    runtime, client = _client(tmp_path, sqlite_url)
    try:
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
                          ).status_code == 404
    finally:
        runtime.close()


def test_the_token_and_the_address_list_guard_the_page(tmp_path: Path, sqlite_url: str) -> None:
    runtime, client = _client(tmp_path, sqlite_url, INTAKE_METRICS_TOKEN=TOKEN)
    try:
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-xxxxxxx"}
                          ).status_code == 404
        ok = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.mimetype == "text/plain"
    finally:
        runtime.close()
    runtime, client = _client(tmp_path, sqlite_url, INTAKE_METRICS_ALLOW="10.0.0.0/8, ::1")
    try:
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}
                          ).status_code == 200
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"}
                          ).status_code == 404
    finally:
        runtime.close()
    # Both set: both must hold.
    runtime, client = _client(tmp_path, sqlite_url, INTAKE_METRICS_ALLOW="10.0.0.0/8",
                              INTAKE_METRICS_TOKEN=TOKEN)
    try:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/metrics", headers=auth, environ_base={"REMOTE_ADDR": "10.0.0.9"}
                          ).status_code == 200
        assert client.get("/metrics", headers=auth, environ_base={"REMOTE_ADDR": "192.0.2.7"}
                          ).status_code == 404
        assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.0.0.9"}
                          ).status_code == 404
    finally:
        runtime.close()


def test_the_figures_count_what_happened_and_hold_no_personal_data(
        tmp_path: Path, db_url: str) -> None:
    runtime, client = _client(tmp_path, db_url, INTAKE_METRICS_TOKEN=TOKEN)
    try:
        body = f"A pothole on Route 9. I am {NAME}, write to {ADDRESS} or call {PHONE}."
        with runtime.db.session() as s:
            record_submissions(s, [NewSubmission(
                channel=channel, kind="contact" if channel == "web" else "email",
                raw=f"{channel}-{i}-{body}".encode(), content_type="text/plain",
                body=body if i else "Where do I renew a fishing licence?",
                form_slug="contact" if channel == "web" else None,
                fields={"topic": "roads"},
                submitter=SubmitterData(name=NAME, email=ADDRESS, phone=PHONE))
                for i, channel in enumerate(["web", "web", "web", "email"])],
                record_prefix="EX", originals_key=ORIGINALS_KEY)
            quarantine(s, f"From: {NAME} <{ADDRESS}>\r\n\r\nbroken".encode(),
                       ValueError(f"cannot parse mail of {ADDRESS}"), mailbox="dot-inbox",
                       originals_key=ORIGINALS_KEY)
            enqueue(s, "deliver", dedupe_key="deliver:test-dead")
        with runtime.db.session() as s:
            from sqlalchemy import update

            from intake.db.models import WorkItem
            s.execute(update(WorkItem).where(WorkItem.dedupe_key == "deliver:test-dead")
                      .values(state="dead", last_error=f"refused {ADDRESS}"))
        assert mailboxes.acquire_lease(runtime.db, "dot-inbox", "poller-1", 60)
        mailboxes.record_pass(runtime.db, "dot-inbox")
        before = _samples(client.get("/metrics", headers={
            "Authorization": f"Bearer {TOKEN}"}).get_data(as_text=True))
        assert before[("intake_submissions_total", (("channel", "web"),))] == 3
        assert before[("intake_submissions_total", (("channel", "email"),))] == 1
        assert before[("intake_queue_oldest_age_seconds", (("kind", "route"),))] >= 0
        assert before[("intake_dead_letters", (("kind", "deliver"),))] == 1
        assert before[("intake_quarantined_messages", ())] == 1
        assert before[("intake_mailbox_poll_lag_seconds", (("mailbox", "dot-inbox"),))] < 60

        runtime.jobs.start(consume=True, sweep=True)  # route them (deliveries: no SMTP)
        wait_for(lambda: "route" not in _unfinished_kinds(runtime), timeout=30,
                 message="routing")
        text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
                          ).get_data(as_text=True)
        after = _samples(text)
        routed = {labels: n for (name, labels), n in after.items()
                  if name == "intake_routing_decisions_total"}
        assert routed == {
            (("agency", "dot"), ("rule", "roads")): 3,
            (("agency", "governor"), ("rule", "(none)")): 1,
        }
        assert after[("intake_staff_reroutes_total", ())] == 0
        assert after[("intake_live_workers", ())] == 1
        assert after[("intake_work_items", (("kind", "route"), ("state", "done")))] == 4
        assert any(name == "intake_deliveries" for name, _ in after)
        for planted in (NAME, ADDRESS, PHONE, "Zebulon", "zebulon", "555-0199", "example.org",
                        "pothole", "fishing"):
            assert planted not in text, planted
    finally:
        runtime.close()


def _unfinished_kinds(runtime: Runtime) -> set[str]:
    from sqlalchemy import select

    from intake.db.models import WorkItem
    with runtime.db.session() as s:
        return set(s.scalars(select(WorkItem.kind).where(
            WorkItem.state.in_(("pending", "running")))))
