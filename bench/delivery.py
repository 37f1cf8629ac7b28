"""Deliveries per second to an aiosmtpd sink: `intake worker` beside a bare smtplib loop.

Usage: python bench/delivery.py [--messages 500] [--rounds 3] [--threads 4]
       [--processes 1] [--before DIR]
       [--pg postgresql://postgres@127.0.0.1:5432/test] [--redis redis://127.0.0.1:6379/14]

In alternating rounds, in one run, against the same loopback SMTP sink:

- intake: ``--messages`` entries are stored and routed first (not timed), their
  deliveries waiting in the database; then the messages for them go to the broker
  at once and one `intake worker` process (PostgreSQL + Redis, started before the
  first round and kept running) delivers them: the gate's send-time recheck,
  rendition, SMTP, the Message-ID record and the commit. Rate = messages between
  the first and the last arrival at the sink; with it the worker's CPU time (user +
  system, from /proc) per delivery, which the other tenants of the machine move
  less than the wall time.
- with ``--before DIR`` (a checkout of an earlier commit, e.g. from ``git archive``),
  a second worker runs that code in the rounds in between, on its own Redis
  database (the next number), so the speed-up is measured in the same run too.
- baseline: a plain loop of smtplib.SMTP(...).send_message over the same number of
  pre-built messages, one SMTP connection per message, single-threaded and with
  ``--threads`` threads.

Each round prints its figures; the summary gives the median and the range across
rounds of each, and the ratio intake / bare of each round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, func, select, text  # noqa: E402

from intake.db.migrate import upgrade  # noqa: E402
from intake.db.models import WorkItem  # noqa: E402
from intake.runtime import Runtime  # noqa: E402
from intake.services.records import NewSubmission, record_submissions  # noqa: E402
from intake.settings import load_settings  # noqa: E402
from tests.conftest import SmtpSink, rules_file  # noqa: E402


class TimedSink(SmtpSink):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        answer = await super().handle_DATA(server, session, envelope)
        self.times.append(time.perf_counter())
        return answer


def rate(times: list[float]) -> float:
    if len(times) < 2:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live children (``--processes`` > 1: the
    supervisor's worker processes), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    ticks = sum(int(f) for f in fields[11:13])  # utime, stime
    children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                for c in (task / "children").read_text().split()]
    return ticks / os.sysconf("SC_CLK_TCK") + sum(cpu_seconds(c) for c in children)


def bare(port: int, n: int, threads: int) -> float:
    """Messages a second of a bare smtplib loop, one connection per message."""
    import smtplib

    messages = []
    for i in range(n):
        msg = EmailMessage()
        msg["From"] = "intake@examplia.gov"
        msg["To"] = "intake@dot.examplia.gov"
        msg["Subject"] = f"[#EX-2026-{i:06d}] Pothole"
        msg["Message-ID"] = f"<bare.{i}.{uuid.uuid4().hex[:8]}@relay.examplia.gov>"
        msg.set_content("A member of the public wrote... " * 20)
        messages.append(msg)

    def send(msg: EmailMessage) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.send_message(msg)

    start = time.perf_counter()
    if threads == 1:
        for msg in messages:
            send(msg)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(send, messages))
    return n / (time.perf_counter() - start)


def spread(values: list[float]) -> str:
    return (f"{statistics.median(values):8.1f}  ({min(values):.1f}-{max(values):.1f})"
            if values else "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--before", type=Path, default=None,
                        help="a checkout of earlier code whose worker runs in the rounds "
                             "in between")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    n = args.messages

    admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
    name = f"intake_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = admin.url.set(database=name).render_as_string(hide_password=False)
    import redis

    base, _, db = args.redis.rpartition("/")
    brokers = {"now": args.redis}
    if args.before is not None:
        brokers["before"] = f"{base}/{int(db) + 1}"
    for url in brokers.values():
        redis.Redis.from_url(url).flushdb()
    tmp = Path(tempfile.mkdtemp())
    sink = TimedSink().start()
    env = {
        "INTAKE_DATABASE_URL": db_url, "INTAKE_BROKER_URL": args.redis,
        "INTAKE_RULES": str(rules_file(tmp)), "INTAKE_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
        "INTAKE_MAIL_FROM": "intake@examplia.gov", "INTAKE_RELAY_DOMAIN": "relay.examplia.gov",
        "INTAKE_SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnop",
        "INTAKE_INSTANCE_PATH": str(tmp), "INTAKE_LOG_LEVEL": "WARNING",
        "INTAKE_WORKER_THREADS": str(args.threads),
        # Items wait in the database while a round is prepared: no sweeper re-sends.
        "INTAKE_REDELIVER_AFTER": "3600",
    }
    workers: dict[str, subprocess.Popen[bytes]] = {}
    runtimes: dict[str, Runtime] = {}
    try:
        upgrade(db_url)
        for label, url in brokers.items():
            runtimes[label] = Runtime(load_settings({**env, "INTAKE_BROKER_URL": url}))
            runtimes[label].rules.load()
            # Routing here creates the deliveries; their messages are sent per round.
            runtimes[label].jobs.send_messages = False
        runtime = runtimes["now"]
        made = [0]

        def prepare(count: int) -> list[int]:
            """Store and route ``count`` entries; the ids of their waiting deliveries."""
            first, made[0] = made[0], made[0] + count
            for i in range(first, first + count):
                with runtime.db.session() as s:
                    record_submissions(s, [NewSubmission(
                        channel="web", kind="contact", raw=f"bench-{i}".encode(),
                        content_type="text/plain", body=f"Pothole number {i} on Route 9. " * 10,
                        subject="Pothole", form_slug="contact")], record_prefix="EX",
                                       originals_key=runtime.originals_key)
            with runtime.db.session() as s:
                route_ids = list(s.scalars(select(WorkItem.id).where(
                    WorkItem.kind == "route", WorkItem.state == "pending")))
            for item_id in route_ids:
                runtime.jobs.perform(item_id, "bench-router")
            with runtime.db.session() as s:
                return list(s.scalars(select(WorkItem.id).where(
                    WorkItem.kind == "deliver", WorkItem.state == "pending")
                    .order_by(WorkItem.id)))

        def deliver(label: str, count: int) -> tuple[float, float]:
            """(forwards/s, worker CPU ms per forward) of one intake round."""
            ids = prepare(count)
            sink.times.clear()
            pid = workers[label].pid
            cpu0 = cpu_seconds(pid)
            for item_id in ids:
                runtimes[label].jobs.send(item_id)
            deadline = time.monotonic() + 600
            while len(sink.times) < len(ids) and time.monotonic() < deadline:
                time.sleep(0.05)
            got = rate(sink.times)
            cpu = cpu_seconds(pid) - cpu0
            if len(sink.times) < len(ids):
                print(f"  {label}: only {len(sink.times)} of {len(ids)} arrived",
                      file=sys.stderr)
            return got, 1000 * cpu / max(1, len(sink.times))

        for label, url in brokers.items():
            worker_env = {**os.environ, **env, "INTAKE_BROKER_URL": url}
            cwd = None
            if label == "before":
                worker_env["PYTHONPATH"] = str(args.before.resolve())
                cwd = str(args.before.resolve())
            workers[label] = subprocess.Popen(
                [sys.executable, "-m", "intake", "worker", "--processes", str(args.processes)],
                env=worker_env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"warming up ({', '.join(workers)})...", file=sys.stderr)
        for label in workers:
            deliver(label, 20)

        results: dict[str, list[float]] = {k: [] for k in (
            "now", "now_cpu", "before", "before_cpu", "bare1", "bareN")}
        ratios: dict[str, list[float]] = {"bare1": [], "bareN": [], "before": []}
        print(f"{'round':<7}{'sender':<46}{'msg/s':>9}{'CPU ms/msg':>12}")
        for r in range(args.rounds):
            order = list(workers) if r % 2 == 0 else list(reversed(workers))
            got: dict[str, float] = {}
            for label in order:
                got[label], cpu = deliver(label, n)
                results[label].append(got[label])
                results[f"{label}_cpu"].append(cpu)
                who = "intake worker" + (" (before)" if label == "before" else "")
                print(f"{r + 1:<7}{who + f' {args.processes}x{args.threads} threads':<46}"
                      f"{got[label]:>9.1f}{cpu:>12.2f}", flush=True)
            sink.times.clear()
            got["bare1"] = bare(sink.port, n, 1)
            got["bareN"] = bare(sink.port, n, args.threads)
            for key, label in (("bare1", "bare smtplib loop (1 thread)"),
                               ("bareN", f"bare smtplib loop ({args.threads} threads)")):
                results[key].append(got[key])
                print(f"{r + 1:<7}{label:<46}{got[key]:>9.1f}", flush=True)
            ratios["bare1"].append(got["now"] / got["bare1"])
            ratios["bareN"].append(got["now"] / got["bareN"])
            if "before" in got:
                ratios["before"].append(got["now"] / got["before"])

        with runtime.db.session() as s:
            done = int(s.scalar(select(func.count()).select_from(WorkItem).where(
                WorkItem.kind == "deliver", WorkItem.state == "done")) or 0)
        print()
        print(f"{n} messages a round, {args.rounds} rounds, aiosmtpd sink on loopback; "
              f"{done} deliveries done in all; median (range)")
        print(f"{'intake worker msg/s':<40}{spread(results['now'])}")
        print(f"{'intake worker CPU ms/msg':<40}{spread(results['now_cpu'])}")
        if results["before"]:
            print(f"{'intake worker (before) msg/s':<40}{spread(results['before'])}")
            print(f"{'intake worker (before) CPU ms/msg':<40}{spread(results['before_cpu'])}")
        print(f"{'bare smtplib loop (1 thread) msg/s':<40}{spread(results['bare1'])}")
        print(f"{'bare smtplib loop (' + str(args.threads) + ' threads) msg/s':<40}"
              f"{spread(results['bareN'])}")

        def ratio(values: list[float]) -> str:
            return (f"{statistics.median(values):.2f}  "
                    f"(rounds: {', '.join(f'{v:.2f}' for v in values)})")

        print(f"ratio intake / bare (1 thread):  {ratio(ratios['bare1'])}")
        print(f"ratio intake / bare ({args.threads} threads): {ratio(ratios['bareN'])}")
        if ratios["before"]:
            print(f"ratio intake now / before:       {ratio(ratios['before'])}")
    finally:
        for worker in workers.values():
            worker.terminate()
            worker.wait(timeout=30)
        for rt in runtimes.values():
            rt.close()
        sink.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
