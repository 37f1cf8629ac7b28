"""IMAP ingest throughput: `intake poll --once` beside a bare baseline, in the same run.

    python bench/imap_ingest.py [--count 2000] [--server dovecot|pymap] [--big-mb 25]

Generates messages (plain, multipart/alternative, attachments of 20-200 KB,
legacy charsets, RFC 2047 encoded words), appends them to a real IMAP server
on loopback (Dovecot from a temp config if installed and run as root, else
pymap), then times:

- intake: `intake poll --once` in a subprocess on a fresh SQLite database,
  until every message is stored (entry + original + attachments + PII scan),
  moved, and routed (the embedded worker drains the "route" work items);
- baseline: IMAPClient fetch (BODY.PEEK[], batches of 100) + `email` parse
  (policy.default, subject/from/text body) + one transaction per message
  inserting the raw bytes and those fields into the same kind of database.

Prints messages/s of both, the ratio, each one's peak RSS, and the peak RSS
of `intake poll --once` (and of the baseline) for one message of --big-mb MB.
Peak RSS is the child's own (ru_maxrss through a small launcher process).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import random
import subprocess
import sys
import tempfile
import time
from email.header import Header
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


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


def big_message(mb: int) -> bytes:
    em = EmailMessage()
    em["From"] = "big@example.org"
    em["To"] = "info@examplia.gov"
    em["Subject"] = f"A {mb} MB attachment"
    em.set_content("See the attached video.\n")
    em.add_attachment(os.urandom(mb * 1024 * 1024), maintype="video", subtype="mp4",
                      filename="video.mp4")
    return em.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# Runs the measured command and reports its exit code, seconds and peak RSS. The
# bench cannot take the peak from its own wait4(): Linux carries a process's
# peak RSS across exec, and a child spawned by this process (which holds every
# generated message) would report this process's peak, not its own. The child
# of this small launcher starts from the launcher's few MB instead.
_LAUNCHER = """
import os, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
elapsed = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    out.write(f"{os.waitstatus_to_exitcode(status)} {elapsed} {usage.ru_maxrss}")
"""


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(seconds, peak RSS in KB, output) of a child process."""
    # Output goes to a file, not a pipe: a full pipe would stall the child.
    with tempfile.TemporaryFile() as output_file, \
            tempfile.NamedTemporaryFile("r", suffix=".rusage") as report:
        subprocess.run([sys.executable, "-c", _LAUNCHER, report.name, *argv], env=env,
                       cwd=REPO, stdout=output_file, stderr=subprocess.STDOUT, check=True)
        code, elapsed, maxrss = report.read().split()
        output_file.seek(0)
        output = output_file.read().decode(errors="replace")
    if int(code) != 0:
        raise SystemExit(f"{argv[2:5]} failed ({code}):\n{output[-3000:]}")
    return float(elapsed), int(maxrss), output


def intake_env(db: str, instance: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update(INTAKE_DATABASE_URL=db, INTAKE_INSTANCE_PATH=str(instance), INTAKE_IMAP_URL=url,
               INTAKE_SECRET_KEY=SECRET, INTAKE_LOG_LEVEL="WARNING")
    return env


def fresh_db(workdir: Path, name: str) -> str:
    from intake.db.migrate import upgrade

    url = f"sqlite:///{workdir / name}"
    upgrade(url)
    return url


def run_intake(port: int, folder: str, workdir: Path, name: str) -> tuple[float, int, str]:
    db = fresh_db(workdir, f"{name}.sqlite3")
    url = f"imap://{USER}:{PASSWORD}@127.0.0.1:{port}/{folder}?processed={folder}-done"
    seconds, rss, _ = run_child([sys.executable, "-m", "intake", "poll", "--once"],
                                intake_env(db, workdir / name, url))
    return seconds, rss, db


def check_intake(db: str, expected: int) -> float:
    """Check all were stored and routed; return the seconds from first to last entry stored."""
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
    return (end - start).total_seconds() if start and end else 0.0


# -- the baseline, run in a child process ---------------------------------------------------


def baseline(port: int, folder: str, db: str) -> None:
    from imapclient import IMAPClient
    from sqlalchemy import text

    from intake.db import make_engine

    engine = make_engine(db)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bare (id INTEGER PRIMARY KEY, "
                          "subject TEXT, sender TEXT, body TEXT, raw BLOB)"))
    client = IMAPClient("127.0.0.1", port=port, ssl=False)
    client.login(USER, PASSWORD)
    client.select_folder(folder)
    uids = sorted(client.search(["NOT", "DELETED"]))
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
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO bare (subject, sender, body, raw) "
                                  "VALUES (:s, :f, :b, :r)"),
                             {"s": str(msg["subject"] or ""), "f": str(msg["from"] or ""),
                              "b": body, "r": raw})
    client.logout()
    engine.dispose()


