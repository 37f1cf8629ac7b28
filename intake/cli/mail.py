"""``intake poll [--once]`` and ``intake ingest FILE... [--json]``: the e-mail intake.

The one CLI module that imports :mod:`intake.mail.poller` (``intake serve``
starts the mailbox pollers through :func:`start_mailbox_pollers`).
"""

from __future__ import annotations

import json
import mailbox
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import click

from intake.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    fail,
    open_runtime,
    settings_or_fail,
)
from intake.core.mail.automatic import AutoConfig

# In embedded mode (no broker) the command routes what it stored before it exits.
ROUTE_WAIT_SECONDS = 300.0
# `intake ingest` stores a file's messages this many to a transaction, as the poller does
# with a fetched batch.
INGEST_BATCH = 100


def _automatic_of(settings: Any, name: str) -> AutoConfig | None:
    """The relay senders and spam headers of the configured mailbox called ``name``
    (``intake ingest --mailbox``), or None (the defaults) when there is none."""
    from intake.mail.config import MailboxConfigError, load_mailboxes

    if settings.mailboxes_file is None and not settings.imap_url:
        return None
    try:
        configs = load_mailboxes(settings)
    except MailboxConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    return next((c.automatic() for c in configs if c.name == name), None)


def _agency_addresses(runtime: Any) -> list[str]:
    try:
        return [a.email for a in runtime.rules.current().agencies.values() if a.email]
    except Exception:  # noqa: BLE001 - without rules nobody counts as an agency
        return []


class _EmbeddedRouting:
    """The one-shot commands' routing: "route" work drained in a thread of this process.

    Only routing: the deliveries and receipts it plans are durable work items
    that ``intake serve`` or ``intake worker`` send (their sweeper picks them
    up), so a one-shot command never half-tries mail it cannot finish.
    """

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.finish = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="intake-route", daemon=True)

    def _run(self) -> None:
        try:
            self.runtime.jobs.drain(("route",), finish=self.finish, stop=self.stop)
        except Exception as exc:  # noqa: BLE001 - the entries are stored; routing waits
            click.echo(f"intake: routing stopped ({type(exc).__name__}); the remaining "
                       "entries are routed by the next `intake serve` or worker", err=True)

    def wait(self, seconds: float = ROUTE_WAIT_SECONDS) -> None:
        """Route what is left, up to ``seconds``."""
        self.finish.set()
        self.runtime.jobs.wake()
        self.thread.join(seconds)
        if self.thread.is_alive():
            self.stop.set()
            self.runtime.jobs.wake()
            self.thread.join()
            click.echo("intake: routing still running; the remaining entries are routed by "
                       "the next `intake serve` or worker", err=True)

    def close(self) -> None:
        """Stop routing now (after an error); what is left waits for the next run."""
        if self.thread.is_alive():
            self.stop.set()
            self.runtime.jobs.wake()
            self.thread.join()


def _rules_loaded(runtime: Any) -> bool:
    try:
        runtime.rules.load()
    except Exception:  # noqa: BLE001 - routing waits for valid rules; storing goes on
        click.echo("intake: the rules file is invalid; entries are stored and will be routed "
                   "once it is fixed", err=True)
        return False
    return True


def _start_embedded_routing(runtime: Any) -> _EmbeddedRouting | None:
    """One-shot commands: route in this process unless a broker's workers do."""
    if runtime.settings.broker_url is not None or not _rules_loaded(runtime):
        return None  # `intake worker` processes route, or the rules must be fixed first
    routing = _EmbeddedRouting(runtime)
    routing.thread.start()
    return routing


def start_mailbox_pollers(runtime: Any) -> None:
    """Start the configured mailboxes' pollers in threads (``intake serve``), if any.

    A broken mailboxes file ends the start-up with its one-line message (exit 2).
    """
    from intake.mail.config import MailboxConfigError
    from intake.mail.poller import start_embedded_pollers

    try:
        start_embedded_pollers(runtime)
    except MailboxConfigError as exc:
        fail(str(exc), EXIT_CONFIG)


