"""Benchmark of the web intake: ``POST /forms/contact`` beside a bare insert endpoint.

    python bench/form_intake.py [--workers 2] [--clients 8] [--seconds 5] [--rounds 3]
                                [--pg postgresql://postgres@127.0.0.1:5432/postgres]
                                [--get-post]

``--get-post`` (issue 28): each client GETs the form page (HTML, as a browser does),
takes the token from it and POSTs the submission; one GET+POST pair counts as one,
and the bare app answers a GET before each insert likewise. django-helpdesk's public
ticket form (bench/helpdesk: its own venv, built outside the repository on first use)
runs as a third app in the same rounds, with the same gunicorn and the same clients:
GET ``/tickets/submit/``, its CSRF token and cookie, the ticket POSTed as the browser
posts it; a pair counts when helpdesk answers with the redirect to the new ticket. The
intake's rate is printed as a ratio to helpdesk's per round and of the medians, the
issue's goal being >= 5x. helpdesk's stored 98.7 GET+POST/s (another machine) is used
only, and said loudly, when its venv cannot be built or with ``--no-helpdesk``.

For SQLite and for PostgreSQL (a throw-away database created on the server
given by ``--pg`` and dropped afterwards; skipped if unreachable), starts
gunicorn twice with the same worker count on a freshly migrated database:

* ``wsgi:app`` (the real intake app) receiving ``POST /forms/contact``,
  urlencoded as a browser sends it, each body different (the token is
  fetched once; ``min_fill_seconds`` is 0 in the bench's forms file);
* a bare Flask app (this file, ``bare_app``) whose ``POST /bare`` inserts one
  row into a table of the same database in its own transaction.

Both are driven by the same closed-loop load (``--clients`` keep-alive
connections spread over load processes), in turns, ``--rounds`` times for
``--seconds`` each (the two servers run side by side, so a machine whose
speed drifts meanwhile weighs on both alike), and the script prints the
median submissions per second of each, the ratio of the medians, the ratio of
each round, the error counts and the rows stored. After each app's turn the rows it
stored meanwhile (entries, bare rows, helpdesk tickets) are counted: an app that answered
"stored" more often than it stored ends the run with an error.
Goal: intake >= 0.5x the bare endpoint.

Beside the rates it prints what each submission cost the server in CPU time
(median of the rounds): the gunicorn workers' user and system time over the
round (on SQLite that includes the database) plus, on PostgreSQL, that of the
server processes serving the app's connections (the bare app's connections
are told apart by their ``application_name``), over the submissions answered,
and, on PostgreSQL, how much of it the server processes spent.
Unlike the rates, that figure does not move with idle time (a commit waiting
on the disk, a writer waiting its turn) nor with what else shares the CPUs;
it reads the processes' counters in ``/proc`` and is left out where there is
none.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.helpdesk import baseline as helpdesk  # noqa: E402 - the path above first

SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
BARE_TABLE = "bench_bare_inserts"
BARE_APPLICATION = "intake-bench-bare"  # the bare app's PostgreSQL application_name


# -- the bare endpoint (imported by gunicorn as form_intake:bare_app) ---------------------

def _make_bare_app() -> Any:
    from flask import Flask, request
    from sqlalchemy import create_engine, text

    url = os.environ.get("BENCH_DATABASE_URL", "sqlite://")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
    else:
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1)
                               if url.startswith("postgresql://") else url,
                               connect_args={"application_name": BARE_APPLICATION})
    app = Flask("bare")

    @app.get("/bare")
    def bare_page() -> str:
        return '<form method="post"><input name="_token" value="bare"></form>'

    @app.post("/bare")
    def bare() -> tuple[str, int]:
        body = request.get_data()
        with engine.begin() as conn:
            conn.execute(text(f"INSERT INTO {BARE_TABLE} (body) VALUES (:b)"), {"b": body})
        return "ok", 201

    return app


bare_app = _make_bare_app() if os.environ.get("BENCH_BARE") == "1" else None


# -- what the intake is given (also used by form_instructions.py) ------------------------

def contact_body(token: str, unique: str) -> bytes:
    """A contact-form submission, urlencoded as a browser sends it; ``unique`` makes its
    bytes differ from every other's (the same bytes again are one entry)."""
    return urlencode({
        "_token": token, "lang": "en", "name": "Bench Person",
        "email": "bench@example.com", "topic": "parks",
        "subject": f"Trail report {unique}",
        "message": f"The north trail at Lake Park is closed ({unique}). "
                   "Could someone look at the fallen trees near the bridge?",
    }).encode()


