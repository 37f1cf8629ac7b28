"""IMAP ingest throughput: `intake poll --once` beside bare baselines, in the same run.

    python bench/imap_ingest.py [--count 2000] [--rounds 3] [--database sqlite|pg|both]
                                [--server dovecot|pymap] [--big-mb 25]

Generates messages (plain, multipart/alternative, attachments of 20-200 KB,
legacy charsets, RFC 2047 encoded words), appends them to a real IMAP server
on loopback (Dovecot from a temp config if installed and run as root, else
pymap), then, in alternating rounds, each on a fresh copy of the messages and a
fresh database (SQLite in a temp folder, or a throw-away PostgreSQL database
created beside INTAKE_TEST_DATABASE_URL's, or --pg's, and dropped after), times:

- intake: `intake poll --once` in a subprocess, until every message is stored
  (entry + original + attachments + PII scan), moved, and routed (the embedded
  worker drains the "route" work items); with its mail pool (INTAKE_MAIL_WORKERS,
  default: the number of CPUs) and without it (INTAKE_MAIL_WORKERS=0: parsing and
  the PII scan in the storing process, no pipelining: the code before the pool);
- bare, 1 txn/100: IMAPClient fetch (BODY.PEEK[], batches of 100) + `email`
  parse (policy.default, subject/from/text body) + one transaction per 100
  messages inserting the raw bytes and those fields (the issue's baseline);
- bare, 1 txn/msg: the same with one transaction per message (--no-per-message
  leaves it out);
- helpdesk: django-helpdesk's ``manage.py get_email`` (bench/helpdesk: its own venv,
  built outside the repository on first use) on a fresh database, one IMAP queue on the
  round's folder; checked to have made one ticket a message and emptied the folder.

Prints each one's messages/s per round and the median, the ratios of intake's
median to the bare loops' and to django-helpdesk's (per round too; its stored 60.9 msg/s,
from another machine, only when its venv cannot be built or it is not in --variants,
said loudly), and peak RSS: the process's own (ru_maxrss) and, for intake
with its worker processes, the peak of the whole process tree's summed RSS
(sampled every 50 ms). --big-mb adds the peak RSS for one message of that size.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.header import Header
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.helpdesk import baseline as helpdesk  # noqa: E402 - the path above first

SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
CHARSETS = ["iso-8859-1", "windows-1252", "koi8-r", "iso-8859-2", "shift_jis", "gb2312", "utf-8"]
TEXTS = {
    "iso-8859-1": "Señal rota en la calle, el agua está muy fría. Año nuevo.",
    "windows-1252": "Die Straße ist kaputt – bitte „schnell“ reparieren. €5 Gebühr.",
    "koi8-r": "Яма на дороге возле дома номер семь, очень опасно.",
    "iso-8859-2": "Dziura w jezdni na ulicy Łódzkiej, proszę o naprawę.",
    "shift_jis": "道路に大きな穴があります。至急修理してください。",
    "gb2312": "路上有一个大坑，请尽快修理。谢谢。",
    "utf-8": "Ünïcødé everywhere: ça va, naïve café, 😀 emoji.",
}


def generate(n: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    out: list[bytes] = []
    for i in range(n):
        charset = rng.choice(CHARSETS)
        text = f"Report {i}. " + TEXTS[charset] + "\n" + ("Details follow. " * rng.randint(5, 60))
        subject = Header(f"[{i}] " + TEXTS[charset][:30], charset)
        sender = formataddr((TEXTS[charset][:12], f"citizen{i}@example.org"), charset="utf-8")
        kind = i % 4
        if kind == 0:  # plain, legacy charset
            msg = MIMEText(text, "plain", charset)
        elif kind == 1:  # multipart/alternative
            msg = MIMEMultipart("alternative")
            msg.attach(MIMEText(text, "plain", charset))
            msg.attach(MIMEText(f"<html><body><p>{text}</p><script>x()</script></body></html>",
                                "html", charset))
        else:  # with an attachment of 20-200 KB
            msg = MIMEMultipart("mixed")
            msg.attach(MIMEText(text, "plain", charset))
            size = rng.randint(20, 200) * 1024
            attachment = MIMEApplication(rng.randbytes(size), "pdf")
            attachment.add_header("Content-Disposition", "attachment", filename=f"scan-{i}.pdf")
            msg.attach(attachment)
        msg["Subject"] = subject
        msg["From"] = sender
        msg["To"] = "info@examplia.gov"
        msg["Message-ID"] = f"<bench-{i}-{seed}@example.org>"
        msg["Date"] = "Sat, 21 Nov 2026 10:00:00 +0000"
        out.append(msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return out


def small(n: int, seed: int = 11) -> list[bytes]:
    """``n`` small plain-text messages (about 1 KB each): the large-mailbox memory run."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        msg = MIMEText(f"Report {i}. " + "The bin was not collected. " * rng.randint(5, 30),
                       "plain", "utf-8")
        msg["Subject"] = f"[{i}] Missed collection"
        msg["From"] = f"citizen{i}@example.org"
        msg["To"] = "info@examplia.gov"
        msg["Message-ID"] = f"<small-{i}-{seed}@example.org>"
        msg["Date"] = "Sat, 21 Nov 2026 10:00:00 +0000"
        out.append(msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    return out


def big_message(mb: int) -> bytes:
    em = EmailMessage()
    em["From"] = "big@example.org"
    em["To"] = "info@examplia.gov"
    em["Subject"] = f"A {mb} MB attachment"
    em.set_content("See the attached video.\n")
    em.add_attachment(os.urandom(mb * 1024 * 1024), maintype="video", subtype="mp4",
                      filename="video.mp4")
    return em.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# Runs the measured command and reports its exit code, seconds, peak RSS and the peak of
# its process tree's summed RSS. The bench cannot take the peak from its own wait4():
# Linux carries a process's peak RSS across exec, and a child spawned by this process
# (which holds every generated message) would report this process's peak, not its own.
# The child of this small launcher starts from the launcher's few MB instead. The tree's
# sum (the command and its worker processes) is sampled from /proc every 20 ms.
_LAUNCHER = """
import os, subprocess, sys, threading, time
TICK = os.sysconf('SC_CLK_TCK')
PAGE = os.sysconf('SC_PAGE_SIZE') // 1024
def tree(root):
    # The child and its descendants only, found through /proc/PID/task/TID/children
    # (walking all of /proc every sample cost the measured run a tenth of the machine).
    rss = cpu = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f'/proc/{pid}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
            # RSS in KB; CPU ticks of the process and of its children it has reaped
            rss += int(fields[21]) * PAGE
            cpu += sum(int(x) for x in fields[11:15])
            for tid in os.listdir(f'/proc/{pid}/task'):
                with open(f'/proc/{pid}/task/{tid}/children') as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, IndexError, ValueError):
            pass
    return rss, cpu / TICK
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
peak, cpu = [0], [0.0]
done = threading.Event()
def sample():
    while not done.wait(0.05):
        rss, seconds = tree(proc.pid)
        peak[0], cpu[0] = max(peak[0], rss), max(cpu[0], seconds)
threading.Thread(target=sample, daemon=True).start()
_, status, usage = os.wait4(proc.pid, 0)
elapsed = time.perf_counter() - started
done.set()
own = usage.ru_utime + usage.ru_stime
with open(sys.argv[1], "w") as out:
    out.write(f"{os.waitstatus_to_exitcode(status)} {elapsed} {usage.ru_maxrss} {peak[0]} "
              f"{max(own, cpu[0])}")
"""


def run_child(argv: list[str], env: dict[str, str], cwd: Path = REPO
              ) -> tuple[float, int, int, float, str]:
    """(seconds, peak RSS in KB, the tree's peak summed RSS in KB, CPU seconds of the
    process tree, output) of a child."""
    # Output goes to a file, not a pipe: a full pipe would stall the child.
    with tempfile.TemporaryFile() as output_file, \
            tempfile.NamedTemporaryFile("r", suffix=".rusage") as report:
        subprocess.run([sys.executable, "-c", _LAUNCHER, report.name, *argv], env=env,
                       cwd=cwd, stdout=output_file, stderr=subprocess.STDOUT, check=True)
        code, elapsed, maxrss, tree, cpu = report.read().split()
        output_file.seek(0)
        output = output_file.read().decode(errors="replace")
    if int(code) != 0:
        raise SystemExit(f"{argv[2:5]} failed ({code}):\n{output[-3000:]}")
    return float(elapsed), int(maxrss), int(tree), float(cpu), output


def intake_env(db: str, instance: Path, url: str, workers: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update(INTAKE_DATABASE_URL=db, INTAKE_INSTANCE_PATH=str(instance), INTAKE_IMAP_URL=url,
               INTAKE_SECRET_KEY=SECRET, INTAKE_LOG_LEVEL="WARNING")
    if workers is not None:
        env["INTAKE_MAIL_WORKERS"] = str(workers)
    return env


class Databases:
    """Fresh databases for each run: SQLite files in ``workdir``, or PostgreSQL databases
    created beside ``pg_url``'s (and dropped by :meth:`drop_all`)."""

    def __init__(self, workdir: Path, pg_url: str | None) -> None:
        self.workdir = workdir
        self.pg_url = pg_url
        self.created: list[str] = []

    def _admin(self):  # type: ignore[no-untyped-def]
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        assert self.pg_url is not None
        url = make_url(self.pg_url).set(drivername="postgresql+psycopg")
        return url, create_engine(url, isolation_level="AUTOCOMMIT")

    def fresh(self, name: str, migrate: bool = True) -> str:
        from intake.db.migrate import upgrade

        if self.pg_url is None:
            url = f"sqlite:///{self.workdir / name}.sqlite3"
        else:
            from sqlalchemy import text

            admin_url, admin = self._admin()
            db_name = f"intake_bench_{os.getpid()}_{len(self.created)}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{db_name}"'))
            admin.dispose()
            self.created.append(db_name)
            url = admin_url.set(database=db_name).render_as_string(hide_password=False)
        if migrate:
            upgrade(url)
        return url

    def drop_all(self) -> None:
        if not self.created:
            return
        from sqlalchemy import text

        _, admin = self._admin()
        with admin.connect() as conn:
            for db_name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()
        self.created.clear()


@contextmanager
def databases(workdir: Path, pg_url: str | None) -> Iterator[Databases]:
    dbs = Databases(workdir, pg_url)
    try:
        yield dbs
    finally:
        dbs.drop_all()


def run_intake(port: int, folder: str, dbs: Databases, workdir: Path, name: str,
               workers: int | None, repo: Path = REPO
               ) -> tuple[float, int, int, float, str, float, float]:
    db = dbs.fresh(name)
    url = f"imap://{USER}:{PASSWORD}@127.0.0.1:{port}/{folder}?processed={folder}-done"
    started = time.time()
    # Another checkout's intake (--before-repo) runs from its folder, which comes first on
    # the path of `python -m`.
    seconds, rss, tree, cpu, _ = run_child([sys.executable, "-m", "intake", "poll", "--once"],
                                           intake_env(db, workdir / name, url, workers), repo)
    return seconds, rss, tree, cpu, db, started, time.time()


def check_intake(db: str, expected: int, started: float = 0.0, ended: float = 0.0
                 ) -> tuple[float, float, float]:
    """Check all were stored and routed; return the seconds from first to last entry stored,
    from ``started`` (epoch seconds) to the first and from the last to ``ended``."""
    from sqlalchemy import create_engine, text

    from intake.db.models import UTCDateTime

    engine = create_engine(db)
    with engine.connect() as conn:
        entries = conn.execute(text("SELECT count(*) FROM entries")).scalar_one()
        routed = conn.execute(text(
            "SELECT count(*) FROM work_items WHERE kind = 'route' AND state = 'done'")).scalar_one()
        first, last = conn.execute(text(
            "SELECT min(received_at), max(received_at) FROM entries")).one()
    engine.dispose()
    if entries != expected or routed != expected:
        raise SystemExit(f"intake stored {entries} and routed {routed} of {expected}")
    parse = UTCDateTime().process_result_value
    from datetime import datetime

    start = parse(datetime.fromisoformat(str(first)), None)
    end = parse(datetime.fromisoformat(str(last)), None)
    if not (start and end):
        return 0.0, 0.0, 0.0
    return ((end - start).total_seconds(), start.timestamp() - started,
            ended - end.timestamp())


# -- the baseline, run in a child process ---------------------------------------------------


def baseline(port: int, folder: str, db: str, per_txn: int) -> None:
    from imapclient import IMAPClient
    from sqlalchemy import text

    from intake.db import make_engine

    engine = make_engine(db)
    blob = "BYTEA" if engine.dialect.name == "postgresql" else "BLOB"
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bare (id SERIAL PRIMARY KEY, "
                          f"subject TEXT, sender TEXT, body TEXT, raw {blob})"
                          if blob == "BYTEA" else
                          "CREATE TABLE IF NOT EXISTS bare (id INTEGER PRIMARY KEY, "
                          f"subject TEXT, sender TEXT, body TEXT, raw {blob})"))
    client = IMAPClient("127.0.0.1", port=port, ssl=False)
    # As intake's ImapMailbox does: without it imaplib formats every fetched message for
    # IMAPClient's debug logger (see intake/mail/imap.py), a cost no loop needs to pay.
    client._imap.debug = 0
    client.login(USER, PASSWORD)
    client.select_folder(folder)
    uids = sorted(client.search(["NOT", "DELETED"]))
    rows: list[dict[str, object]] = []

    def insert() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO bare (subject, sender, body, raw) "
                              "VALUES (:s, :f, :b, :r)"), rows)
        rows.clear()

    for start in range(0, len(uids), 100):
        fetched = client.fetch(uids[start:start + 100], ["BODY.PEEK[]"])
        for uid in sorted(fetched):
            raw = fetched.pop(uid)[b"BODY[]"]
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            part = msg.get_body(preferencelist=("plain", "html"))
            try:
                body = part.get_content() if part is not None else ""
            except Exception:
                body = ""
            rows.append({"s": str(msg["subject"] or ""), "f": str(msg["from"] or ""),
                         "b": body.replace("\x00", ""), "r": raw})
            if len(rows) >= per_txn:
                insert()
    if rows:
        insert()
    client.logout()
    engine.dispose()


