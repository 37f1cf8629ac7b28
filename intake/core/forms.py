"""Public forms as data: configuration, survey definitions, tokens, origins, P6 warnings.

Pure decisions for the web intake (``intake.web.forms``):

* :func:`load_forms_config` reads ``forms.yaml`` (which forms exist, their
  kind, titles, allowed embedding origins, attachment policy, consent texts)
  and :func:`load_survey` a survey file; both report every problem as
  ``file: message`` in a :class:`FormsConfigError`;
* :func:`make_form_token` / :func:`check_form_token`: the signed, time-stamped
  token a public form carries in a hidden field instead of a session cookie;
* :func:`origin_of`, :func:`origin_allowed`, :func:`safe_next`: which agency
  sites may embed a form, post to it, and be redirected to (no open redirect);
* :func:`validate_survey_answers`: structured answers or field errors;

Standard library and ``intake.core.pii`` only: no I/O, no framework.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "FORM_KINDS",
    "LANGUAGES",
    "QUESTION_TYPES",
    "AttachmentPolicy",
    "ConsentText",
    "FormConfig",
    "FormsConfig",
    "FormsConfigError",
    "Question",
    "Survey",
    "TokenCheck",
    "check_form_token",
    "load_forms_config",
    "load_survey",
    "make_form_token",
    "origin_allowed",
    "origin_of",
    "safe_next",
    "validate_survey_answers",
]

FORM_KINDS = ("contact", "feedback", "survey")
LANGUAGES = ("en", "es")
QUESTION_TYPES = ("single", "multiple", "scale", "text")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Values of choices end up in Entry.fields and in routing conditions: keep them tame.
VALUE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_TEXT_ANSWER = 5_000


class FormsConfigError(ValueError):
    """A forms or survey file that cannot work; one line per problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


Text = Mapping[str, str]  # language -> text


def pick(text: Text, lang: str) -> str:
    """The text in ``lang``, else English, else any."""
    return text.get(lang) or text.get("en") or next(iter(text.values()), "")


@dataclass(frozen=True)
class AttachmentPolicy:
    allowed: bool = False
    max_files: int = 3
    max_bytes: int = 5 * 1024 * 1024  # per file
    # Checked against the type sniffed from the content, never the name.
    types: tuple[str, ...] = ("application/pdf", "image/png", "image/jpeg", "text/plain")


@dataclass(frozen=True)
class ConsentText:
    """One versioned consent text, exactly as shown beside its checkbox."""

    version: str
    text: str


@dataclass(frozen=True)
class Choice:
    value: str
    label: Text


@dataclass(frozen=True)
class Question:
    id: str
    type: str  # one of QUESTION_TYPES
    label: Text
    required: bool = False
    choices: tuple[Choice, ...] = ()
    hint: Text = field(default_factory=dict)
    # For "scale": labels of the two ends (1 and 5).
    low: Text = field(default_factory=dict)
    high: Text = field(default_factory=dict)
    max_length: int = 2_000

    def choice_values(self) -> tuple[str, ...]:
        if self.type == "scale":
            return ("1", "2", "3", "4", "5")
        return tuple(c.value for c in self.choices)


@dataclass(frozen=True)
class Survey:
    id: str
    title: Text
    intro: Text
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class FormConfig:
    slug: str
    kind: str
    title: Text
    intro: Text = field(default_factory=dict)
    allowed_origins: tuple[str, ...] = ()
    attachments: AttachmentPolicy = field(default_factory=AttachmentPolicy)
    topics: tuple[Choice, ...] = ()
    survey: Survey | None = None


@dataclass(frozen=True)
class FormsConfig:
    forms: Mapping[str, FormConfig]
    # language -> the consent text shown (and recorded) in that language
    consent: Mapping[str, ConsentText]
    min_fill_seconds: float = 3.0
    token_max_age_seconds: float = 24 * 3600.0

    def consent_for(self, lang: str) -> ConsentText:
        return self.consent.get(lang) or self.consent["en"]

    def consent_by_version(self, version: str) -> ConsentText | None:
        for text in self.consent.values():
            if text.version == version:
                return text
        return None


