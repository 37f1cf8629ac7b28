"""Sending mail over SMTP (plain, STARTTLS or implicit TLS, optional AUTH)."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from intake.core.failures import PermanentError, TransientError


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to reach the SMTP server (from ``INTAKE_SMTP_URL``)."""

    host: str
    port: int
    security: str  # "plain" | "starttls" | "tls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str, timeout: float = 30.0) -> SmtpConfig:
        """``smtp://``, ``smtp+starttls://`` or ``smtps://`` [user:pass@]host[:port]."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        security = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "tls"}[scheme]
        default_port = {"plain": 25, "starttls": 587, "tls": 465}[security]
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or default_port,
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=timeout,
        )


class SmtpMailSender:
    """The real :class:`~intake.outbound.interfaces.MailSender`: one SMTP session a message."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def send(self, message: EmailMessage, *, envelope_from: str,
             recipients: Sequence[str]) -> None:
        """Send one message; classify failures as transient (retry) or permanent (dead letter)."""
        config = self.config
        try:
            client: smtplib.SMTP
            if config.security == "tls":
                client = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout,
                                          context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
            try:
                client.ehlo()
                if config.security == "starttls":
                    client.starttls(context=ssl.create_default_context())
                    client.ehlo()
                if config.username:
                    client.login(config.username, config.password or "")
                refused = client.send_message(message, from_addr=envelope_from,
                                              to_addrs=list(recipients))
            finally:
                try:
                    client.quit()
                except (smtplib.SMTPException, OSError):
                    client.close()
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise classify_reply(min(codes), "all recipients refused") from None
        except smtplib.SMTPResponseException as exc:  # includes authentication failures
            error = exc.smtp_error
            text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
            raise classify_reply(exc.smtp_code, text) from None
        except (TimeoutError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError,
                ConnectionError, OSError) as exc:
            raise TransientError(f"SMTP unavailable: {type(exc).__name__}") from None
        if refused:
            codes = [code for code, _ in refused.values()]
            raise classify_reply(min(codes), f"{len(refused)} recipient(s) refused")


def classify_reply(code: int, text: str) -> PermanentError | TransientError:
    """An SMTP error reply as the failure it is: 5xx permanent, anything else transient."""
    summary = f"SMTP {code}: {text[:200]}"
    if 500 <= code < 600:
        return PermanentError(summary)
    return TransientError(summary)