def run_baseline(port: int, folder: str, dbs: Databases, name: str,
                 per_txn: int) -> tuple[float, int, float]:
    db = dbs.fresh(name, migrate=False)
    seconds, rss, _, cpu, _ = run_child([sys.executable, __file__, "--baseline-child",
                                         str(port), folder, db, str(per_txn)], dict(os.environ))
    return seconds, rss, cpu


def run_helpdesk(server, folder: str, dbs: Databases, workdir: Path, name: str,  # type: ignore[no-untyped-def]
                 python: Path, expected: int) -> tuple[float, int, float]:
    """django-helpdesk's ``manage.py get_email`` on a fresh database, its queue reading
    ``folder``: (seconds, peak RSS in KB, CPU seconds). Checks that it made ``expected``
    tickets and left the folder empty (helpdesk flags each message it turned into a ticket
    \\Deleted and expunges at the end)."""
    site = helpdesk.Helpdesk(python, workdir / name, dbs.fresh(name, migrate=False))
    site.migrate()
    site.add_imap_queue("127.0.0.1", server.port, USER, PASSWORD, folder)
    seconds, rss, _, cpu, output = run_child(site.get_email_argv(), site.env(), helpdesk.HERE)
    tickets = site.count_tickets()
    with server.client() as c:
        left = int(c.select_folder(folder)[b"EXISTS"])
    if tickets != expected or left:
        raise SystemExit(f"helpdesk made {tickets} tickets of {expected} and left {left} "
                         f"messages in {folder}:\n{output[-3000:]}")
    return seconds, rss, cpu


