"""Dead letters and quarantined e-mails say what went wrong in plain words and what to do.

A real SMTP server (aiosmtpd) refuses a forward as too large (552 5.3.4); the dead
letter is then read as staff and operators read it: ``intake jobs status`` (text and
JSON) and the staff admin page over HTTP. A quarantined e-mail likewise.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from intake import create_app
from intake.cli import cli
from intake.core.failures import Explanation, explain, explain_http, explain_smtp
from intake.services.mail_intake import quarantine
from intake.services.records import NewSubmission, record_submissions
from intake.services.work import dead_letters
from tests.conftest import (
    DOT,
    ORIGINALS_KEY,
    TEST_SECRET,
    SmtpSink,
    login,
    make_account,
    make_runtime,
    wait_for,
)

TOO_LARGE = "the agency's mail server refused the message as too large"
RETRY_OR_LINK = "retry or send the link instead"


def test_a_refused_forward_says_why_and_what_next_in_the_cli_and_on_the_admin_page(
        tmp_path: Path, db_url: str, sink: SmtpSink) -> None:
    sink.reject[DOT] = "552 5.3.4 Message size exceeds fixed maximum message size"
    rt = make_runtime(tmp_path, db_url, sink.port)
    try:
        rt.rules.load()
        rt.jobs.start()
        with rt.db.session() as s:
            record_submissions(s, [NewSubmission(
                channel="web", kind="contact", raw=b"too-large", content_type="text/plain",
                body="A pothole on Route 9", form_slug="contact")],
                record_prefix="EX", originals_key=ORIGINALS_KEY)

        def dead() -> list[int]:
            with rt.db.session() as s:
                return [item.id for item in dead_letters(s)]

        [dead_id] = wait_for(dead, message="the dead letter")
        with rt.db.session() as s:
            quarantine(s, b"From: someone\r\n\r\n", ValueError("cannot decode"),
                       mailbox="dot-inbox", originals_key=ORIGINALS_KEY)
        env = {"INTAKE_DATABASE_URL": db_url, "INTAKE_SECRET_KEY": TEST_SECRET,
               "INTAKE_INSTANCE_PATH": str(tmp_path / "instance"),
               "INTAKE_RULES": str(tmp_path / "rules.yaml")}
        shown = CliRunner().invoke(cli, ["jobs", "status"], env=env)
        assert shown.exit_code == 0, shown.output
        lines = shown.output.splitlines()
        [line] = [x for x in lines if f"#{dead_id} deliver" in x]
        assert TOO_LARGE in line and "552 5.3.4 Message size exceeds" in line
        assert lines[lines.index(line) + 1].strip().startswith(f"next step: {RETRY_OR_LINK}")
        assert "quarantined e-mails (1):" in shown.output
        assert "intake could not store the e-mail (ValueError): ValueError: cannot decode" \
            in shown.output
        as_json = json.loads(CliRunner().invoke(cli, ["jobs", "status", "--json"],
                                                env=env).output)
        [letter] = as_json["dead_letters"]
        assert letter["what"] == TOO_LARGE
        assert letter["next_step"].startswith(RETRY_OR_LINK)
        assert "552 5.3.4" in letter["reason"]
        [held] = as_json["quarantined"]
        assert held["mailbox"] == "dot-inbox" and held["next_step"]

        app = create_app(runtime=rt)
        client = app.test_client()
        login(client, make_account(rt, "root@examplia.gov", "dot", role="system_admin"))
        page = html.unescape(client.get("/staff/admin").get_data(as_text=True))
        assert f"{TOO_LARGE}." in page
        assert f"Next step: {RETRY_OR_LINK}" in " ".join(
            page.replace("<strong>", "").replace("</strong>", "").split())
        assert "552 5.3.4 Message size exceeds fixed maximum message size" in page
        assert "intake could not store the e-mail (ValueError)." in page
    finally:
        rt.close()


@pytest.mark.parametrize(("stored", "kind", "what", "next_step"), [
    ("the mail server mx.dot.gov:25 refused the message: 550 5.1.1 <a@dot.gov> unknown user",
     "deliver", "the agency's mail server says the address does not exist",
     "correct the agency's address in the routing rules file"),
    ("the mail server mx:25 refused the message: 554 rejected", "deliver",
     "the agency's mail server refused the message (rejected as spam or by policy)",
     "ask the agency's mail administrators"),
    ("the mail server mx:25 refused the message: 552 5.2.2 mailbox full", "acknowledge",
     "the recipient's mailbox is full", "ask the agency to make room"),
    ("the mail server mx:587 refused the session: 535 5.7.8 bad credentials "
     "(check INTAKE_SMTP_URL)", "deliver",
     "intake could not start a session with its own mail server (the mail server refused "
     "intake's login)", "check the user, password"),
    ("the webhook at https://hooks.parks.gov:443 refused the delivery: it answered 404",
     "deliver", "the agency's webhook address does not exist (any more)",
     "correct the agency's webhook address"),
    ("not delivered in 3 days, the age limit: could not reach the mail server mx:25 "
     "(connection refused)", "deliver",
     "intake could not reach the mail server, for longer than the retry age limit "
     "(INTAKE_DELIVERY_MAX_AGE)", "once the destination works again, retry"),
    ("failed 8 times (INTAKE_MAX_ATTEMPTS): OperationalError: server closed the connection",
     "route", "the work failed every time it was tried (a fault in intake or the database)",
     "read the worker log"),
    ("no mail server is configured yet (INTAKE_SMTP_URL); nothing was sent", "deliver",
     "no outgoing mail server is configured", "set INTAKE_SMTP_URL"),
])
def test_stored_reasons_in_plain_words(stored: str, kind: str, what: str,
                                       next_step: str) -> None:
    result = explain(stored, kind)
    assert result.what == what
    assert result.next_step.startswith(next_step)


def test_the_tables_cover_the_common_answers() -> None:
    assert explain_smtp(552, "5.3.4").what == TOO_LARGE
    assert explain_smtp(421).next_step.startswith("none now: intake tries again")
    assert explain_smtp(599).what == "the mail server refused the message"
    assert explain_smtp(499).what == "the mail server deferred the message"
    assert explain_http(413).next_step.startswith(RETRY_OR_LINK)
    assert explain_http(301).what.startswith("the agency's webhook answered with a redirect")
    assert explain_http(418) == Explanation("the agency's webhook refused the delivery (418)",
                                            "ask the agency to fix their webhook receiver, "
                                            "then retry")
    assert str(explain_http(503)).startswith("the agency's webhook is not available. Next step:")
