"""django-helpdesk as a baseline measured in the same run as intake (issue 28).

Runs in the bench's (intake's) interpreter and imports only the standard library at import
time. helpdesk itself runs in a venv of its own, outside the repository:

- :func:`ensure_venv` builds ``~/.cache/intake-bench/helpdesk-<version>`` (or
  ``$INTAKE_BENCH_HELPDESK_VENV``) from the pinned ``requirements.txt`` beside this file, or
  reuses it when it was built from the same pins; it returns None, with the reason, when it
  cannot (no package index reachable, say), and the benches fall back to the stored figure;
- :class:`Helpdesk` is one helpdesk site on one throw-away database (the Django project in
  ``benchdesk/``): ``migrate``, the queues it needs, gunicorn for the public form, the
  command line of ``manage.py get_email`` for the IMAP ingest, and its tickets counted;
- the public form's client side (:func:`csrf_token`, :func:`csrf_cookie`,
  :func:`ticket_form`, :func:`ticket_created`): what a browser does with the submit page.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
VERSION = "2.6.1"  # django-helpdesk, as pinned in requirements.txt
SUBMIT_PATH = "/tickets/submit/"  # helpdesk's public "submit a ticket" page
SECRET = "helpdesk-bench-secret-key-not-for-production-0123456789abcdef"
_MARKER = ".intake-bench-requirements"


# -- the venv -------------------------------------------------------------------------------

def venv_path() -> Path:
    configured = os.environ.get("INTAKE_BENCH_HELPDESK_VENV")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "intake-bench" / f"helpdesk-{VERSION}"


def _pins() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def ensure_venv(say: Callable[[str], None] = print) -> Path | None:
    """The python of the helpdesk venv, built if missing or built from other pins; None
    (after ``say`` told why) if it cannot be built."""
    venv = venv_path()
    python = venv / "bin" / "python"
    marker = venv / _MARKER
    if python.exists() and marker.exists() and marker.read_text().strip() == _pins():
        return python
    building = venv.with_name(f"{venv.name}.building-{os.getpid()}")
    say(f"helpdesk: building its venv in {venv} (pip install -r {REQUIREMENTS.name}) ...")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(building)], check=True,
                       capture_output=True)
        # The venv is renamed once built: everything in it runs as `python -m`, never
        # through a script whose #! line names the folder it was built in.
        subprocess.run([str(building / "bin" / "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
                       check=True, capture_output=True, timeout=900)
        (building / _MARKER).write_text(_pins() + "\n")
        if venv.exists():
            shutil.rmtree(venv)
        venv.parent.mkdir(parents=True, exist_ok=True)
        building.rename(venv)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = ""
        if isinstance(exc, subprocess.CalledProcessError):
            lines = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
            detail = f": {lines[-1]}" if lines else ""
        say(f"helpdesk: cannot build its venv ({type(exc).__name__}{detail})")
        shutil.rmtree(building, ignore_errors=True)
        return None
    return python


# -- one helpdesk site ----------------------------------------------------------------------

class Helpdesk:
    """helpdesk on ``database`` (``sqlite:///PATH`` or a ``postgresql://`` URL of a database
    that exists and is empty), its files (attachments) under ``folder``."""

    def __init__(self, python: Path, folder: Path, database: str) -> None:
        self.python, self.folder, self.database = python, folder, database
        folder.mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("INTAKE_", "DJANGO_", "BENCHDESK_", "PYTHON"))}
        env.update(DJANGO_SETTINGS_MODULE="benchdesk.settings",
                   BENCHDESK_DATABASE=self.database, BENCHDESK_DIR=str(self.folder),
                   BENCHDESK_SECRET_KEY=SECRET, PYTHONPATH=str(HERE))
        return env

    def _run(self, *argv: str) -> None:
        done = subprocess.run([str(self.python), *argv], cwd=HERE, env=self.env(),
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"helpdesk {' '.join(argv[:3])} failed ({done.returncode}):\n"
                               + (done.stdout + done.stderr)[-3000:])

    def migrate(self) -> None:
        """``manage.py migrate`` (helpdesk's migrations load its e-mail templates)."""
        self._run("manage.py", "migrate", "--no-input", "-v", "0")

    def add_public_queue(self) -> None:
        self._run("-m", "benchdesk.queues", "public")

    def add_imap_queue(self, host: str, port: int, user: str, password: str,
                       folder: str) -> None:
        self._run("-m", "benchdesk.queues", "imap", host, str(port), user, password, folder)

    def get_email_argv(self) -> list[str]:
        """The command that reads the IMAP queue once (run it with :meth:`env`, in
        :data:`HERE`)."""
        return [str(self.python), "manage.py", "get_email", "--quiet"]

    def gunicorn(self, port: int, workers: int, threads: int) -> subprocess.Popen[bytes]:
        """helpdesk's site under gunicorn, as the bench runs intake's."""
        return subprocess.Popen(
            [str(self.python), "-m", "gunicorn", "--workers", str(workers),
             "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
             "--threads", str(threads), "--log-level", "warning",
             "benchdesk.wsgi:application"],
            cwd=HERE, env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def count_tickets(self) -> int:
        return count_rows(self.database, "helpdesk_ticket")


def count_rows(database: str, table: str) -> int:
    """Rows of ``table`` in ``database`` (read from the bench's interpreter)."""
    if database.startswith("sqlite"):
        path = urlsplit(database).path
        path = path[1:] if path.startswith("//") else path
        with sqlite3.connect(path, timeout=30) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(make_url(database).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


# -- the public form, as a browser uses it -------------------------------------------------

_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_COOKIE = re.compile(r"(?:^|,\s*)csrftoken=([^;,\s]+)")


def csrf_token(page: str) -> str:
    """The CSRF token of the form in ``page`` (Django's hidden csrfmiddlewaretoken)."""
    found = _TOKEN.search(page)
    if found is None:
        raise ValueError("no csrfmiddlewaretoken in the page")
    return found.group(1)


def csrf_cookie(headers: Iterable[tuple[str, str]]) -> str | None:
    """The value of the ``csrftoken`` cookie a response sets, if it sets one."""
    for name, value in headers:
        if name.lower() == "set-cookie":
            found = _COOKIE.search(value)
            if found:
                return found.group(1)
    return None


def ticket_form(token: str, unique: str) -> tuple[bytes, str]:
    """(body, Content-Type) of the ticket a browser posts from the submit page: the form is
    ``multipart/form-data`` (it has a file field, sent empty), with the same subject and
    text as intake's contact submission (``form_intake.contact_body``)."""
    boundary = f"----benchdesk{hashlib.sha1(unique.encode()).hexdigest()[:24]}"
    fields = [
        ("csrfmiddlewaretoken", token),
        ("title", f"Trail report {unique}"),
        ("body", f"The north trail at Lake Park is closed ({unique}). "
                 "Could someone look at the fallen trees near the bridge?"),
        ("due_date", ""),
        ("submitter_email", "bench@example.com"),
    ]
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
             f"{value}\r\n".encode() for name, value in fields]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="attachment"; '
                 'filename=""\r\nContent-Type: application/octet-stream\r\n\r\n\r\n'.encode())
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def ticket_created(status: int, location: str | None) -> bool:
    """Whether helpdesk's answer to the POST is its "ticket created" answer: a redirect to
    the new ticket's public page (a form with errors is a 200, a CSRF failure a 403)."""
    if status != 302 or not location:
        return False
    parts = urlsplit(location)
    return parts.path == "/view/" and "ticket=public-" in parts.query

