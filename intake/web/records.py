"""The public records portal: ``GET /records`` and ``GET /records/<record_number>``.

No login, no cookie, no JavaScript; English and Spanish (``?lang=es`` or the
browser's language). Everything shown is the public rendition of a
published entry (:mod:`intake.services.publication`): an unpublished,
withheld or unknown number answers the same 404 as any missing page.
``/records?format=csv|json`` exports the same query as the page.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Flask, Response, abort, current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from intake.core.publication import RecordsConfig
from intake.core.rendition import Rendition
from intake.runtime import Runtime
from intake.services import publication, records
from intake.services.publication import PublicQuery, PublicRow

bp = Blueprint("records", __name__)

LANGUAGES = ("en", "es")
CHANNELS = ("web", "email")
# A cell starting with one of these is a formula to a spreadsheet (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["intake"]
    return runtime


def _config() -> RecordsConfig:
    return _runtime().records


def _lang() -> str:
    asked = request.args.get("lang", "")
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(LANGUAGES, default="en") or "en"


def _agency_names() -> dict[str, str]:
    return {a.id: a.name for a in _runtime().rules.current().agencies.values()}


def _channel_label(channel: str) -> str:
    return _("Web form") if channel == "web" else _("E-mail") if channel == "email" else channel


def _date(name: str, errors: list[str]) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.append(name)
        return None


def _query(errors: list[str]) -> PublicQuery:
    agency = request.args.get("agency", "").strip() or None
    channel = request.args.get("channel", "").strip() or None
    if channel is not None and channel not in CHANNELS:
        errors.append("channel")
        channel = None
    return PublicQuery(q=request.args.get("q", "")[:publication.MAX_QUERY],
                       agency=agency[:64] if agency else None, channel=channel,
                       date_from=_date("from", errors), date_to=_date("to", errors),
                       cursor=request.args.get("cursor", "")[:200] or None)


def _args(query: PublicQuery, lang: str, **more: str) -> dict[str, Any]:
    args = {"q": query.q, "agency": query.agency or "", "channel": query.channel or "",
            "from": query.date_from.isoformat() if query.date_from else "",
            "to": query.date_to.isoformat() if query.date_to else "", "lang": lang, **more}
    return {k: v for k, v in args.items() if v}


def _limit() -> int:
    """An export's rows per request: ``?limit=`` from 1 to 1000 (the default)."""
    raw = request.args.get("limit", "")
    if raw.isdigit() and 1 <= int(raw) <= publication.EXPORT_LIMIT:
        return int(raw)
    return publication.EXPORT_LIMIT


@bp.get("/records")
def listing() -> ResponseReturnValue:
    """Published entries, newest first; search, filters, and the CSV and JSON exports."""
    errors: list[str] = []
    query = _query(errors)
    lang = _lang()
    fmt = request.args.get("format", "html")
    names = _agency_names()
    with _runtime().db.session() as session:
        if fmt in ("csv", "json"):
            limit = _limit()
            rows, cursor = publication.public_export(session, query, limit)
            more = url_for("records.listing", _external=True, **_args(
                query, "", format=fmt, cursor=cursor or "", limit=str(limit))) \
                if cursor else None
            return _export(fmt, rows, names, more)
        if fmt != "html":
            abort(400)
        rows, cursor = publication.public_page(session, query)
    return render_template(
        "records/list.html", lang=lang, rows=rows, query=query, errors=errors,
        # The agencies of the rules (a DISTINCT over the published entries would read them
        # all on every page).
        agencies=sorted(names.items(), key=lambda item: item[1]), agency_names=names,
        channels=[(c, _channel_label(c)) for c in CHANNELS], channel_label=_channel_label,
        next_url=url_for("records.listing", **_args(query, lang, cursor=cursor))
        if cursor else None,
        csv_url=url_for("records.listing", **_args(query, "", format="csv")),
        json_url=url_for("records.listing", **_args(query, "", format="json")),
        switch=_switch(lang, url_for("records.listing",
                                     **_args(query, "es" if lang == "en" else "en"))),
        searched=bool(query.q.strip()),
    )


