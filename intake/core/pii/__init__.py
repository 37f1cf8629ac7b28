"""PII detection and redaction (privacy promises P2, P3, P6).

* ``detect(text, key=...)`` finds personal data in subjects, bodies and the
  text of attachments (see ``intake.core.pii.detectors`` for each detector
  and its validators).  Names of people are not detected.
* ``warning_kinds(findings)`` lists the P6 kinds (``SENSITIVE_KINDS``) to warn
  the sender about at submission.
* ``redact(text, findings)`` replaces each finding by its marker
  (``intake.core.pii.redact``; who sees what is ``intake.core.rendition``).
"""

from .detectors import detect
from .model import KINDS, SENSITIVE_KINDS, Finding, warning_kinds
from .redact import RedactedText, Redaction, redact

__all__ = [
    "KINDS",
    "SENSITIVE_KINDS",
    "Finding",
    "RedactedText",
    "Redaction",
    "detect",
    "redact",
    "warning_kinds",
]
