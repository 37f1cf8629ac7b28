"""A real SMTP server on loopback (aiosmtpd) that records what agencies would receive."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.conftest import free_port


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


class SmtpSink:
    """Accepts mail like an MTA: a message counts once its "250" could be sent.

    ``reject`` maps a recipient to an SMTP reply (e.g. "550 5.1.1 unknown");
    ``delay`` holds each DATA answer for that many seconds (a slow server).
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[Received] = []
        self.reject: dict[str, str] = {}
        self.delay = 0.0
        self.data_started = threading.Event()
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.reject:
            return self.reject[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_started.set()
        if self.delay:
            await asyncio.sleep(self.delay)
            transport = getattr(server, "transport", None)
            if transport is None or transport.is_closing():
                return "451 client went away"  # never accepted: not recorded
        with self._lock:
            self.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos),
                                          bytes(envelope.original_content or envelope.content)))
        return "250 OK queued"

    def start(self) -> SmtpSink:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if address in r.rcpt_tos]

    def all(self) -> list[Received]:
        with self._lock:
            return list(self.received)
