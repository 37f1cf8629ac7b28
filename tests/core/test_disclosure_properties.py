"""Property: the submitter's address reaches a recipient only when it may.

Random consent histories x purposes x recipients x citations. Whenever the
gate allows, render the message (which embeds the address in every field,
in mixed case, in angle brackets and behind ``mailto:``) and check: the
address is visible in the rendition if and only if the oracle below says so.

The oracle is written independently of ``current_consent``: for agency X it
takes the *latest* share-identity event at or before ``at`` (by ``(at, id)``)
among those naming "agency" or "agency:X", and consent is live iff that event
is a grant.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.core.consent import ConsentAction, ConsentEvent, ConsentMethod, Purpose
from intake.core.disclosure import (
    DisclosureRefused,
    OutgoingMessage,
    Recipient,
    Submitter,
    decide,
    render_for_recipient,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ADDRESS = "jane.q.public@example.org"
SUBMITTER = Submitter(name="Jane Public", email="Jane.Q.Public@Example.ORG")
RELAY = "reply+abcdefghijklmnopqrstuvwxyz234567@intake.state.gov"
EVIDENCE = "0" * 64
CLASSES = ["agency", "agency:a", "agency:b", "agency:c"]
RECIPIENTS = [
    Recipient("agency", "a", "Agency A", "a@state.gov"),
    Recipient("agency", "b", "Agency B", "b@state.gov"),
    Recipient("agency", "c", "Agency C", "c@state.gov"),
    Recipient("submitter", "s", "Jane Public", ADDRESS),
    Recipient("third-party", "t", "Broker", "buy@broker.example"),
]
# (citation, is it a valid one?)
CITATIONS: list[tuple[str | None, bool]] = [
    (None, False),
    ("", False),
    ("as required by law", False),
    ("Gov. Code § 6254(c)", True),
]
FORBIDDEN = {Purpose.SALE, Purpose.LEASE, Purpose.MARKETING}

MESSAGE = OutgoingMessage(
    from_name="Jane Public",
    from_address="JANE.Q.PUBLIC@example.org",
    reply_to="Jane Public <jane.q.public@EXAMPLE.org>",
    subject="Re: help for Jane.Q.Public@Example.Org",
    body="Please write to mailto:JANE.q.public@example.ORG or <jane.Q.public@example.org>.",
    quoted_text="> jane.q.public@example.org wrote:\n> mailto:Jane.Q.Public@Example.Org",
    attachment_names=("scan-jane.q.public@example.org.pdf", "notes.txt"),
)


@dataclass(frozen=True)
class Raw:
    grant: bool
    purpose: Purpose
    cls: str
    minute: int


# Precomputed choices keep the per-example draw count low (hypothesis' own
# overhead dominates otherwise). Share-identity events are over-weighted.
EVENT_PURPOSES = [Purpose.SHARE_IDENTITY] * 3 + list(Purpose)
ALL_RAWS = [
    Raw(grant, purpose, cls, minute)
    for grant in (True, False)
    for purpose in EVENT_PURPOSES
    for cls in CLASSES
    for minute in range(7)  # few distinct times: plenty of ties
]


MAX_EVENTS = 12


@dataclass(frozen=True)
class Case:
    minute: int
    purpose: Purpose
    recipient: Recipient
    citation: str | None
    citation_ok: bool
    personal: bool


ASK_PURPOSES = [Purpose.REDIRECT, Purpose.SHARE_IDENTITY] * 2 + list(Purpose)
ASK_RECIPIENTS = RECIPIENTS[:3] * 2 + RECIPIENTS
ALL_CASES = [
    Case(minute, purpose, recipient, citation, ok, personal)
    for minute in range(8)
    for purpose in ASK_PURPOSES
    for recipient in ASK_RECIPIENTS
    for citation, ok in CITATIONS
    for personal in (True, False)
]


def to_events(raws: list[Raw], ids: list[int]) -> list[ConsentEvent]:
    return [
        ConsentEvent(
            id=i,
            action=ConsentAction.GRANT if r.grant else ConsentAction.WITHDRAW,
            purpose=r.purpose,
            recipient_class=r.cls,
            policy_version="v1",
            method=ConsentMethod.WEB_CHECKBOX,
            at=T0 + timedelta(minutes=r.minute),
            evidence_sha256=EVIDENCE,
        )
        for r, i in zip(raws, ids, strict=True)
    ]


def oracle_consent(raws: list[Raw], ids: list[int], agency: str, minute: int) -> bool:
    naming = [
        (r.minute, i, r.grant)
        for r, i in zip(raws, ids, strict=True)
        if r.purpose is Purpose.SHARE_IDENTITY
        and r.minute <= minute
        and r.cls in ("agency", "agency:" + agency)
    ]
    return bool(naming) and max(naming)[2]


def oracle_visible(
    purpose: Purpose, recipient: Recipient, consent: bool, citation_ok: bool
) -> bool:
    if purpose is Purpose.RESPOND:
        return recipient.kind == "submitter"
    if purpose in (Purpose.REDIRECT, Purpose.SHARE_IDENTITY):
        return recipient.kind == "agency" and consent
    if purpose is Purpose.LEGAL:
        return citation_ok and recipient.kind in ("agency", "third-party")
    return False


STATS = {"examples": 0, "allowed": 0, "visible": 0, "leaks": 0}


@settings(
    max_examples=10_000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    # One cheap draw for the whole history (every two bytes pick one event):
    # st.lists(st.sampled_from(...)) costs hypothesis ~50% more CPU here.
    history=st.binary(max_size=2 * MAX_EVENTS),
    id_seed=st.integers(0, 2**32),
    case=st.sampled_from(ALL_CASES),
)
def check_address_visible_iff_allowed(history: bytes, id_seed: int, case: Case) -> None:
    STATS["examples"] += 1
    raws = [
        ALL_RAWS[int.from_bytes(history[k : k + 2], "big") % len(ALL_RAWS)]
        for k in range(0, len(history) - 1, 2)
    ]
    minute, purpose, recipient = case.minute, case.purpose, case.recipient
    ids = list(range(1, len(raws) + 1))
    random.Random(id_seed).shuffle(ids)  # ids unrelated to list order
    events = to_events(raws, ids)
    at = T0 + timedelta(minutes=minute)

    decision = decide(
        purpose=purpose,
        recipient=recipient,
        consent_events=events,
        at=at,
        citation=case.citation,
        personal=case.personal,
    )
    if purpose in FORBIDDEN:
        assert not decision.allowed and decision.reason == "forbidden-purpose"
        return
    consent = recipient.kind == "agency" and oracle_consent(raws, ids, recipient.id, minute)
    expected = oracle_visible(purpose, recipient, consent, case.citation_ok)

    if not decision.allowed:
        assert not expected, decision
        assert not decision.include_identity
        try:
            render_for_recipient(MESSAGE, SUBMITTER, decision, RELAY)
        except DisclosureRefused:
            return
        raise AssertionError("rendering a refused decision must raise")

    STATS["allowed"] += 1
    out = render_for_recipient(MESSAGE, SUBMITTER, decision, RELAY)
    text = "\n".join(
        [
            out.from_name,
            out.from_address,
            out.reply_to,
            out.subject,
            out.body,
            out.quoted_text,
            *out.attachment_names,
        ]
    ).lower()
    visible = ADDRESS in text
    if visible and not expected:
        STATS["leaks"] += 1
    STATS["visible"] += visible
    assert visible == expected, (decision, consent)
    assert decision.include_identity == expected
    if not expected:
        assert "jane public" not in text


def test_property_ran_without_leaks() -> None:
    STATS.update(dict.fromkeys(STATS, 0))
    started = time.perf_counter()
    check_address_visible_iff_allowed()
    elapsed = time.perf_counter() - started
    print(f"\nproperty: {STATS} in {elapsed:.1f}s")
    assert STATS["leaks"] == 0
    assert STATS["examples"] >= 1_000
    assert STATS["allowed"] > 0 and STATS["visible"] > 0
