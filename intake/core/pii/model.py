"""Value types shared by the detectors and the redactor."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

KINDS: tuple[str, ...] = (
    "ssn",
    "card",
    "aba",
    "bank_account",
    "email",
    "phone",
    "birth_date",
    "street_address",
    "password",
    "maiden_name",
    "medical",
    "combination",
)

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "review")

# P6: what people are asked not to send; warned about at submission.  Order is
# the order in which ``warning_kinds`` reports them.
_SENSITIVE_ORDER: tuple[str, ...] = (
    "ssn",
    "card",
    "aba",
    "bank_account",
    "birth_date",
    "password",
    "maiden_name",
    "medical",
)
SENSITIVE_KINDS: frozenset[str] = frozenset(_SENSITIVE_ORDER)


@dataclass(frozen=True)
class Finding:
    """One piece of personal data found in a text.

    Carries offsets and a keyed hash of the normalised value, never the value
    itself, so findings can be logged, stored and compared safely.
    """

    kind: str
    start: int
    end: int
    detector: str
    severity: str
    value_hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "detector": self.detector,
            "severity": self.severity,
            "value_hash": self.value_hash,
        }


def value_hash(key: bytes, normalised: str) -> str:
    """Hex HMAC-SHA256 of a normalised value."""
    data = normalised.encode("utf-8", "surrogatepass")
    return hmac.digest(key, data, "sha256").hex()


def warning_kinds(findings: Iterable[Finding]) -> list[str]:
    """Distinct P6 kinds present in *findings*, in a fixed, stable order.

    Suitable for building an accessible warning ("Your message appears to
    contain a Social Security number and a birth date ...").
    """
    present = {f.kind for f in findings}
    return [k for k in _SENSITIVE_ORDER if k in present]
