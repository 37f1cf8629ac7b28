"""``intake serve``: the web app, with the embedded worker when no broker is configured."""

from __future__ import annotations

import signal
from types import FrameType

import click

from intake.cli.common import fail, load_rules_or_fail, settings_or_fail


def _raise_keyboard_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0 picks a free one).")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256),
              help="HTTP request threads.")
def serve(host: str, port: int, threads: int) -> None:
    """Serve the web app, with the embedded worker when no broker is configured."""
    from waitress.server import create_server

    from intake import create_app
    from intake.cli.mail import start_mailbox_pollers
    from intake.jobs.system import BrokerUnavailable, check_broker
    from intake.runtime import Runtime, StartupError, configure_logging

    settings = settings_or_fail()
    configure_logging(settings.log_level)
    runtime = Runtime(settings)
    try:
        try:
            runtime.upgrade_database()
        except StartupError as exc:
            fail(str(exc))
        load_rules_or_fail(runtime)
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
        start_mailbox_pollers(runtime)  # mailboxes, if configured
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
