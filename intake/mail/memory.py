"""An in-memory mail server and its :class:`~intake.mail.mailbox.Mailbox` sessions.

:class:`MemoryMailServer` holds folders of raw messages with UIDs, flags and a
UIDVALIDITY, with or without MOVE; :meth:`MemoryMailServer.open` is the
:data:`~intake.mail.mailbox.OpenMailbox` factory a poller takes. Tests of the
poller's logic (leases, crashes, UIDVALIDITY changes, servers without MOVE)
run on it; tests/mail/test_imap.py runs the real IMAP mailbox.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

from intake.mail.config import MailboxConfig
from intake.mail.mailbox import SelectedFolder

_uidvalidities = itertools.count(1000)


@dataclass
class MemoryFolder:
    """One folder: messages by UID (bytes and flags), the next UID and its UIDVALIDITY."""

    uidvalidity: int = field(default_factory=lambda: next(_uidvalidities))
    next_uid: int = 1
    messages: dict[int, tuple[bytes, set[str]]] = field(default_factory=dict)

    def add(self, raw: bytes, flags: set[str] | None = None) -> int:
        uid = self.next_uid
        self.messages[uid] = (raw, set(flags or ()))
        self.next_uid += 1
        return uid


class MemoryMailServer:
    """Folders of raw messages shared by every session opened on it; thread-safe.

    ``can_move`` says whether sessions offer MOVE; ``keywords`` whether folders
    keep keywords of ours (PERMANENTFLAGS ``\\*``). :meth:`drop_after` makes
    the next session operations fail as a dropped connection would.
    """

    def __init__(self, *, can_move: bool = True, keywords: bool = True) -> None:
        self.can_move = can_move
        self.keywords = keywords
        self.folders: dict[str, MemoryFolder] = {}
        self.logins = 0
        self._operations_left: int | None = None
        self.lock = threading.RLock()  # held by the sessions for each operation
        self.arrived = threading.Condition(self.lock)
        self.arrivals = 0

    def open(self, config: MailboxConfig) -> MemoryMailbox:
        """The :data:`~intake.mail.mailbox.OpenMailbox` factory: a new session."""
        with self.lock:
            self.check_connection()
            self.logins += 1
        return MemoryMailbox(self)

    def append(self, folder: str, *raws: bytes) -> list[int]:
        """Deliver messages into ``folder`` (created if missing); their UIDs."""
        with self.lock:
            target = self.folders.setdefault(folder, MemoryFolder())
            uids = [target.add(raw) for raw in raws]
            self.arrivals += 1
            self.arrived.notify_all()
            return uids

    def rebuild(self, folder: str) -> None:
        """Empty ``folder`` under a new UIDVALIDITY (a server restored from backup)."""
        with self.lock:
            self.folders[folder] = MemoryFolder()

    def contents(self, folder: str) -> list[bytes]:
        with self.lock:
            found = self.folders.get(folder)
            return [raw for raw, _ in found.messages.values()] if found else []

    def flags(self, folder: str) -> list[set[str]]:
        with self.lock:
            found = self.folders.get(folder)
            return [set(flags) for _, flags in found.messages.values()] if found else []

    def drop_after(self, operations: int | None) -> None:
        """Drop the connection (ConnectionResetError) once, after the next ``operations``
        session operations (logins included); None: not at all. The sessions opened after
        the drop work again, as after a real network failure."""
        with self.lock:
            self._operations_left = operations

    def check_connection(self) -> None:
        """Count one operation of a session; raise if the connection is to drop now."""
        if self._operations_left is None:
            return
        if self._operations_left <= 0:
            self._operations_left = None
            raise ConnectionResetError("connection dropped (memory mail server)")
        self._operations_left -= 1


class MemoryMailbox:
    """One session on a :class:`MemoryMailServer`; see :class:`~intake.mail.mailbox.Mailbox`."""

    def __init__(self, server: MemoryMailServer) -> None:
        self.server = server
        self.selected: str | None = None

    @property
    def can_move(self) -> bool:
        return self.server.can_move

    def _folder(self) -> MemoryFolder:
        self.server.check_connection()
        if self.selected is None or self.selected not in self.server.folders:
            raise ConnectionAbortedError("no folder selected")
        return self.server.folders[self.selected]

    def ensure_folder(self, name: str) -> None:
        with self.server.lock:
            self.server.check_connection()
            self.server.folders.setdefault(name, MemoryFolder())

    def select(self, folder: str) -> SelectedFolder:
        with self.server.lock:
            self.selected = folder
            found = self._folder()
            return SelectedFolder(uidvalidity=found.uidvalidity, keywords=self.server.keywords)

    def search_unprocessed(self, done_keyword: str | None) -> list[int]:
        with self.server.lock:
            return sorted(uid for uid, (_, flags) in self._folder().messages.items()
                          if "\\Deleted" not in flags
                          and not (done_keyword and done_keyword in flags))

    def sizes(self, uids: list[int]) -> dict[int, int]:
        with self.server.lock:
            messages = self._folder().messages
            return {uid: len(messages[uid][0]) for uid in uids if uid in messages}

    def fetch(self, uids: list[int]) -> dict[int, bytes]:
        with self.server.lock:
            messages = self._folder().messages
            return {uid: messages[uid][0] for uid in uids if uid in messages}

    def move(self, uids: list[int], target: str) -> None:
        with self.server.lock:
            if not self.server.can_move:
                raise ConnectionAbortedError("MOVE is not offered")
            source = self._folder()
            destination = self.server.folders.setdefault(target, MemoryFolder())
            for uid in uids:
                if uid in source.messages:
                    raw, flags = source.messages.pop(uid)
                    destination.add(raw, flags)

    def copy_and_flag(self, uids: list[int], target: str, keyword: str) -> None:
        with self.server.lock:
            source = self._folder()
            destination = self.server.folders.setdefault(target, MemoryFolder())
            for uid in uids:
                if uid in source.messages:
                    raw, flags = source.messages[uid]
                    destination.add(raw, flags)
                    flags.update({keyword, "\\Seen"})

    def wait_for_mail(self, timeout: float, stop: threading.Event) -> None:
        """Wait until mail arrives anywhere on the server, ``timeout`` passes or ``stop``."""
        deadline = time.monotonic() + timeout
        with self.server.arrived:
            seen = self.server.arrivals
            while (not stop.is_set() and self.server.arrivals == seen
                   and time.monotonic() < deadline):
                self.server.arrived.wait(min(0.2, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        self.selected = None
