"""An e-mail backend that does all that Django's SMTP backend does to a message but send it:
the addresses are checked and the message built and encoded as for the wire, then dropped
(intake's bench runs send nothing either: its forwards and receipts wait for a worker)."""

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import sanitize_address


class BuildOnlyBackend(BaseEmailBackend):
    def send_messages(self, email_messages):  # type: ignore[no-untyped-def]
        sent = 0
        for message in email_messages:
            # What django.core.mail.backends.smtp.EmailBackend._send does before sendmail().
            if not message.recipients():
                continue
            encoding = message.encoding or settings.DEFAULT_CHARSET
            sanitize_address(message.from_email, encoding)
            for address in message.recipients():
                sanitize_address(address, encoding)
            message.message().as_bytes(linesep="\r\n")
            sent += 1
        return sent
