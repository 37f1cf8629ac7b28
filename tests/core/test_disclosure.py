from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from intake.core.consent import (
    Basis,
    ConsentAction,
    ConsentEvent,
    ConsentMethod,
    Purpose,
    evidence_hash,
)
from intake.core.disclosure import (
    Decision,
    DisclosureRefused,
    OutgoingMessage,
    Recipient,
    Submitter,
    decide,
    render_for_recipient,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
RELAY = "reply+abcdefghijklmnopqrstuvwxyz234567@intake.state.gov"

SUBMITTER = Recipient("submitter", "s-1", "Jane Doe", "jane.doe@example.org")
DOT = Recipient("agency", "dot", "Department of Transportation", "contact@dot.state.gov")
DMV = Recipient("agency", "dmv", "Motor Vehicles", "contact@dmv.state.gov")
THIRD = Recipient("third-party", "acme", "Acme Inc", "sales@acme.example")
PUBLIC = Recipient("public", "web", "Website", "")
STATS = Recipient("statistics", "bureau", "Statistics Bureau", "stats@state.gov")


def grant(id: int, cls: str, purpose: Purpose = Purpose.SHARE_IDENTITY) -> ConsentEvent:
    return ConsentEvent(
        id=id,
        action=ConsentAction.GRANT,
        purpose=purpose,
        recipient_class=cls,
        policy_version="v1",
        method=ConsentMethod.WEB_CHECKBOX,
        at=T0,
        evidence_sha256=evidence_hash(b"e"),
    )


def d(
    purpose: Purpose, recipient: Recipient, events: list[ConsentEvent] | None = None, **kw: object
) -> Decision:
    return decide(purpose=purpose, recipient=recipient, consent_events=events or [], at=NOW, **kw)  # type: ignore[arg-type]


# ---- every purpose, every reason ------------------------------------------------------


@pytest.mark.parametrize("purpose", [Purpose.SALE, Purpose.LEASE, Purpose.MARKETING])
@pytest.mark.parametrize("recipient", [SUBMITTER, DOT, THIRD, PUBLIC, STATS])
def test_forbidden_purposes_refused_whatever_the_consent(
    purpose: Purpose, recipient: Recipient
) -> None:
    events = [grant(1, "agency", purpose), grant(2, "agency", Purpose.SHARE_IDENTITY)]
    for evs in ([], events):
        dec = d(purpose, recipient, evs, citation="Gov. Code 6254", personal=False)
        assert (dec.allowed, dec.reason, dec.basis) == (False, "forbidden-purpose", Basis.FORBIDDEN)
        assert dec.include_identity is False and dec.purpose is purpose


def test_respond_to_submitter_on_notice() -> None:
    dec = d(Purpose.RESPOND, SUBMITTER)
    assert (dec.allowed, dec.reason, dec.basis, dec.include_identity) == (
        True,
        "notice",
        Basis.NOTICE,
        True,
    )


@pytest.mark.parametrize("recipient", [DOT, THIRD, PUBLIC, STATS, replace(DOT, kind="bogus")])
def test_respond_only_to_submitter(recipient: Recipient) -> None:
    dec = d(Purpose.RESPOND, recipient, [grant(1, "agency")])
    assert (dec.allowed, dec.reason) == (False, "respond-only-to-submitter")


def test_redirect_without_consent_is_content_only() -> None:
    dec = d(Purpose.REDIRECT, DOT, [grant(1, "agency:dmv")])
    assert (dec.allowed, dec.reason, dec.basis, dec.include_identity) == (
        True,
        "notice",
        Basis.NOTICE,
        False,
    )
    assert dec.consent_event_id is None


def test_redirect_with_consent_includes_identity() -> None:
    dec = d(Purpose.REDIRECT, DOT, [grant(7, "agency:dot")])
    assert (dec.allowed, dec.reason, dec.basis, dec.include_identity) == (
        True,
        "consent",
        Basis.CONSENT,
        True,
    )
    assert dec.consent_event_id == 7


@pytest.mark.parametrize("recipient", [SUBMITTER, THIRD, PUBLIC, STATS])
def test_redirect_only_to_agencies(recipient: Recipient) -> None:
    dec = d(Purpose.REDIRECT, recipient, [grant(1, "agency")])
    assert (dec.allowed, dec.reason) == (False, "recipient-not-allowed")


def test_share_identity_consent_and_no_consent() -> None:
    events = [grant(3, "agency:dot")]
    ok = d(Purpose.SHARE_IDENTITY, DOT, events)
    assert (ok.allowed, ok.reason, ok.basis, ok.include_identity, ok.consent_event_id) == (
        True,
        "consent",
        Basis.CONSENT,
        True,
        3,
    )
    no = d(Purpose.SHARE_IDENTITY, DMV, events)
    assert (no.allowed, no.reason, no.basis, no.include_identity) == (
        False,
        "no-consent",
        Basis.CONSENT,
        False,
    )


def test_share_identity_consent_for_other_purpose_does_not_count() -> None:
    dec = d(Purpose.SHARE_IDENTITY, DOT, [grant(1, "agency", Purpose.STATISTICS)])
    assert dec.reason == "no-consent"


@pytest.mark.parametrize("recipient", [SUBMITTER, THIRD, PUBLIC, STATS])
def test_share_identity_only_with_agencies(recipient: Recipient) -> None:
    dec = d(Purpose.SHARE_IDENTITY, recipient, [grant(1, "agency")])
    assert (dec.allowed, dec.reason) == (False, "recipient-not-allowed")


@pytest.mark.parametrize(
    "citation", ["Gov. Code § 6254(c)", "  5 U.S.C. 552a(b)(7) ", "Subpoena 2024-17"]
)
@pytest.mark.parametrize("recipient", [DOT, THIRD])
def test_legal_with_citation(citation: str, recipient: Recipient) -> None:
    dec = d(Purpose.LEGAL, recipient, citation=citation)
    assert (dec.allowed, dec.reason, dec.basis, dec.include_identity) == (
        True,
        "law",
        Basis.LAW,
        True,
    )
    assert dec.citation == citation.strip()


@pytest.mark.parametrize(
    "citation", [None, "", "   ", "because", "12345", "x1" * 101, "Code 1\r\nBcc: x@y", 42]
)
def test_legal_citation_required(citation: object) -> None:
    dec = d(Purpose.LEGAL, DOT, citation=citation)
    assert (dec.allowed, dec.reason, dec.basis, dec.citation) == (
        False,
        "citation-required",
        Basis.LAW,
        None,
    )


def test_citation_length_limit_is_200() -> None:
    assert d(Purpose.LEGAL, DOT, citation="a" + "1" * 199).allowed
    assert not d(Purpose.LEGAL, DOT, citation="a" + "1" * 200).allowed


@pytest.mark.parametrize("recipient", [SUBMITTER, STATS])
def test_legal_recipient_not_allowed(recipient: Recipient) -> None:
    """A legal obligation never goes to the submitter (that is a response) or to a
    statistics sink. The public is allowed since issue 22: a records officer releases a
    value on the public records portal under a cited law (P3, P9); see the next test."""
    dec = d(Purpose.LEGAL, recipient, citation="Gov. Code 6254")
    assert (dec.allowed, dec.reason) == (False, "recipient-not-allowed")


def test_legal_release_to_the_public_needs_a_citation() -> None:
    """P9: the gate allows a release to the public under law only with a citation."""
    dec = d(Purpose.LEGAL, PUBLIC, citation="  KRS 61.878(1)(a) ")
    assert (dec.allowed, dec.reason, dec.basis, dec.citation) == (
        True, "law", Basis.LAW, "KRS 61.878(1)(a)")
    # One released value, shown by the public rendition: the identity does not travel.
    assert dec.include_identity is False
    for citation in (None, "", "   ", "the law", "61.878", "KRS 61\n878", "K1" * 101):
        refused = d(Purpose.LEGAL, PUBLIC, citation=citation)
        assert (refused.allowed, refused.reason, refused.citation) == (
            False, "citation-required", None), citation


def test_statistics_aggregate_only() -> None:
    ok = d(Purpose.STATISTICS, STATS, personal=False)
    assert (ok.allowed, ok.reason, ok.basis, ok.include_identity) == (
        True,
        "aggregate",
        Basis.NOTICE,
        False,
    )
    assert (d(Purpose.STATISTICS, STATS).allowed, d(Purpose.STATISTICS, STATS).reason) == (
        False,
        "aggregate-only",
    )
    # Anything but an explicit False counts as personal.
    assert d(Purpose.STATISTICS, STATS, personal=0).reason == "aggregate-only"


@pytest.mark.parametrize("recipient", [SUBMITTER, DOT, THIRD, PUBLIC])
def test_statistics_recipient_not_allowed(recipient: Recipient) -> None:
    dec = d(Purpose.STATISTICS, recipient, personal=False)
    assert (dec.allowed, dec.reason) == (False, "recipient-not-allowed")


# ---- fail closed --------------------------------------------------------------------------


def test_invalid_purpose() -> None:
    dec = decide(purpose="spam", recipient=DOT, consent_events=[], at=NOW)  # type: ignore[arg-type]
    assert (dec.allowed, dec.reason, dec.purpose, dec.basis) == (
        False,
        "invalid-purpose",
        None,
        Basis.FORBIDDEN,
    )


def test_string_purpose_is_accepted() -> None:
    dec = decide(purpose="respond", recipient=SUBMITTER, consent_events=[], at=NOW)  # type: ignore[arg-type]
    assert dec.allowed and dec.purpose is Purpose.RESPOND


@pytest.mark.parametrize(
    "recipient",
    [
        None,
        "dot",
        replace(DOT, id=""),
        replace(DOT, id="agency:"),
        replace(DOT, id="dot; dmv"),
        replace(DOT, name=None),  # type: ignore[arg-type]
    ],
)
def test_invalid_recipient(recipient: object) -> None:
    events = [grant(1, "agency")]
    for purpose in (Purpose.REDIRECT, Purpose.SHARE_IDENTITY):
        dec = decide(purpose=purpose, recipient=recipient, consent_events=events, at=NOW)  # type: ignore[arg-type]
        assert (dec.allowed, dec.reason, dec.include_identity) == (
            False,
            "invalid-recipient",
            False,
        )


@pytest.mark.parametrize("at", [None, datetime(2024, 5, 1), "2024-05-01T00:00:00Z"])
def test_invalid_time(at: object) -> None:
    dec = decide(purpose=Purpose.RESPOND, recipient=SUBMITTER, consent_events=[], at=at)  # type: ignore[arg-type]
    assert (dec.allowed, dec.reason) == (False, "invalid-time")


@pytest.mark.parametrize(
    "events", [None, "grant", [{"action": "grant"}], [grant(1, "agency"), None]]
)
def test_invalid_consent_events(events: object) -> None:
    dec = decide(purpose=Purpose.SHARE_IDENTITY, recipient=DOT, consent_events=events, at=NOW)  # type: ignore[arg-type]
    assert (dec.allowed, dec.reason) == (False, "invalid-consent-events")


def test_internal_error_fails_closed() -> None:
    class Exploding(list[ConsentEvent]):
        def __iter__(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    dec = decide(purpose=Purpose.SHARE_IDENTITY, recipient=DOT, consent_events=Exploding(), at=NOW)
    assert (dec.allowed, dec.reason, dec.include_identity) == (False, "internal-error", False)


def test_decision_invariants() -> None:
    with pytest.raises(ValueError):
        Decision(False, "x", Basis.NOTICE, Purpose.RESPOND, True, None, None)
    with pytest.raises(ValueError):
        Decision(True, "x", Basis.FORBIDDEN, Purpose.SALE, False, None, None)
    with pytest.raises(ValueError):
        Decision(True, "x", Basis.FORBIDDEN, None, False, None, None)


# ---- rendition ---------------------------------------------------------------------------

ADDR = "Jane.Doe@Example.org"
PERSON = Submitter(name="Jane Doe", email=ADDR)


def message() -> OutgoingMessage:
    return OutgoingMessage(
        from_name="Jane Doe",
        from_address="jane.doe@example.org",
        reply_to="JANE.DOE@EXAMPLE.ORG",
        subject="Pothole (from jane.doe@example.org)",
        body=(
            "Dear DOT,\nThere is a pothole. Write to <Jane.Doe@example.ORG> or "
            "mailto:jane.doe@example.org or mailto:jane.doe%40example.org.\n"
            "Regards,\nJANE   DOE\nJane Doesworth is my neighbour."
        ),
        quoted_text="> On Monday, Jane\n Doe <jane.doe@example.org> wrote:",
        attachment_names=("jane.doe@example.org-photo.jpg", "Jane Doe report.pdf", "map.png"),
    )


def fields(m: OutgoingMessage) -> list[str]:
    return [
        m.from_name,
        m.from_address,
        m.reply_to,
        m.subject,
        m.body,
        m.quoted_text,
        *m.attachment_names,
    ]


def test_render_refused_raises() -> None:
    dec = d(Purpose.SHARE_IDENTITY, DOT)
    with pytest.raises(DisclosureRefused) as info:
        render_for_recipient(message(), PERSON, dec, RELAY)
    assert info.value.decision is dec and str(info.value) == "no-consent"


def test_render_content_only_replaces_address_and_name() -> None:
    out = render_for_recipient(message(), PERSON, d(Purpose.REDIRECT, DOT), RELAY)
    text = "\n".join(fields(out)).lower()
    assert "jane.doe@example.org" not in text
    assert "jane.doe%40example.org" not in text
    assert re.search(r"\bjane\s+doe\b", text) is None
    assert out.from_name == "Member of the public"
    assert out.from_address == RELAY and out.reply_to == RELAY
    assert f"<{RELAY}>" in out.body and f"mailto:{RELAY}" in out.body
    assert out.subject == f"Pothole (from {RELAY})"
    assert "Regards,\nMember of the public\n" in out.body
    assert "Jane Doesworth" in out.body  # whole words only
    assert out.attachment_names == (
        f"{RELAY}-photo.jpg",
        "Member of the public report.pdf",
        "map.png",
    )
    assert out.quoted_text == f"> On Monday, Member of the public <{RELAY}> wrote:"


def test_render_name_never_touches_the_relay_address() -> None:
    person = Submitter(name="State", email="x@example.org")
    relay = "reply+abcdefghijklmnopqrstuvwxyz234567@intake.state.gov"
    out = render_for_recipient(
        replace(message(), body="x@example.org from State"), person, d(Purpose.REDIRECT, DOT), relay
    )
    assert out.body == f"{relay} from Member of the public"


def test_render_short_or_missing_name_and_email() -> None:
    dec = d(Purpose.REDIRECT, DOT)
    out = render_for_recipient(message(), Submitter(name="J", email=None), dec, RELAY)
    assert "Jane Doe" in out.body  # nothing to match on: only headers are replaced
    assert (
        out.from_address == RELAY
        and out.reply_to == RELAY
        and out.from_name == "Member of the public"
    )


def test_render_with_identity_passes_unchanged() -> None:
    m = message()
    assert (
        render_for_recipient(m, PERSON, d(Purpose.REDIRECT, DOT, [grant(1, "agency")]), RELAY) is m
    )
    assert (
        render_for_recipient(m, PERSON, d(Purpose.RESPOND, SUBMITTER), RELAY).reply_to == m.reply_to
    )


def test_render_statistics_redacts() -> None:
    out = render_for_recipient(
        message(), PERSON, d(Purpose.STATISTICS, STATS, personal=False), RELAY
    )
    assert ADDR.lower() not in "\n".join(fields(out)).lower()


@pytest.mark.parametrize("relay", ["", "nobody", "a@b\r\nBcc: x@y", "x <a@b>"])
def test_render_rejects_bad_relay_address(relay: str) -> None:
    with pytest.raises(ValueError):
        render_for_recipient(message(), PERSON, d(Purpose.REDIRECT, DOT), relay)


def test_render_refuses_relay_that_contains_the_address() -> None:
    with pytest.raises(DisclosureRefused) as info:
        render_for_recipient(message(), PERSON, d(Purpose.REDIRECT, DOT), "x" + ADDR)
    assert info.value.decision.reason == "relay-contains-identity"
