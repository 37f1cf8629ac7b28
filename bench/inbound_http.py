"""Inbound push throughput: POST /inbound/raw beside the IMAP path's store, in the same run.

    python bench/inbound_http.py [--count 1000] [--database-url postgresql://...]

Generates ``--count`` messages (the IMAP bench's mix: plain, alternative, attachments of
20-200 KB, legacy charsets, encoded words) and stores them twice, each time on a fresh
database (SQLite in a temp folder; with ``--database-url`` a new PostgreSQL database on that
server, dropped afterwards):

- http: one client posting each message to ``POST /inbound/raw`` (bearer secret) on one
  keep-alive connection, one request after another (read, verify, store, commit, answer),
  to gunicorn as intake runs it (``intake.gunicorn_conf``: gthread) with one worker
  process and one thread, on loopback; with ``--werkzeug`` also to werkzeug's threaded
  development server in this process;
- store: the IMAP poller's store function, ``services.mail_intake.store_messages``, called
  with one message at a time (what one push does) and with batches of 100 (what the
  poller does with a fetched batch).

Prints messages/s of each and the ratio http / store(1). Entries are checked (all stored,
none quarantined). The "route" work items are left pending in both (no worker runs).
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from imap_ingest import generate  # noqa: E402

SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
RAW_SECRET = "bench-inbound-secret-0123456789abcdef"


def runtime_for(workdir: Path, name: str, database_url: str | None):  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine, text

    from intake.db.migrate import upgrade
    from intake.runtime import Runtime
    from intake.settings import load_settings

    if database_url:
        # A database of its own on that server, dropped at the end (see drop_database).
        url = database_url.rsplit("/", 1)[0] + f"/inbound_bench_{os.getpid()}_{name}"
        engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"'))
        engine.dispose()
    else:
        url = f"sqlite:///{workdir / (name + '.sqlite3')}"
    upgrade(url)
    sources = workdir / "inbound.yaml"
    sources.write_text("sources:\n  - {name: raw, format: raw, rate_limit: 1000000/minute}\n")
    env = {
        "INTAKE_DATABASE_URL": url, "INTAKE_INSTANCE_PATH": str(workdir / name),
        "INTAKE_SECRET_KEY": SECRET_KEY, "INTAKE_LOG_LEVEL": "WARNING",
        "INTAKE_INBOUND_FILE": str(sources), "INTAKE_INBOUND_SECRET_RAW": RAW_SECRET,
        "INTAKE_RATE_LIMIT_URL": "memory",
    }
    runtime = Runtime(load_settings(env))
    runtime.bench_env = env  # type: ignore[attr-defined]
    runtime.jobs.send_messages = False
    return runtime


def drop_database(database_url: str | None, runtime) -> None:  # type: ignore[no-untyped-def]
    if not database_url:
        return
    from sqlalchemy import create_engine, text

    name = runtime.settings.database_url.rsplit("/", 1)[1]
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def counts(runtime) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from intake.db.mail_models import QuarantinedMessage
    from intake.db.models import Entry

    with runtime.db.session() as s:
        return (int(s.scalar(select(func.count()).select_from(Entry)) or 0),
                int(s.scalar(select(func.count()).select_from(QuarantinedMessage)) or 0))


def progress(label: str, done: int, total: int) -> None:
    if done == total or done % max(1, total // 10) == 0:
        print(f"  {label}: {done}/{total}", file=sys.stderr, flush=True)


def post_all(port: int, raws: list[bytes], label: str) -> float:
    """Seconds to POST every message, one after another, on one keep-alive connection."""
    headers = {"Authorization": f"Bearer {RAW_SECRET}", "Content-Type": "message/rfc822"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    for i, raw in enumerate(raws, start=1):
        conn.request("POST", "/inbound/raw", body=raw, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"message {i}: HTTP {response.status}")
        if response.will_close:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        progress(label, i, len(raws))
    conn.close()
    return time.perf_counter() - start


def run_gunicorn(runtime, raws: list[bytes], workdir: Path) -> float:  # type: ignore[no-untyped-def]
    """The production server: gunicorn (gthread), one worker process with one thread."""
    import socket
    import subprocess

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update(runtime.bench_env, INTAKE_BIND=f"127.0.0.1:{port}", INTAKE_WEB_WORKERS="1",
               INTAKE_WEB_THREADS="1")
    log = (workdir / "gunicorn.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c",
                             "python:intake.gunicorn_conf", "intake.wsgi:app"],
                            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("gunicorn did not start: see "
                                     + str(workdir / "gunicorn.log")) from None
                time.sleep(0.1)
        return post_all(port, raws, "http (gunicorn)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def run_werkzeug(runtime, raws: list[bytes]) -> float:  # type: ignore[no-untyped-def]
    """werkzeug's threaded development server in this process (a thread per request)."""
    import logging

    from werkzeug.serving import make_server

    from intake import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app(runtime=runtime)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        return post_all(server.server_port, raws, "http (werkzeug)")
    finally:
        server.shutdown()
        thread.join()


def run_store(runtime, raws: list[bytes], batch: int) -> float:  # type: ignore[no-untyped-def]
    from intake.services.mail_intake import MailContext, ReceivedMail, store_messages

    context = MailContext.from_settings(runtime.settings, "http:raw", pii_key=runtime.pii_key)
    start = time.perf_counter()
    for i in range(0, len(raws), batch):
        outcomes = store_messages(runtime.db, [ReceivedMail(r) for r in raws[i:i + batch]],
                                  context)
        if any(o.outcome != "stored" for o in outcomes):
            raise SystemExit(f"store: {[o.outcome for o in outcomes]}")
        progress(f"store({batch})", min(i + batch, len(raws)), len(raws))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"),
                        help="a PostgreSQL server (URL of any database on it): each run creates "
                             "and drops a database of its own there; default SQLite")
    parser.add_argument("--werkzeug", action="store_true",
                        help="also through werkzeug's development server (in this process)")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")
    raws = generate(args.count)
    megabytes = sum(map(len, raws)) / 1e6
    print(f"{args.count} messages, {megabytes:.1f} MB, database "
          f"{'postgresql' if args.database_url else 'sqlite'}")
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("http", lambda rt: run_gunicorn(rt, raws, Path(tmp)))]
        if args.werkzeug:
            runs.append(("http-werkzeug", lambda rt: run_werkzeug(rt, raws)))
        for label, run in (*runs, ("store(1)", lambda rt: run_store(rt, raws, 1)),
                           ("store(100)", lambda rt: run_store(rt, raws, 100))):
            name = label.replace("(", "").replace(")", "").replace("-", "_")
            runtime = runtime_for(Path(tmp), name, args.database_url)
            try:
                seconds = run(runtime)
                stored, quarantined = counts(runtime)
            finally:
                runtime.close()
                drop_database(args.database_url, runtime)
            if stored != len(raws) or quarantined:
                raise SystemExit(f"{label}: {stored} stored, {quarantined} quarantined")
            results[label] = len(raws) / seconds
            print(f"{label:>13}: {results[label]:8.1f} messages/s ({seconds:.1f} s)")
    print(f"http / store(1): {results['http'] / results['store(1)'] * 100:.0f} %; "
          f"http / store(100): {results['http'] / results['store(100)'] * 100:.0f} %")


if __name__ == "__main__":
    main()