def intake_settings(url: str, folder: Path) -> dict[str, str]:
    """The intake's settings for a bench on ``url``, its files under ``folder``: no
    minimum fill time (the forms file), no rate limit that a bench would reach."""
    return {
        "INTAKE_DATABASE_URL": url, "INTAKE_SECRET_KEY": SECRET,
        "INTAKE_INSTANCE_PATH": str(folder / "instance"),
        "INTAKE_FORMS": str(_forms_file(folder / "forms")),
        "INTAKE_FORM_RATE_LIMIT": "1000000/minute", "INTAKE_LOG_LEVEL": "WARNING",
    }


def _forms_file(folder: Path) -> Path:
    from intake.services.forms import packaged_forms_path

    packaged = packaged_forms_path()
    data = yaml.safe_load(packaged.read_text())
    data["min_fill_seconds"] = 0
    for form in data["forms"]:  # the packaged survey files, where they are
        if form.get("survey"):
            form["survey"] = str(packaged.parent / form["survey"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "forms.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


# -- load generation ---------------------------------------------------------------------

_TOKEN_IN_PAGE = re.compile(r'name="_token" value="([^"]+)"')
HELPDESK_GET_POST = 98.7  # helpdesk's GET+POST/s stored in issue 28: the fallback only


def _load_worker(args: tuple[int, str, int, str, float, str, str, bool]
                 ) -> tuple[int, int, float]:
    """(submissions answered, failed requests, CPU seconds this load process spent)."""
    port, path, threads, token, seconds, seed, kind, get_post = args
    cpu_start = time.process_time()
    ok = errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run(thread_no: int) -> None:
        nonlocal ok, errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        cookie: list[str] = []  # helpdesk's csrftoken cookie, kept as a browser keeps it
        n = 0
        while time.monotonic() < deadline:
            n += 1
            unique = f"{seed}-{thread_no}-{n}"
            try:
                if kind == "helpdesk":  # always the page first: its CSRF token and cookie
                    good = _helpdesk_pair(conn, path, unique, cookie)
                else:
                    good = _pair(conn, path, kind, token, unique, get_post)
            except (OSError, http.client.HTTPException):
                good = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            with lock:
                if good:
                    ok += 1
                else:
                    errors += 1
        conn.close()

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return ok, errors, time.process_time() - cpu_start


def _pair(conn: http.client.HTTPConnection, path: str, kind: str, token: str, unique: str,
          get_post: bool) -> bool:
    """One POST (with ``get_post``, GET+POST) of intake's form or of the bare app."""
    if get_post:  # the page first, as a browser: its token is the one posted
        conn.request("GET", path + "?lang=en")
        page = conn.getresponse().read().decode()
        found = _TOKEN_IN_PAGE.search(page)
        if found is None:
            raise http.client.HTTPException("no token in the page")
        token = found.group(1)
    if kind == "intake":
        body = contact_body(token, unique)
    else:
        body = f"name=Bench+Person&subject=Trail+report+{unique}".encode()
    conn.request("POST", path, body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    return response.status in (200, 201)


def _helpdesk_pair(conn: http.client.HTTPConnection, path: str, unique: str,
                   cookie: list[str]) -> bool:
    """One GET+POST of helpdesk's public form, as a browser does it: the submit page, its
    CSRF token and cookie, the ticket posted as multipart/form-data. True if helpdesk
    answered with its "ticket created" redirect (the redirect is not followed)."""
    headers = {"Cookie": f"csrftoken={cookie[0]}"} if cookie else {}
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    page = response.read().decode()
    if response.status != 200:
        raise http.client.HTTPException(f"GET {path}: {response.status}")
    fresh = helpdesk.csrf_cookie(response.getheaders())
    if fresh is not None:
        cookie[:] = [fresh]
    try:
        token = helpdesk.csrf_token(page)
    except ValueError as exc:
        raise http.client.HTTPException(str(exc)) from exc
    body, content_type = helpdesk.ticket_form(token, unique)
    conn.request("POST", path, body=body, headers={
        "Content-Type": content_type, "Cookie": f"csrftoken={cookie[0] if cookie else ''}"})
    response = conn.getresponse()
    response.read()
    return helpdesk.ticket_created(response.status, response.getheader("Location"))


def _drive(port: int, path: str, kind: str, token: str, clients: int, seconds: float,
           processes: int, get_post: bool = False) -> tuple[float, int, int, float]:
    """Submissions per second, failed requests, submissions answered, and the CPU seconds
    the load processes spent driving them (the load shares the machine with the servers:
    what it spends, they cannot)."""
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    # Every body differs from every other of the run, warm-up and rounds included: the
    # same bytes again would be an idempotent duplicate, not a new submission.
    drive = uuid.uuid4().hex[:8]
    jobs = [(port, path, n, token, seconds, f"{drive}-{i}", kind, get_post)
            for i, n in enumerate(per) if n]
    started = time.monotonic()
    with ProcessPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(_load_worker, jobs))
    elapsed = time.monotonic() - started
    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    return ok / max(elapsed, seconds), errors, ok, sum(r[2] for r in results)


# -- servers -------------------------------------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, path: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def _gunicorn(target: str, port: int, workers: int, env: dict[str, str],
              chdir: Path) -> subprocess.Popen[bytes]:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return subprocess.Popen(
        [str(gunicorn), "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
         "--worker-class", "gthread", "--threads", "4", "--log-level", "warning",
         "--chdir", str(chdir), target],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


# -- CPU time the servers spend ------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of process ``pid`` so far; None if it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the name, in parentheses, may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def _workers(master: int) -> list[int]:
    try:
        return [int(p) for p in
                Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    except OSError:
        return []


class CpuMeter:
    """CPU seconds the processes serving one app spend between :meth:`start` and
    :meth:`stop`: its gunicorn workers and, on PostgreSQL, the server processes of its
    connections (read through ``admin``, a connection to the bench's database)."""

    def __init__(self, master: int, admin: Any = None, bare: bool = False) -> None:
        self.master, self.admin, self.bare = master, admin, bare
        self._before: dict[int, tuple[str, float]] = {}

    def _pids(self) -> dict[int, str]:
        """The processes to count, each with its part: "app" (a gunicorn worker) or "db"
        (a PostgreSQL server process of one of the app's connections)."""
        pids = dict.fromkeys(_workers(self.master), "app")
        if self.admin is not None:
            from sqlalchemy import text

            same = "=" if self.bare else "IS DISTINCT FROM"
            pids.update(dict.fromkeys(self.admin.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                f"AND pid <> pg_backend_pid() AND application_name {same} :name"),
                {"name": BARE_APPLICATION}).scalars().all(), "db"))
        return pids

    def _read(self) -> dict[int, tuple[str, float]] | None:
        pids = self._pids()
        if not pids:
            return None
        times = {}
        for pid, part in pids.items():
            seconds = _cpu_seconds(pid)
            if seconds is not None:  # else it ended since it was listed (a server process
                times[pid] = (part, seconds)  # of a connection just closed): not counted
        return times or None

    def start(self) -> None:
        self._before = self._read() or {}

    def stop(self) -> dict[str, float] | None:
        """CPU seconds since :meth:`start` by part ("app", and "db" on PostgreSQL; a
        process started meanwhile counts from 0, one that ended meanwhile is not counted:
        both apps keep their workers and pooled connections open once warmed up)."""
        after = self._read()
        if after is None or not self._before:
            return None
        spent: dict[str, float] = {}
        for pid, (part, seconds) in after.items():
            spent[part] = spent.get(part, 0.0) + seconds - self._before.get(pid, (part, 0.0))[1]
        return spent


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _prepare(url: str) -> None:
    from sqlalchemy import create_engine, text

    from intake.db.migrate import upgrade
    from intake.settings import load_settings

    upgrade(load_settings({"INTAKE_DATABASE_URL": url}).database_url)
    engine = create_engine(load_settings({"INTAKE_DATABASE_URL": url}).database_url)
    with engine.begin() as conn:
        id_type = "INTEGER PRIMARY KEY AUTOINCREMENT" if url.startswith("sqlite") \
            else "BIGSERIAL PRIMARY KEY"
        conn.execute(text(f"CREATE TABLE {BARE_TABLE} (id {id_type}, body TEXT NOT NULL)"))
    engine.dispose()


def _count_rows(url: str) -> tuple[int, int]:
    from sqlalchemy import create_engine, text

    from intake.settings import load_settings

    engine = create_engine(load_settings({"INTAKE_DATABASE_URL": url}).database_url)
    with engine.connect() as conn:
        entries = conn.execute(text("SELECT count(*) FROM entries")).scalar_one()
        bare = conn.execute(text(f"SELECT count(*) FROM {BARE_TABLE}")).scalar_one()
    engine.dispose()
    return int(entries), int(bare)


def measure(name: str, url: str, args: argparse.Namespace, tmp: Path,
            helpdesk_url: str | None = None) -> dict[str, Any]:
    """Rounds of intake, the bare app and (with ``args.helpdesk``, on ``helpdesk_url``)
    django-helpdesk, driven in turns; after each app's turn the rows it stored meanwhile are
    counted, and an app that answered "stored" more often than it stored fails the run."""
    _prepare(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update(intake_settings(url, tmp / name), PYTHONPATH=str(REPO))
    processes = min(args.clients, max(1, args.load_processes))
    # The servers run side by side (idle while another is driven), and they are driven
    # in turns: a machine that slows down or speeds up meanwhile (shared CPUs) weighs on
    # all alike. Each figure is the median of the rounds.
    intake_port, bare_port = _free_port(), _free_port()
    servers = {
        "intake": _gunicorn("wsgi:app", intake_port, args.workers, env, REPO),
        "bare": _gunicorn("form_intake:bare_app", bare_port, args.workers,
                          {**env, "BENCH_BARE": "1", "BENCH_DATABASE_URL": url}, REPO / "bench"),
    }
    site = None
    if args.helpdesk is not None and helpdesk_url is not None:
        site = helpdesk.Helpdesk(args.helpdesk, tmp / name / "helpdesk", helpdesk_url)
        site.migrate()
        site.add_public_queue()
        helpdesk_port = _free_port()
        servers["helpdesk"] = site.gunicorn(helpdesk_port, args.workers, 4)
    kinds = list(servers)
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    cpu_ms: dict[str, list[float]] = {k: [] for k in kinds}  # per submission
    cpu_db_ms: dict[str, list[float]] = {k: [] for k in kinds}  # of which the server's
    client_ms: dict[str, list[float]] = {k: [] for k in kinds}  # the load processes' CPU
    errors = dict.fromkeys(kinds, 0)
    stored = dict.fromkeys(kinds, 0)  # rows counted in the databases over the rounds
    answered = dict.fromkeys(kinds, 0)  # submissions answered "stored" over the rounds
    admins: dict[str, Any] = {}
    count = {"intake": lambda: _count_rows(url)[0], "bare": lambda: _count_rows(url)[1],
             "helpdesk": lambda: site.count_tickets() if site is not None else 0}
    try:
        _wait_ready(intake_port, "/forms/contact", servers["intake"])
        _wait_ready(bare_port, "/bare", servers["bare"])
        conn = http.client.HTTPConnection("127.0.0.1", intake_port)
        conn.request("GET", "/forms/contact", headers={"Accept": "application/json"})
        token = json.loads(conn.getresponse().read())["token"]
        conn.close()
        targets = {"intake": (intake_port, "/forms/contact", token),
                   "bare": (bare_port, "/bare", "")}
        if site is not None:
            _wait_ready(helpdesk_port, helpdesk.SUBMIT_PATH, servers["helpdesk"])
            targets["helpdesk"] = (helpdesk_port, helpdesk.SUBMIT_PATH, "")
        for kind, (port, path, tok) in targets.items():  # warm-up
            _drive(port, path, kind, tok, args.clients, 1.0, processes, args.get_post)
        if not url.startswith("sqlite"):
            from sqlalchemy import create_engine

            from intake.settings import load_settings

            for kind, db in (("intake", url), ("helpdesk", helpdesk_url)):
                if kind in targets and db is not None:
                    admins[kind] = create_engine(
                        load_settings({"INTAKE_DATABASE_URL": db}).database_url,
                        isolation_level="AUTOCOMMIT").connect()
        meters = {"intake": CpuMeter(servers["intake"].pid, admins.get("intake")),
                  "bare": CpuMeter(servers["bare"].pid, admins.get("intake"), bare=True)}
        if site is not None:
            meters["helpdesk"] = CpuMeter(servers["helpdesk"].pid, admins.get("helpdesk"))
        for round_no in range(args.rounds):
            for kind, (port, path, tok) in targets.items():
                before = count[kind]()
                meters[kind].start()
                rate, failed, done, client = _drive(port, path, kind, tok, args.clients,
                                                    args.seconds, processes, args.get_post)
                cpu = meters[kind].stop()
                made = count[kind]() - before
                stored[kind] += made
                answered[kind] += done
                each = None
                if cpu is not None and done:
                    each = sum(cpu.values()) / done * 1000
                    cpu_ms[kind].append(each)
                    cpu_db_ms[kind].append(cpu.get("db", 0.0) / done * 1000)
                rates[kind].append(rate)
                errors[kind] += failed
                cost = f"  {each:6.2f} ms CPU each" if each is not None else ""
                if done:
                    cost += f" (load: {client / done * 1000:.2f})"
                    client_ms[kind].append(client / done * 1000)
                check = "" if made == done else f"  ({made} rows stored for {done} answered!)"
                print(f"{name}: round {round_no + 1}/{args.rounds} {kind:<8} {rate:8.1f} req/s"
                      f"{cost}  {made} stored  load {_loadavg()}{check}",
                      file=sys.stderr, flush=True)
    finally:
        for admin in admins.values():
            admin.close()
            admin.engine.dispose()
        for proc in servers.values():
            _stop(proc)
    short = [k for k in kinds if stored[k] < answered[k]]
    if short:
        raise SystemExit(f"{name}: " + "; ".join(
            f"{k} answered {answered[k]} submissions as stored but stored {stored[k]}"
            for k in short))
    entries, bare_rows = _count_rows(url)
    medians = {k: statistics.median(v) for k, v in rates.items()}
    measured = all(len(v) == args.rounds for v in cpu_ms.values())  # every round of all
    result = {"db": name, "intake": medians["intake"], "intake_errors": errors["intake"],
              "bare": medians["bare"], "bare_errors": errors["bare"],
              "ratio": medians["intake"] / medians["bare"],
              "ratios": [i / b for i, b in zip(rates["intake"], rates["bare"], strict=True)],
              "rates": list(rates["intake"]),
              "entries": entries, "bare_rows": bare_rows,
              "cpu": {k: statistics.median(v) for k, v in cpu_ms.items()} if measured else None,
              "cpu_db": {k: statistics.median(v) for k, v in cpu_db_ms.items()}
              if measured and admins else None,
              "client": {k: statistics.median(v) for k, v in client_ms.items() if v},
              "helpdesk": None}
    if site is not None:
        result["helpdesk"] = {
            "rate": medians["helpdesk"], "rates": list(rates["helpdesk"]),
            "errors": errors["helpdesk"], "tickets": stored["helpdesk"],
            "ratios": [i / h for i, h in zip(rates["intake"], rates["helpdesk"], strict=True)]}
    return result


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


@contextmanager
def throwaway_database(server: str, prefix: str) -> Iterator[str | None]:
    """A new database on the PostgreSQL server ``server`` (any database URL there),
    dropped afterwards; None, after a line saying so, if it cannot be created."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(server).set(drivername="postgresql+psycopg")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT",
                              connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - reported, then skipped
        print(f"postgresql: skipped ({type(exc).__name__})")
        yield None
        return
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (each app)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="measured seconds per app and round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="turns of driving each app; figures are medians")
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--pg", default=os.environ.get(
        "INTAKE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    parser.add_argument("--get-post", action="store_true",
                        help="GET the page, then POST with its token (issue 28's figure); "
                             "django-helpdesk's public form runs in the same rounds")
    parser.add_argument("--no-helpdesk", action="store_true",
                        help="with --get-post: leave django-helpdesk out (its stored figure)")
    args = parser.parse_args()
    args.helpdesk = None
    fallback = ""
    if args.get_post and not args.no_helpdesk:
        args.helpdesk = helpdesk.ensure_venv(lambda line: print(line, flush=True))
        if args.helpdesk is None:
            fallback = "its venv could not be built (see above)"
    elif args.get_post:
        fallback = "--no-helpdesk"

    results = []
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as folder:
        tmp = Path(folder)
        if args.only in (None, "sqlite"):
            results.append(measure("sqlite", f"sqlite:///{tmp / 'bench.sqlite3'}", args, tmp,
                                   f"sqlite:///{tmp / 'helpdesk.sqlite3'}"))
        if args.only in (None, "postgresql"):
            with throwaway_database(args.pg, "intake_bench") as url, \
                    throwaway_database(args.pg, "helpdesk_bench") as helpdesk_url:
                if url is not None:
                    results.append(measure("postgresql", url, args, tmp, helpdesk_url))

    print(f"\ngunicorn --workers {args.workers} (gthread, 4 threads), {args.clients} clients, "
          f"{args.rounds} rounds of {args.seconds:g} s per app (medians); "
          f"goal: intake >= 0.5x bare; load average now {_loadavg()}")
    print(f"{'database':<11} {'POST /forms/contact':>20} {'bare insert':>14} {'ratio':>7}  "
          f"{'ratio by round':<20} errors (intake/bare)  rows (entries/bare)")
    for r in results:
        by_round = " ".join(f"{x:.2f}" for x in r["ratios"])
        print(f"{r['db']:<11} {r['intake']:>14.1f} req/s {r['bare']:>8.1f} req/s "
              f"{r['ratio']:>6.2f}x  {by_round:<20} {r['intake_errors']}/{r['bare_errors']:<18} "
              f"{r['entries']}/{r['bare_rows']}")
    if args.get_post:
        print("\nGET+POST pairs per second, intake against django-helpdesk "
              f"{helpdesk.VERSION}'s public form; goal intake >= 5x")
        for r in results:
            h = r["helpdesk"]
            if h is None:
                continue
            print(f"{r['db']:<11} intake {r['intake']:.1f} / helpdesk {h['rate']:.1f} GET+POST/s "
                  f"= {r['intake'] / h['rate']:.2f}x (rounds: "
                  + " ".join(f"{x:.2f}" for x in h["ratios"]) + "); helpdesk rounds "
                  + " ".join(f"{x:.1f}" for x in h["rates"])
                  + f", {h['tickets']} tickets stored, {h['errors']} errors")
        if fallback:
            print("\n" + "!" * 78 + f"\n!! django-helpdesk NOT MEASURED: {fallback}.\n"
                  f"!! The ratio below divides by its STORED {HELPDESK_GET_POST} GET+POST/s, "
                  "taken on another\n!! machine: do not quote it as a same-run comparison.\n"
                  + "!" * 78)
            for r in results:
                print(f"{r['db']:<11} intake {r['intake']:.1f} GET+POST/s = "
                      f"{r['intake'] / HELPDESK_GET_POST:.2f}x helpdesk's STORED figure (rounds: "
                      + " ".join(f"{x / HELPDESK_GET_POST:.2f}" for x in r["rates"]) + ")")
    with_helpdesk = any(r["helpdesk"] is not None for r in results)
    print(f"\n{'database':<11} {'CPU per submission: intake':>28} {'bare':>9} "
          f"{'bare/intake':>12}" + (f" {'helpdesk':>9}" if with_helpdesk else "")
          + "   of which the database server's: intake  bare" + (
              "  helpdesk" if with_helpdesk else ""))
    for r in results:
        cpu, db = r["cpu"], r["cpu_db"]
        if cpu is None:
            print(f"{r['db']:<11} {'(not measurable here: no /proc)':>28}")
            continue
        hd = f" {cpu['helpdesk']:>6.2f} ms" if "helpdesk" in cpu else ""
        if db is not None:
            server = f"{db['intake']:>37.2f} ms {db['bare']:>5.2f} ms" + (
                f" {db['helpdesk']:>6.2f} ms" if "helpdesk" in db else "")
        else:
            server = f"{'(in the workers: SQLite)':>43}"
        print(f"{r['db']:<11} {cpu['intake']:>25.2f} ms {cpu['bare']:>6.2f} ms "
              f"{cpu['bare'] / cpu['intake']:>11.2f}x{hd}{server}")


if __name__ == "__main__":
    main()
