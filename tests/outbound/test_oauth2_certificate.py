"""Certificate credentials against the local OAuth2 server: the token request carries an
RFC 7523 client assertion signed with the app's key (RS256, ``x5t``/``x5t#S256`` of the
certificate, aud = the token URL, a fresh jti, a short lifetime); the server verifies
it as Microsoft Entra does. SMTP submission with such a client, and a wrong
certificate reported by ``intake mailboxes check`` in plain words, without key material.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests
import yaml
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.jwk import RSAKey

from intake.core.oauth2 import OAuth2Config, load_certificate
from intake.outbound.oauth2 import ASSERTION_LIFETIME, TOKENS, OAuth2Error, TokenCache
from intake.outbound.smtp import SmtpConfig, SmtpMailSender
from tests.conftest import DOT, REPO, subprocess_env
from tests.oauth2_server import (
    ASSERTION_TYPE,
    OAuth2TestServer,
    XOAuth2Sink,
    make_certificate,
    thumbprints,
)

USER = "intake@examplia.gov"
SCOPE = "https://outlook.office365.com/.default"
KEY, CERT = make_certificate()
WRONG_KEY, WRONG_CERT = make_certificate("not the uploaded one")


def key_lines(*pems: bytes) -> list[str]:
    return [line for pem in pems for line in pem.decode().splitlines()
            if not line.startswith("-----")]


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


def cert_config(authority: OAuth2TestServer, client_id: str, key: bytes = KEY,
                cert: bytes = CERT) -> OAuth2Config:
    return OAuth2Config(token_url=authority.token_url, client_id=client_id, scope=SCOPE,
                        certificate=load_certificate((cert + key).decode(), "test"),
                        secret_source="client_certificate_file app.pem")


def test_the_token_request_carries_a_signed_assertion_as_entra_wants_it(
        authority: OAuth2TestServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    authority.add_certificate_client("cert-app", USER, CERT)
    tokens = TokenCache()
    config = cert_config(authority, "cert-app")
    first = tokens.get(config)
    assert tokens.get(config) == first, "cached"
    tokens.clear()
    assert tokens.get(config) != first
    assert tokens.fetches == 2
    assert [r["client_assertion_type"] for r in authority.requests] == [ASSERTION_TYPE] * 2
    assert [r["client_id"] for r in authority.requests] == ["cert-app"] * 2
    (h1, c1), (h2, c2) = authority.assertions
    x5t, x5t_s256 = thumbprints(CERT)
    assert h1 == {"alg": "RS256", "typ": "JWT", "x5t": x5t, "x5t#S256": x5t_s256}
    assert c1["aud"] == authority.token_url
    assert c1["iss"] == c1["sub"] == "cert-app"
    assert c1["nbf"] == c1["iat"] and c1["exp"] - c1["iat"] == ASSERTION_LIFETIME <= 600
    assert abs(c1["iat"] - time.time()) < 3600, "issued now, not at some fixed time"
    assert c1["jti"] != c2["jti"] and len(c1["jti"]) >= 32
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for line in key_lines(KEY):
        assert line not in logs


def test_the_server_refuses_what_entra_refuses(authority: OAuth2TestServer) -> None:
    """The checks of the local server can fail: a replayed jti, an expired or too long
    assertion, another audience, a signature by another key under the right x5t."""
    authority.add_certificate_client("cert-app", USER, CERT)
    x5t = thumbprints(CERT)[0]

    def assertion(key: bytes = KEY, aud: str = authority.token_url, lifetime: int = 300,
                  issued: int | None = None, jti: str | None = None) -> str:
        now = int(time.time()) if issued is None else issued
        claims = {"jti": jti} if jti else None
        return str(private_key_jwt_sign(RSAKey.import_key(key), client_id="cert-app",
                                        token_endpoint=aud, claims=claims,
                                        header={"x5t": x5t}, issued_at=now,
                                        expires_at=now + lifetime))

    def post(value: str) -> tuple[int, str]:
        answer = requests.post(authority.token_url, timeout=10, data={
            "grant_type": "client_credentials", "client_id": "cert-app", "scope": SCOPE,
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": value})
        return answer.status_code, str(answer.json().get("error_description", ""))

    good = assertion(jti="once-only-" + "x" * 30)
    assert post(good)[0] == 200
    assert post(good) == (401, "AADSTS50013: the client assertion's jti was used before "
                               "(a replay).")
    assert post(assertion(issued=int(time.time()) - 900))[1].startswith("AADSTS700024")
    assert "lifetime is too long" in post(assertion(lifetime=3600))[1]
    assert post(assertion(aud="https://login.microsoftonline.com/x/oauth2/v2.0/token"))[1] \
        .startswith("AADSTS50013: Assertion audience")
    refused = post(assertion(key=WRONG_KEY))[1]
    assert refused.startswith("AADSTS700027") and "does not verify" in refused
    assert len(authority.assertions) == 1


def test_a_wrong_certificate_is_refused_in_plain_words_without_key_material(
        authority: OAuth2TestServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    authority.add_certificate_client("cert-app", USER, CERT)
    with pytest.raises(OAuth2Error) as caught:
        TokenCache().get(cert_config(authority, "cert-app", WRONG_KEY, WRONG_CERT))
    text = str(caught.value)
    assert caught.value.refused
    assert text == (f"the token endpoint 127.0.0.1:{authority.port} refused: AADSTS700027: "
                    "the client assertion's signature was refused: the certificate is not "
                    "the one uploaded to the app registration (or it was removed) — check "
                    "client_certificate_file app.pem")
    everything = text + repr(caught.value) + "\n".join(r.getMessage() for r in caplog.records)
    for line in key_lines(KEY, WRONG_KEY):
        assert line not in everything
    assert authority.issued() == []


def mail(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = USER
    msg["To"] = DOT
    msg["Subject"] = f"Forward {n}"
    msg.set_content(f"Record EX-2026-{n:06d}\n")
    return msg


def test_smtp_sender_with_a_certificate_client_and_an_expired_token(
        authority: OAuth2TestServer, xsink: XOAuth2Sink) -> None:
    authority.add_certificate_client("smtp-cert", USER, CERT)
    config = SmtpConfig(host="127.0.0.1", port=xsink.port, security="plain", username=USER,
                        oauth2=cert_config(authority, "smtp-cert"))
    sender = SmtpMailSender(config)
    sender.send(mail(1), envelope_from=USER, recipients=[DOT])
    authority.expire_all()
    sender.close()  # the kept session ends (as after its idle or age limit): a new login
    sender.send(mail(2), envelope_from=USER, recipients=[DOT])
    assert len(xsink.to(DOT)) == 2
    assert xsink.refusals == 1 and xsink.logins == [USER, USER]
    assert len(authority.assertions) == 2, "a new assertion for the new token"
    assert len({claims["jti"] for _, claims in authority.assertions}) == 2


def test_mailboxes_check_smtp_with_a_certificate_and_with_a_wrong_one(
        tmp_path: Path, sqlite_url: str, authority: OAuth2TestServer,
        xsink: XOAuth2Sink) -> None:
    authority.add_certificate_client("smtp-cert", USER, CERT)
    (tmp_path / "good.pem").write_bytes(CERT + KEY)
    (tmp_path / "wrong.crt").write_bytes(WRONG_CERT)
    (tmp_path / "wrong.key").write_bytes(WRONG_KEY)
    refs = {"good": {"client_certificate_file": str(tmp_path / "good.pem")},
            "wrong": {"client_certificate_file": str(tmp_path / "wrong.crt"),
                      "client_key_file": str(tmp_path / "wrong.key")},
            "env": {"client_certificate_env": "INTAKE_OAUTH2_SMTP_CERT"}}
    results = {}
    for name, ref in refs.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"user": USER, "auth": "oauth2", "oauth2": {
            "token_url": authority.token_url, "client_id": "smtp-cert", "scope": SCOPE,
            **ref}}))
        env = subprocess_env(INTAKE_DATABASE_URL=sqlite_url,
                             INTAKE_SMTP_URL=f"smtp://127.0.0.1:{xsink.port}",
                             INTAKE_SMTP_OAUTH2_FILE=str(path), INTAKE_LOG_LEVEL="DEBUG",
                             INTAKE_OAUTH2_SMTP_CERT=(KEY + CERT).decode(),
                             INTAKE_INSTANCE_PATH=str(tmp_path / "instance"))
        for flag in ((), ("--json",)):
            results[(name, bool(flag))] = subprocess.run(
                [sys.executable, "-m", "intake", "mailboxes", "check", *flag], env=env,
                cwd=REPO, capture_output=True, text=True, timeout=120)
    for name in ("good", "env"):
        plain = results[(name, False)]
        assert plain.returncode == 0, plain.stderr
        assert plain.stdout == (f"smtp outgoing (127.0.0.1:{xsink.port}, oauth2): "
                                "login ok (XOAUTH2)\n")
        assert json.loads(results[(name, True)].stdout)["ok"] is True
    wrong, wrong_json = results[("wrong", False)], results[("wrong", True)]
    assert wrong.returncode == 1
    assert wrong.stdout.strip() == (
        "smtp outgoing (INTAKE_SMTP_URL, oauth2): FAILED: login: the token endpoint "
        f"127.0.0.1:{authority.port} refused: AADSTS700027: the client assertion's signature "
        "was refused: the certificate is not the one uploaded to the app registration (or it "
        f"was removed) — check client_certificate_file {tmp_path / 'wrong.crt'} and "
        f"client_key_file {tmp_path / 'wrong.key'}"), wrong.stdout
    assert "AADSTS700027" in json.loads(wrong_json.stdout)["error"]
    everything = "".join(r.stdout + r.stderr for r in results.values())
    assert "DEBUG" in everything or "INFO" in everything, "the logs were captured"
    for line in key_lines(KEY, WRONG_KEY):
        assert line not in everything
    for token in authority.issued():
        assert token not in everything
    assert "PRIVATE KEY" not in everything and "Bearer" not in everything