def run_baseline(port: int, folder: str, workdir: Path, name: str) -> tuple[float, int]:
    db = fresh_db(workdir, f"{name}.sqlite3")
    seconds, rss, _ = run_child([sys.executable, __file__, "--baseline-child", str(port), folder,
                                 db], dict(os.environ))
    return seconds, rss


#: The test IMAP servers' account (tests/mail/conftest.py).
USER = "intake"
PASSWORD = "imap-test-password"  # noqa: S105 - a throw-away account on loopback


def main() -> None:
    # The servers come from the test suite's fixtures; imported here, in the parent only,
    # so that the bare baseline (a child of this script) starts as light as it should.
    from tests.mail.conftest import start_dovecot, start_pymap

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--server", choices=["dovecot", "pymap"], default=None)
    parser.add_argument("--big-mb", type=int, default=25)
    parser.add_argument("--baseline-child", nargs=3, metavar=("PORT", "FOLDER", "DB"))
    args = parser.parse_args()
    if args.baseline_child:
        port, folder, db = args.baseline_child
        baseline(int(port), folder, db)
        return

    kind = args.server or ("dovecot" if os.path.exists("/usr/sbin/dovecot")
                           and os.geteuid() == 0 else "pymap")
    starter = start_dovecot if kind == "dovecot" else start_pymap
    servers = starter()
    server = next(servers)
    try:
        with tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp:
            workdir = Path(tmp)
            messages = generate(args.count)
            total_mb = sum(map(len, messages)) / 1e6
            t0 = time.perf_counter()
            with server.client() as c:
                for folder in ("intake", "bare"):
                    c.create_folder(folder)
                    for raw in messages:
                        c.append(folder, raw)
            print(f"server: {kind}; {args.count} messages, {total_mb:.1f} MB, appended twice in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)

            bare_s, bare_rss = run_baseline(server.port, "bare", workdir, "bare")
            intake_s, intake_rss, db = run_intake(server.port, "intake", workdir, "intake")
            storing = check_intake(db, args.count)
            bare_rate = args.count / bare_s
            intake_rate = args.count / intake_s
            print(f"baseline (fetch + email parse + 1 txn/msg): {bare_s:7.2f} s "
                  f"{bare_rate:8.1f} msg/s  peak RSS {bare_rss / 1024:.0f} MB")
            print(f"intake poll --once (stored+routed):         {intake_s:7.2f} s "
                  f"{intake_rate:8.1f} msg/s  peak RSS {intake_rss / 1024:.0f} MB")
            print(f"ratio intake/baseline: {intake_rate / bare_rate:.2f}x (goal >= 0.6x)")
            if storing > 0:
                print(f"  of which storing (first to last entry committed, routing running "
                      f"alongside): {storing:.2f} s = {args.count / storing:.1f} msg/s; the rest "
                      f"is start-up and routing the tail")

            if args.big_mb:
                big = big_message(args.big_mb)
                with server.client() as c:
                    for folder in ("bigintake", "bigbare"):
                        c.create_folder(folder)
                        c.append(folder, big)
                big_s, big_rss, big_db = run_intake(server.port, "bigintake", workdir, "big")
                check_intake(big_db, 1)
                bb_s, bb_rss = run_baseline(server.port, "bigbare", workdir, "bigbare")
                print(f"one {args.big_mb} MB attachment ({len(big) / 1e6:.1f} MB raw): "
                      f"intake {big_s:.2f} s peak RSS {big_rss / 1024:.0f} MB; "
                      f"baseline {bb_s:.2f} s peak RSS {bb_rss / 1024:.0f} MB")
    finally:
        servers.close()


if __name__ == "__main__":
    main()
