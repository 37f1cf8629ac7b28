"""IMAP with certificate credentials: Dovecot's ``oauth2`` passdb and the local OAuth2
server (tests/oauth2_server.py), which takes a signed client assertion instead of a
secret. ``intake poll --once`` stores the mail of a certificate client; ``intake
mailboxes check`` and ``intake poll --once`` report a wrong certificate as the
provider's refusal in plain words (AADSTS700027 …), with no key material, token or
secret in their output or logs.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from tests.conftest import REPO, subprocess_env
from tests.mail.conftest import message
from tests.mail.test_oauth2 import USER, OAuthDovecot, authority, dovecot  # noqa: F401
from tests.oauth2_server import OAuth2TestServer, make_certificate

KEY, CERT = make_certificate()
WRONG_KEY, WRONG_CERT = make_certificate("not the uploaded one")


def key_lines(*pems: bytes) -> list[str]:
    return [line for pem in pems for line in pem.decode().splitlines()
            if not line.startswith("-----")]


def mailboxes_file(tmp_path: Path, dovecot: OAuthDovecot,  # noqa: F811
                   boxes: dict[str, dict[str, str]], client_id: str) -> tuple[Path, dict[
                       str, tuple[str, str]]]:
    """A mailboxes file with one mailbox per entry of ``boxes`` (name -> credential keys)."""
    items, folders = [], {}
    for name, ref in boxes.items():
        folder, done = dovecot.folders()
        folders[name] = (folder, done)
        items.append({"name": name, "host": "127.0.0.1", "port": dovecot.port,
                      "security": "none", "user": USER, "folder": folder,
                      "processed_folder": done, "auth": "oauth2",
                      "oauth2": {"token_url": dovecot.authority.token_url,
                                 "client_id": client_id,
                                 "scope": "https://outlook.office365.com/.default", **ref}})
    path = tmp_path / "mailboxes.yaml"
    path.write_text(yaml.safe_dump({"mailboxes": items}))
    return path, folders


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intake", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=180)


def assert_clean(text: str, authority: OAuth2TestServer) -> None:  # noqa: F811
    for line in key_lines(KEY, WRONG_KEY):
        assert line not in text
    for token in authority.issued():
        assert token not in text
    assert "PRIVATE KEY" not in text and "Bearer" not in text


def test_poll_and_check_with_a_certificate_and_a_wrong_certificate(
        tmp_path: Path, sqlite_url: str, dovecot: OAuthDovecot,  # noqa: F811
        authority: OAuth2TestServer) -> None:  # noqa: F811
    client_id = f"cert-app-{uuid.uuid4().hex[:8]}"
    authority.add_certificate_client(client_id, USER, CERT)
    (tmp_path / "app.pem").write_bytes(KEY + CERT)
    (tmp_path / "old.pem").write_bytes(WRONG_CERT + WRONG_KEY)
    good = {"client_certificate_file": str(tmp_path / "app.pem")}
    wrong = {"client_certificate_file": str(tmp_path / "old.pem")}
    path, folders = mailboxes_file(tmp_path, dovecot, {"m365": good}, client_id)
    dovecot.append(folders["m365"][0], message(1), message(2))
    env = subprocess_env(INTAKE_DATABASE_URL=sqlite_url, INTAKE_MAILBOXES_FILE=str(path),
                         INTAKE_LOG_LEVEL="DEBUG",
                         INTAKE_INSTANCE_PATH=str(tmp_path / "instance"))
    check = run(["mailboxes", "check"], env)
    assert check.returncode == 0, check.stdout + check.stderr
    folder, done = folders["m365"]
    assert check.stdout == (f"imap m365 (127.0.0.1:{dovecot.port}, oauth2): login ok, folder "
                            f"{folder} ok, processed folder {done} missing (created on the "
                            "first pass)\n")
    polled = run(["poll", "--once"], env)
    assert polled.returncode == 0, polled.stdout + polled.stderr
    assert dovecot.count(folder) == 0 and dovecot.count(done) == 2
    assert len(authority.assertions) >= 2, "each process signed its own assertion"

    # The certificate is replaced by one not uploaded to the app registration.
    wrong_path, wrong_folders = mailboxes_file(tmp_path, dovecot, {"m365": wrong}, client_id)
    dovecot.append(wrong_folders["m365"][0], message(3))
    env["INTAKE_MAILBOXES_FILE"] = str(wrong_path)
    reason = (f"the token endpoint 127.0.0.1:{authority.port} refused: AADSTS700027: the "
              "client assertion's signature was refused: the certificate is not the one "
              "uploaded to the app registration (or it was removed) — check "
              f"client_certificate_file {tmp_path / 'old.pem'}")
    check = run(["mailboxes", "check"], env)
    assert check.returncode == 1
    assert check.stdout == (f"imap m365 (127.0.0.1:{dovecot.port}, oauth2): FAILED: login: "
                            f"{reason}\n")
    before = len(authority.requests)
    polled = run(["poll", "--once"], env)
    assert polled.returncode == 1
    assert f"intake: mailbox m365: {reason}\n" in polled.stderr, polled.stderr
    assert "OAuth2Error" not in polled.stderr.replace("OAuth2Error (attempt", "")
    assert len(authority.requests) == before + 1, "a refused client is not asked again"
    assert dovecot.count(wrong_folders["m365"][0]) == 1, "nothing taken"
    everything = check.stdout + check.stderr + polled.stdout + polled.stderr
    assert "WARNING intake.oauth2" in everything, "the logs were captured"
    assert_clean(everything, authority)


def test_poll_once_names_the_reason_for_a_secret_client_too(
        tmp_path: Path, sqlite_url: str, dovecot: OAuthDovecot,  # noqa: F811
        authority: OAuth2TestServer) -> None:  # noqa: F811
    """Not only certificates: a wrong secret is explained by ``poll --once`` as well."""
    client_id = f"secret-app-{uuid.uuid4().hex[:8]}"
    secret = authority.add_client(client_id, USER)
    path, _ = mailboxes_file(tmp_path, dovecot,
                             {"shared": {"client_secret_env": "INTAKE_OAUTH2_SHARED"}},
                             client_id)
    env = subprocess_env(INTAKE_DATABASE_URL=sqlite_url, INTAKE_MAILBOXES_FILE=str(path),
                         INTAKE_OAUTH2_SHARED="wrong-" + secret[::-1],
                         INTAKE_INSTANCE_PATH=str(tmp_path / "instance"))
    polled = run(["poll", "--once"], env)
    assert polled.returncode == 1
    assert (f"intake: mailbox shared: the token endpoint 127.0.0.1:{authority.port} refused: "
            "AADSTS7000215: invalid client secret — check client_secret_env "
            "INTAKE_OAUTH2_SHARED\n") in polled.stderr, polled.stderr
    assert secret not in polled.stderr and secret[::-1] not in polled.stderr
