"""Releases under law in the public rendition: one value, exactly, and never P5/P6.

A records officer's release (:class:`intake.core.rendition.Release`) keeps ONE automatic
removal of the ``public`` and ``records_officer`` renditions. Whatever is released, the
submitter's own e-mail address and the P6 values stay out: the property releases every
removal the public rendition makes and checks what comes out.
"""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.core.pii import Finding
from intake.core.publication import Mark
from intake.core.rendition import (
    RELEASED,
    Audience,
    EntryValues,
    Release,
    Rendition,
    render,
)
from tests.core.test_rendition_properties import (
    RELAY,
    T0,
    everything,
    leaks,
    make_person,
    text_with_findings,
)

BODY = "Commissioner Hollis Quade approved it. Write to hq@example.org. Thanks, Hollis Quade"
VALUES = EntryValues(texts={"subject": "Lane closure", "body": BODY}, name="Hollis Quade",
                     email="hq@example.org")
NAME = BODY.index("Hollis Quade")


def release(place: str, start: int, end: int, kind: str = "name") -> Release:
    return Release(place, start, end, kind)


def public(values: EntryValues = VALUES, *releases: Release, audience: Audience = Audience.PUBLIC,
           marks: tuple[Mark, ...] = ()) -> Rendition:
    return render(values, audience, consents=[], findings={}, agency_id="dot",
                  relay_address=RELAY, at=T0, marks=marks, releases=releases)


def test_a_release_shows_that_one_occurrence_and_nothing_else() -> None:
    r = public(VALUES, release("body", NAME, NAME + 12))
    assert r.body.count("Hollis Quade") == 1
    assert r.body.startswith("Commissioner Hollis Quade approved it.")
    assert "hq@example.org" not in r.body
    [kept] = [s for s in r.segments["body"] if s.reason == RELEASED]
    assert (kept.text, kept.kind, kept.removed) == ("Hollis Quade", "name", False)
    assert r.name.value is None  # the contact block stays withheld
    officer = public(VALUES, release("body", NAME, NAME + 12),
                     audience=Audience.RECORDS_OFFICER)
    assert officer.body == r.body


def test_a_release_whose_place_span_or_kind_does_not_match_releases_nothing() -> None:
    before = public().body
    assert "Quade" not in before
    for wrong in (release("subject", NAME, NAME + 12),        # another place
                  release("body", NAME, NAME + 12, "phone"),  # another kind
                  release("body", NAME, NAME + 11),           # part of the removal
                  release("body", NAME - 1, NAME + 12),       # more than the removal
                  release("body", 0, 12),                     # no removal there
                  release("body", NAME, 10_000),              # outside the text
                  release("body", NAME, NAME + 12, "ssn")):   # never releasable
        assert public(VALUES, wrong).body == before, wrong


def test_the_submitters_address_and_p6_values_are_never_released() -> None:
    at = BODY.index("hq@example.org")
    assert "hq@example.org" not in public(VALUES, release("body", at, at + 14, "email")).body
    body = "My SSN is 219-45-6781."
    ssn = Finding(kind="ssn", start=10, end=21, detector="test", severity="high",
                  value_hash="0" * 64)
    values = EntryValues(texts={"subject": "x", "body": body})
    r = render(values, Audience.PUBLIC, consents=[], findings={"body": [ssn]},
               agency_id=None, relay_address=RELAY, at=T0,
               releases=[release("body", 10, 21, "ssn")])
    assert "219-45-6781" not in r.body


def test_a_mark_over_a_released_value_still_wins_and_other_audiences_ignore_releases() -> None:
    mark = Mark("literal", "Commissioner Hollis", "preliminary", None, None, None)
    r = public(VALUES, release("body", NAME, NAME + 12), marks=(mark,))
    assert "Hollis" not in r.body
    for audience in (Audience.AGENCY, Audience.CC_AGENCY):
        assert public(VALUES, release("body", NAME, NAME + 12),
                      audience=audience) == public(audience=audience)


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.integers(0, 2**32 - 1), officer=st.booleans())
def test_releasing_every_removal_never_shows_the_submitters_address_or_a_p6_value(
        seed: int, officer: bool) -> None:
    rng = random.Random(seed)
    p = make_person(rng)
    subject, subject_findings, s1 = text_with_findings(rng, p, p6=True)
    body, body_findings, s2 = text_with_findings(rng, p, p6=True)
    values = EntryValues(texts={"subject": subject, "body": body}, name=p.name,
                         email=p.email, phone=p.phone, postal_address=p.postal_address)
    audience = Audience.RECORDS_OFFICER if officer else Audience.PUBLIC
    findings = {"subject": subject_findings, "body": body_findings}
    plain = render(values, audience, consents=[], findings=findings, agency_id=None,
                   relay_address=RELAY, at=T0 + timedelta(hours=1))
    everything_released = [release(r.place, r.start, r.end, kind)
                           for r in plain.removals if r.place in ("subject", "body")
                           for kind in ("name", "email", "phone", "street_address", r.kind)]
    r = render(values, audience, consents=[], findings=findings, agency_id=None,
               relay_address=RELAY, at=T0 + timedelta(hours=1), releases=everything_released)
    assert r.reason != "invalid-input"
    shown = everything(r)
    for secret in s1 + s2:
        assert secret not in shown
    assert "email" not in leaks(p, shown)
    assert all(item.value is None for item in (r.name, r.email, r.phone, r.postal_address))
