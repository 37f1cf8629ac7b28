"""The publish gate and the records officers' redaction marks: pure decisions.

Three things live here, each values in and decisions out:

- **The records configuration** (``records.yaml``): when an entry may become
  public (``publish: never | after_review | {auto_after: 30d}``, by form,
  agency and channel; where several apply the most restrictive wins), and the
  reason codes a redaction or a withhold names, each with its labels and the
  state's legal citation (``personal information withheld — KRS
  61.878(1)(a)``). :func:`load_records_config` lists every problem.
- **The publish decision** (:func:`publish_decision`): allowed, or refused with
  a reason (``withheld``, ``rule-never``, ``unreviewed-findings``,
  ``unscanned-attachments``, ``review-required``, ``not-yet``, ``automatic-mail``: an
  auto-reply, bounce, bulk or spam message is never published, even when reviewed).
- **Marks** (:class:`Mark`): literal text, a regular expression, or a span of
  one place; :func:`mark_spans` finds what a mark covers in a text, which
  :func:`intake.core.rendition.render` then removes (the stored text never
  changes).

Pure standard library: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

__all__ = [
    "MARK_HOWS",
    "MARK_SCOPES",
    "Mark",
    "PublishDecision",
    "PublishFacts",
    "PublishMode",
    "PublishRule",
    "ReasonCode",
    "RecordsConfig",
    "RecordsConfigError",
    "check_mark",
    "load_records_config",
    "mark_reason",
    "mark_spans",
    "publish_decision",
]

MARK_HOWS = ("literal", "regex", "span")
MARK_SCOPES = ("entry", "attachment")
#: What a regular expression mark may be: short, and not matching the empty string.
MAX_PATTERN = 200
_DURATION = re.compile(r"^\s*(\d{1,4})\s*([dwh])\s*$")
_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


class RecordsConfigError(ValueError):
    """The records configuration is not valid; ``errors`` lists every problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


class PublishMode(StrEnum):
    NEVER = "never"
    AFTER_REVIEW = "after_review"
    AUTO_AFTER = "auto_after"


@dataclass(frozen=True)
class PublishRule:
    """When an entry may be public: never, once reviewed, or ``after`` its receipt."""

    mode: PublishMode
    after: timedelta | None = None

    @property
    def strictness(self) -> tuple[int, float]:
        """Sort key: the greater, the more restrictive."""
        rank = {PublishMode.AUTO_AFTER: 0, PublishMode.AFTER_REVIEW: 1, PublishMode.NEVER: 2}
        return rank[self.mode], (self.after or timedelta()).total_seconds()

    def describe(self) -> str:
        if self.mode is PublishMode.AUTO_AFTER and self.after is not None:
            return f"auto_after: {self.after.days}d" if self.after.days else \
                f"auto_after: {int(self.after.total_seconds() // 3600)}h"
        return self.mode.value


@dataclass(frozen=True)
class ReasonCode:
    """A reason a text is withheld from the public, with the law that allows it."""

    code: str
    label: Mapping[str, str]
    citation: str

    def text(self, lang: str) -> str:
        return self.label.get(lang) or self.label.get("en") or self.code


@dataclass(frozen=True)
class RecordsConfig:
    default: PublishRule
    forms: Mapping[str, PublishRule] = field(default_factory=dict)
    agencies: Mapping[str, PublishRule] = field(default_factory=dict)
    channels: Mapping[str, PublishRule] = field(default_factory=dict)
    reasons: Mapping[str, ReasonCode] = field(default_factory=dict)
    #: The reason code of the automatic redactions (PII the detector found, contact data).
    automatic: str = "personal-information"

    def rule_for(self, *, form_slug: str | None, agency_id: str | None,
                 channel: str) -> PublishRule:
        """The most restrictive rule among those of the form, agency and channel."""
        found = [r for r in (self.forms.get(form_slug or ""), self.agencies.get(agency_id or ""),
                             self.channels.get(channel)) if r is not None]
        return max(found, key=lambda r: r.strictness) if found else self.default

    def reason(self, code: str) -> ReasonCode:
        """The reason code ``code``, or the automatic one for any reason it does not know."""
        return self.reasons.get(code) or self.reasons[self.automatic]


