"""``intake mailboxes check``: can each configured mailbox be used? Login, folder, processed folder.

Read-only: it selects the folder read-only and never creates the processed
folder (the poller does that on its first pass). The answer is plain words, one
line a mailbox, never a token or secret: the provider's refusal is the
:class:`~intake.outbound.oauth2.OAuth2Error` line, an IMAP refusal the
server's text cleaned of the configuration's secrets.
"""

from __future__ import annotations

import imaplib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from intake.core.oauth2 import scrub
from intake.logsafe import escape_controls
from intake.mail.config import MailboxConfig
from intake.mail.imap import ImapMailbox
from intake.mail.mailbox import CONNECTION_ERRORS


@dataclass
class CheckResult:
    """One mailbox or SMTP server: each step "ok" or what went wrong."""

    kind: str  # imap | smtp
    name: str
    server: str
    auth: str  # password | oauth2 | none
    steps: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        head = f"{self.kind} {self.name} ({self.server}, {self.auth}):"
        done = ", ".join(f"{step} {state}" for step, state in self.steps.items())
        if self.ok:
            return escape_controls(f"{head} {done}")
        return escape_controls(f"{head} {done + '; ' if done else ''}FAILED: {self.error}")

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "server": self.server,
                "auth": self.auth, "ok": self.ok, "steps": self.steps,
                "error": None if self.error is None else escape_controls(self.error)}


def plain_error(exc: BaseException, config: MailboxConfig) -> str:
    """An IMAP or network failure as one short line, without the configuration's secrets."""
    if isinstance(exc, imaplib.IMAP4.error) or type(exc).__name__ == "OAuth2Error":
        text = str(exc)
        if text.startswith(("b'", 'b"')) and text.endswith(("'", '"')):
            text = text[2:-1]
    elif isinstance(exc, ConnectionRefusedError):
        text = "connection refused"
    elif isinstance(exc, TimeoutError):
        text = "no answer in time"
    else:
        text = type(exc).__name__
    text = " ".join(text.split())[:300]
    if config.oauth2 is not None:
        text = scrub(text, config.oauth2)
    elif config.password:
        text = text.replace(config.password, "[redacted]")
    return escape_controls(text)


def check_mailbox(config: MailboxConfig,
                  open_mailbox: Callable[[MailboxConfig], Any] = ImapMailbox.open
                  ) -> CheckResult:
    """Log in, select the folder (read-only), look for the processed folder."""
    result = CheckResult("imap", config.name, f"{config.host}:{config.port}",
                         "oauth2" if config.oauth2 is not None else "password")
    try:
        mailbox = open_mailbox(config)
    except CONNECTION_ERRORS as exc:
        result.error = f"login: {plain_error(exc, config)}"
        return result
    result.steps["login"] = "ok"
    try:
        client = mailbox.client
        try:
            client.select_folder(config.folder, readonly=True)
        except CONNECTION_ERRORS as exc:
            result.error = f"folder {config.folder}: {plain_error(exc, config)}"
            return result
        result.steps[f"folder {config.folder}"] = "ok"
        try:
            exists = client.folder_exists(config.processed_folder)
        except CONNECTION_ERRORS as exc:
            result.error = f"processed folder {config.processed_folder}: {plain_error(exc, config)}"
            return result
        result.steps[f"processed folder {config.processed_folder}"] = (
            "ok" if exists else "missing (created on the first pass)")
    finally:
        mailbox.close()
    return result
