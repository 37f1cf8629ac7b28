"""Live Help under load: concurrent chats on PostgreSQL + Redis, two gunicorn processes.

    python bench/chat.py --database-url postgresql://postgres@127.0.0.1:5432/postgres \\
        --redis-url redis://127.0.0.1:6379/12 [--chats 200] [--messages 5] [--interval 2]

Creates a throw-away database next to the one named, migrates it, starts two gunicorn
processes (gthread) on it with Redis as the bus, and opens, for every chat, the
operator's stream on process A; the visitors post on process B. Each message's
latency runs from just before its POST is sent to its arrival on the operator's
stream (so it includes the commit, the Redis announcement and the other process's
database read). Prints p50/p95/max latency and the CPU time the two server processes
(master and workers) spent per message, from /proc.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RULES = ROOT / "tests" / "data" / "small_rules.yaml"
PASSWORD = "bench password 0123456789"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HELP = """version: 1
form: contact
wait_seconds: 3600
agencies:
  dot: {hours: ["mon-sun 00:00-24:00"]}
"""


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children now alive (clock ticks -> s)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                pids.append(int(entry.name))
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def request(port: int, method: str, path: str, form: dict[str, str] | None = None,
            cookies: dict[str, str] | None = None, accept: str | None = None
            ) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers: dict[str, str] = {}
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if accept:
        headers["Accept"] = accept
    body = None
    if form is not None:
        body = urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        if cookies is not None:
            for name, value in r.getheaders():
                if name.lower() == "set-cookie":
                    key, _, rest = value.partition("=")
                    cookies[key] = rest.split(";", 1)[0]
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        conn.close()


def main() -> None:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get(
        "INTAKE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--messages", type=int, default=5, help="per chat")
    parser.add_argument("--interval", type=float, default=0.0,
                        help="seconds each chat waits between its messages (0: as fast as "
                             "the 32 posting threads go, a saturation test)")
    args = parser.parse_args()
    from sqlalchemy import create_engine, make_url, text

    admin_url = make_url(args.database_url).set(drivername="postgresql+psycopg")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"intake_bench_chat_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name, drivername="postgresql").render_as_string(
        hide_password=False)
    tmp = Path(tempfile.mkdtemp(prefix="intake-bench-chat-"))
    (tmp / "help.yaml").write_text(HELP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update({
        "INTAKE_DATABASE_URL": url, "INTAKE_BROKER_URL": args.redis_url,
        "INTAKE_SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "INTAKE_RULES": str(RULES), "INTAKE_HELP": str(tmp / "help.yaml"),
        "INTAKE_HELP_STREAM_SECONDS": "600", "INTAKE_HELP_MESSAGE_RATE": "100000/minute",
        "INTAKE_FORM_RATE_LIMIT": "100000/minute", "INTAKE_ALLOW_STAFF_WITHOUT_TOTP": "1",
        "INTAKE_WEB_WORKERS": "1", "INTAKE_LOG_LEVEL": "WARNING",
        "INTAKE_INSTANCE_PATH": str(tmp / "instance"),
    })
    processes: list[subprocess.Popen[bytes]] = []
    try:
        print("migrating ...", flush=True)
        subprocess.run([str(BIN / "intake"), "db", "upgrade"], env=env, cwd=tmp, check=True,
                       capture_output=True)
        subprocess.run([str(BIN / "intake"), "staff", "add", "--email",
                        "op@dot.examplia.gov", "--agency", "dot", "--role", "operator",
                        "--no-totp"], env=env, cwd=tmp, check=True,
                       input=(PASSWORD + "\n").encode(), capture_output=True)
        ports = []
        for n, threads in enumerate((str(args.chats + 32), "64")):
            port = 18000 + os.getpid() % 1000 * 2 + n
            ports.append(port)
            processes.append(subprocess.Popen(
                [str(BIN / "gunicorn"), "-c", "python:intake.gunicorn_conf",
                 "intake.wsgi:app"], env={**env, "INTAKE_BIND": f"127.0.0.1:{port}",
                                          "INTAKE_WEB_THREADS": threads},
                cwd=tmp, stdout=subprocess.DEVNULL, stderr=open(tmp / f"web{n}.log", "wb")))  # noqa: SIM115
        a, b = ports
        for port in ports:
            for _ in range(300):
                try:
                    if request(port, "GET", "/healthz")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.1)
        cookies: dict[str, str] = {}
        page = request(a, "GET", "/staff/login", cookies=cookies)[2]
        status, _, _ = request(a, "POST", "/staff/login", {
            "email": "op@dot.examplia.gov", "password": PASSWORD,
            "csrf_token": CSRF.search(page).group(1)}, cookies=cookies)  # type: ignore[union-attr]
        assert status == 303, status
        print(f"starting {args.chats} chats ...", flush=True)

        def start(n: int) -> tuple[str, int]:
            status, headers, _ = request(b, "POST", "/help", {
                "name": f"Visitor {n}", "topic": "transportation",
                "message": f"Pothole number {n} on Route 9", "lang": "en"})
            assert status == 303, status
            token = re.search(r"/help/c/([^/?#]+)", headers["location"]).group(1)  # type: ignore[union-attr]
            return token, 0

        with ThreadPoolExecutor(16) as pool:
            tokens = [t for t, _ in pool.map(start, range(args.chats))]
        queue = request(a, "GET", "/staff/help", cookies=cookies)[2]
        chat_ids = sorted({int(i) for i in re.findall(r"/staff/help/(\d+)", queue)})
        assert len(chat_ids) == args.chats, len(chat_ids)
        sent_at: dict[str, float] = {}
        arrived: dict[str, float] = {}
        ready = threading.Barrier(args.chats + 1)
        lock = threading.Lock()
        expected = args.chats * args.messages

        def listen(chat_id: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", a, timeout=120)
            conn.request("GET", f"/staff/help/{chat_id}/events", headers={
                "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
                "Last-Event-ID": "0"})
            response = conn.getresponse()
            ready.wait()
            got = 0
            for raw in response:
                line = raw.decode()
                if line.startswith("data: "):
                    body = json.loads(line[6:])["body"]
                    if not body.startswith("chat "):
                        continue  # the first message, "joined", ...
                    with lock:
                        arrived[body] = time.perf_counter()
                    got += 1
                    if got >= args.messages:
                        break
            conn.close()

        listeners = [threading.Thread(target=listen, args=(c,), daemon=True)
                     for c in chat_ids]
        for t in listeners:
            t.start()
        ready.wait()
        cpu_before = sum(cpu_seconds(p.pid) for p in processes)
        started = time.perf_counter()

        def post(job: tuple[int, str]) -> None:
            n, token = job
            if args.interval:
                time.sleep(args.interval * n / args.chats)  # spread, as people type
            for m in range(args.messages):
                if m and args.interval:
                    time.sleep(args.interval)
                body = f"chat {n} message {m}"
                with lock:
                    sent_at[body] = time.perf_counter()
                status, _, text_ = request(b, "POST", f"/help/c/{token}/messages",
                                           {"message": body}, accept="application/json")
                assert status == 201, (status, text_[:200])

        done_posts = 0
        with ThreadPoolExecutor(args.chats if args.interval else 32) as pool:
            for _ in pool.map(post, enumerate(tokens)):
                done_posts += 1
                if done_posts % 20 == 0:
                    print(f"  {done_posts}/{args.chats} chats posted", flush=True)
        for t in listeners:
            t.join(timeout=120)
        elapsed = time.perf_counter() - started
        cpu = sum(cpu_seconds(p.pid) for p in processes) - cpu_before
        latencies = sorted((arrived[k] - sent_at[k]) * 1000 for k in sent_at if k in arrived)
        lost = expected - len(latencies)
        p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan")
        pace = f"every {args.interval:.1f} s per chat" if args.interval else "saturating"
        print(f"{args.chats} concurrent chats, {expected} messages posted on process B "
              f"({pace}), "
              f"read on process A's operator streams in {elapsed:.1f} s; "
              f"{lost} not arrived")
        print(f"POST -> stream latency: p50 {statistics.median(latencies):.1f} ms, "
              f"p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms (goal: p95 <= 200 ms)")
        print(f"server CPU (both gunicorn processes, /proc utime+stime): "
              f"{cpu * 1000 / expected:.2f} ms per message")
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
