"""The ``intake`` command line.

Every failure an operator can cause (a bad setting, an unreachable database
or broker, a busy port, a broken rules file) ends in one clear line on stderr
and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click

from intake.settings import Settings, SettingsError, load_settings

EXIT_CONFIG = 2
EXIT_FAILURE = 1


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    click.echo(f"intake: {message}", err=True)
    sys.exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc), EXIT_CONFIG)


@contextmanager
def _runtime(settings: Settings, *, need_schema: bool = True) -> Iterator[Any]:
    from intake.runtime import Runtime, StartupError, configure_logging

    configure_logging(settings.log_level)
    runtime = Runtime(settings)
    try:
        try:
            runtime.check_database()
        except StartupError as exc:
            fail(str(exc))
        if need_schema and not runtime.schema_is_current():
            fail("database schema is not current; run `intake db upgrade`")
        yield runtime
    finally:
        runtime.close()


def _load_rules_or_fail(runtime: Any) -> None:
    from intake.core.routing import RulesError

    try:
        runtime.rules.load()
    except RulesError as exc:
        for line in str(exc).splitlines():
            click.echo(line, err=True)
        fail("the rules file is invalid; fix it or set INTAKE_RULES")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="intake")
def cli() -> None:
    """intake: the contact-form and e-mail intake router for state agencies."""


# -- serve ---------------------------------------------------------------------


def _raise_keyboard_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0 picks a free one).")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256),
              help="HTTP request threads.")
def serve(host: str, port: int, threads: int) -> None:
    """Serve the web app, with the embedded worker when no broker is configured."""
    from waitress.server import create_server

    from intake import create_app
    from intake.jobs.system import BrokerUnavailable, check_broker
    from intake.runtime import Runtime, StartupError, configure_logging

    settings = _settings()
    configure_logging(settings.log_level)
    runtime = Runtime(settings)
    try:
        try:
            runtime.upgrade_database()
        except StartupError as exc:
            fail(str(exc))
        _load_rules_or_fail(runtime)
        try:
            check_broker(runtime.jobs.broker, settings)
        except BrokerUnavailable as exc:
            fail(f"{exc}; check INTAKE_BROKER_URL")
        try:
            app = create_app(runtime=runtime)
        except StartupError as exc:
            fail(str(exc))
        try:
            server = create_server(app, host=host, port=port, threads=threads,
                                   ident="intake", clear_untrusted_proxy_headers=True)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        runtime.jobs.start(consume=settings.broker_url is None, sweep=True)
        from intake.mail.poller import start_embedded_pollers  # mailboxes, if configured
        start_embedded_pollers(runtime)
        bound_port = getattr(server, "effective_port", port)
        click.echo(
            f"intake serving on http://{host}:{bound_port}/ "
            f"(database: {settings.database_kind}, broker: {settings.broker_kind}"
            f"{', embedded worker' if settings.broker_url is None else ''})",
            err=True,
        )
        if settings.secret_key_is_ephemeral:
            click.echo("intake: INTAKE_SECRET_KEY is not set; using a key that lasts until "
                       "restart (fine for trying intake, not for production)", err=True)
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
    finally:
        runtime.close()


# -- worker --------------------------------------------------------------------


@cli.command()
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="Worker threads per process (default: INTAKE_WORKER_THREADS).")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes to run and supervise.")
def worker(threads: int | None, processes: int) -> None:
    """Run dramatiq workers for the configured broker (redis:// or amqp://)."""
    from intake.jobs.system import BrokerUnavailable, check_broker

    settings = _settings()
    if settings.broker_url is None:
        fail("INTAKE_BROKER_URL is not set: the embedded broker runs inside `intake serve`; "
             "set a redis:// or amqp:// URL to run separate workers", EXIT_CONFIG)
    if processes > 1:
        _supervise(processes, threads)
        return
    if threads is not None:
        settings = settings.with_overrides(worker_threads=threads)
    with _runtime(settings) as runtime:
        _load_rules_or_fail(runtime)
        try:
            check_broker(runtime.jobs.broker, settings)
        except BrokerUnavailable as exc:
            fail(f"{exc}; check INTAKE_BROKER_URL")
        stop = threading.Event()

        def _stop(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        runtime.jobs.start(consume=True, sweep=True)
        click.echo(f"intake worker {runtime.jobs.identity} consuming from {settings.broker_kind} "
                   f"with {settings.worker_threads} threads", err=True)
        while not stop.wait(1.0):
            pass
        click.echo("intake worker stopping", err=True)


def _supervise(processes: int, threads: int | None) -> None:
    """Run N single-process workers; restart any that dies; stop all on a signal."""
    argv = [sys.executable, "-m", "intake", "worker", "--processes", "1"]
    if threads is not None:
        argv += ["--threads", str(threads)]
    children = [subprocess.Popen(argv) for _ in range(processes)]
    stopping = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stopping.wait(1.0):
        for i, child in enumerate(children):
            code = child.poll()
            if code is not None:
                if code in (EXIT_CONFIG, EXIT_FAILURE):
                    stopping.set()  # a configuration problem won't fix itself
                    break
                click.echo(f"intake: worker process {child.pid} exited ({code}); restarting",
                           err=True)
                children[i] = subprocess.Popen(argv)
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        child.wait(timeout=30)


# -- db ------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations up to the newest schema."""
    from intake.db.migrate import head_revision
    from intake.runtime import StartupError

    settings = _settings()
    with _runtime(settings, need_schema=False) as runtime:
        try:
            runtime.upgrade_database()
        except StartupError as exc:
            fail(str(exc))
        click.echo(f"database at revision {head_revision()} ({settings.database_kind})")


@db.command("seal")
@click.option("--apply", is_flag=True, help="Seal them (without it: only count them).")
def db_seal(apply: bool) -> None:
    """Seal the originals, replies, attachments and quarantined messages stored in plaintext
    before sealing began (run once after upgrading from such a release)."""
    from intake.services.sealing_upgrade import seal_plaintext

    with _runtime(_settings()) as runtime:
        report = seal_plaintext(runtime.db, runtime.originals_key, apply=apply,
                                progress=_progress("sealed", "rows"))
    for kind, count in report.found.items():
        click.echo(f"{kind}: {count} in plaintext")
    if apply:
        click.echo(f"{report.sealed} row(s) sealed")
    elif report.total:
        click.echo("run `intake db seal --apply` to seal them")


# -- rules ---------------------------------------------------------------------


@cli.group()
def rules() -> None:
    """Routing rules: check, explain, replay."""


def _rules_or_exit(path: Path) -> Any:
    """Load a rules file, or print its `file:line: message` errors and exit 1."""
    from intake.core.routing import RulesError, load_rules_file

    try:
        return load_rules_file(path)
    except RulesError as exc:
        for line in str(exc).splitlines():
            click.echo(line, err=True)
        sys.exit(EXIT_FAILURE)


def _rules_file(path: str | None) -> Path:
    if path:
        return Path(path)
    return _settings().rules_path


@rules.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def rules_check(file: str | None) -> None:
    """Validate a rules file and run its embedded tests."""
    path = _rules_file(file)
    ruleset = _rules_or_exit(path)
    results = ruleset.run_tests()
    failed = [r for r in results if not r.passed]
    for result in failed:
        click.echo(f"{path}:{result.line}: test '{result.name}' failed: {result.message}",
                   err=True)
    summary = (f"{path}: {len(ruleset.rule_ids)} rules, {len(ruleset.agencies)} agencies, "
               f"{len(results) - len(failed)} of {len(results)} tests passed")
    click.echo(summary)
    sys.exit(EXIT_FAILURE if failed else 0)


@rules.command("explain")
@click.option("--rules", "rules_path", type=click.Path(dir_okay=False),
              help="Rules file (default: INTAKE_RULES).")
@click.option("--eml", "eml", type=click.Path(exists=True, dir_okay=False),
              help="Explain the routing of this e-mail file.")
@click.option("--channel", type=click.Choice(["web", "email"]), default="web", show_default=True)
@click.option("--form", default=None, help="Form slug (contact, feedback, survey, ...).")
@click.option("--field", "fields", multiple=True, metavar="NAME=VALUE", help="A form field.")
@click.option("--subject", default="")
@click.option("--body", default="")
@click.option("--sender", default=None)
@click.option("--recipient", default=None, help="Mailbox the message arrived at.")
@click.option("--attachment", "attachments", multiple=True, help="An attachment file name.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.argument("eml_file", required=False, type=click.Path(exists=True, dir_okay=False))
def rules_explain(rules_path: str | None, eml: str | None, channel: str, form: str | None,
                  fields: tuple[str, ...], subject: str, body: str, sender: str | None,
                  recipient: str | None, attachments: tuple[str, ...], as_json: bool,
                  eml_file: str | None) -> None:
    """Show which rule routes a submission (given as options or an .eml file) and why."""
    from intake.core.routing import Submission

    path = _rules_file(rules_path)
    ruleset = _rules_or_exit(path)
    source = eml or eml_file
    if source:
        submission = Submission.from_email_bytes(Path(source).read_bytes(), recipient=recipient)
    else:
        parsed: dict[str, str] = {}
        for item in fields:
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise click.BadParameter(f"expected NAME=VALUE, got {item!r}",
                                         param_hint="--field")
            parsed[name.strip()] = value
        submission = Submission(channel=channel, form=form, subject=subject, body=body,
                                sender=sender, recipient=recipient, fields=parsed,
                                attachments=attachments)
    decision = ruleset.decide(submission)
    if as_json:
        click.echo(json.dumps(decision.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(decision.explain())


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not a date (YYYY-MM-DD): {value!r}",
                                 param_hint="--since") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@rules.command("replay")
@click.option("--rules", "rules_path", type=click.Path(dir_okay=False),
              help="Candidate rules file (default: the current one).")
@click.option("--since", default=None, help="Only entries received on or after this date.")
@click.option("--examples", default=5, show_default=True, type=click.IntRange(0, 100))
@click.option("--json", "as_json", is_flag=True)
def rules_replay(rules_path: str | None, since: str | None, examples: int,
                 as_json: bool) -> None:
    """Re-route stored entries with a (candidate) rules file and report what would move."""
    from intake.services.routing import replay

    settings = _settings()
    since_at = _parse_since(since)
    path = Path(rules_path) if rules_path else settings.rules_path
    ruleset = _rules_or_exit(path)
    with _runtime(settings) as runtime, runtime.db.session() as session:
        report = replay(session, ruleset, since=since_at, examples_per_move=examples,
                        progress=_progress("replayed"))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    click.echo(f"{report.total} entries replayed with {path} (sha256 {ruleset.sha256[:12]}): "
               f"{report.moved} would move, {report.unchanged} unchanged")
    for move in report.to_dict()["moves"]:
        shown = ", ".join(move["examples"])
        click.echo(f"  {move['from']} -> {move['to']}: {move['count']}"
                   + (f" (e.g. {shown})" if shown else ""))


def _progress(verb: str, things: str = "entries") -> Callable[[int, int], None]:
    started = time.monotonic()

    def report(done: int, total: int) -> None:
        elapsed = time.monotonic() - started
        click.echo(f"\r{verb} {done}/{total} {things} ({elapsed:.1f} s)", err=True,
                   nl=done >= total)

    return report


# -- jobs ----------------------------------------------------------------------


@cli.group()
def jobs() -> None:
    """Background work: status and dead letters."""


@jobs.command("status")
@click.option("--json", "as_json", is_flag=True)
def jobs_status(as_json: bool) -> None:
    """Count work items by state."""
    with _runtime(_settings()) as runtime:
        counts = runtime.jobs.counts()
    if as_json:
        click.echo(json.dumps(counts))
    else:
        click.echo(", ".join(f"{state}: {n}" for state, n in counts.items()))


@jobs.command("retry")
@click.option("--id", "ids", multiple=True, type=int, help="A dead work item id (repeatable).")
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead work item.")
def jobs_retry(ids: tuple[int, ...], retry_all: bool) -> None:
    """Put dead-letter work items back in the queue."""
    from intake.services.work import retry_dead

    if not ids and not retry_all:
        fail("say which: --id N (repeatable) or --all", EXIT_CONFIG)
    with _runtime(_settings()) as runtime:
        with runtime.db.session() as session:
            revived = retry_dead(session, None if retry_all else list(ids))
        click.echo(f"{len(revived)} work item(s) queued again"
                   + (f": {', '.join(map(str, revived))}" if revived else ""))


# -- audit ---------------------------------------------------------------------


@cli.group()
def audit() -> None:
    """Tamper evidence of the consent and disclosure ledgers."""


@audit.command("verify")
def audit_verify() -> None:
    """Verify the hash chains; report the first broken link and exit 1 if any."""
    from intake.services.privacy import verify_chains

    with _runtime(_settings()) as runtime, runtime.db.session() as session:
        reports = verify_chains(session)
    broken = False
    for report in reports:
        verdict = report.verdict
        if verdict.ok:
            click.echo(f"{report.chain}: {verdict.rows_checked} rows, chain intact")
        else:
            broken = True
            where = f" at seq {verdict.broken_at_seq}" if verdict.broken_at_seq is not None else ""
            click.echo(f"{report.chain}: BROKEN{where} ({verdict.reason}) after checking "
                       f"{verdict.rows_checked} rows", err=True)
    sys.exit(EXIT_FAILURE if broken else 0)


# -- commands of each area, defined next to their code (one line per area) -------------
# (areas add `cli.add_command(...)` lines here)
from intake.web.forms_commands import forms as forms_commands  # noqa: E402, I001 - public forms
cli.add_command(forms_commands)
from intake.mail.commands import ingest, poll  # noqa: E402, I001 - the e-mail intake

cli.add_command(poll)
cli.add_command(ingest)
from intake.web.staff.commands import staff as staff_commands  # noqa: E402, I001 - staff inbox
cli.add_command(staff_commands)


def main() -> None:
    cli(prog_name="intake")


if __name__ == "__main__":  # pragma: no cover
    main()
