"""Benchmark of the staff inbox on PostgreSQL, over HTTP against a real server.

    python bench/inbox.py [--entries 100000] [--agencies 10] [--requests 200]
                          [--admin-url postgresql://postgres@127.0.0.1:5432/postgres] [--keep]

Creates a throw-away database, applies the migrations, bulk-loads entries
spread over the agencies with COPY (subjects and bodies drawn from a Zipf-like
vocabulary, so words have realistic frequencies; the tsvector column is
computed by PostgreSQL during the load), runs VACUUM ANALYZE, starts
``intake serve`` on it, logs in as an agent of one agency, and measures:

- ``/healthz`` (the baseline: the server's own cost, measured in the same run);
- the first inbox page (50 rows, status counts, unread count);
- a deep page: keyset cursor 90 % of the way down the agency's entries;
- a full-text search for a word found in about 1 % of entries.

Prints p50 and p95 of each, and the load time. Goal: p95 <= 100 ms for pages
and <= 300 ms for search. The database is dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from intake.db.migrate import upgrade  # noqa: E402
from intake.web.security import SESSION_COOKIE_NAME  # noqa: E402

AGENCIES = ["governor", "dot", "health", "revenue", "dep", "dmv", "labor", "education",
            "consumer", "parks"]
STATUSES = ["new"] * 2 + ["open"] * 2 + ["waiting"] + ["closed"] * 5
PASSWORD = "benchmark password 0123"
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def vocabulary(rnd: random.Random, size: int = 5000) -> list[str]:
    syll = ["ka", "lo", "mi", "ter", "van", "dor", "pel", "sun", "rig", "bel", "tox", "gra",
            "fen", "qua", "zul", "mar", "nis", "pod", "ret", "sol", "ush", "vin", "wel", "yor"]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rnd.choice(syll) for _ in range(rnd.randint(2, 4))))
    return sorted(words)


def zipf_weights(n: int) -> list[float]:
    return [1.0 / (rank + 1) for rank in range(n)]


def rows(n: int, rnd: random.Random, vocab: list[str]) -> Iterator[tuple[Any, ...]]:
    weights = zipf_weights(len(vocab))
    now = datetime.now(UTC)
    span = timedelta(days=730).total_seconds()
    # Draw words in blocks: random.choices with cumulative weights is the slow part.
    cum: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    for i in range(n):
        words = rnd.choices(vocab, cum_weights=cum, k=45)
        subject = " ".join(words[:6]).capitalize()
        body = " ".join(words[6:])
        agency = AGENCIES[i % len(AGENCIES)]
        received = now - timedelta(seconds=rnd.random() * span)
        yield (f"BX-{received.year}-{i:07d}", "web" if i % 3 else "email", "contact",
               "contact", received, subject, body, "{}", rnd.choice(STATUSES), agency,
               f"bench-{i}", "[]")


def load(conn: psycopg.Connection[Any], n: int, seed: int) -> tuple[float, list[str]]:
    rnd = random.Random(seed)
    vocab = vocabulary(rnd)
    started = time.perf_counter()
    with conn.cursor() as cur, cur.copy(
        "COPY entries (record_number, channel, kind, form_slug, received_at, subject, body, "
        "fields, status, agency_id, idempotency_key, tags) FROM STDIN"
    ) as copy:
        for row in rows(n, rnd, vocab):
            copy.write_row(row)
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE entries")
    conn.autocommit = False
    return time.perf_counter() - started, vocab


def search_word(conn: psycopg.Connection[Any], vocab: list[str], n: int) -> tuple[str, int]:
    """A word in about 1 % of the entries (checked with the index itself)."""
    target = max(1, n // 100)
    best = (vocab[0], 0)
    for rank in (40, 60, 80, 100, 150, 200, 300, 400, 600):
        word = vocab[rank]
        count = conn.execute("SELECT count(*) FROM entries WHERE search_vector @@ "
                             "to_tsquery('simple', %s)", (word,)).fetchone()[0]  # type: ignore[index]
        if abs(count - target) < abs(best[1] - target):
            best = (word, count)
    return best


class Client:
    """A tiny HTTP/1.1 keep-alive client with a cookie jar of one cookie."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookie: str | None = None

    def request(self, method: str, path: str, body: dict[str, str] | None = None
                ) -> tuple[int, str, dict[str, str]]:
        headers = {"Host": f"localhost:{self.conn.port}"}
        data = None
        if body is not None:
            data = urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookie:
            headers["Cookie"] = self.cookie
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie" and value.startswith(f"{SESSION_COOKIE_NAME}="):
                self.cookie = value.split(";", 1)[0]
        return response.status, text, dict(response.getheaders())


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if not match:
        raise SystemExit("no CSRF token on the login page")
    return match.group(1)