def _rule(value: Any, where: str, errors: list[str]) -> PublishRule | None:
    if value in ("never", "after_review"):
        return PublishRule(PublishMode(value))
    if isinstance(value, Mapping) and set(value) == {"auto_after"}:
        value = f"auto_after: {value['auto_after']}"
    if isinstance(value, str) and value.startswith("auto_after"):
        duration = _DURATION.match(value[len("auto_after"):].lstrip(" :"))
        if duration and int(duration.group(1)) > 0:
            return PublishRule(PublishMode.AUTO_AFTER,
                               int(duration.group(1)) * _UNITS[duration.group(2)])
        errors.append(f"{where}: auto_after needs a duration such as 30d, 2w or 12h")
        return None
    errors.append(f"{where}: must be never, after_review or {{auto_after: 30d}}, "
                  f"not {value!r}")
    return None


def _rules(value: Any, where: str, errors: list[str]) -> dict[str, PublishRule]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errors.append(f"{where}: must be a mapping of names to rules")
        return {}
    rules: dict[str, PublishRule] = {}
    for name, raw in value.items():
        rule = _rule(raw, f"{where}.{name}", errors)
        if rule is not None:
            rules[str(name)] = rule
    return rules


def _reasons(value: Any, where: str, errors: list[str]) -> dict[str, ReasonCode]:
    if not isinstance(value, Mapping) or not value:
        errors.append(f"{where}: must list at least one reason code")
        return {}
    reasons: dict[str, ReasonCode] = {}
    for code, raw in value.items():
        at = f"{where}.{code}"
        if not isinstance(code, str) or not _CODE.match(code):
            errors.append(f"{at}: a reason code is lower-case letters, digits and dashes")
            continue
        if not isinstance(raw, Mapping):
            errors.append(f"{at}: must have a label and a citation")
            continue
        label = raw.get("label")
        if isinstance(label, str):
            label = {"en": label}
        citation = raw.get("citation")
        unknown = set(raw) - {"label", "citation"}
        if unknown:
            errors.append(f"{at}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        if not isinstance(label, Mapping) or not isinstance(label.get("en"), str) \
                or not all(isinstance(v, str) and v.strip() for v in label.values()):
            errors.append(f"{at}.label: a text, or {{en: ..., es: ...}} texts")
            continue
        if not isinstance(citation, str) or not citation.strip() or len(citation) > 200:
            errors.append(f"{at}.citation: the legal citation (at most 200 characters)")
            continue
        reasons[code] = ReasonCode(code, {str(k): str(v) for k, v in label.items()},
                                   citation.strip())
    return reasons


def load_records_config(data: Any, source: str = "records.yaml") -> RecordsConfig:
    """The records configuration from parsed YAML; :class:`RecordsConfigError` lists every
    problem as ``source: where: message``."""
    if not isinstance(data, Mapping):
        raise RecordsConfigError([f"{source}: must be a mapping"])
    errors: list[str] = []
    unknown = set(data) - {"version", "publish", "reasons", "automatic_reason"}
    if unknown:
        errors.append(f"{source}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    if data.get("version") != 1:
        errors.append(f"{source}: version: must be 1")
    publish = data.get("publish")
    if not isinstance(publish, Mapping):
        errors.append(f"{source}: publish: must be a mapping with at least a default")
        publish = {}
    bad = set(publish) - {"default", "forms", "agencies", "channels"}
    if bad:
        errors.append(f"{source}: publish: unknown key(s) {', '.join(sorted(map(str, bad)))}")
    default = _rule(publish.get("default", "never"), f"{source}: publish.default", errors)
    forms = _rules(publish.get("forms"), f"{source}: publish.forms", errors)
    agencies = _rules(publish.get("agencies"), f"{source}: publish.agencies", errors)
    channels = _rules(publish.get("channels"), f"{source}: publish.channels", errors)
    reasons = _reasons(data.get("reasons"), f"{source}: reasons", errors)
    automatic = data.get("automatic_reason", "personal-information")
    if reasons and automatic not in reasons:
        errors.append(f"{source}: automatic_reason: {automatic!r} is not one of the reasons")
    if errors or default is None:
        raise RecordsConfigError(errors)
    return RecordsConfig(default=default, forms=forms, agencies=agencies, channels=channels,
                         reasons=reasons, automatic=str(automatic))


# -- the publish decision ------------------------------------------------------------------


@dataclass(frozen=True)
class PublishFacts:
    """What the decision needs to know about one entry."""

    rule: PublishRule
    received_at: datetime
    reviewed: bool
    withheld: bool
    high_findings: int  # high-severity PII findings (a review clears them)
    attachments: int  # attachments are not scanned for publication: a review looks at them
    destroyed: bool = False  # retention destroyed its personal data: never public again
    automatic: bool = False  # stored from automatic mail (auto-reply, bounce, bulk, spam ...)


@dataclass(frozen=True)
class PublishDecision:
    allowed: bool
    reason: str


def publish_decision(facts: PublishFacts, now: datetime) -> PublishDecision:
    """May the entry be public now? A refusal names why (see the module docstring)."""
    if facts.destroyed:
        return PublishDecision(False, "destroyed")
    if facts.withheld:
        return PublishDecision(False, "withheld")
    if facts.automatic:
        return PublishDecision(False, "automatic-mail")
    if facts.rule.mode is PublishMode.NEVER:
        return PublishDecision(False, "rule-never")
    if facts.reviewed:
        return PublishDecision(True, "reviewed")
    if facts.high_findings:
        return PublishDecision(False, "unreviewed-findings")
    if facts.attachments:
        return PublishDecision(False, "unscanned-attachments")
    if facts.rule.mode is PublishMode.AFTER_REVIEW or facts.rule.after is None:
        return PublishDecision(False, "review-required")
    if now < facts.received_at + facts.rule.after:
        return PublishDecision(False, "not-yet")
    return PublishDecision(True, "auto-after")


# -- marks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """A records officer's redaction. ``place`` is set for a span (its text), or for a
    literal or regex limited to one place; None applies to every text of the entry."""

    how: str
    pattern: str
    reason_code: str
    place: str | None = None
    start: int | None = None
    end: int | None = None


def mark_reason(code: str) -> str:
    """The rendition's removal reason for a mark with reason code ``code``."""
    return f"mark:{code}"


def check_mark(mark: Mark, texts: Mapping[str, str], reasons: Iterable[str]) -> str | None:
    """Why ``mark`` cannot be added to an entry with ``texts``, or None if it can."""
    if mark.reason_code not in set(reasons):
        return "unknown-reason"
    if mark.how not in MARK_HOWS:
        return "unknown-kind"
    if mark.how == "span":
        text = texts.get(mark.place or "")
        if text is None:
            return "unknown-place"
        if mark.start is None or mark.end is None or not 0 <= mark.start < mark.end <= len(text):
            return "span-out-of-range"
        return None
    if mark.place is not None and mark.place not in texts:
        return "unknown-place"
    if not mark.pattern.strip() or len(mark.pattern) > MAX_PATTERN:
        return "pattern-length"
    if mark.how == "regex":
        try:
            compiled = re.compile(mark.pattern, re.IGNORECASE)
        except re.error:
            return "invalid-regex"
        if compiled.fullmatch(""):
            return "regex-matches-empty"
    if not any(mark_spans(mark, place, text) for place, text in texts.items()):
        return "no-match"
    return None


def mark_spans(mark: Mark, place: str, text: str) -> list[tuple[int, int]]:
    """The spans of ``text`` (at ``place``) that ``mark`` covers."""
    if mark.place is not None and mark.place != place:
        return []
    if mark.how == "span":
        if mark.start is None or mark.end is None:
            return []
        start, end = max(0, mark.start), min(len(text), mark.end)
        return [(start, end)] if start < end else []
    if not mark.pattern.strip():
        return []
    try:
        pattern = re.compile(mark.pattern if mark.how == "regex" else re.escape(mark.pattern),
                             re.IGNORECASE)
    except re.error:
        return []
    return [m.span() for m in pattern.finditer(text) if m.end() > m.start()]
