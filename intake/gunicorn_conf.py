"""gunicorn's configuration for intake: ``gunicorn -c python:intake.gunicorn_conf intake.wsgi:app``.

(The clone's top-level ``gunicorn.conf.py``, which gunicorn reads by itself from
the working directory, imports this module.) Values come from the intake
settings (``INTAKE_BIND``, ``INTAKE_WEB_WORKERS``, ``INTAKE_WEB_THREADS``,
``INTAKE_LOG_LEVEL``); options on gunicorn's command line override them.

The access log never holds a query string, a referrer, or the token of a
submitter's status link (``/status/<token>`` is logged as ``/status/[token]``):
whoever reads the log must not be able to open a submitter's status page, and
staff searches must not land in it.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

from intake.settings import load_settings

_settings = load_settings()

bind = [_settings.web_bind]
workers = _settings.web_workers
threads = _settings.web_threads
worker_class = "gthread"
# A worker stuck this long in one request is replaced (SMTP/HTTP work is not done in requests).
timeout = 60
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
# gunicorn 23+'s control socket sits in the home folder: one per user, so a second
# gunicorn on the host would fight over it. intake needs none (signals stop and reload).
control_socket_disable = True
# No query string (%(q)s, %(r)s, %(U)s come redacted below), no referrer, no user agent.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'

# Paths whose last segments are secrets (the submitter's status link and its actions).
_SECRET_PATHS = re.compile(r"^(/status/|/help/c/)[^/]+")


def redact_path(path: str) -> str:
    """The path as the logs show it: no query string, the status link's token replaced."""
    return _SECRET_PATHS.sub(r"\1[token]", path.split("?", 1)[0])


def _redacted(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Log arguments with request URIs redacted (gunicorn's "Error handling request %s")."""
    return tuple(redact_path(a) if isinstance(a, str) and a.startswith("/") else a
                 for a in args)


class RedactingLogger(Logger):
    """gunicorn's logger with the request's path redacted in every atom a format may use."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any],
              request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        path = redact_path(str(atoms.get("U", "")))
        atoms["U"] = path
        atoms["q"] = ""
        atoms["f"] = "-"
        atoms["r"] = f"{atoms.get('m', '-')} {path} {atoms.get('H', '-')}"
        for key in list(atoms):
            # Environment and header atoms ({raw_uri}e, {referer}i ...) that could hold them.
            lowered = key.lower()
            if key.startswith("{") and any(word in lowered for word in
                                           ("uri", "path", "query", "referer")):
                atoms[key] = "-"
        return atoms

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        super().error(msg, *_redacted(args), **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        super().exception(msg, *_redacted(args), **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        super().warning(msg, *_redacted(args), **kwargs)


logger_class = RedactingLogger
