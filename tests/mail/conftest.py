"""Real IMAP servers on loopback for the e-mail intake tests: pymap always, Dovecot if installed.

Each server is started once per test session; each test works in folders of
its own (``T<random>`` and ``T<random>-done``), so tests never see each
other's mail.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from imapclient import IMAPClient
from sqlalchemy import select

from intake.db.mail_models import QuarantinedMessage
from intake.db.models import Original
from intake.mail.config import MailboxConfig
from intake.runtime import Runtime
from tests.conftest import free_port, service_missing, wait_for

USER = "intake"
PASSWORD = "imap-test-password"
DOVECOT = "/usr/sbin/dovecot"


@dataclass
class ImapServer:
    kind: str
    host: str
    port: int
    process: subprocess.Popen[bytes]

    def client(self, port: int | None = None) -> IMAPClient:
        client = IMAPClient(self.host, port=port or self.port, ssl=False, timeout=10)
        client.login(USER, PASSWORD)
        return client

    def mailbox(self, name: str = "default", port: int | None = None,
                **changes: object) -> MailboxConfig:
        tag = "T" + uuid.uuid4().hex[:10]
        config = MailboxConfig(name=name, host=self.host, port=port or self.port,
                               security="none", user=USER, password=PASSWORD, folder=tag,
                               processed_folder=f"{tag}-done", poll_interval=1.0)
        if changes:
            from dataclasses import replace

            config = replace(config, **changes)  # type: ignore[arg-type]
        with self.client() as c:
            c.create_folder(config.folder)
        return config

    def append(self, folder: str, *messages: bytes) -> None:
        with self.client() as c:
            for raw in messages:
                c.append(folder, raw)

    def count(self, folder: str) -> int:
        with self.client() as c:
            if not c.folder_exists(folder):
                return 0
            return int(c.select_folder(folder, readonly=True)[b"EXISTS"])

    def contents(self, folder: str) -> list[bytes]:
        with self.client() as c:
            if not c.folder_exists(folder):
                return []
            c.select_folder(folder, readonly=True)
            uids = c.search(["ALL"])
            if not uids:
                return []
            data = c.fetch(uids, ["BODY.PEEK[]"])
            return [bytes(data[u][b"BODY[]"]) for u in sorted(data)]


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_pymap() -> Iterator[ImapServer]:
    port = free_port()
    script = Path(sys.executable).parent / "pymap"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pymap"]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--no-tls", "dict",
         "--demo-user", USER, "--demo-password", PASSWORD],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: process.poll() is not None or _accepting(port), 20,
                 message="pymap to listen")
        if process.poll() is not None:
            raise RuntimeError(f"pymap exited with {process.returncode}")
        yield ImapServer("pymap", "127.0.0.1", port, process)
    finally:
        _stop(process)


DOVECOT_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
{auth}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={root}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


#: How the test Dovecot checks logins: a password file (``passwd``, written below).
PASSWORD_AUTH = """\
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}"""


def start_dovecot(auth: str = PASSWORD_AUTH, files: dict[str, str] | None = None
                  ) -> Iterator[ImapServer]:
    """Dovecot from a config of its own in a temp folder; ``auth`` (formatted with
    ``root``) says how it checks logins, ``files`` are written beside the config."""
    if not os.path.exists(DOVECOT):
        service_missing("Dovecot", f"{DOVECOT} not installed (apt-get install dovecot-imapd)")
    if os.geteuid() != 0:
        service_missing("Dovecot", "the test Dovecot runs its mail as uid 65534 and needs root")
    root = Path(tempfile.mkdtemp(prefix="intake-dovecot-"))
    root.chmod(0o755)
    (root / "home").mkdir()
    os.chown(root / "home", 65534, 65534)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    for name, text in (files or {}).items():
        (root / name).write_text(text)
    port = free_port()
    conf = root / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(root=root, port=port, auth=auth.format(root=root)))
    process = subprocess.Popen([DOVECOT, "-c", str(conf), "-F"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: process.poll() is not None or _accepting(port), 20,
                 message="Dovecot to listen")
        if process.poll() is not None:
            log = (root / "dovecot.log")
            raise RuntimeError("dovecot exited: "
                               + (log.read_text()[-500:] if log.exists() else "no log"))
        yield ImapServer("dovecot", "127.0.0.1", port, process)
    finally:
        _stop(process)
        shutil.rmtree(root, ignore_errors=True)


class DroppingProxy:
    """A TCP proxy that cuts its FIRST connection after ``drop_after`` server bytes.

    Later connections pass through untouched: the poller must reconnect and
    resume. ``dropped`` tells whether the cut happened.
    """

    def __init__(self, target_port: int, drop_after: int) -> None:
        self.target_port = target_port
        self.drop_after = drop_after
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = int(self.listener.getsockname()[1])
        self.connections = 0
        self.pump_errors = 0  # connections that ended with a socket error
        self.dropped = threading.Event()
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            limit = self.drop_after if self.connections == 1 else None
            threading.Thread(target=self._pump, args=(downstream, upstream, None),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream, limit),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    sink.sendall(data[: max(0, limit - sent)])
                    self.dropped.set()
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            # Either side closed (or the test cut the line on purpose): the
            # pump's job is over; the cleanup below closes both ends.
            self.pump_errors += 1
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):  # already closed by the peer
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self._closing = True
        self.listener.close()


# -- messages and what was stored of them ------------------------------------------------


def message(n: int, *, subject: str | None = None, body: str | None = None,
            message_id: str | None = None, attachment_kb: int = 0, sender: str | None = None
            ) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender or f"Citizen {n} <citizen{n}@example.org>"
    msg["To"] = "info@intake.example.gov"
    msg["Subject"] = subject or f"Pothole on Elm street number {n}"
    msg["Message-ID"] = message_id or f"<m{n}.{id(msg)}@example.org>"
    msg.set_content(body or f"Message {n}: there is a pothole in front of house {n}.\n")
    if attachment_kb:
        payload = bytes((n + i) % 251 for i in range(attachment_kb * 1024))
        msg.add_attachment(payload, maintype="application", subtype="octet-stream",
                           filename=f"photo-{n}.bin")
    return msg.as_bytes().replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")


def stored_digests(runtime: Runtime) -> list[str]:
    """SHA-256 of every stored original plus every quarantined message (with repeats)."""
    with runtime.db.session() as s:
        originals = list(s.scalars(select(Original.sha256)))
        quarantined = list(s.scalars(select(QuarantinedMessage.sha256)))
    return originals + quarantined


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()
