"""Hash-chain linking and verification for append-only logs.

Consent events and disclosure-ledger rows are chained: each row stores the
hash of the row before it, and its own hash covers that link, its sequence
number and a canonical encoding of its fields::

    row_hash = sha256(prev_hash "|" seq "|" canonical(fields))

The first row has ``seq == FIRST_SEQ`` and ``prev_hash == GENESIS``.

What a verified chain proves
----------------------------
* No stored row was edited after it was written (the row hash would not
  match) unless every later row hash was recomputed too.
* No row in the middle (or at the start) was deleted, and no rows were
  reordered: sequence numbers and back links must agree.

What it cannot prove
--------------------
* **Deleting the last row(s) is undetectable from the rows alone**: a
  shortened chain is still a valid chain. Only comparing against a head
  hash kept elsewhere (``expected_head``: another database, a log shipper,
  a periodically published digest) detects tail truncation.
* Likewise, someone with write access can rewrite the whole chain from some
  row onward, recomputing every hash. There is no secret in the hash; again
  only an anchored head, kept out of that person's reach, detects it.
* It says nothing about whether a row was true when written, nor about
  events that were never written at all.

Canonical encoding: JSON with sorted keys and no whitespace, ASCII only.
Enums encode as their value, datetimes as ISO 8601 in UTC (naive datetimes
are taken to be UTC, because some databases drop the zone on the way back),
dates as ISO 8601, bytes as lowercase hex, tuples as lists. Floats must be
finite. Anything else is a ``TypeError``: an encoding must never depend on a
``repr``.

Pure standard library: no I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum

__all__ = [
    "FIRST_SEQ",
    "GENESIS",
    "ChainRow",
    "ChainVerdict",
    "canonical",
    "link_hash",
    "next_row",
    "verify_chain",
]

GENESIS = "0" * 64
FIRST_SEQ = 1
_HASH_RE = re.compile(r"[0-9a-f]{64}")


def _plain(value: object) -> object:
    """Convert to JSON-native values, deterministically."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite float in chained fields")
        return value
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        return aware.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for k, v in value.items():
            key = _plain(k)
            if not isinstance(key, str):
                raise TypeError(f"mapping keys must be strings, got {type(k).__name__}")
            if key in out:
                raise ValueError(f"duplicate key after canonicalisation: {key!r}")
            out[key] = _plain(v)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    raise TypeError(f"cannot canonically encode {type(value).__name__}")


