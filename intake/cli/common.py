"""What every ``intake`` command shares: exit codes, one-line failures, settings, the runtime.

Every failure an operator can cause (a bad setting, an unreachable database
or broker, a busy port, a broken rules file) ends in one clear line on stderr
and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click

from intake.settings import Settings, SettingsError, load_settings

EXIT_CONFIG = 2
EXIT_FAILURE = 1


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print ``intake: message`` on stderr and exit with ``code``."""
    click.echo(f"intake: {message}", err=True)
    sys.exit(code)


def settings_or_fail() -> Settings:
    """The ``INTAKE_*`` settings, or exit 2 with the setting that is wrong."""
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc), EXIT_CONFIG)


@contextmanager
def open_runtime(settings: Settings, *, need_schema: bool = True) -> Iterator[Any]:
    """The runtime of a command, closed on exit; exit 1 if the database is not usable."""
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


def load_rules_or_fail(runtime: Any) -> None:
    """Load the runtime's rules file, or print its errors and exit 1."""
    from intake.core.routing import RulesError

    try:
        runtime.rules.load()
    except RulesError as exc:
        for line in str(exc).splitlines():
            click.echo(line, err=True)
        fail("the rules file is invalid; fix it or set INTAKE_RULES")


def progress_line(verb: str, things: str = "entries") -> Callable[[int, int], None]:
    """A progress callback that rewrites one stderr line: ``verb done/total things (s)``."""
    started = time.monotonic()

    def report(done: int, total: int) -> None:
        elapsed = time.monotonic() - started
        click.echo(f"\r{verb} {done}/{total} {things} ({elapsed:.1f} s)", err=True,
                   nl=done >= total)

    return report
