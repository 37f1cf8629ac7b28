from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from intake.core.consent import (
    REQUIRED_BASIS,
    Basis,
    ConsentAction,
    ConsentEvent,
    ConsentMethod,
    PolicyText,
    Purpose,
    current_consent,
    evidence_hash,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
EVIDENCE = evidence_hash(b"checkbox ticked")


def ev(
    id: int,
    action: ConsentAction,
    cls: str,
    minutes: int,
    purpose: Purpose = Purpose.SHARE_IDENTITY,
) -> ConsentEvent:
    return ConsentEvent(
        id=id,
        action=action,
        purpose=purpose,
        recipient_class=cls,
        policy_version="2024-01",
        method=ConsentMethod.WEB_CHECKBOX,
        at=T0 + timedelta(minutes=minutes),
        evidence_sha256=EVIDENCE,
    )


G, W = ConsentAction.GRANT, ConsentAction.WITHDRAW
LATER = T0 + timedelta(days=1)


def live(events: list[ConsentEvent], agency: str, at: datetime = LATER) -> int | None:
    got = current_consent(events, Purpose.SHARE_IDENTITY, agency, at)
    return None if got is None else got.id


def test_required_basis_covers_every_purpose() -> None:
    assert set(REQUIRED_BASIS) == set(Purpose)
    assert REQUIRED_BASIS[Purpose.RESPOND] is Basis.NOTICE
    assert REQUIRED_BASIS[Purpose.REDIRECT] is Basis.NOTICE
    assert REQUIRED_BASIS[Purpose.SHARE_IDENTITY] is Basis.CONSENT
    assert REQUIRED_BASIS[Purpose.LEGAL] is Basis.LAW
    assert REQUIRED_BASIS[Purpose.STATISTICS] is Basis.NOTICE
    for p in (Purpose.SALE, Purpose.LEASE, Purpose.MARKETING):
        assert REQUIRED_BASIS[p] is Basis.FORBIDDEN
    with pytest.raises(TypeError):
        REQUIRED_BASIS[Purpose.SALE] = Basis.CONSENT  # type: ignore[index]


def test_enum_values_are_stable() -> None:
    assert [p.value for p in Purpose] == [
        "respond",
        "redirect",
        "share-identity",
        "legal-obligation",
        "statistics",
        "sale",
        "lease",
        "marketing",
    ]
    assert [b.value for b in Basis] == ["notice", "consent", "law", "forbidden"]
    assert ConsentAction("withdraw") is W
    assert ConsentMethod("email-reply") is ConsentMethod.EMAIL_REPLY


def test_no_events_no_consent() -> None:
    assert live([], "dot") is None


def test_specific_grant_covers_only_that_agency() -> None:
    events = [ev(1, G, "agency:dot", 0)]
    assert live(events, "dot") == 1
    assert live(events, "agency:dot") == 1
    assert live(events, "dmv") is None


def test_general_grant_covers_every_agency() -> None:
    events = [ev(1, G, "agency", 0)]
    assert live(events, "dot") == 1
    assert live(events, "dmv") == 1


def test_general_withdrawal_withdraws_everything() -> None:
    events = [ev(1, G, "agency", 0), ev(2, G, "agency:dot", 1), ev(3, W, "agency", 2)]
    assert live(events, "dot") is None
    assert live(events, "dmv") is None


def test_specific_withdrawal_removes_specific_grant() -> None:
    events = [ev(1, G, "agency:dot", 0), ev(2, G, "agency:dmv", 1), ev(3, W, "agency:dot", 2)]
    assert live(events, "dot") is None
    assert live(events, "dmv") == 2


def test_specific_withdrawal_blocks_agency_under_earlier_general_grant() -> None:
    events = [ev(1, G, "agency", 0), ev(2, W, "agency:dot", 1)]
    assert live(events, "dot") is None
    assert live(events, "dmv") == 1


def test_later_grant_re_enables() -> None:
    events = [ev(1, G, "agency", 0), ev(2, W, "agency:dot", 1), ev(3, G, "agency:dot", 2)]
    assert live(events, "dot") == 3
    events = [ev(1, G, "agency", 0), ev(2, W, "agency", 1), ev(3, G, "agency", 2)]
    assert live(events, "dot") == 3
    # A later *general* grant re-enables an agency withdrawn specifically.
    events = [ev(1, G, "agency", 0), ev(2, W, "agency:dot", 1), ev(3, G, "agency", 2)]
    assert live(events, "dot") == 3


def test_events_after_at_are_ignored() -> None:
    events = [ev(1, G, "agency:dot", 0), ev(2, W, "agency:dot", 10)]
    assert live(events, "dot", T0 + timedelta(minutes=5)) == 1
    assert live(events, "dot", T0 + timedelta(minutes=10)) is None  # at <= `at` counts
    assert live(events, "dot", T0 - timedelta(minutes=1)) is None


def test_same_timestamp_orders_by_id_not_list_order() -> None:
    events = [ev(2, W, "agency:dot", 0), ev(1, G, "agency:dot", 0)]
    assert live(events, "dot") is None
    events = [ev(2, G, "agency:dot", 0), ev(1, W, "agency:dot", 0)]
    assert live(events, "dot") == 2


def test_list_order_is_irrelevant() -> None:
    events = [ev(2, W, "agency:dot", 5), ev(1, G, "agency:dot", 0)]
    assert live(events, "dot") is None


def test_purposes_are_separate() -> None:
    events = [ev(1, G, "agency", 0, purpose=Purpose.STATISTICS)]
    assert live(events, "dot") is None
    assert current_consent(events, Purpose.STATISTICS, "dot", LATER) is not None


@pytest.mark.parametrize("purpose", [Purpose.SALE, Purpose.LEASE, Purpose.MARKETING])
def test_forbidden_purposes_never_have_live_consent(purpose: Purpose) -> None:
    events = [ev(1, G, "agency", 0, purpose=purpose), ev(2, G, "agency:dot", 1, purpose=purpose)]
    assert current_consent(events, purpose, "dot", LATER) is None


@pytest.mark.parametrize("bad", ["", "agency:", "agency", ":dot", "dot dmv", "agency:dot\n"])
def test_invalid_recipient_id_has_no_consent(bad: str) -> None:
    events = [ev(1, G, "agency", 0)]
    assert current_consent(events, Purpose.SHARE_IDENTITY, bad, LATER) is None


def test_naive_at_is_rejected() -> None:
    with pytest.raises(ValueError):
        current_consent([], Purpose.SHARE_IDENTITY, "dot", datetime(2024, 1, 1))


def test_event_times_normalised_to_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    e = ConsentEvent(
        id=1,
        action=G,
        purpose=Purpose.SHARE_IDENTITY,
        recipient_class="agency",
        policy_version="v1",
        method=ConsentMethod.STAFF_RECORDED,
        at=datetime(2024, 5, 1, 14, 0, tzinfo=plus2),
        evidence_sha256=EVIDENCE,
    )
    assert e.at == T0 and e.at.tzinfo is UTC
    assert current_consent([e], Purpose.SHARE_IDENTITY, "dot", T0) is e


@pytest.mark.parametrize(
    "change",
    [
        {"recipient_class": "everyone"},
        {"recipient_class": "agency:"},
        {"recipient_class": "Agency"},
        {"at": datetime(2024, 1, 1)},
        {"evidence_sha256": "abc"},
        {"evidence_sha256": "A" * 64},
        {"policy_version": " "},
        {"action": "maybe"},
        {"purpose": "spam"},
        {"id": True},
    ],
)
def test_event_validation(change: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "id": 1,
        "action": G,
        "purpose": Purpose.SHARE_IDENTITY,
        "recipient_class": "agency",
        "policy_version": "v1",
        "method": ConsentMethod.EMAIL_REPLY,
        "at": T0,
        "evidence_sha256": EVIDENCE,
    }
    fields.update(change)
    with pytest.raises((ValueError, TypeError)):
        ConsentEvent(**fields)  # type: ignore[arg-type]


def test_event_coerces_string_enums() -> None:
    e = ConsentEvent(
        id=1,
        action="grant",  # type: ignore[arg-type]
        purpose="share-identity",  # type: ignore[arg-type]
        recipient_class="agency:dot",
        policy_version="v1",
        method="web-checkbox",  # type: ignore[arg-type]
        at=T0,
        evidence_sha256=EVIDENCE,
    )
    assert e.action is G and e.purpose is Purpose.SHARE_IDENTITY


def test_policy_text_and_evidence_hash() -> None:
    p = PolicyText.create("2024-01", "We use your information only to respond. ✓")
    assert p.sha256 == hashlib.sha256(p.text.encode("utf-8")).hexdigest()
    with pytest.raises(ValueError):
        PolicyText("2024-01", "changed", p.sha256)
    assert evidence_hash(b"x") == hashlib.sha256(b"x").hexdigest()
    with pytest.raises(TypeError):
        evidence_hash("x")  # type: ignore[arg-type]
