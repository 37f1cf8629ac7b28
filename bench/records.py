"""Benchmark of the public records portal on PostgreSQL, over HTTP against a real server.

    python bench/records.py [--entries 1000000] [--requests 100]
                            [--admin-url postgresql://postgres@127.0.0.1:5432/postgres] [--keep]

Creates a throw-away database, applies the migrations, fills ``entries`` and
``publications`` with set-based SQL (``generate_series``; subjects and public
words drawn from a Zipf-like vocabulary, so words have realistic frequencies;
the ``english`` tsvector is computed by PostgreSQL as the rows go in), runs
VACUUM ANALYZE, starts ``intake serve`` on it and measures, without any cookie:

- ``/healthz`` (the baseline: the server's own cost, measured in the same run);
- ``/records``: the first page (20 rows, newest first, the agency filter's choices);
- ``/records?cursor=...``: a page 90 % of the way down (keyset);
- ``/records?q=<word>``: a search for a word in about 1 % of the published entries,
  and the same search filtered to one agency.

Prints p50 and p95 of each, and the load time. Goal: p95 <= 100 ms for a page
and <= 300 ms for a search. The database is dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from bench.inbox import AGENCIES, SECRET, Client, measure, p, vocabulary  # noqa: E402
from intake.db.migrate import upgrade  # noqa: E402

# Words drawn per row: index = floor(size * random()^3) is Zipf-like (rank 1 most common).
_FILL = """
WITH rows AS (
    SELECT g,
           now() - (random() * interval '730 days') AS received_at,
           (SELECT string_agg((%(vocab)s::text[])[1 + floor(%(size)s * random() ^ 3)::int], ' ')
              FROM generate_series(1, 40) AS w WHERE g > 0) AS words
      FROM generate_series(1, %(n)s) AS g
)
INSERT INTO entries (id, record_number, channel, kind, form_slug, received_at, subject, body,
                     search_text, fields, status, agency_id, idempotency_key, tags)
SELECT g, 'BX-' || extract(year FROM received_at)::int || '-' || lpad(g::text, 7, '0'),
       CASE WHEN g %% 3 = 0 THEN 'email' ELSE 'web' END, 'contact', 'contact', received_at,
       initcap(split_part(words, ' ', 1) || ' ' || split_part(words, ' ', 2) || ' '
               || split_part(words, ' ', 3)),
       words, '', '{}', 'closed', (%(agencies)s::text[])[1 + g %% %(agency_count)s],
       'bench-' || g, '[]'
  FROM rows
"""

_PUBLISH = """
INSERT INTO publications (entry_id, state, record_number, received_at, channel, agency_id,
                          reviewed_at, reviewed_by, published_at, public_subject, public_text,
                          updated_at)
SELECT id, 'published', record_number, received_at, channel, agency_id, now(), 'bench', now(),
       subject, subject || ' ' || body, now()
  FROM entries
"""


def load(conn: psycopg.Connection[Any], n: int, seed: int) -> tuple[float, list[str]]:
    vocab = vocabulary(random.Random(seed))
    started = time.perf_counter()
    conn.execute("SELECT setseed(%s)", (seed / 1000,))
    conn.execute(_FILL, {"vocab": vocab, "size": len(vocab), "n": n, "agencies": AGENCIES,
                         "agency_count": len(AGENCIES)})
    conn.execute(_PUBLISH)
    conn.commit()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE entries")
    conn.execute("VACUUM ANALYZE publications")
    conn.autocommit = False
    return time.perf_counter() - started, vocab


def search_word(conn: psycopg.Connection[Any], vocab: list[str], n: int) -> tuple[str, int]:
    """A word in about 1 % of the published entries (counted with the index itself)."""
    target = max(1, n // 100)
    best = (vocab[0], 0)
    for rank in (20, 40, 60, 80, 100, 150, 200, 300, 400, 600):
        word = vocab[rank]
        row = conn.execute("SELECT count(*) FROM publications WHERE search_vector @@ "
                           "websearch_to_tsquery('english', %s)", (word,)).fetchone()
        count = int(row[0]) if row else 0
        if abs(count - target) < abs(best[1] - target):
            best = (word, count)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", metavar="DATABASE",
                        help="measure a database a --keep run loaded (same --seed); kept")
    args = parser.parse_args()
    name = args.reuse or f"intake_bench_{uuid.uuid4().hex[:8]}"
    keep = args.keep or args.reuse is not None
    admin = psycopg.connect(args.admin_url, autocommit=True)
    if not args.reuse:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{args.admin_url.rsplit('/', 1)[0]}/{name}"
    server: subprocess.Popen[bytes] | None = None
    try:
        upgrade(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with psycopg.connect(url) as conn:
            if args.reuse:
                load_seconds, vocab = 0.0, vocabulary(random.Random(args.seed))
                row = conn.execute("SELECT count(*) FROM publications").fetchone()
                args.entries = int(row[0]) if row else 0
                print(f"reusing {name}: {args.entries:,} published entries")
            else:
                print(f"loading {args.entries:,} published entries ...", flush=True)
                load_seconds, vocab = load(conn, args.entries, args.seed)
                print(f"load: {load_seconds:.1f} s (generate_series + tsvector + GIN + "
                      "ANALYZE)")
            word, hits = search_word(conn, vocab, args.entries)
            deep = conn.execute(
                "SELECT received_at, entry_id FROM publications WHERE state = 'published' "
                "ORDER BY received_at DESC, entry_id DESC OFFSET %s LIMIT 1",
                (int(args.entries * 0.9),)).fetchone()
            assert deep is not None
        from intake.services.publication import _encode_cursor

        cursor = _encode_cursor(deep[0], deep[1])
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
        env.update(INTAKE_DATABASE_URL=url, INTAKE_SECRET_KEY=SECRET,
                   INTAKE_LOG_LEVEL="WARNING", INTAKE_INSTANCE_PATH=f"/tmp/{name}")
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
        results = {
            "baseline /healthz": measure(client, "/healthz", args.requests),
            "/records first page": measure(client, "/records", args.requests),
            "/records deep page (90 %, keyset)": measure(
                client, "/records?" + urlencode({"cursor": cursor}), args.requests),
            f"/records?q={word} ({hits:,} hits)": measure(
                client, "/records?" + urlencode({"q": word}), args.requests),
            f"/records?q={word}&agency=dot": measure(
                client, "/records?" + urlencode({"q": word, "agency": "dot"}), args.requests),
        }
        if client.cookie is not None:
            raise SystemExit("the public pages set a cookie")
        print(f"\n{args.entries:,} published entries; {args.requests} requests each after "
              "5 warm-ups; ms")
        print(f"{'request':<44} {'p50':>8} {'p95':>8}")
        for label, times in results.items():
            print(f"{label:<44} {p(times, 50):8.1f} {p(times, 95):8.1f}")
        print(json.dumps({label: {"p50": round(p(t, 50), 1), "p95": round(p(t, 95), 1)}
                          for label, t in results.items()}
                         | {"load_seconds": round(load_seconds, 1)}))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if not keep:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            print(f"kept database {name}")
        admin.close()


if __name__ == "__main__":
    main()
