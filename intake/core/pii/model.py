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

# The one place that says how sure a finding must be to count, per kind. Each detector
# gives its finding a confidence from what fired (validation, context words, lexicon
# entry; see ``Finding.evidence``); ``detect`` keeps the findings at or above their kind's
# threshold. A kind not listed here (a caller's own "name" finding) uses DEFAULT_THRESHOLD.
THRESHOLDS: dict[str, float] = {
    "ssn": 0.5,
    "card": 0.5,
    "aba": 0.5,
    "bank_account": 0.5,
    "email": 0.5,
    "phone": 0.5,
    "birth_date": 0.5,
    "street_address": 0.5,
    "password": 0.5,
    "maiden_name": 0.5,
    "medical": 0.6,
    "combination": 0.5,
}
DEFAULT_THRESHOLD = 0.5

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
    itself, so findings can be logged, stored and compared safely. ``confidence``
    (0..1) and ``evidence`` (what fired, e.g. ``("stdnum:valid", "context:+ssn")``;
    never a value) say why: a records officer sees them beside a redaction.
    """

    kind: str
    start: int
    end: int
    detector: str
    severity: str
    value_hash: str
    confidence: float = 1.0
    evidence: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "detector": self.detector,
            "severity": self.severity,
            "value_hash": self.value_hash,
            "confidence": self.confidence,
            "evidence": list(self.evidence),
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
