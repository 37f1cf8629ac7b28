"""``intake worker``: dramatiq workers for the configured broker, one process or several."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import deque
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
@click.option("--max-restarts", type=click.IntRange(0, 1000), default=5, show_default=True,
              help="With --processes > 1: restarts of crashed worker processes allowed "
                   "within --restart-window seconds before the supervisor gives up and "
                   "exits non-zero (for systemd or another process manager to act).")
@click.option("--restart-window", type=click.FloatRange(1, 86400), default=300,
              show_default=True, help="The window of --max-restarts, in seconds.")
def worker(threads: int | None, processes: int, max_restarts: int,
           restart_window: float) -> None:
    """Run dramatiq workers for the configured broker (redis:// or amqp://)."""
    settings = settings_or_fail()
    if settings.broker_url is None:
        fail("INTAKE_BROKER_URL is not set: the embedded broker runs inside `intake serve`; "
             "set a redis:// or amqp:// URL to run separate workers", EXIT_CONFIG)
    if processes > 1:
        code = _supervise(processes, threads, max_restarts, restart_window)
        if code:
            sys.exit(code)
        return
    from intake.jobs.system import BrokerUnavailable, check_broker

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
        broken: str | None = None
        while not stop.wait(1.0):
            broken = runtime.jobs.worker_died()
            if broken:
                break
        if broken:
            click.echo(f"intake worker {runtime.jobs.identity}: {broken}; exiting so that "
                       "the process manager restarts it", err=True)
        else:
            click.echo("intake worker stopping", err=True)
    if broken:
        sys.exit(EXIT_FAILURE)


def _why(code: int) -> str:
    """A child's exit status in words."""
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    if code == EXIT_CONFIG:
        return f"exit status {code}: a configuration problem (its message is above)"
    if code == EXIT_FAILURE:
        return f"exit status {code}: it could not start or run (its message is above)"
    return f"exit status {code}"


def _supervise(processes: int, threads: int | None, max_restarts: int,
               restart_window: float) -> int:
    """Run N single-process workers; restart one that crashes; stop all on a signal.

    Returns the exit status: 0 after a signal; non-zero when a child died for good: it
    exited with a configuration or start-up failure (restarting cannot fix that), or
    crashed more than ``max_restarts`` times within ``restart_window`` seconds. The
    log line says which process and why.
    """
    argv = [sys.executable, "-m", "intake", "worker", "--processes", "1"]
    if threads is not None:
        argv += ["--threads", str(threads)]
    children = [subprocess.Popen(argv) for _ in range(processes)]
    click.echo(f"intake worker: supervising {processes} worker processes "
               f"({', '.join(str(c.pid) for c in children)})", err=True)
    stopping = threading.Event()
    restarts: deque[float] = deque()
    status = 0

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stopping.wait(0.2):
        for i, child in enumerate(children):
            code = child.poll()
            if code is None:
                continue
            now = time.monotonic()
            while restarts and restarts[0] < now - restart_window:
                restarts.popleft()
            if code in (EXIT_CONFIG, EXIT_FAILURE):
                click.echo(f"intake worker: worker process {child.pid} died for good "
                           f"({_why(code)}); stopping the others and exiting with status "
                           f"{code}", err=True)
                status = code
            elif len(restarts) >= max_restarts:
                click.echo(f"intake worker: worker process {child.pid} died for good "
                           f"({_why(code)}) after {len(restarts)} restart(s) within "
                           f"{restart_window:g} s (--max-restarts {max_restarts}); stopping "
                           f"the others and exiting with status {EXIT_FAILURE}", err=True)
                status = EXIT_FAILURE
            else:
                restarts.append(now)
                children[i] = subprocess.Popen(argv)
                click.echo(f"intake worker: worker process {child.pid} exited ({_why(code)}); "
                           f"restarted as {children[i].pid}", err=True)
                continue
            stopping.set()
            break
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return status
