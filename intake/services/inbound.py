"""Inbound mail pushed over HTTP: the sources file, SNS certificates, and the one store.

A pushed message is stored exactly as a polled one: :func:`store_pushed` hands
the raw bytes to :func:`intake.services.mail_intake.store_messages` (durable
first, idempotent by the raw bytes' SHA-256, quarantine for what cannot be
stored). :class:`SnsFetcher` is the one way the inbound edge reaches out: to
Amazon SNS for a signing certificate (cached) or a subscription's confirmation,
through the gate (:func:`intake.services.gate.sns_get`); tests give it a
``get`` of their own.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from pathlib import Path

import yaml

from intake.core.inbound import (
    InboundConfigError,
    InboundSource,
    load_inbound_config,
    secret_variable,
)
from intake.db import Database
from intake.services import gate
from intake.services.mail_intake import MailContext, MailOutcome, ReceivedMail, store_messages
from intake.settings import Settings

#: ``get(url, certificate=...)``: the body of a GET of an Amazon SNS URL.
SnsGet = Callable[..., bytes]


def load_sources(settings: Settings) -> dict[str, InboundSource]:
    """The sources of ``INTAKE_INBOUND_FILE`` (none without it), with their secrets from
    ``INTAKE_INBOUND_SECRET_<NAME>`` or ``secret_file``. Raises InboundConfigError."""
    path = settings.inbound_file
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InboundConfigError(f"INTAKE_INBOUND_FILE: cannot be read ({type(exc).__name__})"
                                 ) from None
    secrets: dict[str, bytes] = {}
    for item in (data or {}).get("sources", []) if isinstance(data, dict) else []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        name = item["name"]
        from_env = settings.inbound_secrets.get(secret_variable(name), "")
        secret_file = item.get("secret_file")
        if from_env:
            secrets[name] = from_env.strip().encode("utf-8")
        elif isinstance(secret_file, str) and secret_file:
            try:
                secrets[name] = Path(os.path.expanduser(secret_file)).read_bytes().strip()
            except OSError as exc:
                raise InboundConfigError(f"INTAKE_INBOUND_FILE: source {name!r}: secret_file "
                                         f"cannot be read ({exc.strerror})") from None
    return load_inbound_config(data, secrets)


class SnsFetcher:
    """Amazon SNS signing certificates by URL, cached (at most ``size``), and
    subscription confirmations; ``get`` defaults to the gate's HTTPS GET."""

    def __init__(self, get: SnsGet | None = None, size: int = 32) -> None:
        self._get: SnsGet = get or gate.sns_get
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self.fetches = 0

    def certificate(self, url: str) -> bytes:
        with self._lock:
            if url in self._cache:
                self._cache.move_to_end(url)
                return self._cache[url]
        pem = self._get(url, certificate=True)
        with self._lock:
            self.fetches += 1
            self._cache[url] = pem
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return pem

    def confirm(self, url: str) -> None:
        self._get(url, certificate=False)


def context_for(settings: Settings, source: InboundSource, *, pii_key: bytes | None,
                agency_addresses: Collection[str]) -> MailContext:
    """What the mail store needs besides the bytes: the source is the "mailbox"."""
    return MailContext.from_settings(settings, source.mailbox, pii_key=pii_key,
                                     agency_addresses=agency_addresses, form=source.form)


def store_pushed(db: Database, raw: bytes, context: MailContext) -> MailOutcome:
    """Store one pushed message the way the IMAP poller stores a polled one; raises when
    the database fails (nothing committed: the provider must retry)."""
    return store_messages(db, [ReceivedMail(raw)], context)[0]


__all__ = ["InboundConfigError", "SnsFetcher", "context_for", "load_sources",
           "store_pushed"]
