"""The running system: settings, database, rules and jobs wired together.

The web app (``create_app``), ``intake serve``, ``intake worker`` and the
other commands all build one :class:`Runtime` from a :class:`Settings`, so the
same code runs embedded or distributed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from sqlalchemy.orm import Session

from intake.core.publication import RecordsConfigError
from intake.core.routing import Decision
from intake.db import Database
from intake.db.migrate import current_revisions, head_revisions, upgrade
from intake.jobs.system import JobSystem, Together
from intake.logsafe import OneLineFormatter
from intake.services import gate, publication
from intake.services.delivery import Delivery
from intake.services.mail_intake import MailPool
from intake.services.routing import RoutedEntry, RulesProvider, make_route_handlers
from intake.settings import Settings

log = logging.getLogger("intake")


class StartupError(RuntimeError):
    """Start-up cannot go on; the message is one line for the operator."""


class Runtime:
    """Everything a process of intake runs on, built once from the settings.

    ``senders`` are the ways out the delivery handlers use; by default the
    real ones the settings describe (:func:`gate.senders_from`), in tests
    in-memory ones (:mod:`intake.outbound.memory`).
    """

    def __init__(self, settings: Settings, senders: gate.Senders | None = None) -> None:
        self.settings = settings
        self.senders = senders or gate.senders_from(settings)
        self.db = Database(settings.database_url)
        self.rules = RulesProvider(settings.rules_path)
        self.jobs = JobSystem(settings, self.db)
        self.delivery = Delivery(settings, self.rules, self.senders)
        try:
            self.records = publication.load_records(settings)
        except RecordsConfigError as exc:
            raise StartupError(f"INTAKE_RECORDS: {exc.errors[0]} "
                               f"({len(exc.errors)} problem(s))") from None

        def after_many(session: Session, routed: list[tuple[RoutedEntry, Decision, int]]
                       ) -> None:
            self.delivery.plan_many(session, routed)
            publication.schedule_auto_publish(session, self.records,
                                              [entry.id for entry, _, _ in routed])

        def after(session: Session, entry: RoutedEntry, decision: Decision,
                  decision_id: int) -> None:
            after_many(session, [(entry, decision, decision_id)])

        route, route_many = make_route_handlers(self.rules, after=after, after_many=after_many)
        self.jobs.register("route", route, many=route_many)
        self.jobs.register(publication.PUBLISH_WORK, publication.make_publish_handler(
            self.records, settings.relay_domain))
        for kind, handler in self.delivery.handlers().items():
            self.jobs.register(kind, handler)
        for kind, (read, send, refresh) in self.delivery.together().items():
            self.jobs.register(kind, together=Together(read, send, refresh))
        self._closers: list[Callable[[], None]] = []
        # The mail intake's worker processes (started on the first batch, stopped in close).
        self.mail_pool = MailPool(settings.mail_workers) if settings.mail_workers else None

    def on_close(self, closer: Callable[[], None]) -> None:
        """Have :meth:`close` call ``closer`` (before the database is disposed)."""
        self._closers.append(closer)

    @property
    def pii_key(self) -> bytes:
        """The HMAC key of PII finding hashes."""
        return self.settings.derived_key("pii finding hashes")

    @property
    def originals_key(self) -> bytes:
        """The key-encryption key of the entries' data keys (the sealed originals)."""
        return self.settings.originals_key()

    def check_database(self) -> None:
        try:
            self.db.ping()
        except Exception as exc:  # noqa: BLE001 - reported as one line
            raise StartupError(
                f"database unreachable ({type(exc).__name__}); check INTAKE_DATABASE_URL"
            ) from exc

    def upgrade_database(self) -> None:
        self.check_database()
        upgrade(self.settings.database_url)

    def schema_is_current(self) -> bool:
        return current_revisions(self.db.engine) == head_revisions()

    def close(self) -> None:
        self.jobs.stop()
        gate.close_senders(self.senders)
        for closer in self._closers:
            closer()
        if self.mail_pool is not None:
            self.mail_pool.close()
        self.db.dispose()


def configure_logging(level: str) -> None:
    """Plain one-line logs on stderr. Messages carry ids, never personal data."""
    root = logging.getLogger()
    # Libraries that log message contents or arguments at INFO/DEBUG stay quiet, whatever
    # INTAKE_LOG_LEVEL says, on every call (a second call must not leave them as they were):
    # IMAPClient logs the whole IMAP conversation at DEBUG, the fetched mail included.
    for noisy in QUIET_LIBRARIES:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    root.setLevel(level)
    if any(getattr(h, "_intake", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    # One line per record, control characters from input escaped (intake.logsafe).
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._intake = True  # type: ignore[attr-defined]
    root.addHandler(handler)


QUIET_LIBRARIES = ("dramatiq", "pika", "waitress", "alembic", "imapclient", "authlib", "urllib3")
