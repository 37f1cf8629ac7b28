"""XOAUTH2 for SMTP: an aiosmtpd server that takes only XOAUTH2 tokens of the local
OAuth2 server (tests/oauth2_server.py), the real SMTP sender, the delivery path.

A forward goes out with a token got by client credentials; after the server
expires the token, the 535 leads to one new token and one retry within the same
attempt (not a failed delivery); a wrong secret is the provider's refusal in plain
words in ``intake mailboxes check``; no secret or token reaches logs or output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from intake.core.failures import TransientError
from intake.core.oauth2 import OAuth2Config
from intake.db.models import WorkItem
from intake.outbound.oauth2 import TOKENS
from intake.outbound.smtp import SmtpConfig, SmtpMailSender
from intake.services.gate import close_senders, senders_from
from tests.conftest import DOT, REPO, make_runtime, subprocess_env, wait_for
from tests.oauth2_server import OAuth2TestServer, XOAuth2Sink

USER = "intake@examplia.gov"


@pytest.fixture
def authority() -> Iterator[OAuth2TestServer]:
    server = OAuth2TestServer()
    TOKENS.clear()
    yield server
    server.close()
    TOKENS.clear()


@pytest.fixture
def xsink(authority: OAuth2TestServer) -> Iterator[XOAuth2Sink]:
    sink = XOAuth2Sink(authority).start()
    yield sink
    sink.stop()


def oauth_file(tmp_path: Path, authority: OAuth2TestServer, secret_ref: dict[str, str],
               client_id: str = "smtp-app") -> Path:
    path = tmp_path / "smtp-oauth2.yaml"
    path.write_text(yaml.safe_dump({"user": USER, "auth": "oauth2", "oauth2": {
        "token_url": authority.token_url, "client_id": client_id,
        "scope": "https://outlook.office365.com/.default", **secret_ref}}))
    return path


def mail(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = USER
    msg["To"] = DOT
    msg["Subject"] = f"Forward {n}"
    msg.set_content(f"Record EX-2026-{n:06d}\n")
    return msg


def test_sender_logs_in_with_xoauth2_and_retries_once_after_a_535(
        authority: OAuth2TestServer, xsink: XOAuth2Sink,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    secret = authority.add_client("smtp-app", USER)
    config = SmtpConfig(host="127.0.0.1", port=xsink.port, security="plain", username=USER,
                        oauth2=OAuth2Config(token_url=authority.token_url, client_id="smtp-app",
                                            scope="https://outlook.office365.com/.default",
                                            client_secret=secret))
    sender = SmtpMailSender(config)
    sender.send(mail(1), envelope_from=USER, recipients=[DOT])
    assert len(xsink.to(DOT)) == 1 and xsink.refusals == 0
    sender.send(mail(2), envelope_from=USER, recipients=[DOT])
    assert len(authority.issued("smtp-app")) == 1, "the cached token is reused"
    assert xsink.logins == [USER], "the second message went on the kept session"
    authority.expire_all()
    sender.close()  # the kept session ends (as after its idle or age limit): a new login
    sender.send(mail(3), envelope_from=USER, recipients=[DOT])
    assert len(xsink.to(DOT)) == 3
    assert xsink.refusals == 1, "one 535 for the expired token, then success"
    assert len(authority.issued("smtp-app")) == 2
    assert xsink.logins == [USER, USER]
    assert "Bearer" not in repr(config) and secret not in repr(config)
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for planted in (secret, *authority.issued()):
        assert planted not in logs


def test_a_token_refused_twice_is_a_transient_failure_of_the_server(
        authority: OAuth2TestServer, xsink: XOAuth2Sink) -> None:
    secret = authority.add_client("smtp-app", "someone-else@examplia.gov")  # wrong mailbox
    config = SmtpConfig(host="127.0.0.1", port=xsink.port, security="plain", username=USER,
                        oauth2=OAuth2Config(token_url=authority.token_url, client_id="smtp-app",
                                            scope="x", client_secret=secret))
    with pytest.raises(TransientError) as caught:
        SmtpMailSender(config).send(mail(1), envelope_from=USER, recipients=[DOT])
    assert caught.value.unreachable
    assert "535" in caught.value.reason
    assert xsink.refusals == 2 and len(authority.issued("smtp-app")) == 2
    assert xsink.all() == []


def test_forward_goes_out_over_xoauth2_and_survives_an_expired_token(
        tmp_path: Path, db_url: str, authority: OAuth2TestServer, xsink: XOAuth2Sink) -> None:
    from tests.services.test_delivery import submit

    secret = authority.add_client("smtp-app", USER)
    path = oauth_file(tmp_path, authority, {"client_secret_env": "INTAKE_OAUTH2_SMTP_SECRET"})
    rt = make_runtime(tmp_path, db_url, xsink.port, INTAKE_SMTP_OAUTH2_FILE=str(path),
                      INTAKE_OAUTH2_SMTP_SECRET=secret)
    try:
        sender = senders_from(rt.settings).mail
        assert isinstance(sender, SmtpMailSender) and sender.config.oauth2 is not None
        rt.jobs.start()
        _, first = submit(rt, "A pothole on Route 9 is huge.")
        wait_for(lambda: any(first.encode() in r.raw for r in xsink.to(DOT)),
                 message="the first forward over XOAUTH2")
        wait_for(lambda: _all_done(rt), message="the first entry's work done")
        authority.expire_all()
        close_senders(rt.senders)  # kept sessions end (idle or age limit): a new login
        _, second = submit(rt, "Another pothole on Elm street.")
        wait_for(lambda: any(second.encode() in r.raw for r in xsink.to(DOT)),
                 message="the second forward after the token expired")
        wait_for(lambda: _all_done(rt), message="the second entry's work done")
    finally:
        rt.close()
    assert xsink.refusals >= 1, "the expired token was refused with 535"
    assert len([r for r in xsink.to(DOT) if second.encode() in r.raw]) == 1
    with rt.db.session() as s:
        delivers = s.scalars(select(WorkItem).where(WorkItem.kind == "deliver")).all()
        # The refused token cost no attempt: every forward went out on its first attempt.
        assert [(w.state, w.attempts) for w in delivers] == [("done", 1), ("done", 1)]


def _all_done(rt: object) -> bool:
    with rt.db.session() as s:  # type: ignore[attr-defined]
        states = s.scalars(select(WorkItem.state).where(
            WorkItem.kind.in_(("deliver", "acknowledge")))).all()
    return bool(states) and all(state == "done" for state in states)


def test_mailboxes_check_reports_the_smtp_login_and_a_wrong_secret_in_plain_words(
        tmp_path: Path, sqlite_url: str, authority: OAuth2TestServer,
        xsink: XOAuth2Sink) -> None:
    secret = authority.add_client("smtp-app", USER)
    (tmp_path / "good.secret").write_text(secret + "\n")
    (tmp_path / "bad.secret").write_text("not-the-secret-" + secret[::-1])
    results = {}
    for name in ("good", "bad"):
        path = oauth_file(tmp_path, authority, {"client_secret_file": f"{name}.secret"})
        env = subprocess_env(INTAKE_DATABASE_URL=sqlite_url,
                             INTAKE_SMTP_URL=f"smtp://127.0.0.1:{xsink.port}",
                             INTAKE_SMTP_OAUTH2_FILE=str(path), INTAKE_LOG_LEVEL="DEBUG",
                             INTAKE_INSTANCE_PATH=str(tmp_path / "instance"))
        for flag in ((), ("--json",)):
            results[(name, bool(flag))] = subprocess.run(
                [sys.executable, "-m", "intake", "mailboxes", "check", *flag], env=env,
                cwd=REPO, capture_output=True, text=True, timeout=120)
    good, good_json = results[("good", False)], results[("good", True)]
    bad, bad_json = results[("bad", False)], results[("bad", True)]
    assert good.returncode == 0, good.stderr
    assert good.stdout == (f"smtp outgoing (127.0.0.1:{xsink.port}, oauth2): "
                           "login ok (XOAUTH2)\n")
    assert json.loads(good_json.stdout)["ok"] is True
    assert bad.returncode == 1
    line = bad.stdout.strip()
    assert line.startswith(f"smtp outgoing (INTAKE_SMTP_URL, oauth2): FAILED: login: the "
                           f"token endpoint 127.0.0.1:{authority.port} refused: "
                           "AADSTS7000215: invalid client secret — check client_secret_file "
                           "bad.secret"), line
    assert json.loads(bad_json.stdout)["error"].startswith("login: the token endpoint")
    everything = "".join(r.stdout + r.stderr for r in results.values())
    for planted in (secret, "not-the-secret-" + secret[::-1], *authority.issued()):
        assert planted not in everything
    assert "Bearer" not in everything
