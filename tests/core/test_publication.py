"""The publish gate, the records configuration and marks: pure decisions, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from intake.core.consent import ConsentEvent
from intake.core.publication import (
    Mark,
    PublishFacts,
    PublishMode,
    PublishRule,
    RecordsConfigError,
    check_mark,
    load_records_config,
    mark_spans,
    publish_decision,
)
from intake.core.rendition import Audience, EntryValues, render

NOW = datetime(2026, 6, 1, tzinfo=UTC)
AUTO_30 = PublishRule(PublishMode.AUTO_AFTER, timedelta(days=30))
REVIEW = PublishRule(PublishMode.AFTER_REVIEW)
NEVER = PublishRule(PublishMode.NEVER)


def facts(rule: PublishRule = AUTO_30, *, age_days: int = 31, reviewed: bool = False,
          withheld: bool = False, high: int = 0, attachments: int = 0) -> PublishFacts:
    return PublishFacts(rule, NOW - timedelta(days=age_days), reviewed, withheld, high,
                        attachments)


@pytest.mark.parametrize(("given", "allowed", "reason"), [
    (facts(), True, "auto-after"),
    (facts(age_days=29), False, "not-yet"),
    (facts(high=1), False, "unreviewed-findings"),
    (facts(attachments=1), False, "unscanned-attachments"),
    (facts(high=2, reviewed=True), True, "reviewed"),
    (facts(attachments=1, reviewed=True), True, "reviewed"),
    (facts(withheld=True, reviewed=True), False, "withheld"),
    (facts(REVIEW), False, "review-required"),
    (facts(REVIEW, reviewed=True), True, "reviewed"),
    (facts(NEVER, reviewed=True), False, "rule-never"),
    (facts(NEVER, withheld=True), False, "withheld"),
])
def test_the_publish_decision_names_its_reason(given: PublishFacts, allowed: bool,
                                               reason: str) -> None:
    decision = publish_decision(given, NOW)
    assert (decision.allowed, decision.reason) == (allowed, reason)


REASONS = {"personal-information": {"label": {"en": "personal information withheld",
                                              "es": "información personal retenida"},
                                    "citation": "KRS 61.878(1)(a)"}}


def config(**publish: Any) -> dict[str, Any]:
    return {"version": 1, "publish": publish, "reasons": REASONS}


def test_the_most_restrictive_applicable_rule_wins() -> None:
    loaded = load_records_config(config(
        default="after_review", forms={"feedback": {"auto_after": "30d"}, "survey": "never"},
        agencies={"police": "never", "parks": "auto_after: 2w"},
        channels={"email": "after_review"}))
    rule = loaded.rule_for
    assert rule(form_slug="feedback", agency_id="dot", channel="web") == AUTO_30
    assert rule(form_slug="feedback", agency_id="police", channel="web") == NEVER
    assert rule(form_slug="feedback", agency_id="dot", channel="email") == REVIEW
    assert rule(form_slug=None, agency_id="parks", channel="web") == \
        PublishRule(PublishMode.AUTO_AFTER, timedelta(weeks=2))
    assert rule(form_slug="feedback", agency_id="parks", channel="web") == \
        PublishRule(PublishMode.AUTO_AFTER, timedelta(days=30))  # the longer wait
    assert rule(form_slug=None, agency_id=None, channel="web") == REVIEW
    assert loaded.reason("made-up").citation == "KRS 61.878(1)(a)"
    assert loaded.reason("personal-information").text("es") == "información personal retenida"


@pytest.mark.parametrize(("data", "error"), [
    ([], "records.yaml: must be a mapping"),
    ({**config(default="sometimes")}, "publish.default: must be never, after_review"),
    ({**config(default="never", forms={"x": {"auto_after": "30 years"}})},
     "publish.forms.x: auto_after needs a duration"),
    ({**config(default="never", forms={"x": "auto_after: 0d"})},
     "publish.forms.x: auto_after needs a duration"),
    ({**config(default="never"), "version": 2}, "version: must be 1"),
    ({**config(default="never"), "reasons": {}}, "reasons: must list at least one"),
    ({**config(default="never"), "reasons": {"Bad Code": {"label": "x", "citation": "y"}}},
     "reasons.Bad Code: a reason code is lower-case"),
    ({**config(default="never"), "reasons": {"ok": {"label": "x"}}}, "reasons.ok.citation"),
    ({**config(default="never"), "automatic_reason": "other"},
     "automatic_reason: 'other' is not one of the reasons"),
    ({**config(default="never"), "publsh": {}}, "unknown key(s) publsh"),
])
def test_a_bad_records_file_is_refused_with_every_problem(data: Any, error: str) -> None:
    with pytest.raises(RecordsConfigError) as raised:
        load_records_config(data)
    assert any(error in e for e in raised.value.errors), raised.value.errors


TEXT = "Call Quimbly at the depot. quimbly knows. Depot 7."


@pytest.mark.parametrize(("mark", "spans"), [
    (Mark("literal", "quimbly", "r"), [(5, 12), (27, 34)]),
    (Mark("literal", "quimbly", "r", place="subject"), []),
    (Mark("regex", r"depot( \d)?", "r"), [(20, 25), (42, 49)]),
    (Mark("span", "", "r", place="body", start=5, end=12), [(5, 12)]),
    (Mark("span", "", "r", place="body", start=40, end=999), [(40, 50)]),
    (Mark("regex", "(", "r"), []),
])
def test_a_mark_covers_what_it_says(mark: Mark, spans: list[tuple[int, int]]) -> None:
    assert mark_spans(mark, "body", TEXT) == spans


@pytest.mark.parametrize(("mark", "problem"), [
    (Mark("literal", "quimbly", "personal-information"), None),
    (Mark("literal", "quimbly", "nope"), "unknown-reason"),
    (Mark("erase", "quimbly", "personal-information"), "unknown-kind"),
    (Mark("literal", " ", "personal-information"), "pattern-length"),
    (Mark("literal", "x" * 201, "personal-information"), "pattern-length"),
    (Mark("regex", "a|", "personal-information"), "regex-matches-empty"),
    (Mark("regex", "[", "personal-information"), "invalid-regex"),
    (Mark("literal", "zeppelin", "personal-information"), "no-match"),
    (Mark("span", "", "personal-information", place="body", start=3, end=3),
     "span-out-of-range"),
    (Mark("span", "", "personal-information", place="field:x", start=0, end=1),
     "unknown-place"),
])
def test_a_mark_is_checked_before_it_is_kept(mark: Mark, problem: str | None) -> None:
    assert check_mark(mark, {"subject": "Depot", "body": TEXT}, REASONS) == problem


def _render(audience: Audience, marks: list[Mark]) -> Any:
    values = EntryValues(texts={"subject": "Depot", "body": TEXT}, name="Ann Quimbly",
                         email="ann@example.org")
    consents: list[ConsentEvent] = []
    return render(values, audience, consents=consents, findings={}, agency_id="dot",
                  relay_address="reply+t@relay.example", at=NOW, marks=marks)


def test_marks_apply_to_the_public_and_records_officers_only_and_say_their_reason() -> None:
    marks = [Mark("literal", "depot", "law-enforcement")]
    public = _render(Audience.PUBLIC, marks)
    assert "depot" not in public.body.lower() and "depot" not in public.subject.lower()
    removed = [s for s in public.segments["body"] if s.removed]
    assert {s.reason for s in removed} >= {"mark:law-enforcement"}
    assert all(s.reason for s in removed)
    assert "depot" not in _render(Audience.RECORDS_OFFICER, marks).body.lower()
    assert "depot" in _render(Audience.AGENCY, marks).body.lower()
    assert "depot" in _render(Audience.SUBMITTER, marks).body.lower()
    # Not a mark: fail closed.
    broken = _render(Audience.PUBLIC, ["depot"])  # type: ignore[list-item]
    assert broken.reason == "invalid-input" and "depot" not in broken.body.lower()
