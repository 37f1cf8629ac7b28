"""The WSGI application for gunicorn (``gunicorn intake.wsgi:app``): settings, logging, the app.

Inside the package, so that an installed intake (a wheel, no clone) serves it
too; the clone's top-level ``wsgi.py`` re-exports it for ``gunicorn wsgi:app``.
Logging is set up as ``intake serve`` sets it up (one line per record, control
characters escaped); without it, intake's log lines would reach gunicorn's
stderr unformatted.
"""

from intake import create_app
from intake.runtime import configure_logging
from intake.settings import load_settings

settings = load_settings()
configure_logging(settings.log_level)
app = create_app(settings)
