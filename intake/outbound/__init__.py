"""The only way out: SMTP and webhook adapters driven by the disclosure gate.

Nothing else in intake may import smtplib or an HTTP client (import-linter
and tests/test_architecture.py enforce it). Adapters raise
:class:`~intake.jobs.workitems.TransientError` for failures worth retrying
and :class:`~intake.jobs.workitems.PermanentError` for the rest.
"""
