"""``gunicorn wsgi:app`` from a clone: the packaged :mod:`intake.wsgi` application.

An installed intake serves the same app as ``gunicorn intake.wsgi:app``.
"""

from intake.wsgi import app

__all__ = ["app"]
