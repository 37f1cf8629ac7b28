"""``intake worker --processes N``: a child that dies is restarted; one that dies for good
makes the supervisor exit non-zero, saying which and why (for systemd to act on).

Real processes on Redis and SQLite; children are found by their heartbeat rows and
killed with SIGKILL. No sleeps: every wait is on a condition, with a timeout.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from intake.db.ops_models import WorkerHeartbeat
from intake.runtime import Runtime
from tests.conftest import SMALL_RULES, make_settings, output_of, subprocess_env, wait_for


def _children(rt: Runtime) -> set[int]:
    """The process ids of the workers whose heartbeat row exists."""
    with rt.db.session() as s:
        return {int(worker.rsplit(":", 1)[1])
                for worker in s.scalars(select(WorkerHeartbeat.worker))}


def _start(tmp_path: Path, sqlite_url: str, redis_url: str, rules: Path,
           server_process: Callable[..., subprocess.Popen[str]], *args: str
           ) -> tuple[subprocess.Popen[str], Runtime]:
    env = subprocess_env(INTAKE_DATABASE_URL=sqlite_url, INTAKE_BROKER_URL=redis_url,
                         INTAKE_INSTANCE_PATH=str(tmp_path / "instance"),
                         INTAKE_RULES=str(rules), INTAKE_WORKER_THREADS="1",
                         INTAKE_LOG_LEVEL="WARNING")
    proc = server_process(["worker", "--processes", "2", *args], env)
    rt = Runtime(make_settings(tmp_path, sqlite_url))
    wait_for(lambda: len(_children(rt)) == 2 or proc.poll() is not None, timeout=60,
             message="two worker processes beating")
    assert proc.poll() is None, output_of(proc)
    return proc, rt


def test_a_killed_child_is_restarted_and_one_that_cannot_start_stops_the_supervisor(
        tmp_path: Path, sqlite_url: str, redis_url: str,
        server_process: Callable[..., subprocess.Popen[str]]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SMALL_RULES.read_text())
    proc, rt = _start(tmp_path, sqlite_url, redis_url, rules, server_process)
    try:
        before = _children(rt)
        first, survivor = sorted(before)
        os.kill(first, signal.SIGKILL)
        # Restarted: a new process beats beside the survivor.
        wait_for(lambda: len(_children(rt) - before) == 1 or proc.poll() is not None,
                 timeout=60, message="the restarted worker beating")
        assert proc.poll() is None, output_of(proc)
        [second] = _children(rt) - before
        assert f"worker process {first} exited (killed by signal SIGKILL); restarted as " \
               f"{second}" in output_of(proc)
        rules.write_text("version: 1\nagencies: [\n")  # the next child cannot load it
        os.kill(second, signal.SIGKILL)
        code = proc.wait(timeout=60)
        log = output_of(proc)
        assert code == 1, log
        assert re.search(r"intake worker: worker process \d+ died for good \(exit status 1: "
                         r"it could not start or run \(its message is above\)\); stopping "
                         r"the others and exiting with status 1", log), log
        # The survivor was stopped cleanly (its row removed); the killed ones' rows stay,
        # to go stale.
        assert _children(rt) == {first, second}
    finally:
        rt.close()


def test_a_child_that_keeps_crashing_uses_up_its_restarts(
        tmp_path: Path, sqlite_url: str, redis_url: str,
        server_process: Callable[..., subprocess.Popen[str]]) -> None:
    proc, rt = _start(tmp_path, sqlite_url, redis_url, SMALL_RULES, server_process,
                      "--max-restarts", "0")
    try:
        victim = min(_children(rt))
        os.kill(victim, signal.SIGKILL)
        code = proc.wait(timeout=60)
        log = output_of(proc)
        assert code == 1, log
        assert (f"intake worker: worker process {victim} died for good (killed by signal "
                "SIGKILL) after 0 restart(s) within 300 s (--max-restarts 0); stopping the "
                "others and exiting with status 1") in log, log
        assert len(_children(rt)) == 1  # only the killed one's row: the other stopped
    finally:
        rt.close()
