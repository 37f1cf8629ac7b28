"""Instructions per form submission, counted by callgrind: this checkout beside a baseline.

    python bench/form_instructions.py [--baseline REF] [--count 200] [--warm 100]
                                      [--pg postgresql://postgres@127.0.0.1:5432/postgres]
                                      [--only sqlite|postgresql]

``form_intake.py`` measures the goal (submissions per second through
gunicorn), but on a shared machine its figures swing by a tenth from one run
to the next, more than most single changes move them. This script counts
what the code costs instead of timing what the machine gives: the
instructions the intake process executes for ``--count`` urlencoded
``POST /forms/contact`` calls into the WSGI app (each body different, one
at a time, each its own group commit; after ``--warm`` calls that are not
counted), with no HTTP server and no load generator in the count. On
PostgreSQL only the client side is counted (the server is another process).

Both the working tree and ``--baseline`` (default ``HEAD``; checked out into
a temporary git worktree) are measured in the same run, on SQLite and on a
throw-away PostgreSQL database (skipped if the server is unreachable). The
counts repeat to within about one percent on SQLite and two on PostgreSQL.
Needs ``valgrind`` (Debian package ``valgrind``) and git.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


# -- the counted process ------------------------------------------------------------------

def _child(repo: Path, url: str, count: int, warm: int, folder: Path) -> None:
    """Runs under callgrind with instrumentation off; turns it on for the counted calls."""
    # The throughput bench's settings, forms file and bodies; it imports no intake code
    # before ``repo`` (the baseline's, or this checkout's) is first on the path.
    import form_intake

    sys.path.insert(0, str(repo))
    os.chdir(repo)
    import json

    import intake
    from intake.db.migrate import upgrade
    from intake.settings import load_settings

    if not Path(intake.__file__).resolve().is_relative_to(repo.resolve()):
        raise SystemExit(f"imported {intake.__file__}, not the code of {repo}")
    upgrade(load_settings({"INTAKE_DATABASE_URL": url}).database_url)
    os.environ.update(form_intake.intake_settings(url, folder))
    from werkzeug.test import EnvironBuilder

    from intake import create_app

    app = create_app()
    described = app.test_client().get("/forms/contact", headers={"Accept": "application/json"})
    token = json.loads(described.data)["token"]
    environs = []
    for n in range(warm + count):
        body = form_intake.contact_body(token, f"{uuid.uuid4().hex[:8]}-{n}")
        environs.append(EnvironBuilder(
            path="/forms/contact", method="POST", data=body,
            content_type="application/x-www-form-urlencoded").get_environ())

    def call(environ: dict[str, object]) -> None:
        statuses: list[str] = []

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            statuses.append(status)

        body = app(environ, start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()
        if not statuses[0].startswith("200"):
            raise SystemExit(f"POST /forms/contact answered {statuses[0]}")

    for environ in environs[:warm]:
        call(environ)
    control = shutil.which("callgrind_control") or "callgrind_control"
    subprocess.run([control, "-i", "on", str(os.getpid())], check=True, capture_output=True)
    for environ in environs[warm:]:
        call(environ)
    subprocess.run([control, "-i", "off", str(os.getpid())], check=True, capture_output=True)


# -- the driver ---------------------------------------------------------------------------

def _count(repo: Path, url: str, args: argparse.Namespace, tmp: Path) -> float:
    """Instructions per submission of ``repo``'s code on ``url``."""
    folder = Path(tempfile.mkdtemp(dir=tmp))
    out = folder / "callgrind.out"
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--callgrind-out-file={out}", sys.executable, str(Path(__file__).resolve()),
               "--child", str(repo), url, str(args.count), str(args.warm), str(folder)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    collected = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if done.returncode != 0 or collected is None:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"the count of {repo} on {url.split(':')[0]} failed")
    return int(collected.group(1)) / args.count


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        argv = sys.argv[2:7]
        _child(Path(argv[0]), argv[1], int(argv[2]), int(argv[3]), Path(argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="HEAD", help="git ref to compare with")
    parser.add_argument("--count", type=int, default=200, help="counted submissions")
    parser.add_argument("--warm", type=int, default=100, help="submissions before counting")
    parser.add_argument("--pg", default=os.environ.get(
        "INTAKE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")

    from form_intake import throwaway_database  # this folder's throughput bench

    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.baseline],
                            capture_output=True, text=True, check=True).stdout.strip()
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="intake-instr-") as folder:
        tmp = Path(folder)
        baseline = tmp / "baseline"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(baseline),
                        commit], capture_output=True, check=True)
        try:
            databases = ["sqlite", "postgresql"] if args.only is None else [args.only]
            for name in databases:
                counts = []
                for label, repo in (("baseline", baseline), ("this", REPO)):
                    if name == "sqlite":
                        url = f"sqlite:///{tmp / f'{label}.sqlite3'}"
                        counts.append(_count(repo, url, args, tmp))
                        continue
                    with throwaway_database(args.pg, "intake_instr") as pg_url:
                        if pg_url is None:
                            break
                        counts.append(_count(repo, pg_url, args, tmp))
                if len(counts) == 2:
                    rows.append((name, counts[0], counts[1]))
                    print(f"{name}: baseline {counts[0] / 1e6:.3f}M, this {counts[1] / 1e6:.3f}M "
                          "instructions per submission", file=sys.stderr, flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(baseline)], capture_output=True, check=False)

    print(f"\nInstructions per POST /forms/contact in the intake process (callgrind; "
          f"{args.count} counted after {args.warm}; PostgreSQL: client side only)")
    print(f"{'database':<11} {'baseline ' + commit:>18} {'this checkout':>15} {'change':>8}")
    for name, base, this in rows:
        print(f"{name:<11} {base / 1e6:>17.3f}M {this / 1e6:>14.3f}M {this / base - 1:>+8.1%}")


if __name__ == "__main__":
    main()
