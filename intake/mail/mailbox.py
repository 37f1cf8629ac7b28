"""What the poller needs from a mailbox: the :class:`Mailbox` interface.

Two implementations: :class:`~intake.mail.imap.ImapMailbox` (a real IMAP
server through IMAPClient) and :class:`~intake.mail.memory.MemoryMailbox`
(folders of bytes in memory, for tests and trials). The poller gets a
:data:`OpenMailbox` factory and never sees which one it drives.
"""

from __future__ import annotations

import imaplib
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from intake.mail.config import MailboxConfig

# Failures of a mailbox connection: the poller backs off and reconnects, never skips a
# message. (IMAPClient raises imaplib's errors; a dropped socket is an OSError.)
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError, imaplib.IMAP4.abort, imaplib.IMAP4.error, ssl.SSLError, EOFError,
)


@dataclass(frozen=True)
class SelectedFolder:
    """A folder just selected: its UIDVALIDITY, and whether it keeps keywords of ours
    (PERMANENTFLAGS has ``\\*``), which marks copies done where MOVE is missing."""

    uidvalidity: int
    keywords: bool


class Mailbox(Protocol):
    """One logged-in session on a mailbox. Nothing here deletes or expunges anything."""

    @property
    def can_move(self) -> bool:
        """Whether the server has MOVE (else the poller copies and flags)."""
        ...

    def ensure_folder(self, name: str) -> None:
        """Create the folder unless it exists (racing creators are fine)."""

    def select(self, folder: str) -> SelectedFolder:
        """Select ``folder`` for the calls below."""
        ...

    def search_unprocessed(self, done_keyword: str | None) -> list[int]:
        """UIDs not deleted and (with ``done_keyword``) not flagged with it, ascending."""
        ...

    def sizes(self, uids: list[int]) -> dict[int, int]:
        """RFC822.SIZE of each UID still there."""
        ...

    def fetch(self, uids: list[int]) -> dict[int, bytes]:
        """The raw bytes of each UID still there, without marking them read (BODY.PEEK[])."""
        ...

    def move(self, uids: list[int], target: str) -> None:
        """MOVE the messages to ``target``."""

    def copy_and_flag(self, uids: list[int], target: str, keyword: str) -> None:
        """COPY the messages to ``target``, then flag the originals ``keyword`` and \\Seen."""

    def wait_for_mail(self, timeout: float, stop: threading.Event) -> None:
        """Return when new mail arrives, ``timeout`` passes or ``stop`` is set."""

    def close(self) -> None:
        """Log out; a broken connection is closed without complaint."""


OpenMailbox = Callable[[MailboxConfig], Mailbox]
"""Connects and logs in to a configured mailbox; raises one of :data:`CONNECTION_ERRORS`."""
