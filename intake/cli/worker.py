"""``intake worker``: dramatiq workers for the configured broker, one process or several."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from types import FrameType

import click

from intake.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    fail,
    load_rules_or_fail,
    open_runtime,
    settings_or_fail,
)


@click.command()
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="Worker threads per process (default: INTAKE_WORKER_THREADS).")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes to run and supervise.")
def worker(threads: int | None, processes: int) -> None:
    """Run dramatiq workers for the configured broker (redis:// or amqp://)."""
    from intake.jobs.system import BrokerUnavailable, check_broker

    settings = settings_or_fail()
    if settings.broker_url is None:
        fail("INTAKE_BROKER_URL is not set: the embedded broker runs inside `intake serve`; "
             "set a redis:// or amqp:// URL to run separate workers", EXIT_CONFIG)
    if processes > 1:
        _supervise(processes, threads)
        return
    if threads is not None:
        settings = settings.with_overrides(worker_threads=threads)
    with open_runtime(settings) as runtime:
        load_rules_or_fail(runtime)
        from intake.services.staff import warn_about_missing_second_factors

        warn_about_missing_second_factors(runtime.db)
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