# -- loading ---------------------------------------------------------------------


def _text(value: Any, where: str, errors: list[str], required: bool = True) -> dict[str, str]:
    if value is None:
        if required:
            errors.append(f"{where}: missing")
        return {}
    if isinstance(value, str):
        return {"en": value}
    if isinstance(value, Mapping):
        out = {}
        for lang, text in value.items():
            if lang not in LANGUAGES:
                errors.append(f"{where}: unknown language {lang!r} (expected en or es)")
            elif not isinstance(text, str) or not text.strip():
                errors.append(f"{where}.{lang}: must be non-empty text")
            else:
                out[str(lang)] = text.strip()
        if required and "en" not in out:
            errors.append(f"{where}: an English ('en') text is required")
        return out
    errors.append(f"{where}: must be text or a mapping of language to text")
    return {}


def _choices(value: Any, where: str, errors: list[str]) -> tuple[Choice, ...]:
    if not isinstance(value, list) or not value:
        errors.append(f"{where}: must be a non-empty list")
        return ()
    out: list[Choice] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        here = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            errors.append(f"{here}: must be a mapping with value and label")
            continue
        raw = item.get("value")
        if not isinstance(raw, str) or not VALUE_RE.match(raw):
            errors.append(f"{here}.value: must be lower-case letters, digits, - or _")
            continue
        if raw in seen:
            errors.append(f"{here}.value: duplicate {raw!r}")
        seen.add(raw)
        out.append(Choice(raw, _text(item.get("label"), f"{here}.label", errors)))
    return tuple(out)


def _unknown_keys(data: Mapping[str, Any], known: Iterable[str], where: str,
                  errors: list[str]) -> None:
    for key in data:
        if key not in known:
            errors.append(f"{where}: unknown key {key!r}")


def load_survey(data: Any, source: str = "survey") -> Survey:
    """A survey from parsed YAML; :class:`FormsConfigError` lists every problem."""
    errors: list[str] = []
    if not isinstance(data, Mapping):
        raise FormsConfigError([f"{source}: must be a mapping"])
    _unknown_keys(data, ("version", "id", "title", "intro", "questions"), source, errors)
    if data.get("version") != 1:
        errors.append(f"{source}: version must be 1")
    survey_id = data.get("id")
    if not isinstance(survey_id, str) or not SLUG_RE.match(survey_id):
        errors.append(f"{source}: id must be a lower-case slug")
        survey_id = "?"
    title = _text(data.get("title"), f"{source}: title", errors)
    intro = _text(data.get("intro"), f"{source}: intro", errors, required=False)
    raw_questions = data.get("questions")
    questions: list[Question] = []
    if not isinstance(raw_questions, list) or not raw_questions:
        errors.append(f"{source}: questions must be a non-empty list")
        raw_questions = []
    if len(raw_questions) > 50:
        errors.append(f"{source}: at most 50 questions")
    seen: set[str] = set()
    for i, q in enumerate(raw_questions):
        question = _question(q, source, f"{source}: questions[{i}]", seen, errors)
        if question is not None:
            questions.append(question)
    if errors:
        raise FormsConfigError(errors)
    return Survey(id=str(survey_id), title=title, intro=intro, questions=tuple(questions))


