"""XOAUTH2 for IMAP against Dovecot's ``oauth2`` passdb and a local OAuth2 server.

Dovecot (started by the test from a temporary configuration) accepts only
XOAUTH2/OAUTHBEARER and asks the test's authorization server
(tests/oauth2_server.py) whether a token is active (RFC 7662 introspection).
intake gets its token by client credentials, polls, survives the token being
expired by the server mid-run (a new token, one retry, no lost or doubled
mail), and ``intake mailboxes check`` reports a revoked client in plain words,
with no secret or token in its output, its --json or its logs.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import requests
from imapclient import IMAPClient

from intake.core.oauth2 import OAuth2Config
from intake.mail.config import MailboxConfig
from intake.mail.imap import ImapMailbox
from intake.mail.poller import MailboxPoller
from intake.outbound.oauth2 import TOKENS
from intake.runtime import Runtime
from tests.conftest import REPO, subprocess_env, wait_for
from tests.mail.conftest import digest, message, start_dovecot, stored_digests
from tests.oauth2_server import OAuth2TestServer

USER = "intake@agency.example.gov"
APP = "intake-app"  # the client intake uses
HELPER = "test-helper"  # the client the test uses to append mail

# Dovecot's oauth2 passdb asks the test's authorization server about each token.
OAUTH_AUTH = """\
auth_failure_delay = 0
auth_mechanisms = xoauth2 oauthbearer
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}"""

OAUTH2_EXT = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
"""


@dataclass
class OAuthDovecot:
    port: int
    authority: OAuth2TestServer
    helper_secret: str

    def client(self) -> IMAPClient:
        token = requests.post(self.authority.token_url, timeout=10, data={
            "grant_type": "client_credentials", "client_id": HELPER,
            "client_secret": self.helper_secret}).json()["access_token"]
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.oauth2_login(USER, token)
        return client

    def folders(self) -> tuple[str, str]:
        tag = "T" + uuid.uuid4().hex[:10]
        with self.client() as c:
            c.create_folder(tag)
        return tag, f"{tag}-done"

    def append(self, folder: str, *raws: bytes) -> None:
        with self.client() as c:
            for raw in raws:
                c.append(folder, raw)

    def count(self, folder: str) -> int:
        with self.client() as c:
            if not c.folder_exists(folder):
                return 0
            return int(c.select_folder(folder, readonly=True)[b"EXISTS"])


@pytest.fixture(scope="module")
def authority() -> Iterator[OAuth2TestServer]:
    server = OAuth2TestServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def dovecot(authority: OAuth2TestServer) -> Iterator[OAuthDovecot]:
    helper_secret = authority.add_client(HELPER, USER)
    ext = OAUTH2_EXT.format(url=authority.introspection_url)
    for server in start_dovecot(auth=OAUTH_AUTH, files={"oauth2.conf.ext": ext}):
        yield OAuthDovecot(server.port, authority, helper_secret)


@pytest.fixture
def app_client(authority: OAuth2TestServer) -> Iterator[tuple[str, str]]:
    """A fresh client id and secret for intake (each test its own), and an empty cache."""
    client_id = f"{APP}-{uuid.uuid4().hex[:8]}"
    secret = authority.add_client(client_id, USER)
    TOKENS.clear()
    yield client_id, secret
    TOKENS.clear()


