"""CPU cost of the visit counters on a form GET (issue 29; goal: under 5 %).

    python bench/visits.py [--rounds 30] [--per-round 200] [--database sqlite|URL]
                           [--served 3000]

One process, two apps on the same database and forms: one as ``create_app``
builds it, one with the visit counter's after-request hook taken out. Each
round calls ``GET /forms/contact`` ``--per-round`` times on each app,
alternating request by request (which app goes first flips every round, so
drift on a shared machine falls on both alike), straight into the WSGI app (no
HTTP server, no test client in the count), with varied User-Agents, addresses
and referrers; each round ends with a flush of the counters to the database,
counted on the "with" side, so the batch write is counted too. The hook is
also timed from inside (``time.thread_time``), a steadier figure than the
difference of two totals. CPU time is ``time.process_time`` (every thread
of the process). Prints the median CPU per request of each and the overhead.

In-process, a form GET is only the app's own work (the form page is cached since
issue 28, so that is about a quarter of a millisecond). ``--served N`` also
measures what a request costs as intake serves it: gunicorn as
``intake.gunicorn_conf`` runs it (one worker), N keep-alive GETs of the same
mix, the worker's CPU from ``/proc`` before and after; and prints the hook's
cost (timed inside, with its share of the flushes) as a share of that.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel {v}) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36",
]
REFERRERS = ["https://agency.example/contact", "https://www.google.com/", ""]


def _environs(n: int) -> list[dict[str, Any]]:
    from werkzeug.test import EnvironBuilder

    out = []
    for i in range(n):
        headers = {"User-Agent": UAS[i % len(UAS)].format(v=100 + i % 25),
                   "Accept-Language": "es" if i % 5 == 0 else "en-US,en;q=0.8"}
        if REFERRERS[i % 3]:
            headers["Referer"] = REFERRERS[i % 3]
        env = EnvironBuilder(path="/forms/contact", headers=headers,
                             environ_base={"REMOTE_ADDR": f"198.51.{i % 200}.{i % 250}"}
                             ).get_environ()
        out.append(env)
    return out


def _call(app: Any, environ: dict[str, Any]) -> None:
    status: list[str] = []
    env = dict(environ)
    env["wsgi.input"] = io.BytesIO(b"")
    body = app(env, lambda s, h, e=None: status.append(s))
    for _ in body:
        pass
    if hasattr(body, "close"):
        body.close()
    if not status or not status[0].startswith("200"):
        raise SystemExit(f"GET /forms/contact answered {status}")


def _worker_cpu(master: int) -> float:
    """CPU seconds (user + system) of the gunicorn master's one worker."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    if len(children) != 1:
        raise SystemExit(f"expected one gunicorn worker, found {children}")
    fields = Path(f"/proc/{children[0]}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def served_cpu_per_get(env: dict[str, str], environs: list[dict[str, Any]], n: int) -> float:
    """CPU seconds a gunicorn worker spends per ``GET /forms/contact``, over n requests."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:intake.gunicorn_conf",
         "intake.wsgi:app"], cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**env, "INTAKE_BIND": f"127.0.0.1:{port}", "INTAKE_WEB_WORKERS": "1",
             "INTAKE_WEB_THREADS": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("gunicorn did not start") from None
                time.sleep(0.2)

        def get(environ: dict[str, Any]) -> None:
            headers = {"User-Agent": environ["HTTP_USER_AGENT"],
                       "Accept-Language": environ["HTTP_ACCEPT_LANGUAGE"]}
            if "HTTP_REFERER" in environ:
                headers["Referer"] = environ["HTTP_REFERER"]
            conn.request("GET", "/forms/contact", headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"served GET /forms/contact answered {response.status}")

        for environ in environs:  # warm-up
            get(environ)
        before = _worker_cpu(server.pid)
        for i in range(n):
            get(environs[i % len(environs)])
        return (_worker_cpu(server.pid) - before) / n
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--database", default="sqlite",
                        help="sqlite (a temporary file) or a database URL")
    parser.add_argument("--served", type=int, default=0, metavar="N",
                        help="also measure N GETs served by gunicorn (one worker)")
    args = parser.parse_args()

    from intake import create_app
    from intake.runtime import Runtime
    from intake.settings import load_settings
    from intake.web.visits import EXTENSION

    with tempfile.TemporaryDirectory() as tmp:
        url = (f"sqlite:///{tmp}/bench.db" if args.database == "sqlite" else args.database)
        settings = load_settings({"INTAKE_INSTANCE_PATH": f"{tmp}/instance",
                                  "INTAKE_DATABASE_URL": url, "INTAKE_SECRET_KEY": "b" * 40,
                                  "INTAKE_LOG_LEVEL": "WARNING",
                                  "INTAKE_STATS_FLUSH_SECONDS": "100000"})
        runtime = Runtime(settings)
        runtime.upgrade_database()
        with_app = create_app(runtime=runtime)
        without_app = create_app(runtime=runtime)
        hooks = without_app.after_request_funcs[None]
        without_app.after_request_funcs[None] = [f for f in hooks if f.__name__ != "_count"]
        assert len(without_app.after_request_funcs[None]) == len(hooks) - 1, "no hook to drop"
        counter = with_app.extensions[EXTENSION]
        # The hook's own CPU, timed inside the "with" app: steadier than the difference of
        # two noisy totals on a shared machine.
        inside = [0.0]
        with_hooks = with_app.after_request_funcs[None]
        hook = next(f for f in with_hooks if f.__name__ == "_count")

        def timed(response: Any) -> Any:
            start = time.thread_time()
            try:
                return hook(response)
            finally:
                inside[0] += time.thread_time() - start

        with_app.after_request_funcs[None] = [timed if f is hook else f for f in with_hooks]
        environs = _environs(args.per_round)
        for app in (with_app, without_app):  # warm both: templates, caches, connections
            for env in environs:
                _call(app, env)
        counter.flush()
        inside[0] = 0.0

        per_request: dict[str, list[float]] = {"with": [], "without": []}
        flushes: list[float] = []
        for r in range(args.rounds):
            spent = {"with": 0.0, "without": 0.0}
            # Request by request, alternating (the first of each pair flips every round):
            # a shared machine's drift falls on both alike.
            order = ("with", "without") if r % 2 == 0 else ("without", "with")
            for env in environs:
                for name in order:
                    app = with_app if name == "with" else without_app
                    start = time.process_time()
                    _call(app, env)
                    spent[name] += time.process_time() - start
            before_flush = time.process_time()
            counter.flush()  # the batch write, counted with the requests
            flushes.append(time.process_time() - before_flush)
            spent["with"] += flushes[-1]
            for name in spent:
                per_request[name].append(spent[name] / len(environs))
            print(f"round {r + 1}/{args.rounds}: with {per_request['with'][-1] * 1e6:.0f} us, "
                  f"without {per_request['without'][-1] * 1e6:.0f} us", file=sys.stderr)
        runtime.close()
        served_us = 0.0
        if args.served:
            env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
            env.update(INTAKE_INSTANCE_PATH=f"{tmp}/instance", INTAKE_DATABASE_URL=url,
                       INTAKE_SECRET_KEY="b" * 40, INTAKE_LOG_LEVEL="WARNING",
                       INTAKE_STATS_FLUSH_SECONDS="60")
            served_us = served_cpu_per_get(env, environs, args.served) * 1e6

    hook_us = inside[0] / (args.rounds * args.per_round) * 1e6
    with_us = statistics.median(per_request["with"]) * 1e6
    without_us = statistics.median(per_request["without"]) * 1e6
    print(f"GET /forms/contact CPU per request ({args.rounds} alternating rounds of "
          f"{args.per_round}, {runtime.settings.database_kind}): with counters "
          f"{with_us:.0f} us, without {without_us:.0f} us, "
          f"overhead {with_us - without_us:.0f} us = {100 * (with_us / without_us - 1):.1f} %; "
          f"of which the flush of each round's counters {statistics.median(flushes) * 1e3:.2f} ms "
          f"= {statistics.median(flushes) / args.per_round * 1e6:.0f} us a request "
          f"(a flush every {args.per_round} requests; in service one every "
          "INTAKE_STATS_FLUSH_SECONDS)")
    flush_us = statistics.median(flushes) / args.per_round * 1e6
    print(f"the hook timed inside: {hook_us:.1f} us a request, + flush {flush_us:.0f} us = "
          f"{100 * (hook_us + flush_us) / without_us:.1f} % of a GET without counters")
    if served_us:
        print(f"served by gunicorn (one worker, {args.served} keep-alive GETs, counters on): "
              f"{served_us:.0f} us of the worker's CPU a GET; the hook + flush share "
              f"{hook_us + flush_us:.1f} us = {100 * (hook_us + flush_us) / served_us:.1f} % "
              "of it")


if __name__ == "__main__":
    main()
