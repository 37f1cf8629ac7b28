"""Flask-WTF CSRF protection for the whole app, except the cookie-less public pages.

Staff pages rely on the session-bound CSRF token of Flask-WTF. The public
forms (``intake.web.forms``) must work without cookies, so they carry a
signed, time-stamped token of their own (``intake.core.forms``). The
submitter's status page (``intake.web.status``) has no session either: its
withdraw form is authorised by the secret token in its own URL, which a
cross-site attacker cannot know. The inbound mail push (``intake.web.inbound``)
has no session either: each request carries its provider's signature. Those three
blueprints are exempted, and only they.
"""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    from intake.web.forms import bp as forms_bp
    from intake.web.inbound import bp as inbound_bp
    from intake.web.status import bp as status_bp

    csrf.init_app(app)
    csrf.exempt(forms_bp)
    csrf.exempt(status_bp)
    csrf.exempt(inbound_bp)
