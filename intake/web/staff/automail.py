"""Automatic mail at ``/staff/automatic``: auto-replies, bounces, bulk and list mail, spam and
challenge-response requests, kept as records but out of the inbox list.

A route of the staff blueprint (its login, session and CSRF checks apply). Like the inbox,
it lists the entries routed to the user's agency only; each record number links to the
entry page, whose access check decides as usual.
"""

from __future__ import annotations

from flask import current_app, render_template, request
from flask.typing import ResponseReturnValue

from intake.core.mail.automatic import CATEGORIES
from intake.runtime import Runtime
from intake.services import automail
from intake.web.staff.views import _user, bp, login_required

CATEGORY_LABELS = {
    "auto-reply": "Auto-replies",
    "bounce": "Bounces",
    "bulk": "Bulk and list mail",
    "spam": "Spam",
    "challenge": "Challenge-response",
}


@bp.get("/automatic")
@login_required
def automatic_mail() -> ResponseReturnValue:
    user = _user()
    runtime: Runtime = current_app.extensions["intake"]
    category = request.args.get("category", "")
    with runtime.db.session() as s:
        page = automail.automatic_page(s, user, category if category in CATEGORIES else None,
                                       relay_domain=runtime.settings.relay_domain)
    return render_template("staff/automail.html", page=page, labels=CATEGORY_LABELS,
                           categories=CATEGORIES)
