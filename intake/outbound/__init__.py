"""The only way out: mail and webhook senders driven by the disclosure gate.

Each kind of destination has an interface (:mod:`intake.outbound.interfaces`)
with a real implementation (:class:`~intake.outbound.smtp.SmtpMailSender`,
:class:`~intake.outbound.webhook.HttpWebhookSender`) and an in-memory one
(:mod:`intake.outbound.memory`) that keeps what it was given, for tests and
for running without a mail server.

Nothing else in intake may import smtplib or an HTTP client, and nothing but
the gate (:mod:`intake.services.gate`, which sends only under an allowed
decision) may import these adapters (import-linter and
tests/test_architecture.py enforce it). Senders raise
:class:`~intake.core.failures.TransientError` for failures worth retrying
and :class:`~intake.core.failures.PermanentError` for the rest.
"""