def measure(client: Client, path: str, count: int) -> list[float]:
    for _ in range(5):
        client.request("GET", path)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        status, _, _ = client.request("GET", path)
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise SystemExit(f"GET {path}: HTTP {status}")
    return times


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--agencies", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    del AGENCIES[args.agencies:]

    name = f"intake_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(args.admin_url, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    base = args.admin_url.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    server: subprocess.Popen[bytes] | None = None
    try:
        upgrade(sa_url)
        with psycopg.connect(url) as conn:
            print(f"loading {args.entries:,} entries over {len(AGENCIES)} agencies ...",
                  flush=True)
            load_seconds, vocab = load(conn, args.entries, args.seed)
            print(f"load: {load_seconds:.1f} s (COPY + tsvector + indexes + VACUUM ANALYZE)")
            word, hits = search_word(conn, vocab, args.entries)
            agency_rows = conn.execute(
                "SELECT count(*) FROM entries WHERE agency_id = 'dot'").fetchone()[0]  # type: ignore[index]
            deep = conn.execute(
                "SELECT received_at, id FROM entries WHERE agency_id = 'dot' "
                "ORDER BY received_at DESC, id DESC OFFSET %s LIMIT 1",
                (int(agency_rows * 0.9),)).fetchone()
            assert deep is not None
        from intake.services.inbox import encode_cursor

        cursor = encode_cursor(deep[0], deep[1])

        env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
        env.update(INTAKE_DATABASE_URL=url, INTAKE_SECRET_KEY=SECRET,
                   INTAKE_LOG_LEVEL="WARNING", INTAKE_INSTANCE_PATH=f"/tmp/{name}",
                   # A benchmark account logs in with its password alone (development only).
                   INTAKE_ALLOW_STAFF_WITHOUT_TOTP="1")
        add = subprocess.run(
            [sys.executable, "-m", "intake", "staff", "add", "--email", "bench@dot.example",
             "--agency", "dot", "--role", "agent", "--no-totp"],
            input=PASSWORD + "\n", text=True, capture_output=True, env=env, check=False)
        if add.returncode != 0:
            raise SystemExit(add.stderr.strip())
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "intake", "serve", "--port", str(port)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                Client(port).request("GET", "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        client = Client(port)
        _, page, _ = client.request("GET", "/staff/login")
        status, _, headers = client.request("POST", "/staff/login", {
            "email": "bench@dot.example", "password": PASSWORD, "csrf_token": csrf_of(page)})
        if status != 303 or "/staff/login" in headers.get("Location", "/staff/login"):
            raise SystemExit(f"login failed: HTTP {status}")

        results = {
            "baseline /healthz": measure(client, "/healthz", args.requests),
            "inbox first page": measure(client, "/staff/inbox", args.requests),
            "inbox deep page (90 %, keyset)": measure(
                client, "/staff/inbox?" + urlencode({"after": cursor}), args.requests),
            f"search '{word}' ({hits:,} hits)": measure(
                client, "/staff/inbox?" + urlencode({"q": word}), args.requests),
            f"search '{word}' + status=open": measure(
                client, "/staff/inbox?" + urlencode({"q": word, "status": "open"}),
                args.requests),
        }
        print(f"\n{args.entries:,} entries, {agency_rows:,} in the agency measured; "
              f"{args.requests} requests each after 5 warm-ups; ms")
        print(f"{'request':<44} {'p50':>8} {'p95':>8}")
        for label, times in results.items():
            print(f"{label:<44} {p(times, 50):8.1f} {p(times, 95):8.1f}")
        print(json.dumps({label: {"p50": round(p(t, 50), 1), "p95": round(p(t, 95), 1)}
                          for label, t in results.items()} | {"load_seconds":
                                                              round(load_seconds, 1)}))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if not args.keep:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            print(f"kept database {name}")
        admin.close()


if __name__ == "__main__":
    main()