def _switch(lang: str, href: str) -> dict[str, str]:
    other = "es" if lang == "en" else "en"
    return {"href": href, "lang": other, "label": "Español" if other == "es" else "English"}


def _safe_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _export(fmt: str, rows: list[PublicRow], names: dict[str, str], more: str | None
            ) -> Response:
    """The rows as JSON or CSV; ``more``: the URL of the next rows (JSON ``next``, and a
    ``Link: <...>; rel="next"`` header on both)."""
    items = [{"record_number": r.record_number, "received_at": r.received_at.isoformat(),
              "channel": r.channel, "agency": names.get(r.agency_id or "", r.agency_id or ""),
              "subject": r.subject,
              "url": url_for("records.record", record_number=r.record_number,
                             _external=True)} for r in rows]
    if fmt == "json":
        body = json.dumps({"records": items, "count": len(items), "next": more},
                          ensure_ascii=False)
        response = Response(body, mimetype="application/json")
    else:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["record_number", "received_at", "channel", "agency", "subject",
                         "url"])
        for item in items:
            writer.writerow([_safe_cell(str(v)) for v in item.values()])
        response = Response(out.getvalue(), mimetype="text/csv")
        response.headers["Content-Disposition"] = 'attachment; filename="records.csv"'
    if more:
        response.headers["Link"] = f'<{more}>; rel="next"'
    return response


def _reason_text(reason: str | None, lang: str) -> str:
    """A removal's reason as the public reads it: label and legal citation."""
    config = _config()
    code = reason[len("mark:"):] if reason and reason.startswith("mark:") else config.automatic
    found = config.reason(code)
    return f"{found.text(lang)} — {found.citation}"


def _legend(rendition: Rendition, lang: str) -> list[str]:
    seen: dict[str, None] = {}
    for removal in rendition.removals:
        if removal.place.startswith("contact:"):
            continue  # the contact block is never shown to the public at all
        seen.setdefault(_reason_text(removal.reason, lang), None)
    return list(seen)


@bp.get("/records/<record_number>")
def record(record_number: str) -> ResponseReturnValue:
    """One published entry's public rendition."""
    lang = _lang()
    runtime = _runtime()
    with runtime.db.session() as session:
        found = publication.public_record(session, record_number,
                                          runtime.settings.relay_domain)
    if found is None:
        abort(404)
    names = _agency_names()
    return render_template(
        "records/record.html", lang=lang, record=found, rendition=found.rendition,
        agency_names=names, channel_label=_channel_label,
        reason_text=lambda reason: _reason_text(reason, lang),
        legend=_legend(found.rendition, lang),
        switch=_switch(lang, url_for("records.record", record_number=record_number,
                                     lang="es" if lang == "en" else "en")),
    )


@bp.get("/records/<record_number>/attachments/<int:attachment_id>")
def attachment(record_number: str, attachment_id: int) -> ResponseReturnValue:
    """A released attachment of a published entry, as a download."""
    runtime = _runtime()
    with runtime.db.session() as session:
        found = publication.released_attachment(session, record_number, attachment_id,
                                                runtime.settings.relay_domain)
        if found is None:
            abort(404)
        entry_id, filename = found
        try:
            opened = records.open_attachment(session, entry_id, attachment_id,
                                             runtime.originals_key)
        except records.OriginalUnavailable:
            abort(404)
        if opened is None:
            abort(404)
        content = opened.content
    response = Response(content, mimetype="application/octet-stream")
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "._- ") else "_"
                         for c in filename)[:150] or "attachment"
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename[:150])}")
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


def init_app(app: Flask) -> None:
    """Register the blueprint (one call in create_app, after the forms set up Babel)."""
    app.register_blueprint(bp)
