"""The WSGI application for gunicorn (``gunicorn wsgi:app``): settings, logging, the app.

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
