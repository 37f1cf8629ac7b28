"""Soak test: the scale-out deployment under traffic while its parts fail.

    python bench/soak.py [--minutes 10] [--forms-per-second 4] [--mails-per-second 1]
                         [--smtp-outage 120] [--drain-minutes 10]

Everything runs on loopback, on free ports, in a temporary folder, and is
stopped at the end; nothing shared is touched (the script starts its OWN
PostgreSQL cluster and Redis, so restarting them disturbs no one else):

* a private PostgreSQL cluster (``initdb`` + ``pg_ctl``; run as the
  ``postgres`` user when this script runs as root) and a private
  ``redis-server``;
* an aiosmtpd sink that receives the agencies' forwards and the receipts;
* an IMAP server (Dovecot when installed and root, else pymap) holding the
  agency mailbox;
* intake as the README's scale-out recipe runs it: ``intake db upgrade``,
  ``gunicorn --workers 4 wsgi:app``, two ``intake worker`` processes, one
  ``intake poll`` process.

For ``--minutes`` it posts contact forms (JSON answers carry the record
number) and appends e-mails to the mailbox, while on a schedule scaled to the
run's length it: kills one ``intake worker`` with SIGKILL (and starts a new
one), restarts Redis (the queued messages in it are lost), restarts
PostgreSQL, and stops the SMTP sink for ``--smtp-outage`` seconds. Then it
waits (at most ``--drain-minutes``) until every accepted submission is stored
and every work item has finished, and prints:

    submitted   forms answered with a record number + e-mails appended
    refused     form posts answered with an error (the citizen saw it; nothing
                was promised, so nothing is lost)
    stored      entries in the database
    lost        accepted submissions missing from the database
    delivered   agency forwards that reached the sink (distinct entries)
    duplicated  forwards that reached the sink more than once (entry, recipient)
    dead        work items that became dead letters
    unfinished  work items still waiting when the drain ended

Goal: lost 0, duplicated 0, dead 0, unfinished 0; delivered == stored.
Exit status 1 when the goal is missed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import SmtpSink, free_port  # noqa: E402

SECRET = "soak-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
AGENCY = "dot@examplia.gov"
IMAP_USER, IMAP_PASSWORD = "intake", "soak-imap-password"
BIN = Path(sys.executable).parent
TAG = re.compile(r"\[#([A-Z]+-\d{4}-\d+)\]")


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def wait_until(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def accepting(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# -- the private services -------------------------------------------------------------

class Postgres:
    """A throw-away PostgreSQL cluster of this script's own."""

    def __init__(self, root: Path) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise SystemExit("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.bin = bins[-1]
        self.data = root / "pgdata"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.data.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(root, self.user)
            shutil.chown(self.data, self.user)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        self.start()

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.data / "log"),
                  "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
                        "-c max_connections=200", "start")

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "-l",
                  str(self.data / "log"), "-o",
                  f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
                  "-c max_connections=200", "restart")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


class Redis:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: accepting(self.port), 20, "redis")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class Imap:
    """Dovecot (root, installed) or pymap, with one user and an INBOX."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        dovecot = Path("/usr/sbin/dovecot")
        if dovecot.exists() and os.geteuid() == 0:
            from tests.mail.conftest import DOVECOT_CONF

            home = root / "dovecot"
            home.mkdir()
            home.chmod(0o755)
            (home / "home").mkdir()
            os.chown(home / "home", 65534, 65534)
            (home / "passwd").write_text(f"{IMAP_USER}:{{PLAIN}}{IMAP_PASSWORD}\n")
            conf = home / "dovecot.conf"
            conf.write_text(DOVECOT_CONF.format(root=home, port=self.port)
                            .replace("imap-test-password", IMAP_PASSWORD))
            self.kind = "dovecot"
            command = [str(dovecot), "-c", str(conf), "-F"]
        else:
            self.kind = "pymap"
            command = [str(BIN / "pymap"), "--host", "127.0.0.1", "--port", str(self.port),
                       "--no-tls", "dict", "--demo-user", IMAP_USER,
                       "--demo-password", IMAP_PASSWORD]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_until(lambda: accepting(self.port), 30, self.kind)
        with self.client() as client:
            for folder in ("INBOX", "Processed"):
                if not client.folder_exists(folder):
                    client.create_folder(folder)

    def client(self) -> Any:
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=30)
        client.login(IMAP_USER, IMAP_PASSWORD)
        return client

    def count(self, folder: str) -> int:
        with self.client() as client:
            return int(client.select_folder(folder, readonly=True)[b"EXISTS"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


# -- intake, as the README runs it ------------------------------------------------------

class Intake:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = {**os.environ, **env}
        self.web_port = free_port()
        self.workers: list[subprocess.Popen[bytes]] = []
        self.others: list[subprocess.Popen[bytes]] = []
        self.logs = root / "logs"
        self.logs.mkdir()
        subprocess.run([str(BIN / "intake"), "db", "upgrade"], env=self.env, check=True,
                       cwd=root, stdout=subprocess.DEVNULL)
        self.others.append(self._spawn("gunicorn", [
            str(BIN / "gunicorn"), "--workers", "4", "--bind", f"127.0.0.1:{self.web_port}",
            "--chdir", str(REPO), "wsgi:app"]))
        self.others.append(self._spawn("poll", [str(BIN / "intake"), "poll"]))
        for _ in range(2):
            self.start_worker()
        wait_until(lambda: accepting(self.web_port), 60, "gunicorn")

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        out = open(self.logs / f"{name}-{len(self.workers) + len(self.others)}.log", "ab")  # noqa: SIM115
        return subprocess.Popen(command, env=self.env, cwd=self.root, stdout=out, stderr=out,
                                start_new_session=True)

    def start_worker(self) -> None:
        self.workers.append(self._spawn("worker", [str(BIN / "intake"), "worker",
                                                   "--processes", "1", "--threads", "4"]))

    def kill_worker(self) -> None:
        victim = self.workers.pop(0)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()

    def stop(self) -> None:
        for process in self.workers + self.others:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for process in self.workers + self.others:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


RULES = f"""\
version: 1
agencies:
  - {{id: dot, name: Department of Transportation, email: {AGENCY}}}
