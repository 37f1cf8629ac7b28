"""The public forms: ``GET /forms/<slug>``, ``GET /embed/<slug>``, ``POST /forms/<slug>``.

Works for everyone: plain HTML posts without JavaScript or cookies, an iframe
page that only the form's agency origins may frame, cross-origin posts and
JSON (with CORS) from those origins. Abuse is kept out without cookies: a
signed time-stamped token in a hidden field, a honeypot (``_gotcha``, which
gets a fake success), a minimum fill time and a per-address rate limit keyed
by an HMAC of the address (never stored).

Before storing, the text is checked for what people are asked not to send
(P6); the form comes back with a warning to remove it or confirm. The
confirmation page (record number, private status link) is sent only after the
entry, its attachments and the consent event are committed in one
transaction.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import Babel, refresh
from flask_babel import gettext as _
from markupsafe import escape
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.utils import secure_filename
from wtforms import Form

from intake.core.forms import (
    LANGUAGES,
    ConsentText,
    FormConfig,
    FormsConfig,
    FormsConfigError,
    check_form_token,
    make_form_token,
    origin_allowed,
    origin_of,
    pick,
    safe_next,
    validate_survey_answers,
)
from intake.core.pii import Finding, warning_kinds
from intake.core.sniff import sniff_type
from intake.runtime import Runtime, StartupError
from intake.services.forms import (
    FormSubmission,
    FormWriter,
    form_writer,
    load_forms,
    new_submission,
    scan,
    without_sensitive,
)
from intake.services.records import NewAttachment, Recorded, SubmitterData
from intake.web.bodies import read_body
from intake.web.forms_fields import (
    contact_form,
    feedback_form,
    first_errors,
    survey_form,
    survey_hints,
)
from intake.web.language import TRANSLATIONS_KEY, page_translations
from intake.web.ratelimit import (  # also registers intake-memory://
    FormRateLimit,
    form_rate_limit,
)
from intake.web.security import DEFAULT_CSP
from intake.web.visits import mark

log = logging.getLogger("intake.web.forms")

bp = Blueprint("forms", __name__)

CONFIG_KEY = "intake.forms"
WRITER_KEY = "intake.forms.writer"
PAGES_KEY = "intake.forms.confirmation_pages"
RATE_KEY = "intake.forms.rate_limit"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "application/json")
# A form without attachments never needs more than this (10 000 characters
# of message, percent-encoded, plus the other fields).
TEXT_BODY_CAP = 256 * 1024
MULTIPART_OVERHEAD = 64 * 1024
# Field names the server reads besides the form's own fields.
#: The answers to the sensitive-data warning: what each one does ("1": the API's older
#: spelling of "seal").
SENSITIVE_CHOICES = {"remove": "remove", "seal": "seal", "1": "seal"}
CONTROL_FIELDS = ("_token", "_gotcha", "_next", "_embed", "_confirm_sensitive", "lang",
                  "consent")


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["intake"]
    return runtime


def _config() -> FormsConfig:
    config: FormsConfig = current_app.extensions[CONFIG_KEY]
    return config


def _writer() -> FormWriter:
    writer: FormWriter = current_app.extensions[WRITER_KEY]
    return writer


def _token_key() -> bytes:
    return _runtime().settings.derived_key("form token")


def client_key() -> str:
    """The rate-limit key: a keyed hash of the client address. The address is never stored."""
    key = _runtime().settings.derived_key("rate-limit keys")
    address = (request.remote_addr or "unknown").encode()
    return hmac.digest(key, address, "sha256").hex()[:32]


def select_locale() -> str:
    # The public forms and records, the submitter's status and error pages and the staff
    # pages that set g.page_lang (translated in full), are translated; other pages stay in
    # English so their `lang` attribute is true.
    page_lang = g.get("page_lang")
    if page_lang in LANGUAGES:
        return str(page_lang)
    if request.blueprint == "records":
        asked = request.args.get("lang", "")
        if asked in LANGUAGES:
            return asked
        return request.accept_languages.best_match(LANGUAGES, default="en") or "en"
    if request.blueprint != "forms":
        return "en"
    lang = g.get("forms_lang")
    if lang in LANGUAGES:
        return str(lang)
    asked = request.args.get("lang", "")
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(LANGUAGES, default="en") or "en"


def init_app(app: Flask) -> None:
    """Load the forms file, set up translations and rate limits, register the blueprint."""
    runtime: Runtime = app.extensions["intake"]
    settings = runtime.settings
    try:
        app.extensions[CONFIG_KEY] = load_forms(settings)
    except FormsConfigError as exc:
        raise StartupError(f"INTAKE_FORMS: {exc.errors[0]} ({len(exc.errors)} problem(s); "
                           "run `intake forms check`)") from None
    if "babel" not in app.extensions:
        Babel(app, locale_selector=select_locale)
        # Templates call gettext a dozen times a page; Flask-Babel looks the
        # request's translations up again on every call. Look them up once.
        app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
            gettext=lambda s: page_translations().ugettext(s),
            ngettext=lambda s, p, n: page_translations().ungettext(s, p, n),
            pgettext=lambda c, s: page_translations().upgettext(c, s),
            npgettext=lambda c, s, p, n: page_translations().unpgettext(c, s, p, n),
            newstyle=True,
        )
    app.extensions[PAGES_KEY] = {}
    writer = app.extensions[WRITER_KEY] = form_writer(
        runtime.db, record_prefix=settings.record_prefix, originals_key=runtime.originals_key,
        turn_lock=settings.instance_path / "form-writer.lock")
    runtime.on_close(writer.close)
    try:
        # Counted in `submit`, on counters every worker process shares (Redis or the database).
        app.extensions[RATE_KEY] = form_rate_limit(runtime)
    except ValueError:
        raise StartupError(f"INTAKE_FORM_RATE_LIMIT: not a rate limit "
                           f"({settings.form_rate_limit!r}; e.g. 10/minute)") from None
    app.register_blueprint(bp)


# -- helpers -----------------------------------------------------------------------------


def _form_or_404(slug: str) -> FormConfig:
    form = _config().forms.get(slug)
    if form is None:
        abort(404)
    return form


def _set_lang(lang: str | None) -> str:
    chosen = lang if lang in LANGUAGES else None
    if chosen is None:
        chosen = request.accept_languages.best_match(LANGUAGES, default="en") or "en"
    g.forms_lang = chosen
    refresh()
    g.pop(TRANSLATIONS_KEY, None)
    return chosen


def _wants_json() -> bool:
    if request.mimetype == "application/json":
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > \
        request.accept_mimetypes["text/html"]


def _embed_csp(form: FormConfig) -> str:
    ancestors = " ".join(form.allowed_origins) or "'none'"
    return DEFAULT_CSP.replace("frame-ancestors 'none'", f"frame-ancestors {ancestors}")


def _same_origin(origin: str | None) -> bool:
    return origin_of(origin) == origin_of(request.host_url)


def _cors(response: Response, form: FormConfig) -> Response:
    origin = request.headers.get("Origin")
    if origin and origin_allowed(origin, form.allowed_origins):
        response.headers["Access-Control-Allow-Origin"] = origin_of(origin) or ""
        response.headers.add("Vary", "Origin")
    return response


def _language_switch(slug: str, lang: str, embed: bool) -> dict[str, str]:
    other = "es" if lang == "en" else "en"
    endpoint = "forms.embed" if embed else "forms.show"
    args: dict[str, Any] = {"slug": slug, "lang": other}
    if request.args.get("about"):
        args["about"] = request.args["about"][:500]
    return {"href": url_for(endpoint, **args), "lang": other,
            "label": "Español" if other == "es" else "English"}


def _sensitive_label(kind: str) -> str:
    labels = {
        "ssn": _("a Social Security number"),
        "card": _("a payment card number"),
        "aba": _("a bank routing number"),
        "bank_account": _("a bank account number"),
        "birth_date": _("a date of birth"),
        "password": _("a password"),
        "maiden_name": _("a mother's maiden name"),
        "medical": _("medical details"),
    }
    return labels.get(kind, kind)


@dataclass
class PageState:
    """What a re-shown form keeps from the previous attempt."""

    errors: dict[str, str]
    sensitive: list[str]
    notice: str | None = None
    consent_checked: bool = False
    next_url: str = ""
    # The sensitive-data choice already made ("remove" or "seal"), kept on a re-shown page.
    sensitive_choice: str = ""

    def is_blank(self) -> bool:
        """Nothing from a previous post to show: the page as first served."""
        return self == PageState(errors={}, sensitive=[])


def _wtform(form: FormConfig, lang: str, formdata: Any = None) -> Form:
    if form.kind == "contact":
        return contact_form(form, lang, formdata)
    if form.kind == "feedback":
        return feedback_form(formdata)
    assert form.survey is not None
    return survey_form(form.survey, lang, formdata)


def _render(form: FormConfig, lang: str, wtform: Form | None, *, embed: bool,
            state: PageState | None = None, status: int = 200,
            token: str | None = None) -> Response:
    """The form page. ``wtform``: the form with what was posted, or None for a first page
    (built only if that page is not cached yet). ``token``: the token the person's first
    page carried, once it has passed (a re-shown page keeps it, so the minimum fill time
    applies to the first page only); else a new one."""
    state = state or PageState(errors={}, sensitive=[])
    about = request.args.get("about", "")[:500] if request.method == "GET" else ""
    # A first page (a GET, nothing typed yet) differs from the last only by its token:
    # rendered once per (form, language, embed), the fresh token put in its place.
    fresh = token is None and request.method == "GET" and not about and state.is_blank()
    key = ("form", form.slug, lang, embed)
    pages: dict[tuple[str, str, str, bool], str] = current_app.extensions[PAGES_KEY]
    page = pages.get(key) if fresh else None
    if page is None:
        if wtform is None:
            wtform = _wtform(form, lang)
            if form.kind == "feedback" and about:
                wtform["about"].data = about
        consent = _config().consent_for(lang) if form.kind == "contact" else None
        survey_meta = []
        if form.survey is not None:
            hints = survey_hints(form.survey, lang)
            survey_meta = [{"q": q, "field": wtform[q.id], "hint": hints.get(q.id, "")}
                           for q in form.survey.questions]
        title = pick(form.survey.title if form.survey else form.title, lang)
        intro = pick(form.survey.intro if form.survey and form.survey.intro else form.intro,
                     lang)
        page = render_template(
            "forms/form.html", form_config=form, form=wtform, lang=lang, title=title,
            intro=intro, token=_TOKEN_MARK if fresh else token or make_form_token(
                _token_key(), form.slug, time.time()), consent=consent,
            state=state, embed=embed, survey=survey_meta,
            sensitive_labels=[_sensitive_label(k) for k in state.sensitive],
            switch=_language_switch(form.slug, lang, embed), about=about,
        )
        if fresh and page.count(_TOKEN_MARK) == 1 and not (
                current_app.debug or current_app.jinja_env.auto_reload):
            pages[key] = page
    # A token is digits, a dot and hex: nothing to escape.
    html = page.replace(_TOKEN_MARK, make_form_token(_token_key(), form.slug, time.time()),
                        1) if fresh else page
    response = Response(html, status=status, mimetype="text/html")
    if embed:
        response.headers["Content-Security-Policy"] = _embed_csp(form)
    return response


# -- pages ------------------------------------------------------------------------------


@bp.get("/forms/<slug>", provide_automatic_options=False)
def show(slug: str) -> ResponseReturnValue:
    form = _form_or_404(slug)
    lang = _set_lang(request.args.get("lang"))
    if _wants_json():
        return _cors(jsonify(_describe(form, lang)), form)
    return _render(form, lang, None, embed=False)


@bp.get("/embed/<slug>")
def embed(slug: str) -> ResponseReturnValue:
    form = _form_or_404(slug)
    lang = _set_lang(request.args.get("lang"))
    return _render(form, lang, None, embed=True)


@bp.route("/forms/<slug>", methods=["OPTIONS"])
def preflight(slug: str) -> ResponseReturnValue:
    form = _form_or_404(slug)
    response = Response(status=204)
    if origin_allowed(request.headers.get("Origin"), form.allowed_origins):
        response.headers["Access-Control-Allow-Methods"] = "GET, POST"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Accept"
        response.headers["Access-Control-Max-Age"] = "600"
    return _cors(response, form)


def _describe(form: FormConfig, lang: str) -> dict[str, Any]:
    """What a JSON client needs to post: the token and the fields."""
    wtform = _wtform(form, lang)
    fields = []
    for f in wtform:
        item: dict[str, Any] = {"name": f.name, "label": str(f.label.text),
                                "required": bool(f.flags.required)}
        choices = getattr(f, "choices", None)
        if choices:
            item["choices"] = [str(c.value) for c in choices if c.value]
        if f.type == "MultiCheckboxField":
            item["multiple"] = True
        fields.append(item)
    body: dict[str, Any] = {
        "slug": form.slug, "kind": form.kind, "title": pick(form.title, lang),
        "token": make_form_token(_token_key(), form.slug, time.time()),
        "min_fill_seconds": _config().min_fill_seconds, "fields": fields,
        "attachments": form.attachments.allowed,
    }
    if form.kind == "contact":
        consent = _config().consent_for(lang)
        body["consent"] = {"field": "consent", "value": consent.version, "text": consent.text}
    return body


# -- submission -------------------------------------------------------------------------


class BadInput(Exception):
    """The request cannot be read (wrong type, not UTF-8, not an object)."""


def _body_cap(form: FormConfig) -> int:
    if form.attachments.allowed:
        policy = form.attachments
        return TEXT_BODY_CAP + MULTIPART_OVERHEAD + policy.max_files * policy.max_bytes
    return TEXT_BODY_CAP


def _read_input() -> tuple[bytes, MultiDict[str, Any], list[FileStorage]]:
    """The raw body, the fields and the uploaded files of this request."""
    mimetype = request.mimetype
    if mimetype not in FORM_TYPES:
        abort(415)
    raw = read_body(request.max_content_length or TEXT_BODY_CAP)  # 413 above it, chunked too
    if mimetype == "application/json":
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deep
            raise BadInput("not UTF-8 JSON") from None
        if not isinstance(data, dict):
            raise BadInput("not a JSON object")
        pairs: list[tuple[str, str]] = []
        for key, value in data.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                if isinstance(v, bool):
                    pairs.append((str(key), "1" if v else ""))
                elif isinstance(v, str | int | float):
                    pairs.append((str(key), str(v)))
                elif v is not None:
                    raise BadInput("values must be text, numbers or lists of them")
        return raw, MultiDict(pairs), []
    if mimetype == "application/x-www-form-urlencoded":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput("not UTF-8") from None
    formdata: MultiDict[str, Any] = request.form  # read only: no copy
    files = [f for f in request.files.getlist("attachments") if f and f.filename]
    stray = [k for k in request.files if k != "attachments"]
    if stray:
        raise BadInput("unexpected file field")
    return raw, formdata, files


def _controls(formdata: MultiDict[str, Any]) -> dict[str, str | None]:
    """The control fields' first values (None when absent).

    ``MultiDict.get`` builds, raises and catches a ``BadRequestKeyError`` (an HTTP
    exception) for every absent key, and most control fields are absent from most
    posts; ``getlist`` does not.
    """
    out: dict[str, str | None] = {}
    for name in CONTROL_FIELDS:
        values = formdata.getlist(name)
        out[name] = values[0] if values else None
    return out


def _bad_request(message: str) -> ResponseReturnValue:
    if _wants_json():
        return jsonify({"error": "Bad Request", "message": message}), 400
    return render_template("error.html", title=_("Bad request"), message=message,
                           lang=g.get("forms_lang", "en")), 400


def _check_uploads(form: FormConfig, files: list[FileStorage]
                   ) -> tuple[list[NewAttachment], str | None]:
    if not files:
        return [], None
    policy = form.attachments
    if not policy.allowed:
        return [], _("This form does not accept attachments.")
    if len(files) > policy.max_files:
        return [], _("Attach at most %(n)d files.", n=policy.max_files)
    uploads = []
    for index, storage in enumerate(files, start=1):
        data = storage.read(policy.max_bytes + 1)
        if len(data) > policy.max_bytes:
            abort(413)
        name = secure_filename(storage.filename or "")[-100:] or f"attachment-{index}"
        sniffed = sniff_type(data, name)
        if sniffed not in policy.types:
            return [], _("%(name)s is not a file type we accept (PDF, PNG, JPEG or plain "
                         "text).", name=name)
        uploads.append(NewAttachment.of(name, storage.mimetype or "", sniffed, data))
    return uploads, None


def _fake_success(form: FormConfig, lang: str, embed: bool,
                  next_url: str | None) -> ResponseReturnValue:
    # The honeypot was filled: answer like a success so the robot moves on; store nothing.
    log.info("form %s: honeypot filled, not stored", form.slug)
    if _wants_json():
        return _cors(jsonify({"status": "received"}), form), 201
    if next_url:
        return redirect(next_url, code=303)
    return _confirmation(form, lang, embed, record_number=None, status_url=None)


_LINK_MARK = "__intake_token__"
_TOKEN_MARK = "__intake_form_token__"  # noqa: S105 - a stand-in, replaced per page
STATUS_URLS_KEY = "intake.forms.status_url"


def _status_url(token: str) -> str:
    """The submitter's status link, on ``INTAKE_PUBLIC_URL``: never built from the
    request's Host header, which whoever sends the request chooses.

    The path is built once, with a stand-in for the token (a token is URL-safe
    base64: nothing to quote), then only the token changes.
    """
    if not _URLSAFE_TOKEN.fullmatch(token):
        token = quote(token, safe="")
    template: str | None = current_app.extensions.get(STATUS_URLS_KEY)
    if template is None:
        path = current_app.url_map.bind("intake.invalid", script_name="/").build(
            "status.view", {"token": _LINK_MARK})
        template = current_app.extensions[STATUS_URLS_KEY] = \
            f"{_runtime().settings.public_url}{path}"
    return template.replace(_LINK_MARK, token)


_URLSAFE_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


# Stand-ins for the two values that differ between confirmation pages (see _confirmation).
_RECORD_MARK = "__intake_record_number__"
_STATUS_MARK = "__intake_status_url__"


def _confirmation(form: FormConfig, lang: str, embed: bool, *, record_number: str | None,
                  status_url: str | None) -> Response:
    # Every confirmation of a form, in a language, is the same page but for the record
    # number and the status link: render it once with stand-ins, then fill them in
    # (escaped). Re-rendered each time when templates may change (debug, auto-reload).
    key = (form.slug, lang, embed, record_number is not None)
    pages: dict[tuple[str, str, bool, bool], str] = current_app.extensions[PAGES_KEY]
    page = pages.get(key)
    if page is None:
        page = render_template(
            "forms/confirmation.html", form_config=form, lang=lang, embed=embed,
            title=pick(form.title, lang),
            record_number=_RECORD_MARK if record_number is not None else None,
            status_url=_STATUS_MARK if record_number is not None else None)
        if not (current_app.debug or current_app.jinja_env.auto_reload):
            pages[key] = page
    html = page.replace(_RECORD_MARK, str(escape(record_number or ""))).replace(
        _STATUS_MARK, str(escape(status_url or "")))
    response = Response(html, status=200, mimetype="text/html")
    if embed:
        response.headers["Content-Security-Policy"] = _embed_csp(form)
    return response


def _build_submission(form: FormConfig, wtform: Form, raw: bytes, lang: str,
                      uploads: list[NewAttachment], consent: ConsentText | None,
                      formdata: MultiDict[str, Any]) -> FormSubmission:
    content_type = request.content_type or request.mimetype
    if form.kind == "contact":
        data = wtform.data
        return FormSubmission(
            form=form, raw=raw, content_type=content_type, subject=data["subject"],
            body=data["message"], fields={"topic": data["topic"], "lang": lang},
            submitter=SubmitterData(name=data["name"], email=data["email"],
                                    phone=data["phone"] or None,
                                    postal_address=data["postal_address"] or None),
            uploads=tuple(uploads), consent=consent, consent_evidence=raw, language=lang,
        )
    if form.kind == "feedback":
        data = wtform.data
        about = data["about"] or ""
        subject = f"Feedback: {data['rating']}/5" + (f" about {about}" if about else "")
        return FormSubmission(
            form=form, raw=raw, content_type=content_type, subject=subject,
            body=data["comment"] or "",
            fields={"rating": int(data["rating"]), "about": about, "lang": lang},
            language=lang,
        )
    assert form.survey is not None
    result = validate_survey_answers(
        form.survey, {q.id: formdata.getlist(q.id) for q in form.survey.questions})
    lines = []
    for q in form.survey.questions:
        answer = result.answers.get(q.id)
        shown = ", ".join(answer) if isinstance(answer, list) else answer
        lines.append(f"{pick(q.label, 'en')}\n{'' if shown is None else shown}")
    return FormSubmission(
        form=form, raw=raw, content_type=content_type, subject=pick(form.survey.title, "en"),
        body="\n\n".join(lines),
        fields={"survey": form.survey.id, "answers": result.answers, "lang": lang},
        language=lang,
    )


@bp.post("/forms/<slug>", provide_automatic_options=False)
def submit(slug: str) -> ResponseReturnValue:
    """Read, check, warn about sensitive data, store, then answer: the page says the
    message is safe only once the record store has committed it."""
    rate: FormRateLimit = current_app.extensions[RATE_KEY]
    if not rate.hit(client_key()):
        abort(429)
    form = _form_or_404(slug)
    request.max_content_length = _body_cap(form)
    origin = request.headers.get("Origin")
    if origin and origin != "null" and not _same_origin(origin) \
            and not origin_allowed(origin, form.allowed_origins):
        log.info("form %s: post from an origin that is not allowed", slug)
        abort(403)
    try:
        raw, formdata, files = _read_input()
    except BadInput as exc:
        _set_lang(None)
        return _bad_request(_("What was sent could not be read (%(why)s).", why=str(exc)))
    controls = _controls(formdata)
    lang = _set_lang(controls["lang"])
    page = _Posted(form, lang, controls["_embed"] == "1", _wants_json(),
                   safe_next(controls["_next"], form.allowed_origins) or "",
                   _wtform(form, lang, formdata), bool(controls["consent"]))
    if controls["_gotcha"]:
        return _fake_success(form, lang, page.embed, page.next_url or None)
    refused = _refuse_token(page, controls["_token"])
    if refused is not None:
        return refused
    # From here on a re-shown page (corrections, the sensitive-data warning) carries the
    # token that passed: the minimum fill time applies to the first page only.
    page = replace(page, token=controls["_token"])
    checked = _check_answers(page, files, controls["consent"])
    if not isinstance(checked, _Accepted):
        return checked
    consent = checked.consent
    submission = _build_submission(form, page.wtform, raw, lang, checked.uploads, consent,
                                   formdata)
    # One scan of the texts as they will be stored: it warns now and is stored later.
    findings = scan(submission, _runtime().pii_key)
    choice = SENSITIVE_CHOICES.get(controls["_confirm_sensitive"] or "")
    if choice == "remove" and warning_kinds(
            [f for found in findings.values() for f in found]):
        # "Remove the numbers and send": gone from everything stored, the original too.
        submission = without_sensitive(submission, findings)
        findings = scan(submission, _runtime().pii_key)
    elif choice is None:
        warning = _warn_sensitive(page, findings, consent is not None,
                                  controls["_confirm_sensitive"] or "")
        if warning is not None:
            return warning
    # Shares a transaction with the submissions arriving at the same moment (group commit).
    recorded = _writer().write(new_submission(submission, findings))
    log.info("form %s: entry %s %s", form.slug, recorded.entry_id,
             "recorded" if recorded.created else "was already recorded")
    # Committed: only now does the person hear that the message is safe.
    return _received(page, recorded)


@dataclass(frozen=True)
class _Posted:
    """What a POST asked for, as every step of :func:`submit` answers it."""

    form: FormConfig
    lang: str
    embed: bool
    wants_json: bool
    next_url: str
    wtform: Form
    consent_ticked: bool
    token: str | None = None  # the posted form token, once it has passed


def _refuse_token(page: _Posted, token_text: str | None) -> ResponseReturnValue | None:
    """The answer to a missing, forged, expired or too-fast form token; None if it is good."""
    config = _config()
    form = page.form
    token = check_form_token(_token_key(), form.slug, token_text, time.time(),
                             min_seconds=config.min_fill_seconds,
                             max_age=config.token_max_age_seconds)
    if token.ok:
        return None
    log.info("form %s: token refused (%s)", form.slug, token.reason)
    if page.wants_json:
        return _cors(jsonify({
            "error": "token", "reason": token.reason,
            "message": "Get a fresh token with GET /forms/<slug> and send again.",
            "token": make_form_token(_token_key(), form.slug, time.time()),
        }), form), 400
    notice = (_("Thank you. Please check your answers and send the form again.")
              if token.reason == "too-fast" else
              _("This page had expired or was not sent from our form. Your answers are "
                "kept below: please check them and send the form again."))
    return _render(form, page.lang, page.wtform, embed=page.embed, status=400, state=PageState(
        errors={}, sensitive=[], notice=notice, consent_checked=page.consent_ticked,
        next_url=page.next_url))


@dataclass(frozen=True)
class _Accepted:
    uploads: list[NewAttachment]
    consent: ConsentText | None  # the text the person ticked


def _check_answers(page: _Posted, files: list[FileStorage], ticked: str | None
                   ) -> _Accepted | ResponseReturnValue:
    """The accepted uploads and the consent text ticked, or the page (422) saying what to
    correct."""
    form = page.form
    valid = page.wtform.validate()
    errors = first_errors(page.wtform)
    uploads, upload_error = _check_uploads(form, files)
    if upload_error:
        errors["attachments"] = upload_error
    consent: ConsentText | None = None
    if ticked and form.kind == "contact":
        consent = _config().consent_by_version(ticked)
        if consent is None:
            errors["consent"] = _("The consent text has changed. Please read it again and "
                                  "tick the box if you agree.")
    if valid and not errors:
        return _Accepted(uploads, consent)
    mark("invalid")  # the visit statistics' validation errors
    if page.wants_json:
        return _cors(jsonify({"error": "invalid", "errors": errors}), form), 422
    return _render(form, page.lang, page.wtform, embed=page.embed, status=422, state=PageState(
        errors=errors, sensitive=[], consent_checked=consent is not None,
        next_url=page.next_url), token=page.token)


def _warn_sensitive(page: _Posted, findings: Mapping[str, Sequence[Finding]],
                    consent_checked: bool, asked: str = "") -> ResponseReturnValue | None:
    """The warning about what people are asked not to send, if the texts hold any."""
    kinds = warning_kinds([f for found in findings.values() for f in found])
    if not kinds:
        return None
    form = page.form
    if page.wants_json:
        return _cors(jsonify({
            "error": "sensitive-data", "kinds": kinds, "confirm_field": "_confirm_sensitive",
            "choices": {"remove": "the numbers are removed from everything stored, the "
                                  "sealed original included, then the message is sent",
                        "seal": "the message is sent; the numbers are hidden from everyone "
                                "and kept only in the sealed original record"},
            "message": "The text seems to contain information people are asked not to "
                       "send. Send again with _confirm_sensitive=remove or "
                       "_confirm_sensitive=seal (1 means seal).",
        }), form), 422
    state = PageState(errors={}, sensitive=kinds, consent_checked=consent_checked,
                      next_url=page.next_url)
    if asked:
        # A value that is not one of the choices: ask again, saying so.
        state.errors["_confirm_sensitive"] = _("Choose one of the two ways to send.")
    return _render(form, page.lang, page.wtform, embed=page.embed, status=200, state=state,
                   token=page.token)


def _received(page: _Posted, recorded: Recorded) -> ResponseReturnValue:
    """The answer once the submission is committed: JSON, a redirect, or the receipt."""
    mark("submission")
    status_url = _status_url(recorded.status_token or "")
    if page.wants_json:
        response = jsonify({"status": "received", "record_number": recorded.record_number,
                            "status_url": status_url})
        response.status_code = 201
        return _cors(response, page.form)
    if page.next_url:
        separator = "&" if "?" in page.next_url else "?"
        query = urlencode({"record": recorded.record_number})
        return redirect(f"{page.next_url}{separator}{query}", code=303)
    return _confirmation(page.form, page.lang, page.embed, record_number=recorded.record_number,
                         status_url=status_url)


@bp.after_request
def _vary(response: Response) -> Response:
    response.headers.add("Vary", "Accept-Language")
    return response