@click.command("poll")
@click.option("--once", is_flag=True, help="One pass over every mailbox, then exit.")
def poll(once: bool) -> None:
    """Poll the configured IMAP mailboxes (INTAKE_IMAP_URL, INTAKE_MAILBOXES_FILE)."""
    from intake.mail.config import MailboxConfigError
    from intake.mail.poller import PollerThreads, PollFailed, pollers_for

    settings = settings_or_fail()
    if not (settings.imap_url or settings.mailboxes_file):
        fail("no mailbox configured: set INTAKE_IMAP_URL or INTAKE_MAILBOXES_FILE", EXIT_CONFIG)
    with open_runtime(settings) as runtime:
        try:
            pollers = pollers_for(runtime)
        except MailboxConfigError as exc:
            fail(str(exc), EXIT_CONFIG)
        if once:
            failed = False
            routing = _start_embedded_routing(runtime)
            try:
                for poller in pollers:
                    try:
                        report = poller.poll_once()
                    except PollFailed as exc:
                        click.echo(f"intake: {exc}", err=True)
                        failed = True
                        continue
                    click.echo(report.summary())
                if routing is not None:
                    routing.wait()
            finally:
                if routing is not None:
                    routing.close()
            if failed:
                raise SystemExit(EXIT_FAILURE)
            return
        if runtime.settings.broker_url is None and _rules_loaded(runtime):
            # Polling for good: the embedded worker runs all the work, as `intake serve`.
            runtime.jobs.start(consume=True, sweep=False)
        group = PollerThreads(pollers)

        def _stop(_signum: int, _frame: FrameType | None) -> None:
            group.stop_event.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        group.start()
        click.echo(f"intake polling {len(pollers)} mailbox(es)", err=True)
        while not group.stop_event.wait(1.0):
            pass
        group.stop()
        click.echo("intake poll stopping", err=True)


def _messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(label, raw bytes) of each message: one for an .eml, each of an mbox."""
    with path.open("rb") as handle:
        head = handle.read(5)
    if head != b"From ":
        yield str(path), path.read_bytes()
        return
    box = mailbox.mbox(str(path), create=False)
    try:
        for index, key in enumerate(box.keys(), 1):
            yield f"{path}#{index}", box.get_bytes(key)
    finally:
        box.close()


@click.command("ingest")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mailbox", "mailbox_name", default="ingest", show_default=True,
              help="Mailbox name recorded on the entries (the routing 'recipient'); a "
                   "configured mailbox of that name lends its relay_senders and spam_headers.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message.")
def ingest(files: tuple[Path, ...], mailbox_name: str, as_json: bool) -> None:
    """Ingest .eml and mbox files exactly like polled mail."""
    from intake.services.mail_intake import (
        MailContext,
        PreparedBatch,
        ReceivedMail,
        store_messages,
    )

    settings = settings_or_fail()
    counts: dict[str, int] = {}
    unreadable = 0
    with open_runtime(settings) as runtime:
        routing = _start_embedded_routing(runtime)
        try:
            context = MailContext.from_settings(settings, mailbox_name, pii_key=runtime.pii_key,
                                                agency_addresses=_agency_addresses(runtime),
                                                automatic=_automatic_of(settings, mailbox_name))
            pool = runtime.mail_pool
            if pool is not None:
                pool.warm_up()
            waiting: tuple[list[tuple[str, bytes]], PreparedBatch | None] | None = None

            def store(batch: list[tuple[str, bytes]], prepared: PreparedBatch | None) -> None:
                outcomes = store_messages(runtime.db, [ReceivedMail(raw) for _, raw in batch],
                                          context, prepared=prepared)
                for (label, _), outcome in zip(batch, outcomes, strict=True):
                    counts[outcome.outcome] = counts.get(outcome.outcome, 0) + 1
                    if as_json:
                        click.echo(json.dumps({"file": label, **outcome.to_dict()},
                                              ensure_ascii=False))
                    else:
                        shown = (outcome.record_number
                                 or f"quarantine #{outcome.quarantine_id}")
                        click.echo(f"{label}: {outcome.outcome} {shown}")

            for path in files:
                try:
                    # A batch at a time, never a whole mbox in memory; with the mail pool,
                    # batch n+1 is parsed and scanned in its workers while batch n commits.
                    for batch in _batched(_messages(path), INGEST_BATCH):
                        prepared = (pool.prepare([ReceivedMail(raw) for _, raw in batch],
                                                 context) if pool is not None else None)
                        if waiting is not None:
                            store(*waiting)
                        waiting = (batch, prepared)
                except (OSError, mailbox.Error) as exc:
                    unreadable += 1
                    click.echo(f"intake: cannot read {path}: {type(exc).__name__}", err=True)
                    continue
            if waiting is not None:
                store(*waiting)
            if routing is not None:
                routing.wait()
        finally:
            if routing is not None:
                routing.close()
    click.echo(", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no messages",
               err=True)
    if unreadable:
        raise SystemExit(EXIT_FAILURE)


def _batched(items: Iterator[tuple[str, bytes]], size: int) -> Iterator[list[tuple[str, bytes]]]:
    batch: list[tuple[str, bytes]] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