def canonical(fields: Mapping[str, object]) -> bytes:
    """Deterministic bytes for a mapping of fields (see module docstring)."""
    if not isinstance(fields, Mapping):
        raise TypeError("fields must be a mapping")
    return json.dumps(
        _plain(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _check_hash(value: object, what: str) -> str:
    if not isinstance(value, str) or _HASH_RE.fullmatch(value) is None:
        raise ValueError(f"{what} must be 64 lowercase hex digits")
    return value


def _check_seq(seq: object) -> int:
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ValueError("seq must be a non-negative int")
    return seq


def link_hash(prev_hash: str, seq: int, fields: Mapping[str, object]) -> str:
    """``sha256(prev_hash | seq | canonical(fields))`` as lowercase hex."""
    h = hashlib.sha256()
    h.update(_check_hash(prev_hash, "prev_hash").encode("ascii"))
    h.update(b"|")
    h.update(str(_check_seq(seq)).encode("ascii"))
    h.update(b"|")
    h.update(canonical(fields))
    return h.hexdigest()


@dataclass(frozen=True)
class ChainRow:
    seq: int
    prev_hash: str
    row_hash: str
    fields: Mapping[str, object]


@dataclass(frozen=True)
class ChainVerdict:
    """Outcome of :func:`verify_chain`.

    ``reason`` is one of ``"ok"``, ``"edited"``, ``"deleted"``,
    ``"reordered"``, ``"bad-genesis"``, ``"truncated"``, ``"head-moved"``,
    ``"malformed"``. ``rows_checked`` counts rows verified before the first
    problem; ``broken_at_seq`` is the seq where the problem was found.
    """

    ok: bool
    rows_checked: int
    broken_at_seq: int | None
    reason: str


def next_row(previous: ChainRow | None, fields: Mapping[str, object]) -> ChainRow:
    """The row to append after ``previous`` (or the first row if None)."""
    if previous is None:
        seq, prev_hash = FIRST_SEQ, GENESIS
    else:
        seq, prev_hash = previous.seq + 1, previous.row_hash
    return ChainRow(
        seq=seq, prev_hash=prev_hash, row_hash=link_hash(prev_hash, seq, fields), fields=fields
    )


def _bad(checked: int, seq: int | None, reason: str) -> ChainVerdict:
    return ChainVerdict(ok=False, rows_checked=checked, broken_at_seq=seq, reason=reason)


def _well_formed(row: object) -> bool:
    if not isinstance(row, ChainRow):
        return False
    if not isinstance(row.seq, int) or isinstance(row.seq, bool) or row.seq < 0:
        return False
    return all(
        isinstance(h, str) and _HASH_RE.fullmatch(h) is not None
        for h in (row.prev_hash, row.row_hash)
    )


def verify_chain(rows: Sequence[ChainRow], *, expected_head: str | None = None) -> ChainVerdict:
    """Verify rows given in stored order; report the first problem found.

    * ``"bad-genesis"``: the first row is not ``(FIRST_SEQ, GENESIS)``.
    * ``"deleted"``: a gap in seq (including rows missing at the start), or a
      row whose ``prev_hash`` is not the previous row's ``row_hash``.
    * ``"reordered"``: a seq that is not greater than the one before it, or a
      gap whose missing seq turns up later in the list.
    * ``"edited"``: a row whose ``row_hash`` does not match its contents.
    * ``"malformed"``: a row that is not a :class:`ChainRow` with an int seq
      and hex hashes, or fields that cannot be encoded.

    With ``expected_head`` (the head hash recorded elsewhere after the last
    append) an otherwise valid chain must end in that hash: if the head is
    not found at all the tail was cut off (``"truncated"``; a wholesale
    rewrite looks the same), and if it belongs to an earlier row, rows were
    appended without moving the anchor (``"head-moved"``). An empty chain is
    fine only when the expected head is ``GENESIS`` or not given.

    Never raises for bad rows; it returns a failed verdict instead.
    """
    if expected_head is not None and (
        not isinstance(expected_head, str) or _HASH_RE.fullmatch(expected_head) is None
    ):
        return _bad(0, None, "malformed")
    try:
        rows = list(rows)
    except TypeError:
        return _bad(0, None, "malformed")
    seqs = {r.seq for r in rows if _well_formed(r)}

    previous: ChainRow | None = None
    checked = 0
    for row in rows:
        if not _well_formed(row):
            return _bad(
                checked, previous.seq + 1 if previous is not None else FIRST_SEQ, "malformed"
            )
        problem = _row_problem(row, previous, seqs)
        if problem is not None:
            return _bad(checked, row.seq, problem)
        previous = row
        checked += 1
    if expected_head is not None:
        return _head_verdict(rows, previous, checked, expected_head)
    return ChainVerdict(ok=True, rows_checked=checked, broken_at_seq=None, reason="ok")


def _row_problem(row: ChainRow, previous: ChainRow | None, seqs: set[int]) -> str | None:
    """Why ``row`` cannot follow ``previous`` (None: it is the first), or None if it can."""
    if previous is None:
        if row.prev_hash != GENESIS:
            return "deleted" if row.seq > FIRST_SEQ else "bad-genesis"
        if row.seq != FIRST_SEQ:
            return "bad-genesis"
    else:
        if row.seq <= previous.seq:
            return "reordered"
        if row.seq > previous.seq + 1:
            missing_later = any(s in seqs for s in range(previous.seq + 1, row.seq))
            return "reordered" if missing_later else "deleted"
        if row.prev_hash != previous.row_hash:
            return "deleted"
    try:
        recomputed = link_hash(row.prev_hash, row.seq, row.fields)
    except (TypeError, ValueError):
        return "malformed"
    return "edited" if recomputed != row.row_hash else None


def _head_verdict(
    rows: list[ChainRow], last: ChainRow | None, checked: int, expected_head: str
) -> ChainVerdict:
    """The verdict on a valid chain ending in ``last``, given the head recorded elsewhere."""
    head = last.row_hash if last is not None else GENESIS
    if head != expected_head:
        if any(isinstance(r, ChainRow) and r.row_hash == expected_head for r in rows):
            at = next(r.seq for r in rows if r.row_hash == expected_head)
            return _bad(checked, at + 1, "head-moved")
        return _bad(checked, (last.seq + 1) if last is not None else FIRST_SEQ, "truncated")
    return ChainVerdict(ok=True, rows_checked=checked, broken_at_seq=None, reason="ok")
