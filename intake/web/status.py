"""The submitter's own view, reached by the private link: status, consents, disclosures.

The link's token is the only key (no account, no cookie). Withdrawing a
consent is one POST carrying the token; it appends a withdrawal event and
every queued message is checked again at send time.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from intake.core.consent import ConsentAction, ConsentMethod, Purpose
from intake.runtime import Runtime
from intake.services import renditions
from intake.services.consent import consent_states, disclosures_for, record_consent
from intake.services.links import entry_for_access_token
from intake.services.publication import PUBLISHED, publication_state
from intake.services.status import entry_for_link, timeline
from intake.web.language import local_time, use_language

bp = Blueprint("status", __name__)

STATUS_LABELS = {
    "new": _l("Received, waiting to be read"),
    "open": _l("Being handled"),
    "waiting": _l("Waiting for more information"),
    "closed": _l("Answered and closed"),
}

PURPOSE_TEXT = {
    Purpose.SHARE_IDENTITY: _l(
        "Share my name and e-mail address with %(who)s, so it can answer me directly"),
}

# What each disclosure was, in plain words (the ledger's own codes stay off this page).
NATURE_TEXT = {
    "forward": _l("Your message, sent to the agency that answers it"),
    "forward-cc": _l("A copy of your message, for information"),
    "reroute": _l("Your message, passed on to the agency that handles it"),
    "acknowledge": _l("Our acknowledgement, sent to you"),
    "reply": _l("A reply, sent to you"),
    "relay": _l("A message in your conversation, passed on"),
}
ANY_AGENCY = _l("any state agency that handles my message")
A_STATE_AGENCY = _l("a state agency")


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["intake"]
    return runtime


def _who(recipient_class: str, agencies: dict[str, str]) -> str:
    if recipient_class == "agency":
        return str(ANY_AGENCY)
    agency_id = recipient_class.split(":", 1)[1]
    return agencies.get(agency_id, str(A_STATE_AGENCY))


@bp.get("/status/<token>")
def view(token: str) -> ResponseReturnValue:
    runtime = _runtime()
    zone = runtime.settings.timezone
    with runtime.db.session() as session:
        entry = entry_for_link(session, token)
        if entry is None:
            abort(404)
        # The language the person chose when they wrote: this page and every message.
        lang = use_language(entry.language)
        entry_id = entry.id
        agencies = {a.id: a.name for a in runtime.rules.current().agencies.values()}

        def when(at: datetime, with_time: bool = True) -> dict[str, str]:
            return {"iso": at.isoformat(), "text": local_time(at, lang, zone,
                                                             with_time=with_time)}

        consents = [
            {
                "purpose": line.purpose,
                "recipient_class": line.recipient_class,
                "live": line.live,
                "steps": [(what, when(at, False), who) for what, at, who in line.steps],
                "withdrawn_at": line.withdrawn_at,
                "shared_since_withdrawal": line.shared_since_withdrawal,
                "description": str(PURPOSE_TEXT.get(Purpose(line.purpose), line.purpose)) % {
                    "who": _who(line.recipient_class, agencies)},
            }
            for line in renditions.consent_lines(session, entry_id, agencies)
        ]
        # The submitter's own rendition: their texts, sensitive numbers (P6) redacted.
        mine = renditions.render_entry(session, entry, renditions.Audience.SUBMITTER,
                                       agency_id=None, thread=False,
                                       relay_domain=runtime.settings.relay_domain)
        disclosures = [
            {"when": when(d.at), "to": d.recipient_name if d.recipient_kind != "submitter"
             else _("You"),
             "what": str(NATURE_TEXT.get(d.nature, _("Information about your message"))),
             "allowed": d.allowed, "citation": d.citation,
             "identity": d.allowed and d.include_identity}
            for d in disclosures_for(session, entry_id)
        ]
        steps = [{"kind": step.kind, "when": when(step.at),
                  "agency": step.agency or str(A_STATE_AGENCY), "text": step.text}
                 for step in timeline(session, entry, agencies)]
        published = publication_state(session, entry_id) == PUBLISHED
        return render_template(
            "status/entry.html", entry=entry, subject=mine.subject, token=token, lang=lang,
            consents=consents, steps=steps, disclosures=disclosures,
            status_label=str(STATUS_LABELS.get(entry.status, STATUS_LABELS["open"])),
            received=when(entry.received_at),
            agency_name=agencies.get(entry.agency_id or ""), published=published,
            record_url=url_for("records.record", record_number=entry.record_number,
                               lang=None if lang == "en" else lang),
            notice=_("Your consent has been withdrawn.") if request.args.get("withdrawn")
            else None,
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
