"""The submitter's own view, reached by the private link: status, consents, disclosures.

The link's token is the only key (no account, no cookie). Withdrawing a
consent is one POST carrying the token; it appends a withdrawal event and
every queued message is checked again at send time.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from intake.core.consent import ConsentAction, ConsentMethod, Purpose
from intake.runtime import Runtime
from intake.services import renditions
from intake.services.consent import consent_states, disclosures_for, record_consent
from intake.services.links import entry_for_access_token
from intake.services.publication import PUBLISHED, publication_state
from intake.services.status import entry_for_link

bp = Blueprint("status", __name__)

STATUS_LABELS = {
    "new": "Received, waiting to be read",
    "open": "Being handled",
    "waiting": "Waiting for more information",
    "closed": "Answered and closed",
}

PURPOSE_TEXT = {
    Purpose.SHARE_IDENTITY: (
        "Share my name and e-mail address with {who}, so it can answer me directly"
    ),
}


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["intake"]
    return runtime


def _who(recipient_class: str, agencies: dict[str, str]) -> str:
    if recipient_class == "agency":
        return "any state agency that handles my message"
    agency_id = recipient_class.split(":", 1)[1]
    return agencies.get(agency_id, agency_id)


@bp.get("/status/<token>")
def view(token: str) -> ResponseReturnValue:
    runtime = _runtime()
    with runtime.db.session() as session:
        entry = entry_for_link(session, token)
        if entry is None:
            abort(404)
        entry_id = entry.id
        agencies = {a.id: a.name for a in runtime.rules.current().agencies.values()}
        consents = [
            {
                "purpose": line.purpose,
                "recipient_class": line.recipient_class,
                "live": line.live,
                "steps": line.steps,
                "withdrawn_at": line.withdrawn_at,
                "shared_since_withdrawal": line.shared_since_withdrawal,
                "description": PURPOSE_TEXT.get(Purpose(line.purpose), line.purpose).format(
                    who=_who(line.recipient_class, agencies)),
            }
            for line in renditions.consent_lines(session, entry_id, agencies)
        ]
        # The submitter's own rendition: their texts, sensitive numbers (P6) redacted.
        mine = renditions.render_entry(session, entry, renditions.Audience.SUBMITTER,
                                       agency_id=None, thread=False,
                                       relay_domain=runtime.settings.relay_domain)
        disclosures = list(disclosures_for(session, entry_id))
        published = publication_state(session, entry_id) == PUBLISHED
        return render_template(
            "status/entry.html", entry=entry, subject=mine.subject, token=token,
            consents=consents,
            disclosures=disclosures, status_label=STATUS_LABELS.get(entry.status, entry.status),
            agency_name=agencies.get(entry.agency_id or ""), published=published,
            notice="Your consent has been withdrawn." if request.args.get("withdrawn") else None,
        )


@bp.post("/status/<token>/withdraw")
def withdraw(token: str) -> ResponseReturnValue:
    runtime = _runtime()
    try:
        purpose = Purpose(request.form.get("purpose", ""))
    except ValueError:
        abort(400)
    recipient_class = request.form.get("recipient_class", "")
    with runtime.db.session() as session:
        entry_id = entry_for_access_token(session, token)
        if entry_id is None:
            abort(404)
        states = {
            (s.purpose, s.recipient_class): s for s in consent_states(session, entry_id)
        }
        state = states.get((purpose, recipient_class))
        if state is None or state.live is None:
            abort(400)
        record_consent(
            session, entry_id=entry_id, action=ConsentAction.WITHDRAW, purpose=purpose,
            recipient_class=recipient_class, policy_version=state.live.policy_version,
            method=ConsentMethod.WEB_CHECKBOX, evidence=request.get_data(),
        )
    return redirect(url_for("status.view", token=token, withdrawn=1), code=303)