default_agency: dot
rules:
  - {{id: roads, when: {{field: body, contains: [pothole]}}, route_to: dot, stop: true}}
"""


# -- traffic ------------------------------------------------------------------------------

class Traffic:
    def __init__(self, web_port: int, imap: Imap) -> None:
        self.web_port = web_port
        self.imap = imap
        self.lock = threading.Lock()
        self.accepted: list[str] = []  # record numbers answered to form posts
        self.refused = Counter[str]()
        self.mail_ids: list[str] = []  # Message-IDs appended to the mailbox
        self.stop = threading.Event()
        self.token = ""

    def fetch_token(self) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=30)
        conn.request("GET", "/forms/contact", headers={"Accept": "application/json"})
        body = json.loads(conn.getresponse().read())
        conn.close()
        return str(body["token"])

    def post_forms(self, rate: float, seed: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=60)
        n = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            next_at += 1.0 / rate
            n += 1
            body = urlencode({
                "_token": self.token, "lang": "en", "name": "Soak Person",
                "email": f"soak{n % 50}@example.com", "topic": "transportation",
                "subject": f"Pothole report {seed}-{n}",
                "message": f"A pothole on Route {n} near mile {seed} needs repair.",
            }).encode()
            try:
                conn.request("POST", "/forms/contact", body=body, headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json"})
                response = conn.getresponse()
                answer = response.read()
                if response.status == 201:
                    with self.lock:
                        self.accepted.append(json.loads(answer)["record_number"])
                else:
                    with self.lock:
                        self.refused[f"HTTP {response.status}"] += 1
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.refused[type(exc).__name__] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=60)
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
        conn.close()

    def append_mail(self, rate: float) -> None:
        client = self.imap.client()
        n = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            next_at += 1.0 / rate
            n += 1
            msg = EmailMessage()
            msg["From"] = f"Resident {n} <resident{n % 40}@example.org>"
            msg["To"] = "contact@examplia.gov"
            msg["Subject"] = f"Pothole on Elm Street, report {n}"
            msg["Message-ID"] = f"<soak.{uuid.uuid4().hex}@example.org>"
            msg["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
            msg.set_content(f"There is a deep pothole outside number {n} on Elm Street.\n")
            client.append("INBOX", msg.as_bytes())
            self.mail_ids.append(str(msg["Message-ID"]))
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
        client.logout()


# -- counting -----------------------------------------------------------------------------

def count_database(url: str) -> dict[str, Any]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            numbers = {r[0] for r in conn.execute(text("SELECT record_number FROM entries"))}
            states = dict(conn.execute(text(
                "SELECT state, count(*) FROM work_items GROUP BY state")).all())
            dead = conn.execute(text(
                "SELECT kind, last_error FROM work_items WHERE state = 'dead' LIMIT 5")).all()
    finally:
        engine.dispose()
    return {"numbers": numbers, "states": states, "dead_samples": dead}


def forwards(sink: SmtpSink) -> Counter[tuple[str, str]]:
    """(record number, recipient) of every agency forward the sink accepted."""
    seen = Counter[tuple[str, str]]()
    for received in sink.all():
        if AGENCY not in received.rcpt_tos:
            continue
        subject = str(received.message["Subject"] or "")
        match = TAG.search(subject)
        if match:
            seen[(match.group(1), AGENCY)] += 1
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--forms-per-second", type=float, default=4.0)
    parser.add_argument("--mails-per-second", type=float, default=1.0)
    parser.add_argument("--smtp-outage", type=float, default=120.0)
    parser.add_argument("--drain-minutes", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="intake-soak-"))
    root.chmod(0o755)
    log(f"working in {root}")
    pg = redis = imap = intake = None
    sink = SmtpSink().start()
    try:
        pg = Postgres(root / "pg")
        redis = Redis()
        imap = Imap(root)
        (root / "rules.yaml").write_text(RULES)
        from bench.form_intake import _forms_file

        intake = Intake(root, {
            "INTAKE_DATABASE_URL": pg.url, "INTAKE_BROKER_URL": redis.url,
            "INTAKE_SECRET_KEY": SECRET, "INTAKE_INSTANCE_PATH": str(root / "instance"),
            "INTAKE_RULES": str(root / "rules.yaml"),
            "INTAKE_FORMS": str(_forms_file(root / "forms")),
            "INTAKE_FORM_RATE_LIMIT": "1000000/minute",
            "INTAKE_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
            "INTAKE_SMTP_TIMEOUT": "10",
            "INTAKE_IMAP_URL": f"imap://{IMAP_USER}:{IMAP_PASSWORD}@127.0.0.1:{imap.port}/INBOX"
                               "?processed=Processed&interval=2",
            "INTAKE_MAIL_FROM": "intake@examplia.gov", "INTAKE_RELAY_DOMAIN": "relay.examplia.gov",
            "INTAKE_PUBLIC_URL": "https://intake.examplia.gov", "INTAKE_LOG_LEVEL": "WARNING",
        })
        log(f"running: PostgreSQL :{pg.port}, Redis :{redis.port}, {imap.kind} :{imap.port}, "
            f"SMTP sink :{sink.port}, gunicorn :{intake.web_port}")
        traffic = Traffic(intake.web_port, imap)
        wait_until(lambda: _token_ok(traffic), 60, "the contact form")
        seconds = args.minutes * 60
        threads = [threading.Thread(target=traffic.post_forms,
                                    args=(args.forms_per_second / 2, f"{i}"), daemon=True)
                   for i in range(2)]
        threads.append(threading.Thread(target=traffic.append_mail,
                                        args=(args.mails_per_second,), daemon=True))
        for thread in threads:
            thread.start()
        started = time.monotonic()

        def at(fraction: float) -> None:
            traffic.stop.wait(max(0.0, started + fraction * seconds - time.monotonic()))

        outage = min(args.smtp_outage, seconds * 0.3)
        at(0.15)
        log("killing an intake worker (SIGKILL)")
        intake.kill_worker()
        at(0.2)
        log("starting a new intake worker")
        intake.start_worker()
        at(0.3)
        log("restarting Redis (its queued messages are lost)")
        redis.restart()
        at(0.45)
        log("restarting PostgreSQL")
        pg.restart()
        at(0.6)
        log(f"stopping the SMTP sink for {outage:.0f} s")
        sink.stop()
        traffic.stop.wait(outage)
        sink = _restart_sink(sink)
        log("SMTP sink back")
        at(1.0)
        traffic.stop.set()
        for thread in threads:
            thread.join(60)
        log(f"traffic stopped: {len(traffic.accepted)} forms accepted, "
            f"{len(traffic.mail_ids)} e-mails appended; draining")

        expected_forms = set(traffic.accepted)
        drain_deadline = time.monotonic() + args.drain_minutes * 60
        counts: dict[str, Any] = {}
        while time.monotonic() < drain_deadline:
            counts = count_database(pg.url)
            waiting = sum(n for state, n in counts["states"].items()
                          if state not in ("done", "dead"))
            inbox = imap.count("INBOX")
            if not waiting and not inbox and expected_forms <= counts["numbers"] \
                    and len(forwards(sink)) >= len(counts["numbers"]):
                break
            time.sleep(2)
        counts = count_database(pg.url)
        seen = forwards(sink)
        stored = counts["numbers"]
        submitted = len(traffic.accepted) + len(traffic.mail_ids)
        lost_forms = len(expected_forms - stored)
        lost_mail = max(0, len(traffic.mail_ids) - (len(stored) - len(expected_forms & stored)))
        result = {
            "submitted": submitted,
            "refused": sum(traffic.refused.values()),
            "refused_by": dict(traffic.refused),
            "stored": len(stored),
            "lost": lost_forms + lost_mail + imap.count("INBOX"),
            "delivered": len({number for number, _ in seen}),
            "duplicated": sum(n - 1 for n in seen.values() if n > 1),
            "dead": counts["states"].get("dead", 0),
            "unfinished": sum(n for state, n in counts["states"].items()
                              if state not in ("done", "dead")),
            "work_items": counts["states"],
            "dead_samples": [list(map(str, row)) for row in counts["dead_samples"]],
        }
        print(json.dumps(result, indent=2))
        good = (result["lost"] == 0 and result["duplicated"] == 0 and result["dead"] == 0
                and result["unfinished"] == 0 and result["delivered"] == result["stored"])
        log("goal met" if good else "GOAL MISSED")
        return 0 if good else 1
    finally:
        if intake is not None:
            intake.stop()
        sink.stop()
        if imap is not None:
            imap.stop()
        if redis is not None:
            redis.stop()
        if pg is not None:
            pg.stop()
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _token_ok(traffic: Traffic) -> bool:
    try:
        traffic.token = traffic.fetch_token()
        return True
    except (OSError, http.client.HTTPException, ValueError, KeyError):
        return False


def _restart_sink(old: SmtpSink) -> SmtpSink:
    """The sink again on the same port, keeping what it received before the outage."""
    new = SmtpSink(port=old.port)
    new.received = old.received
    return new.start()


if __name__ == "__main__":
    raise SystemExit(main())
