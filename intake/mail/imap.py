"""The real :class:`~intake.mail.mailbox.Mailbox`: an IMAP server through IMAPClient.

It lives with the rest of the e-mail intake (``intake.mail``, the IMAP edge)
rather than in ``intake.outbound``: it only reads mail in, and outbound is
the way out that only the disclosure gate may use.
"""

from __future__ import annotations

import imaplib
import ssl
import threading
import time
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from intake.mail.config import MailboxConfig
from intake.mail.mailbox import SelectedFolder
from intake.outbound.oauth2 import with_token

CONNECT_TIMEOUT = 30.0


class ImapMailbox:
    """One IMAPClient session, logged in; see :class:`~intake.mail.mailbox.Mailbox`."""

    def __init__(self, client: IMAPClient) -> None:
        self.client = client

    @classmethod
    def open(cls, config: MailboxConfig) -> ImapMailbox:
        """Connect (TLS, STARTTLS or plain, as configured) and log in (a password, or
        XOAUTH2 with a token from :data:`intake.outbound.oauth2.TOKENS`)."""
        client = IMAPClient(config.host, port=config.port, ssl=config.security == "tls",
                            timeout=CONNECT_TIMEOUT)
        # IMAPClient sets imaplib's debug level to 5 to send the whole conversation to its
        # logger: imaplib then formats every fetched message (its repr, and again with the
        # response list) before the logger drops it, about 0.7 ms of CPU per 80 KB message
        # in the one thread that fetches, stores and routes. That logger is kept quiet
        # anyway (runtime.QUIET_LIBRARIES): the conversation is citizens' mail.
        client._imap.debug = 0
        mailbox = cls(client)
        try:
            if config.security == "starttls":
                client.starttls(ssl.create_default_context())
            if config.oauth2 is not None:
                # XOAUTH2; a refused (expired, revoked) token: a new one, one more try.
                with_token(config.oauth2, lambda token: client.oauth2_login(config.user, token),
                           (LoginError,))
            else:
                client.login(config.user, config.password)
        except BaseException:
            mailbox.close()
            raise
        return mailbox

    @property
    def can_move(self) -> bool:
        return bool(self.client.has_capability("MOVE"))

    def ensure_folder(self, name: str) -> None:
        if self.client.folder_exists(name):
            return
        try:
            self.client.create_folder(name)
        except imaplib.IMAP4.error:
            if not self.client.folder_exists(name):  # not a creation race
                raise

    def select(self, folder: str) -> SelectedFolder:
        selected = self.client.select_folder(folder)
        return SelectedFolder(uidvalidity=int(selected[b"UIDVALIDITY"]),
                              keywords=b"\\*" in tuple(selected.get(b"PERMANENTFLAGS", ())))

    def search_unprocessed(self, done_keyword: str | None) -> list[int]:
        criteria: list[Any] = ["NOT", "DELETED"]
        if done_keyword:
            criteria += ["NOT", "KEYWORD", done_keyword]
        return sorted(int(u) for u in self.client.search(criteria))

    def sizes(self, uids: list[int]) -> dict[int, int]:
        found = self.client.fetch(uids, ["RFC822.SIZE"])
        return {int(uid): int(item.get(b"RFC822.SIZE", 0)) for uid, item in found.items()}

    def fetch(self, uids: list[int]) -> dict[int, bytes]:
        found = self.client.fetch(uids, ["BODY.PEEK[]"])
        raws: dict[int, bytes] = {}
        for uid, item in found.items():
            raw = item.get(b"BODY[]")
            if raw is not None:
                raws[int(uid)] = raw if isinstance(raw, bytes) else bytes(raw)
        return raws

    def move(self, uids: list[int], target: str) -> None:
        self.client.move(uids, target)

    def copy_and_flag(self, uids: list[int], target: str, keyword: str) -> None:
        # Never \Deleted, never EXPUNGE.
        self.client.copy(uids, target)
        self.client.add_flags(uids, [keyword.encode(), b"\\Seen"])

    def wait_for_mail(self, timeout: float, stop: threading.Event) -> None:
        """IDLE until new mail (EXISTS or RECENT), where the server offers it; else sleep."""
        if not self.client.has_capability("IDLE"):
            stop.wait(timeout)
            return
        deadline = time.monotonic() + timeout
        self.client.idle()
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                responses = self.client.idle_check(timeout=1)
                if any(isinstance(r, tuple) and len(r) > 1 and r[1] in (b"EXISTS", b"RECENT")
                       for r in responses):
                    break
        finally:
            self.client.idle_done()

    def close(self) -> None:
        try:
            self.client.logout()
        except Exception:  # noqa: BLE001 - closing a broken connection
            try:
                self.client.shutdown()
            except Exception:  # noqa: BLE001, S110
                pass
