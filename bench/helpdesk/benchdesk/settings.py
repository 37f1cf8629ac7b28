"""Settings of the helpdesk baseline, production-like (see bench/README.md, "The helpdesk
baseline"): DEBUG off, Django's default middleware with CSRF, helpdesk's documented apps.

Read from the environment (set by ``bench/helpdesk/baseline.py``):

- ``BENCHDESK_DATABASE``: ``sqlite:///PATH`` or ``postgresql://USER[:PASS]@HOST[:PORT]/NAME``;
- ``BENCHDESK_DIR``: a folder for attachments (MEDIA_ROOT) and static files;
- ``BENCHDESK_SECRET_KEY``.

helpdesk's e-mails (the submitter's acknowledgement of each new ticket) are built in full
(rendered, encoded as for the wire) and not sent: ``benchdesk.mail``.
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

FOLDER = Path(os.environ["BENCHDESK_DIR"])

SECRET_KEY = os.environ["BENCHDESK_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

HELPDESK_TEAMS_MODE_ENABLED = False  # docs/teams.rst: teams need pinax-teams; not used here

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    "rest_framework",
    "django_cleanup.apps.CleanupConfig",
    "helpdesk",
]

# Django's default middleware (startproject), CSRF included.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "benchdesk.urls"
WSGI_APPLICATION = "benchdesk.wsgi.application"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,  # with DEBUG off, Django wraps the loaders in its cached loader
    "OPTIONS": {
        "context_processors": [
            "django.template.context_processors.request",
            "django.contrib.auth.context_processors.auth",
            "django.contrib.messages.context_processors.messages",
        ],
    },
}]


def _database(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # The same journal and durability as intake's SQLite (intake/db: WAL,
        # synchronous=FULL, a 30 s busy timeout); IMMEDIATE transactions are Django's
        # advice for concurrent writers ("database is locked").
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parts.path[1:] if parts.path.startswith("//") else parts.path),
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
            },
        }
    if parts.scheme.startswith("postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts.path.lstrip("/"),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # Persistent connections (Django's deployment checklist), as intake keeps a pool.
            "CONN_MAX_AGE": 600,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {"application_name": "helpdesk-bench"},
        }
    raise RuntimeError(f"BENCHDESK_DATABASE: not sqlite:/// or postgresql://: {url!r}")


DATABASES = {"default": _database(os.environ["BENCHDESK_DATABASE"])}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
SITE_ID = 1

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = str(FOLDER / "static")
MEDIA_URL = "/media/"
MEDIA_ROOT = str(FOLDER / "media")

LOGIN_URL = "helpdesk:login"
LOGIN_REDIRECT_URL = "helpdesk:home"

# The public form files tickets into one queue (the usual public set-up: the form then has
# no queue or priority field).
HELPDESK_PUBLIC_TICKET_QUEUE = "public"
HELPDESK_PUBLIC_TICKET_PRIORITY = 3

DEFAULT_FROM_EMAIL = "helpdesk@examplia.gov"
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_BACKEND = "benchdesk.mail.BuildOnlyBackend"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