def _question(q: Any, source: str, where: str, seen: set[str],
              errors: list[str]) -> Question | None:
    """One survey question, its id added to ``seen``; None if it cannot be read at all."""
    if not isinstance(q, Mapping):
        errors.append(f"{where}: must be a mapping")
        return None
    _unknown_keys(q, ("id", "type", "label", "required", "choices", "hint", "low", "high",
                      "max_length"), where, errors)
    qid = q.get("id")
    if not isinstance(qid, str) or not ID_RE.match(qid):
        errors.append(f"{where}.id: must start with a letter; letters, digits and _")
        return None
    where = f"{source}: question {qid!r}"
    if qid in seen:
        errors.append(f"{where}: duplicate id")
    seen.add(qid)
    qtype = q.get("type")
    if qtype not in QUESTION_TYPES:
        errors.append(f"{where}: type must be one of {', '.join(QUESTION_TYPES)}")
        return None
    required = q.get("required", False)
    if not isinstance(required, bool):
        errors.append(f"{where}: required must be true or false")
        required = False
    choices: tuple[Choice, ...] = ()
    if qtype in ("single", "multiple"):
        choices = _choices(q.get("choices"), f"{where}: choices", errors)
    elif "choices" in q:
        errors.append(f"{where}: choices only apply to single and multiple questions")
    max_length = q.get("max_length", 2_000)
    if not isinstance(max_length, int) or not 1 <= max_length <= MAX_TEXT_ANSWER:
        errors.append(f"{where}: max_length must be 1 to {MAX_TEXT_ANSWER}")
        max_length = 2_000
    return Question(
        id=qid, type=qtype, label=_text(q.get("label"), f"{where}: label", errors),
        required=required, choices=choices,
        hint=_text(q.get("hint"), f"{where}: hint", errors, required=False),
        low=_text(q.get("low"), f"{where}: low", errors, required=False),
        high=_text(q.get("high"), f"{where}: high", errors, required=False),
        max_length=max_length,
    )


