from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from intake.core.consent import Purpose
from intake.core.hashchain import (
    FIRST_SEQ,
    GENESIS,
    ChainRow,
    canonical,
    link_hash,
    next_row,
    verify_chain,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def build(n: int) -> list[ChainRow]:
    rows: list[ChainRow] = []
    for i in range(n):
        fields = {"purpose": Purpose.REDIRECT, "at": T0 + timedelta(minutes=i), "n": i}
        rows.append(next_row(rows[-1] if rows else None, fields))
    return rows


def test_canonical_is_deterministic() -> None:
    a = canonical({"b": 1, "a": [Purpose.SALE, b"\x00\xff", None, True, 1.5], "c": T0})
    b = canonical({"c": T0, "a": (Purpose.SALE, b"\x00\xff", None, True, 1.5), "b": 1})
    assert a == b
    assert a == (b'{"a":["sale","00ff",null,true,1.5],"b":1,"c":"2024-05-01T12:00:00+00:00"}')


def test_canonical_datetimes_normalised_to_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert canonical({"t": T0}) == canonical({"t": T0.astimezone(plus2)})
    assert canonical({"t": T0}) == canonical({"t": T0.replace(tzinfo=None)})  # naive = UTC
    assert canonical({"d": date(2024, 5, 1)}) == b'{"d":"2024-05-01"}'
    assert canonical({"s": "é"}) == b'{"s":"\\u00e9"}'


@pytest.mark.parametrize(
    "bad", [{"x": object()}, {"x": Decimal("1")}, {1: "x"}, {"x": float("nan")}]
)
def test_canonical_rejects_what_it_cannot_encode_stably(bad: dict[object, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        canonical(bad)  # type: ignore[arg-type]


def test_link_hash_definition() -> None:
    fields = {"a": 1}
    expected = hashlib.sha256(GENESIS.encode() + b"|1|" + canonical(fields)).hexdigest()
    assert link_hash(GENESIS, 1, fields) == expected
    assert link_hash(GENESIS, 2, fields) != expected
    with pytest.raises(ValueError):
        link_hash("nothex", 1, fields)
    with pytest.raises(ValueError):
        link_hash(GENESIS, -1, fields)


def test_intact_chain_verifies() -> None:
    rows = build(5)
    verdict = verify_chain(rows)
    assert (verdict.ok, verdict.rows_checked, verdict.broken_at_seq, verdict.reason) == (
        True,
        5,
        None,
        "ok",
    )
    assert verify_chain(rows, expected_head=rows[-1].row_hash).ok
    assert verify_chain([]).ok
    assert verify_chain([], expected_head=GENESIS).ok
    assert rows[0].seq == FIRST_SEQ and rows[0].prev_hash == GENESIS


def test_edited_row_detected() -> None:
    rows = build(5)
    rows[2] = replace(rows[2], fields={**rows[2].fields, "n": 99})
    verdict = verify_chain(rows)
    assert (verdict.ok, verdict.reason, verdict.broken_at_seq, verdict.rows_checked) == (
        False,
        "edited",
        3,
        2,
    )


def test_edit_with_recomputed_row_hash_detected_at_next_row() -> None:
    rows = build(5)
    fields = {**rows[2].fields, "n": 99}
    rows[2] = replace(rows[2], fields=fields, row_hash=link_hash(rows[2].prev_hash, 3, fields))
    verdict = verify_chain(rows)
    assert (verdict.ok, verdict.reason, verdict.broken_at_seq) == (False, "deleted", 4)


def test_deleted_middle_row_detected() -> None:
    rows = build(5)
    del rows[2]
    verdict = verify_chain(rows)
    assert (verdict.ok, verdict.reason, verdict.broken_at_seq) == (False, "deleted", 4)


def test_deleted_middle_row_with_renumbering_detected() -> None:
    rows = build(5)
    del rows[2]
    rows[2:] = [replace(r, seq=r.seq - 1) for r in rows[2:]]
    verdict = verify_chain(rows)
    assert (verdict.ok, verdict.reason, verdict.broken_at_seq) == (False, "deleted", 3)


def test_deleted_first_row_detected() -> None:
    verdict = verify_chain(build(3)[1:])
    assert (verdict.ok, verdict.reason) == (False, "deleted")


def test_reordered_rows_detected() -> None:
    rows = build(5)
    rows[1], rows[2] = rows[2], rows[1]
    verdict = verify_chain(rows)
    assert (verdict.ok, verdict.reason) == (False, "reordered")
    rows = build(5)
    rows[3], rows[4] = rows[4], rows[3]
    assert verify_chain(rows).reason == "reordered"


def test_duplicate_row_detected() -> None:
    rows = build(3)
    assert verify_chain([*rows[:2], rows[1], rows[2]]).reason == "reordered"


def test_bad_genesis_detected() -> None:
    rows = build(3)
    forged = ChainRow(FIRST_SEQ, "f" * 64, link_hash("f" * 64, FIRST_SEQ, {}), {})
    assert verify_chain([forged]).reason == "bad-genesis"
    renumbered = replace(rows[0], seq=0)
    assert verify_chain([renumbered]).reason == "bad-genesis"


def test_tail_truncation_only_detected_with_anchored_head() -> None:
    rows = build(5)
    head = rows[-1].row_hash
    assert verify_chain(rows[:-1]).ok  # undetectable from the rows alone
    verdict = verify_chain(rows[:-1], expected_head=head)
    assert (verdict.ok, verdict.reason, verdict.broken_at_seq, verdict.rows_checked) == (
        False,
        "truncated",
        5,
        4,
    )
    assert verify_chain([], expected_head=head).reason == "truncated"


def test_rewritten_chain_detected_with_anchored_head() -> None:
    rows = build(5)
    head = rows[-1].row_hash
    rewritten = build(4)
    rewritten.append(next_row(rewritten[-1], {"n": "forged"}))
    assert verify_chain(rewritten).ok
    assert verify_chain(rewritten, expected_head=head).reason == "truncated"


def test_rows_after_anchor_reported() -> None:
    rows = build(5)
    verdict = verify_chain(rows, expected_head=rows[2].row_hash)
    assert (verdict.ok, verdict.reason, verdict.broken_at_seq) == (False, "head-moved", 4)


def test_malformed_input_fails_closed() -> None:
    rows = build(3)
    assert verify_chain([rows[0], "row", rows[2]]).reason == "malformed"  # type: ignore[list-item]
    assert verify_chain([replace(rows[0], row_hash="xyz")]).reason == "malformed"
    assert verify_chain([replace(rows[0], fields={"x": object()})]).reason == "malformed"
    assert verify_chain(rows, expected_head="nope").reason == "malformed"
    assert verify_chain(None).reason == "malformed"  # type: ignore[arg-type]