#: The test IMAP servers' account (tests/mail/conftest.py).
USER = "intake"
PASSWORD = "imap-test-password"  # noqa: S105 - a throw-away account on loopback


#: django-helpdesk's figure on this corpus stored in issue 28 (another machine): the
#: fallback when its venv cannot be built.
HELPDESK_MSG_S = 60.9


def append(server, folder: str, messages: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    with server.client() as c:
        c.create_folder(folder)
        step = 50 if len(messages[0]) > 4096 else 500
        for start in range(0, len(messages), step):
            c.multiappend(folder, messages[start:start + step])


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def spread(values: list[float]) -> str:
    return (f"median {statistics.median(values):8.1f}  (min {min(values):.1f}, "
            f"max {max(values):.1f}, rounds: {', '.join(f'{v:.1f}' for v in values)})")


def bench_database(server, kind: str, pg_url: str | None, messages: list[bytes],  # type: ignore[no-untyped-def]
                   args: argparse.Namespace) -> None:
    count = len(messages)
    variants = [v for v in ["bare100"] + (["bare1"] if args.per_message else [])
                + (["before"] if args.before_repo else []) + ["intake0", "intake"]
                + (["helpdesk"] if args.helpdesk else [])
                if v in args.variants or (v == "before" and args.before_repo)]
    rates: dict[str, list[float]] = {v: [] for v in variants}
    rss: dict[str, list[int]] = {v: [] for v in variants}
    trees: dict[str, list[int]] = {v: [] for v in variants}
    cpu_ms: dict[str, list[float]] = {v: [] for v in variants}
    storing: dict[str, list[float]] = {"before": [], "intake0": [], "intake": []}
    before_first: dict[str, list[float]] = {"before": [], "intake0": [], "intake": []}
    after_last: dict[str, list[float]] = {"before": [], "intake0": [], "intake": []}
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp, \
            databases(Path(tmp), pg_url) as dbs:
        workdir = Path(tmp)
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else list(reversed(variants))
            for v in order:
                folder = f"{kind}-{v}-{r}"
                append(server, folder, messages)
                if v.startswith("bare"):
                    seconds, peak, cpu = run_baseline(server.port, folder, dbs, f"{v}-{r}",
                                                      100 if v == "bare100" else 1)
                    tree = peak
                elif v == "helpdesk":
                    seconds, peak, cpu = run_helpdesk(server, folder, dbs, workdir, f"{v}-{r}",
                                                      args.helpdesk, count)
                    tree = peak
                else:
                    workers = 0 if v == "intake0" else args.mail_workers
                    seconds, peak, tree, cpu, db, t0, t1 = run_intake(
                        server.port, folder, dbs, workdir, f"{v}-{r}", workers,
                        Path(args.before_repo) if v == "before" else REPO)
                    stored_s, first, last = check_intake(db, count, t0, t1)
                    storing[v].append(count / stored_s if stored_s else 0.0)
                    before_first[v].append(first)
                    after_last[v].append(last)
                rates[v].append(count / seconds)
                cpu_ms[v].append(1000 * cpu / count)
                rss[v].append(peak)
                trees[v].append(tree)
                print(f"  round {r + 1} {v:8s} {seconds:7.2f} s {count / seconds:7.1f} msg/s "
                      f"{1000 * cpu / count:6.2f} CPU ms/msg  (load {loadavg()})", flush=True)
        names = {"bare100": "bare loop, fetch + parse + 1 txn/100 msgs",
                 "bare1": "bare loop, fetch + parse + 1 txn/msg",
                 "before": "intake poll --once of --before-repo",
                 "intake0": "intake poll --once, INTAKE_MAIL_WORKERS=0",
                 "intake": f"intake poll --once, mail pool of "
                           f"{args.mail_workers or os.cpu_count()}",
                 "helpdesk": f"django-helpdesk {helpdesk.VERSION} manage.py get_email"}
        print(f"== {kind}: {count} messages, {args.rounds} rounds (alternating), msg/s "
              f"(stored+moved+routed for intake)")
        for v in variants:
            mem = f"peak RSS {max(rss[v]) / 1024:.0f} MB"
            if v.startswith("intake"):
                mem += f", process tree {max(trees[v]) / 1024:.0f} MB"
            print(f"{names[v]:46s} {spread(rates[v])}  {mem}")
            print(f"{'':46s} CPU ms/msg (process tree): median "
                  f"{statistics.median(cpu_ms[v]):.2f} (min {min(cpu_ms[v]):.2f}, "
                  f"max {max(cpu_ms[v]):.2f})")
        for v in ("before", "intake0", "intake"):
            if v not in variants:
                continue
            print(f"  {v}: storing alone (first to last entry committed): "
                  f"{spread(storing[v])}; s before the first entry (start-up, "
                  f"connecting, first batch): {statistics.median(before_first[v]):.2f}, after "
                  f"the last (routing the tail, exit): {statistics.median(after_last[v]):.2f}")
        if "intake" not in rates:
            return
        best = statistics.median(rates["intake"])
        if "bare100" in rates:
            print(f"ratio intake / bare loop 1 txn/100:  "
                  f"{best / statistics.median(rates['bare100']):.2f}x  (goal >= 1.0x)")
        if "before" in rates:
            print(f"ratio intake / --before-repo's intake: "
                  f"{best / statistics.median(rates['before']):.2f}x; CPU ms/msg "
                  f"{statistics.median(cpu_ms['intake']):.2f} vs "
                  f"{statistics.median(cpu_ms['before']):.2f}")
        if "bare1" in rates:
            print(f"ratio intake / bare loop 1 txn/msg:  "
                  f"{best / statistics.median(rates['bare1']):.2f}x")
        if "helpdesk" in rates:
            print(f"ratio intake / django-helpdesk (same run): "
                  f"{best / statistics.median(rates['helpdesk']):.2f}x  (goal >= 10x; rounds: "
                  + ", ".join(f"{i / h:.2f}" for i, h in zip(rates["intake"], rates["helpdesk"],
                                                             strict=True))
                  + f"); CPU ms/msg {statistics.median(cpu_ms['intake']):.2f} vs "
                  f"{statistics.median(cpu_ms['helpdesk']):.2f}")
        else:
            print("!" * 78 + f"\n!! django-helpdesk NOT MEASURED: {args.helpdesk_missing}.\n"
                  f"!! The ratio below divides by its STORED {HELPDESK_MSG_S} msg/s, taken on "
                  "another\n!! machine: do not quote it as a same-run comparison.\n" + "!" * 78)
            print(f"ratio intake / django-helpdesk {HELPDESK_MSG_S} msg/s (STORED figure): "
                  f"{best / HELPDESK_MSG_S:.2f}x  (goal >= 10x)")
        if "intake0" in rates:
            print(f"ratio intake with its pool / without (INTAKE_MAIL_WORKERS=0): "
                  f"{best / statistics.median(rates['intake0']):.2f}x", flush=True)
        if not {"intake", "intake0", "bare100"} <= set(variants):
            return

        if args.big_mb:
            big = big_message(args.big_mb)
            for folder in ("bigintake", "bigbare"):
                append(server, f"{kind}-{folder}", [big])
            big_s, big_rss, big_tree, _, big_db, _, _ = run_intake(
                server.port, f"{kind}-bigintake", dbs, workdir, "big", args.mail_workers)
            check_intake(big_db, 1)
            bb_s, bb_rss, _ = run_baseline(server.port, f"{kind}-bigbare", dbs, "bigbare", 100)
            print(f"one {args.big_mb} MB attachment ({len(big) / 1e6:.1f} MB raw): "
                  f"intake {big_s:.2f} s peak RSS {big_rss / 1024:.0f} MB (process tree "
                  f"{big_tree / 1024:.0f} MB); baseline {bb_s:.2f} s peak RSS "
                  f"{bb_rss / 1024:.0f} MB", flush=True)


def main() -> None:
    # The servers come from the test suite's fixtures; imported here, in the parent only,
    # so that the bare baseline (a child of this script) starts as light as it should.
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", choices=["dovecot", "pymap"], default=None)
    parser.add_argument("--database", choices=["sqlite", "pg", "both"], default="both")
    parser.add_argument("--pg", default=os.environ.get(
        "INTAKE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL URL whose server the throw-away databases are created on")
    parser.add_argument("--mail-workers", type=int, default=None,
                        help="INTAKE_MAIL_WORKERS of the pooled intake runs (default: CPUs)")
    parser.add_argument("--no-per-message", dest="per_message", action="store_false",
                        help="leave out the bare loop at one transaction per message")
    parser.add_argument("--big-mb", type=int, default=25)
    parser.add_argument("--small", action="store_true",
                        help="small plain-text messages (~1 KB): the large-mailbox memory run")
    parser.add_argument("--before-repo", default=None,
                        help="another checkout (e.g. `git archive` of the commit before) whose "
                             "`intake poll --once` runs too, in the same rounds")
    parser.add_argument("--variants", default="bare100,bare1,intake0,intake,helpdesk",
                        help="which runs, of bare100, bare1, intake0 (INTAKE_MAIL_WORKERS=0), "
                             "intake (the mail pool) and helpdesk (django-helpdesk's get_email, "
                             "in a venv of its own: bench/helpdesk)")
    parser.add_argument("--baseline-child", nargs=4, metavar=("PORT", "FOLDER", "DB", "PER_TXN"))
    args = parser.parse_args()
    if args.baseline_child:
        port, folder, db, per_txn = args.baseline_child
        baseline(int(port), folder, db, int(per_txn))
        return

    from tests.mail.conftest import start_dovecot, start_pymap

    kind = args.server or ("dovecot" if os.path.exists("/usr/sbin/dovecot")
                           and os.geteuid() == 0 else "pymap")
    starter = start_dovecot if kind == "dovecot" else start_pymap
    servers = starter()
    server = next(servers)
    try:
        args.variants = set(args.variants.split(","))
        args.helpdesk, args.helpdesk_missing = None, "not in --variants"
        if "helpdesk" in args.variants:
            args.helpdesk = helpdesk.ensure_venv(lambda line: print(line, flush=True))
            args.helpdesk_missing = "its venv could not be built (see above)"
        messages = small(args.count) if args.small else generate(args.count)
        print(f"server: {kind}; {args.count} messages, "
              f"{sum(map(len, messages)) / 1e6:.1f} MB; {os.cpu_count()} CPUs", flush=True)
        if args.database in ("sqlite", "both"):
            bench_database(server, "sqlite", None, messages, args)
        if args.database in ("pg", "both"):
            bench_database(server, "postgresql", args.pg, messages, args)
    finally:
        servers.close()


if __name__ == "__main__":
    main()