def _origin_list(value: Any, where: str, errors: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        errors.append(f"{where}: must be a list of origins")
        return ()
    out = []
    for item in value:
        origin = origin_of(item) if isinstance(item, str) else None
        if origin is None or origin != item.rstrip("/").lower():
            errors.append(f"{where}: {item!r} is not an origin like https://www.agency.gov")
            continue
        out.append(origin)
    return tuple(out)


def _attachments(value: Any, where: str, errors: list[str]) -> AttachmentPolicy:
    if value is None or value is False:
        return AttachmentPolicy(allowed=False)
    if not isinstance(value, Mapping):
        errors.append(f"{where}: must be a mapping (allowed, max_files, max_bytes, types)")
        return AttachmentPolicy(allowed=False)
    _unknown_keys(value, ("allowed", "max_files", "max_bytes", "types"), where, errors)
    default = AttachmentPolicy()
    allowed = value.get("allowed", True)
    max_files = value.get("max_files", default.max_files)
    max_bytes = value.get("max_bytes", default.max_bytes)
    types = value.get("types", list(default.types))
    if not isinstance(allowed, bool):
        errors.append(f"{where}.allowed: must be true or false")
    if not isinstance(max_files, int) or not 1 <= max_files <= 10:
        errors.append(f"{where}.max_files: must be 1 to 10")
        max_files = default.max_files
    if not isinstance(max_bytes, int) or not 1 <= max_bytes <= 25 * 1024 * 1024:
        errors.append(f"{where}.max_bytes: must be 1 to 26214400 (25 MiB)")
        max_bytes = default.max_bytes
    if not isinstance(types, list) or not all(isinstance(t, str) and "/" in t for t in types):
        errors.append(f"{where}.types: must be a list of media types like application/pdf")
        types = list(default.types)
    return AttachmentPolicy(allowed=bool(allowed), max_files=max_files, max_bytes=max_bytes,
                            types=tuple(types))


def load_forms_config(data: Any, source: str = "forms.yaml",
                      surveys: Mapping[str, Any] | None = None) -> FormsConfig:
    """The forms configuration from parsed YAML.

    ``surveys`` maps the survey file names a form refers to (``survey:
    surveys/x.yaml``) to their parsed YAML; the caller reads the files.
    """
    errors: list[str] = []
    if not isinstance(data, Mapping):
        raise FormsConfigError([f"{source}: must be a mapping"])
    _unknown_keys(data, ("version", "forms", "consent", "min_fill_seconds",
                         "token_max_age_seconds"), source, errors)
    if data.get("version") != 1:
        errors.append(f"{source}: version must be 1")
    consent = _consent_texts(data.get("consent"), source, errors)
    min_fill = _seconds(data, "min_fill_seconds", 3, 0, 600, source, errors)
    max_age = _seconds(data, "token_max_age_seconds", 24 * 3600, 60, 30 * 24 * 3600, source,
                       errors)
    forms: dict[str, FormConfig] = {}
    raw_forms = data.get("forms")
    if not isinstance(raw_forms, list) or not raw_forms:
        errors.append(f"{source}: forms must be a non-empty list")
        raw_forms = []
    for i, item in enumerate(raw_forms):
        form = _form(item, source, f"{source}: forms[{i}]", surveys, forms, errors)
        if form is not None:
            forms[form.slug] = form
    if errors:
        raise FormsConfigError(errors)
    return FormsConfig(forms=forms, consent=consent, min_fill_seconds=min_fill,
                       token_max_age_seconds=max_age)


def _consent_texts(raw_consent: Any, source: str, errors: list[str]) -> dict[str, ConsentText]:
    """Language -> the versioned consent text; every language needs its own version."""
    consent: dict[str, ConsentText] = {}
    if not isinstance(raw_consent, Mapping) or "en" not in raw_consent:
        errors.append(f"{source}: consent must map each language (at least en) to "
                      "a version and a text")
        return consent
    for lang, item in raw_consent.items():
        where = f"{source}: consent.{lang}"
        if lang not in LANGUAGES:
            errors.append(f"{where}: unknown language")
            continue
        if not isinstance(item, Mapping) or not isinstance(item.get("version"), str) \
                or not isinstance(item.get("text"), str) or not item["text"].strip() \
                or not 1 <= len(item["version"]) <= 64:
            errors.append(f"{where}: needs a version (1-64 characters) and a text")
            continue
        consent[str(lang)] = ConsentText(item["version"], " ".join(item["text"].split()))
    versions = [c.version for c in consent.values()]
    if len(set(versions)) != len(versions):
        errors.append(f"{source}: each language's consent text needs its own version")
    return consent


def _seconds(data: Mapping[str, Any], key: str, default: int, low: int, high: int,
             source: str, errors: list[str]) -> float:
    value = data.get(key, default)
    if not isinstance(value, int | float) or not low <= value <= high:
        errors.append(f"{source}: {key} must be {low} to {high}")
        value = default
    return float(value)


def _form(item: Any, source: str, where: str, surveys: Mapping[str, Any] | None,
          taken: Mapping[str, FormConfig], errors: list[str]) -> FormConfig | None:
    """One form of forms.yaml (``taken``: the slugs before it); None if it cannot be read."""
    if not isinstance(item, Mapping):
        errors.append(f"{where}: must be a mapping")
        return None
    _unknown_keys(item, ("slug", "kind", "title", "intro", "allowed_origins", "attachments",
                         "topics", "survey"), where, errors)
    slug = item.get("slug")
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        errors.append(f"{where}.slug: must be a lower-case slug")
        return None
    where = f"{source}: form {slug!r}"
    if slug in taken:
        errors.append(f"{where}: duplicate slug")
    kind = item.get("kind")
    if kind not in FORM_KINDS:
        errors.append(f"{where}: kind must be one of {', '.join(FORM_KINDS)}")
        return None
    survey = None
    if kind == "survey":
        name = item.get("survey")
        if not isinstance(name, str) or surveys is None or name not in surveys:
            errors.append(f"{where}: survey must name a survey file that exists")
        else:
            try:
                survey = load_survey(surveys[name], name)
            except FormsConfigError as exc:
                errors.extend(exc.errors)
    elif "survey" in item:
        errors.append(f"{where}: survey only applies to kind survey")
    topics: tuple[Choice, ...] = ()
    if "topics" in item:
        if kind != "contact":
            errors.append(f"{where}: topics only apply to kind contact")
        else:
            topics = _choices(item["topics"], f"{where}: topics", errors)
    attachments = _attachments(item.get("attachments"), f"{where}: attachments", errors)
    if attachments.allowed and kind != "contact":
        errors.append(f"{where}: attachments are only offered on contact forms")
    return FormConfig(
        slug=slug, kind=kind,
        title=_text(item.get("title"), f"{where}: title", errors),
        intro=_text(item.get("intro"), f"{where}: intro", errors, required=False),
        allowed_origins=_origin_list(item.get("allowed_origins"),
                                     f"{where}: allowed_origins", errors),
        attachments=attachments, topics=topics, survey=survey,
    )


# -- the form token --------------------------------------------------------------


@dataclass(frozen=True)
class TokenCheck:
    ok: bool
    reason: str  # "ok", "missing", "malformed", "bad-signature", "expired", "too-fast"


def _token_mac(key: bytes, slug: str, issued: int) -> str:
    message = f"form-token|{slug}|{issued}".encode()
    return hmac.digest(key, message, "sha256").hex()[:32]


def make_form_token(key: bytes, slug: str, now: float) -> str:
    """``<issued unix seconds>.<mac>``: proves this server issued the page, and when."""
    issued = int(now)
    return f"{issued}.{_token_mac(key, slug, issued)}"


def check_form_token(key: bytes, slug: str, token: str | None, now: float, *,
                     min_seconds: float, max_age: float) -> TokenCheck:
    if not token:
        return TokenCheck(False, "missing")
    issued_raw, _, mac = token.partition(".")
    if not issued_raw.isdigit() or len(issued_raw) > 12 or len(mac) != 32:
        return TokenCheck(False, "malformed")
    issued = int(issued_raw)
    if not hmac.compare_digest(mac, _token_mac(key, slug, issued)):
        return TokenCheck(False, "bad-signature")
    age = now - issued
    if age > max_age or age < -60:
        return TokenCheck(False, "expired")
    if age < min_seconds:
        return TokenCheck(False, "too-fast")
    return TokenCheck(True, "ok")


# -- origins ---------------------------------------------------------------------


def origin_of(url: str | None) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, lower-cased; None if not one."""
    if not url or any(c in url for c in "\r\n\t\\ "):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host or parts.username or parts.password:
        return None
    default = {"http": 80, "https": 443}[scheme]
    if port is None or port == default:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def origin_allowed(origin: str | None, allowed: Iterable[str]) -> bool:
    normalised = origin_of(origin)
    return normalised is not None and normalised in set(allowed)


def safe_next(next_url: str | None, allowed: Iterable[str]) -> str | None:
    """``_next`` if it is an absolute http(s) URL on an allowed origin; else None."""
    if not next_url or len(next_url) > 2_000:
        return None
    return next_url if origin_allowed(next_url, allowed) else None


# -- survey answers ----------------------------------------------------------------


@dataclass(frozen=True)
class SurveyResult:
    answers: dict[str, Any]  # question id -> str | list[str] | int | None
    errors: dict[str, str]  # question id -> error code: "required", "choice", "too-long"


def validate_survey_answers(survey: Survey, data: Mapping[str, Sequence[str]]) -> SurveyResult:
    """Structured answers (scale as int, multiple as list) or error codes per question."""
    answers: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for q in survey.questions:
        values = [v.strip() for v in data.get(q.id, ()) if isinstance(v, str) and v.strip()]
        if q.type == "multiple":
            allowed = q.choice_values()
            chosen = list(dict.fromkeys(values))
            if any(v not in allowed for v in chosen):
                errors[q.id] = "choice"
            elif q.required and not chosen:
                errors[q.id] = "required"
            else:
                answers[q.id] = chosen
            continue
        if len(values) > 1:
            errors[q.id] = "choice"
            continue
        value = values[0] if values else None
        if value is None:
            if q.required:
                errors[q.id] = "required"
            else:
                answers[q.id] = None
        elif q.type == "text":
            if len(value) > q.max_length:
                errors[q.id] = "too-long"
            else:
                answers[q.id] = value
        elif value not in q.choice_values():
            errors[q.id] = "choice"
        else:
            answers[q.id] = int(value) if q.type == "scale" else value
    return SurveyResult(answers, errors)
