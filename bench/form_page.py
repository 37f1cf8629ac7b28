"""CPU per form page and per GET+POST, in one process, with and without the rendered-page
cache (issue 28), alternating rounds on SQLite and PostgreSQL.

Usage: python bench/form_page.py [--pairs 300] [--rounds 3]
       [--pg postgresql://postgres@127.0.0.1:5432/test] [--only sqlite|postgresql]

The real app (``create_app``) behind Flask's test client, no HTTP server: each pair
GETs ``/forms/contact?lang=en`` (HTML), takes the token out of the page and POSTs a
contact submission with it (every check on the path: token, honeypot, fill time — 0 in
the bench's forms file —, rate limit, PII scan, consent, routing enqueue). "before"
forgets the cached form pages before every GET (the page rendered by Jinja each time, as
before issue 28); "now" is the code as it is. Figures are process CPU time (not
wall time, which the other tenants of a shared machine move), medians of the rounds,
and their ratio.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from form_intake import _prepare, contact_body, intake_settings, throwaway_database  # noqa: E402

from intake import create_app  # noqa: E402
from intake.runtime import Runtime  # noqa: E402
from intake.settings import load_settings  # noqa: E402
from intake.web.forms import PAGES_KEY  # noqa: E402

TOKEN = re.compile(r'name="_token" value="([^"]+)"')


def measure(url: str, folder: Path, pairs: int, rounds: int) -> dict[str, list[float]]:
    _prepare(url)
    runtime = Runtime(load_settings(intake_settings(url, folder)))
    runtime.rules.load()
    app = create_app(runtime=runtime)
    client = app.test_client()
    pages = app.extensions[PAGES_KEY]
    seq = [0]

    def forget_form_pages() -> None:  # the confirmation pages, cached before, stay
        for key in [k for k in pages if k[0] == "form"]:
            del pages[key]

    def pair(clear: bool) -> None:
        if clear:
            forget_form_pages()
        html = client.get("/forms/contact?lang=en").get_data(as_text=True)
        found = TOKEN.search(html)
        assert found is not None, "no token in the page"
        seq[0] += 1
        answer = client.post("/forms/contact", data=contact_body(found.group(1), f"p{seq[0]}"),
                             content_type="application/x-www-form-urlencoded")
        assert answer.status_code == 200, answer.status_code

    def get(clear: bool) -> None:
        if clear:
            forget_form_pages()
        client.get("/forms/contact?lang=en").get_data()

    out: dict[str, list[float]] = {}
    try:
        for clear in (True, False):  # warm-up
            for _ in range(20):
                pair(clear)
        for _ in range(rounds):
            for label, clear in (("before", True), ("now", False)):
                start = time.process_time()
                for _ in range(pairs):
                    pair(clear)
                out.setdefault(f"pair {label}", []).append(
                    (time.process_time() - start) / pairs * 1000)
                start = time.process_time()
                for _ in range(pairs):
                    get(clear)
                out.setdefault(f"get {label}", []).append(
                    (time.process_time() - start) / pairs * 1000)
    finally:
        runtime.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as folder:
        tmp = Path(folder)
        if args.only in (None, "sqlite"):
            results.append(("sqlite", measure(f"sqlite:///{tmp / 'page.sqlite3'}", tmp / "s",
                                              args.pairs, args.rounds)))
        if args.only in (None, "postgresql"):
            with throwaway_database(args.pg, "intake_bench_page") as url:
                if url is not None:
                    results.append(("postgresql", measure(url, tmp / "p", args.pairs,
                                                          args.rounds)))
    print(f"\nCPU ms per request in one process (Flask test client), {args.pairs} per round, "
          f"{args.rounds} alternating rounds (median; all rounds in brackets)")
    print(f"{'database':<11}{'what':<22}{'before':>9}{'now':>9}{'before/now':>12}")
    for db, out in results:
        for what, name in (("get", "GET /forms/contact"), ("pair", "GET+POST")):
            before, now = statistics.median(out[f"{what} before"]), statistics.median(
                out[f"{what} now"])
            spread = " ".join(f"{b:.2f}/{n:.2f}" for b, n in
                              zip(out[f"{what} before"], out[f"{what} now"], strict=True))
            print(f"{db:<11}{name:<22}{before:>9.2f}{now:>9.2f}{before / now:>11.2f}x"
                  f"   [{spread}]")


if __name__ == "__main__":
    main()
