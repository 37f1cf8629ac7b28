"""The records officers' review at ``/staff/review``: queue, publish, mark, withhold.

Routes of the staff blueprint (its login, session and CSRF checks apply),
for the ``records_officer`` role (and ``system_admin``). An officer works on
the entries of their own agency; any other entry is a 404, as in the inbox.
Every action is one POST calling one service of
:mod:`intake.services.publication`, which writes the entry's timeline event
and the access-log row.

A span is chosen without JavaScript: a quoted phrase and which occurrence of
it (the first by default), or the start and end offsets in the stored text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from intake.core.publication import MARK_HOWS, RecordsConfig, publish_decision
from intake.runtime import Runtime
from intake.services import findings as pii_findings
from intake.services import inbox, publication
from intake.services.inbox import Entry, utcnow
from intake.services.staff import StaffAccount
from intake.web.staff.views import _user, bp, login_required

View = TypeVar("View", bound=Callable[..., ResponseReturnValue])

REFUSALS = {
    "destroyed": "Its personal data was destroyed under its retention schedule: it can never "
                 "be published.",
    "withheld": "The entry is withheld: lift the withhold first.",
    "rule-never": "The publish rule for this form, agency or channel is never: it cannot be "
                  "published.",
    "unreviewed-findings": "It has high-severity personal information findings to review.",
    "unscanned-attachments": "It has attachments a records officer has not looked at.",
    "review-required": "A records officer must review it first.",
    "not-yet": "Its publish rule's waiting time has not passed yet.",
    "automatic-mail": "It is automatic mail (an auto-reply, bounce, bulk or list mail, spam or "
                      "a challenge): it is kept as a record but never published.",
    "reviewed": "May be published.",
    "auto-after": "May be published.",
}


@dataclass(frozen=True)
class Refused:
    """An action the gate refused; what was written (the access log) is kept."""

    message: str


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["intake"]
    return runtime


def _config() -> RecordsConfig:
    return _runtime().records


def records_officer_required(view: View) -> View:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        if _user().role not in inbox.RECORDS_ROLES:
            abort(403)
        return view(*args, **kwargs)

    return login_required(cast(View, wrapper))


def _own_entry(s: Session, user: StaffAccount, entry_id: int) -> Entry:
    access = inbox.access_for(s, user, entry_id)
    if access is None or not access.owner:
        abort(404)
    return access.entry


@bp.get("/review")
@records_officer_required
def review_queue() -> ResponseReturnValue:
    user = _user()
    with _runtime().db.session() as s:
        queue = publication.review_queue(s, user, _config(),
                                         _runtime().settings.relay_domain)
        decided = publication.decided(s, user)
        return render_template("staff/review_queue.html", queue=queue, decided=decided,
                               refusals=REFUSALS)


@bp.get("/review/<int:entry_id>")
@records_officer_required
def review_entry(entry_id: int) -> ResponseReturnValue:
    user = _user()
    runtime = _runtime()
    config = _config()
    with runtime.db.session() as s:
        entry = _own_entry(s, user, entry_id)
        inbox.log_access(s, user, entry.id, "review")
        facts = publication.facts_for(s, entry, config, reviewed=True)
        places = publication.entry_places(s, entry)
        context = {
            "entry": entry,
            "rendition": publication.officer_rendition(s, entry, runtime.settings.relay_domain),
            "publication": publication.publication_of(s, entry.id),
            "rule": facts.rule.describe(),
            "decision": publish_decision(facts, utcnow()),
            "findings": publication.high_findings(s, entry.id),
            # Why each part was redacted: kind, confidence and the evidence that fired.
            "why_redacted": [(place, f) for place, found
                             in pii_findings.findings_by_place(s, entry.id).items()
                             for f in found],
            "marks": publication.marks_of(s, entry.id),
            "candidates": publication.release_candidates(s, entry,
                                                         runtime.settings.relay_domain),
            "attachments": publication.attachments_of(s, entry.id),
            "places": [p for p in places if not p.startswith("attachment:")],
            "reasons": list(config.reasons.values()),
            "hows": MARK_HOWS,
            "refusals": REFUSALS,
        }
        return render_template("staff/review_entry.html", **context)


def _action(entry_id: int, act: Callable[[Session, StaffAccount, Entry], str | Refused]
            ) -> ResponseReturnValue:
    """Run ``act`` in one transaction: a :class:`ReviewError` rolls it back, a
    :class:`Refused` answer commits (the refusal is logged) and shows as an error."""
    user = _user()
    try:
        with _runtime().db.session() as s:
            entry = _own_entry(s, user, entry_id)
            message = act(s, user, entry)
    except publication.ReviewError as exc:
        flash(str(exc), "error")
    else:
        if isinstance(message, Refused):
            flash(message.message, "error")
        else:
            flash(message, "status")
    return redirect(url_for("staff.review_entry", entry_id=entry_id), code=303)


@bp.post("/review/<int:entry_id>/publish")
@records_officer_required
def review_publish(entry_id: int) -> ResponseReturnValue:
    def act(s: Session, user: StaffAccount, entry: Entry) -> str | Refused:
        decision = publication.approve(s, user, entry, _config(),
                                       _runtime().settings.relay_domain)
        if not decision.allowed:
            return Refused("Not published: " + REFUSALS.get(decision.reason, decision.reason))
        return "Reviewed and published."

    return _action(entry_id, act)


@bp.post("/review/<int:entry_id>/withhold")
@records_officer_required
def review_withhold(entry_id: int) -> ResponseReturnValue:
    def act(s: Session, user: StaffAccount, entry: Entry) -> str:
        publication.withhold(s, user, entry, _config(), request.form.get("reason_code", ""),
                             request.form.get("comment", ""))
        return "Withheld."

    return _action(entry_id, act)


@bp.post("/review/<int:entry_id>/lift")
@records_officer_required
def review_lift(entry_id: int) -> ResponseReturnValue:
    def act(s: Session, user: StaffAccount, entry: Entry) -> str:
        publication.lift_withhold(s, user, entry, request.form.get("comment", ""))
        return "The withhold is lifted; the entry is not published."

    return _action(entry_id, act)


@bp.post("/review/<int:entry_id>/unpublish")
@records_officer_required
def review_unpublish(entry_id: int) -> ResponseReturnValue:
    def act(s: Session, user: StaffAccount, entry: Entry) -> str:
        publication.unpublish(s, user, entry, request.form.get("comment", ""))
        return "Unpublished."

    return _action(entry_id, act)


def _int(name: str) -> int | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise publication.ReviewError(f"{name}: a whole number, please.") from None


def _span_of_phrase(text: str, phrase: str, occurrence: int) -> tuple[int, int]:
    """The offsets of the ``occurrence``-th (1-based) case-insensitive match of ``phrase``."""
    low, needle = text.lower(), phrase.lower()
    at = -1
    for _ in range(max(1, occurrence)):
        at = low.find(needle, at + 1)
        if at < 0:
            raise publication.ReviewError("That phrase does not occur that often in that text.")
    return at, at + len(phrase)


@bp.post("/review/<int:entry_id>/marks")
@records_officer_required
def review_mark(entry_id: int) -> ResponseReturnValue:
    def act(s: Session, user: StaffAccount, entry: Entry) -> str:
        how = request.form.get("how", "")
        pattern = request.form.get("pattern", "")[:1000]
        place = request.form.get("place", "").strip() or None
        attachment_id = _int("attachment_id") if request.form.get("scope") == "attachment" \
            else None
        start, end = _int("start"), _int("end")
        if how == "span" and start is None and pattern.strip():
            if attachment_id is not None:
                place = f"attachment:{attachment_id}"
            texts = publication.entry_places(s, entry)
            if place is None or place not in texts:
                raise publication.ReviewError("Choose the text the span is in.")
            start, end = _span_of_phrase(texts[place], pattern.strip(), _int("occurrence") or 1)
        publication.add_mark(s, user, entry, _config(), _runtime().settings.relay_domain,
                             how=how, pattern=pattern, reason_code=request.form.get(
                                 "reason_code", ""), comment=request.form.get("comment", ""),
                             place=place, start=start, end=end, attachment_id=attachment_id)
        return "Redaction mark added."

    return _action(entry_id, act)


@bp.post("/review/<int:entry_id>/attachments/<int:attachment_id>/release")
@records_officer_required
def review_release(entry_id: int, attachment_id: int) -> ResponseReturnValue:
    def act(s: Session, user: StaffAccount, entry: Entry) -> str:
        publication.release_attachment(s, user, entry, attachment_id,
                                       request.form.get("comment", ""))
        return "Attachment released."

    return _action(entry_id, act)


RELEASE_REFUSALS = {
    "citation-required": "Give the legal citation that makes the value public (letters and "
                         "digits, at most 200 characters, e.g. KRS 61.878(1)(a)).",
}


def _span(raw: str) -> tuple[str, int, int]:
    """``place:start:end`` as chosen in the list of redactions."""
    place, _, rest = raw.partition(":")
    start, _, end = rest.partition(":")
    if not place or not start.isdigit() or not end.isdigit():
        raise publication.ReviewError("Choose one of the automatic redactions.")
    return place, int(start), int(end)


@bp.post("/review/<int:entry_id>/release-value")
@records_officer_required
def review_release_value(entry_id: int) -> ResponseReturnValue:
    """Release one automatic redaction to the public under law, through the gate (P9)."""

    def act(s: Session, user: StaffAccount, entry: Entry) -> str | Refused:
        place, start, end = _span(request.form.get("span", ""))
        decision = publication.release_value(
            s, user, entry, _runtime().settings.relay_domain, place=place, start=start,
            end=end, citation=request.form.get("citation", ""),
            comment=request.form.get("comment", ""))
        if not decision.allowed:
            return Refused("Not released: " + RELEASE_REFUSALS.get(decision.reason,
                                                                    decision.reason))
        return f"Released to the public under {decision.citation}."

    return _action(entry_id, act)
