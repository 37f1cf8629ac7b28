"""The staff inbox at ``/staff/...``: login with TOTP, the agency inbox, entries, admin views.

Security model, in one place:

- every route but the login pages needs a live server-side session
  (:mod:`intake.services.staff`); the cookie is Flask's signed session with
  the ``Secure``, ``HttpOnly`` and ``SameSite`` flags set by ``create_app``;
- every state change is a POST that must carry the session's CSRF token
  (Flask-WTF's ``validate_csrf``) and, when the browser sends an ``Origin``,
  come from this site; the global CSRFProtect exempts this blueprint because
  it checks here itself, without Flask-WTF's HTTPS Referer check, which
  ``Referrer-Policy: no-referrer`` would make fail;
- every entry route asks :func:`intake.services.inbox.access_for`; an entry
  of another agency is a 404, the same answer as a missing one;
- every view of personal information writes the access log.
"""

from __future__ import annotations

from flask import Flask

from intake.services import staff as accounts
from intake.web.csrf import csrf
from intake.web.staff import (
    automail,  # noqa: F401 - the automatic-mail view on bp
    dashboard,  # noqa: F401 - the dashboard's routes on bp
    help,  # noqa: F401 - the Live Help operators' routes on bp
    retention,  # nested in the staff blueprint at import
    review,  # noqa: F401 - the records officers' routes on bp
)
from intake.web.staff.views import bp


def init_app(app: Flask) -> None:
    """Register the blueprint (one call in create_app); warn of accounts without TOTP."""
    csrf.exempt(bp)
    csrf.exempt(retention.bp)
    app.register_blueprint(bp)
    # Every web process (intake serve, gunicorn's wsgi:app) says so at start.
    accounts.warn_about_missing_second_factors(app.extensions["intake"].db)


__all__ = ["init_app"]
