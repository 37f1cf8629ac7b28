"""Deliveries per second to an aiosmtpd sink: `intake worker` beside a bare smtplib loop.

Usage: python bench/delivery.py [--messages 500] [--threads 4]
       [--pg postgresql://postgres@127.0.0.1:5432/test] [--redis redis://127.0.0.1:6379/14]

Both sides send the same number of messages to the same loopback SMTP sink,
one SMTP connection per message, in the same run:

- intake: N entries are stored and routed first (not timed); then one
  `intake worker` process (PostgreSQL + Redis) delivers them: the gate's
  send-time recheck, rendition, SMTP, the Message-ID record and the commit.
  Rate = messages between the first and the last arrival at the sink.
- baseline: a plain loop of smtplib.SMTP(...).send_message over the same
  number of pre-built messages, single-threaded and with the same thread
  count as the worker.
"""

from __future__ import annotations

import argparse
import os
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


def baseline(port: int, n: int, threads: int) -> tuple[float, float]:
    import smtplib

    messages = []
    for i in range(n):
        msg = EmailMessage()
        msg["From"] = "intake@examplia.gov"
        msg["To"] = "intake@dot.examplia.gov"
        msg["Subject"] = f"[#EX-2026-{i:06d}] Pothole"
        msg["Message-ID"] = f"<bare.{i}@relay.examplia.gov>"
        msg.set_content("A member of the public wrote... " * 20)
        messages.append(msg)

    def send(msg: EmailMessage) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.send_message(msg)

    start = time.perf_counter()
    for msg in messages:
        send(msg)
    single = n / (time.perf_counter() - start)
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, messages))
    pooled = n / (time.perf_counter() - start)
    return single, pooled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--processes", type=int, default=1)
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

    redis.Redis.from_url(args.redis).flushdb()
    tmp = Path(tempfile.mkdtemp())
    sink = TimedSink().start()
    env = {
        "INTAKE_DATABASE_URL": db_url, "INTAKE_BROKER_URL": args.redis,
        "INTAKE_RULES": str(rules_file(tmp)), "INTAKE_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
        "INTAKE_MAIL_FROM": "intake@examplia.gov", "INTAKE_RELAY_DOMAIN": "relay.examplia.gov",
        "INTAKE_SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnop",
        "INTAKE_INSTANCE_PATH": str(tmp), "INTAKE_LOG_LEVEL": "WARNING",
        "INTAKE_WORKER_THREADS": str(args.threads),
    }
    worker = None
    try:
        upgrade(db_url)
        runtime = Runtime(load_settings(env))
        runtime.rules.load()
        print(f"storing and routing {n} entries (not timed)...", file=sys.stderr)
        for i in range(n):
            with runtime.db.session() as s:
                record_submissions(s, [NewSubmission(
                    channel="web", kind="contact", raw=f"bench-{i}".encode(),
                    content_type="text/plain", body=f"Pothole number {i} on Route 9. " * 10,
                    subject="Pothole", form_slug="contact")], record_prefix="EX",
                            originals_key=runtime.originals_key)[0]
        with runtime.db.session() as s:
            route_ids = list(s.scalars(select(WorkItem.id).where(WorkItem.kind == "route")))
        for item_id in route_ids:
            runtime.jobs.perform(item_id, "bench-router")
        print(f"delivering through `intake worker` ({args.processes} process(es) x "
          f"{args.threads} threads)...", file=sys.stderr)
        worker_env = {**os.environ, **env}
        worker = subprocess.Popen([sys.executable, "-m", "intake", "worker", "--processes",
                                   str(args.processes)], env=worker_env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 600
        while len(sink.times) < n and time.monotonic() < deadline:
            time.sleep(0.2)

        def done() -> int:
            with runtime.db.session() as s:
                return int(s.scalar(select(func.count()).select_from(WorkItem).where(
                    WorkItem.kind == "deliver", WorkItem.state == "done")) or 0)

        intake_rate = rate(sink.times)
        print(f"intake delivered {len(sink.times)} ({done()} done)", file=sys.stderr)
        runtime.close()
        sink.times.clear()
        print("baseline: bare smtplib loop...", file=sys.stderr)
        single, pooled = baseline(sink.port, n, args.threads)
        print()
        print(f"messages: {n}, one SMTP connection per message, aiosmtpd sink on loopback")
        print(f"{'sender':<44}{'msg/s':>10}")
        label = f"intake worker ({args.processes}x{args.threads} threads, PG + Redis)"
        print(f"{label:<44}"
              f"{intake_rate:>10.1f}")
        print(f"{'bare smtplib loop (1 thread)':<44}{single:>10.1f}")
        print(f"{'bare smtplib loop (' + str(args.threads) + ' threads)':<44}{pooled:>10.1f}")
        print(f"ratio intake / bare (1 thread):  {intake_rate / single:.2f}")
        print(f"ratio intake / bare ({args.threads} threads): {intake_rate / pooled:.2f}")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        sink.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