class CuttableProxy:
    """A loopback TCP proxy whose open connections the test can cut at once (a server
    dropping its sessions, as Exchange Online does when a token expires)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.connections = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.connections += 1
                self.sockets += [down, up]
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass  # cut by the test or closed by a peer: the pump is over
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    def cut(self) -> None:
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed
            self.sockets.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def oauth_mailbox(dovecot: OAuthDovecot, client: tuple[str, str], port: int | None = None,
                  name: str = "m365") -> MailboxConfig:
    folder, done = dovecot.folders()
    oauth2 = OAuth2Config(token_url=dovecot.authority.token_url, client_id=client[0],
                          scope="https://outlook.office365.com/.default",
                          client_secret=client[1],
                          secret_source="client_secret_env INTAKE_OAUTH2_TEST_SECRET")
    return MailboxConfig(name=name, host="127.0.0.1", port=port or dovecot.port,
                         security="none", user=USER, folder=folder, processed_folder=done,
                         poll_interval=1.0, oauth2=oauth2)


def test_poller_logs_in_with_client_credentials_and_refreshes_a_token_expired_mid_run(
        runtime: Runtime, dovecot: OAuthDovecot, app_client: tuple[str, str],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    authority = dovecot.authority
    proxy = CuttableProxy(dovecot.port)
    config = oauth_mailbox(dovecot, app_client, port=proxy.port)
    poller = MailboxPoller(runtime.db, runtime.settings, config, pii_key=runtime.pii_key,
                           open_mailbox=ImapMailbox.open)
    first, second = message(1), message(2)
    dovecot.append(config.folder, first)
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(stored_digests(runtime)) == 1, 30, message="the first message")
        assert len(authority.issued(app_client[0])) == 1, "one token, by client credentials"
        assert authority.requests[-1]["grant_type"] == "client_credentials"
        assert authority.requests[-1]["scope"] == "https://outlook.office365.com/.default"
        # The server expires every token and drops the session; the cached token is dead.
        authority.expire_all()
        proxy.cut()
        dovecot.append(config.folder, second)
        wait_for(lambda: len(stored_digests(runtime)) == 2, 30, message="the second message")
    finally:
        stop.set()
        thread.join(timeout=30)
        proxy.close()
    assert not thread.is_alive()
    assert sorted(stored_digests(runtime)) == sorted(digest(m) for m in (first, second))
    assert dovecot.count(config.folder) == 0
    assert dovecot.count(config.processed_folder) == 2
    # Exactly one new token after the refusal: invalidated, fetched once, retried once.
    assert len(authority.issued(app_client[0])) == 2
    assert proxy.connections >= 2
    logs = "\n".join(_text(r) for r in caplog.records)  # imapclient's DEBUG lines too
    assert "refused the cached access token" in logs
    for secret in (app_client[1], *authority.issued()):
        assert secret not in logs


def _text(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except TypeError:  # imaplib's debug lines through imapclient's adapter: msg and args
        return f"{record.msg} {record.args!r}"


def test_a_login_refused_twice_is_one_failure_not_a_loop(
        dovecot: OAuthDovecot, app_client: tuple[str, str]) -> None:
    """The token endpoint still issues tokens but the server refuses them (e.g. the
    Exchange service principal lacks mailbox permission): one retry, then the error."""
    from imapclient.exceptions import LoginError

    authority = dovecot.authority
    config = oauth_mailbox(dovecot, app_client)
    config = replace(config, user="someone-else@agency.example.gov")  # not the token's user
    with pytest.raises(LoginError):
        ImapMailbox.open(config)
    assert len(authority.issued(app_client[0])) == 2, "first try, then one retry only"


def _write_mailboxes(tmp_path: Path, dovecot: OAuthDovecot, configs: list[MailboxConfig],
                     env_names: list[str]) -> Path:
    import yaml

    items = []
    for config, env_name in zip(configs, env_names, strict=True):
        assert config.oauth2 is not None
        items.append({"name": config.name, "host": config.host, "port": config.port,
                      "security": "none", "user": config.user, "folder": config.folder,
                      "processed_folder": config.processed_folder, "auth": "oauth2",
                      "oauth2": {"token_url": config.oauth2.token_url,
                                 "client_id": config.oauth2.client_id,
                                 "scope": config.oauth2.scope,
                                 "client_secret_env": env_name}})
    path = tmp_path / "mailboxes.yaml"
    path.write_text(yaml.safe_dump({"mailboxes": items}))
    return path


def test_mailboxes_check_reports_each_mailbox_and_a_revoked_client_in_plain_words(
        tmp_path: Path, sqlite_url: str, dovecot: OAuthDovecot,
        authority: OAuth2TestServer) -> None:
    good = (f"{APP}-{uuid.uuid4().hex[:8]}", "")
    good = (good[0], authority.add_client(good[0], USER))
    revoked = (f"{APP}-{uuid.uuid4().hex[:8]}", "")
    revoked = (revoked[0], authority.add_client(revoked[0], USER))
    ok_box = oauth_mailbox(dovecot, good, name="good")
    bad_box = oauth_mailbox(dovecot, revoked, name="revoked")
    with dovecot.client() as c:  # the processed folder exists for one of them
        c.create_folder(ok_box.processed_folder)
    path = _write_mailboxes(tmp_path, dovecot, [ok_box, bad_box],
                            ["INTAKE_OAUTH2_GOOD_SECRET", "INTAKE_OAUTH2_REVOKED_SECRET"])
    # A token of the revoked client was live before: the check must not lean on it.
    requests.post(authority.token_url, timeout=10, data={
        "grant_type": "client_credentials", "client_id": revoked[0],
        "client_secret": revoked[1]})
    authority.revoke_client(revoked[0])
    env = subprocess_env(INTAKE_DATABASE_URL=sqlite_url, INTAKE_MAILBOXES_FILE=str(path),
                         INTAKE_OAUTH2_GOOD_SECRET=good[1],
                         INTAKE_OAUTH2_REVOKED_SECRET=revoked[1],
                         INTAKE_LOG_LEVEL="DEBUG",
                         INTAKE_INSTANCE_PATH=str(tmp_path / "instance"))
    plain = subprocess.run([sys.executable, "-m", "intake", "mailboxes", "check"], env=env,
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    as_json = subprocess.run([sys.executable, "-m", "intake", "mailboxes", "check", "--json"],
                             env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 1, plain.stderr
    assert as_json.returncode == 1, as_json.stderr
    lines = plain.stdout.splitlines()
    assert len(lines) == 2, plain.stdout
    assert lines[0] == (f"imap good (127.0.0.1:{dovecot.port}, oauth2): login ok, folder "
                        f"{ok_box.folder} ok, processed folder {ok_box.processed_folder} ok")
    assert lines[1].startswith(f"imap revoked (127.0.0.1:{dovecot.port}, oauth2): FAILED: "
                               "login: the token endpoint 127.0.0.1:")
    assert "invalid_client" in lines[1] and "the client has been revoked" in lines[1]
    assert "check client_secret_env INTAKE_OAUTH2_REVOKED_SECRET" in lines[1]
    objects = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(o["name"], o["ok"]) for o in objects] == [("good", True), ("revoked", False)]
    assert objects[0]["steps"] == {"login": "ok", f"folder {ok_box.folder}": "ok",
                                   f"processed folder {ok_box.processed_folder}": "ok"}
    assert "the client has been revoked" in objects[1]["error"]
    # Planted secrets and every token the server ever issued: nowhere.
    everything = plain.stdout + plain.stderr + as_json.stdout + as_json.stderr
    assert "DEBUG" in plain.stderr or "INFO" in plain.stderr, "the logs were captured"
    for secret in (good[1], revoked[1], dovecot.helper_secret, *authority.issued()):
        assert secret not in everything
    assert "Bearer" not in everything
