"""The only way out: SMTP and webhook adapters driven by the disclosure gate.

Nothing else in intake may import smtplib or an HTTP client, and nothing but
the gate (:mod:`intake.services.gate`, which sends only under an allowed
decision) may import these adapters (import-linter and
tests/test_architecture.py enforce it). Adapters raise
:class:`~intake.core.failures.TransientError` for failures worth retrying
and :class:`~intake.core.failures.PermanentError` for the rest.
"""
