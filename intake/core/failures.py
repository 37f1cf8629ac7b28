"""How an attempt to send something out failed: worth retrying, or never.

Each failure carries, beside its technical message (``str(error)``, for the
log), the answer in plain words (``reason``: what a dead letter says to the
staff who read it) and, where the way out knows it, the ``destination`` it
concerns (an SMTP server, a webhook's origin): the job machinery pauses a
destination that keeps failing (a circuit breaker) instead of spending every
item's attempts on it.
"""

from __future__ import annotations

import re
from datetime import datetime


class DeliveryFailure(Exception):
    """A failed attempt to hand something to a destination outside intake.

    Args:
        message: the technical summary (exception class, status, server text).
        reason: the same in plain words, for a dead letter; ``message`` if not given.
        destination: the server or origin it concerns, once known (the gate adds it).
        unreachable: the destination itself did not answer properly (connection
            refused or reset, timeout, DNS, "421 service not available", HTTP
            429/5xx): counts toward pausing that destination. False for an
            answer about this one message (e.g. SMTP 451 for one recipient).
    """

    def __init__(self, message: str, *, reason: str | None = None,
                 destination: str | None = None, unreachable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.destination = destination
        self.unreachable = unreachable


class PermanentError(DeliveryFailure):
    """A failure that retrying cannot fix (e.g. SMTP 5xx): dead-letter at once."""


class TransientError(DeliveryFailure):
    """A failure worth retrying later (e.g. connection refused): it never uses up an
    attempt; only the age limit ends its retries."""


class DestinationPaused(TransientError):
    """Not tried: the destination's circuit is open (it kept failing) until ``retry_at``."""

    def __init__(self, destination: str, retry_at: datetime, reason: str) -> None:
        super().__init__(f"{destination} paused until {retry_at:%Y-%m-%d %H:%M:%S} UTC",
                         reason=reason, destination=destination)
        self.retry_at = retry_at


# -- failures in plain words, with the next step (dead letters, quarantine) ------------


class Explanation:
    """What went wrong in plain words, and what staff or an operator should do next."""

    __slots__ = ("what", "next_step")

    def __init__(self, what: str, next_step: str) -> None:
        self.what = what
        self.next_step = next_step

    def __str__(self) -> str:
        return f"{self.what}. Next step: {self.next_step}"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Explanation)
                and (self.what, self.next_step) == (other.what, other.next_step))

    def __hash__(self) -> int:
        return hash((self.what, self.next_step))

    def __repr__(self) -> str:
        return f"Explanation({self.what!r}, {self.next_step!r})"


_RETRIES_ITSELF = "none now: intake tries again by itself; if it lasts, tell the agency"
_FIX_ADDRESS = ("correct the agency's address in the routing rules file (intake rules check), "
                "then retry the dead letter")
_ASK_MAIL_ADMINS = ("ask the agency's mail administrators to accept mail from intake's "
                    "mail server (SPF, DKIM, their allow list), then retry")
_CHECK_SMTP = "check the user, password and security of INTAKE_SMTP_URL, then retry"
_TOO_LARGE = "retry or send the link instead (the record number, without the attachments)"

#: Enhanced status codes (RFC 3463) first: they say more than the basic code.
SMTP_ENHANCED: dict[str, tuple[str, str]] = {
    "5.1.1": ("the agency's mail server says the address does not exist", _FIX_ADDRESS),
    "5.1.2": ("the agency's mail domain does not exist", _FIX_ADDRESS),
    "5.1.10": ("the agency's mail domain accepts no mail (null MX)", _FIX_ADDRESS),
    "5.2.1": ("the agency's mailbox is disabled", _FIX_ADDRESS),
    "5.2.2": ("the agency's mailbox is full",
              "ask the agency to make room in the mailbox, then retry"),
    "5.2.3": ("the agency's mail server refused the message as too large", _TOO_LARGE),
    "5.3.4": ("the agency's mail server refused the message as too large", _TOO_LARGE),
    "5.7.1": ("the agency's mail server refused the message by its policy (spam filter "
              "or relaying not allowed)", _ASK_MAIL_ADMINS),
    "5.7.23": ("the agency's mail server refused the message: the SPF check failed",
               "publish intake's sending server in the SPF record of INTAKE_MAIL_FROM's "
               "domain, then retry"),
    "5.7.26": ("the agency's mail server refused the message: it failed authentication "
               "(DMARC, SPF or DKIM)", "set up SPF and DKIM for INTAKE_MAIL_FROM's domain, "
               "then retry"),
    "5.7.8": ("the mail server refused intake's login", _CHECK_SMTP),
    "4.2.2": ("the agency's mailbox is full for now", _RETRIES_ITSELF),
    "4.7.1": ("the agency's mail server deferred the message (greylisting or a rate "
              "limit)", _RETRIES_ITSELF),
}

#: Basic SMTP reply codes (RFC 5321 section 4.2.3).
SMTP_CODES: dict[int, tuple[str, str]] = {
    421: ("the mail server is not available now (busy or shutting down)", _RETRIES_ITSELF),
    450: ("the agency's mailbox is not available now", _RETRIES_ITSELF),
    451: ("the mail server had a local error and deferred the message", _RETRIES_ITSELF),
    452: ("the mail server has no room for the message now", _RETRIES_ITSELF),
    454: ("the mail server cannot start TLS or log in now", _RETRIES_ITSELF),
    455: ("the mail server cannot accept the message's parameters now", _RETRIES_ITSELF),
    500: ("the mail server did not understand intake's command",
          "report it as a fault in intake (with the server's answer), then retry"),
    501: ("the mail server refused the syntax of an address or parameter",
          "check the agency's address in the routing rules, then retry"),
    502: ("the mail server does not support a command intake needs",
          "check INTAKE_SMTP_URL points at a mail submission server, then retry"),
    503: ("the mail server refused the order of intake's commands (often: log in first)",
          _CHECK_SMTP),
    504: ("the mail server does not support a parameter intake used",
          "report it as a fault in intake (with the server's answer), then retry"),
    521: ("the agency's mail domain accepts no mail", _FIX_ADDRESS),
    523: ("the agency's mail server refused the message as too large", _TOO_LARGE),
    530: ("the mail server requires a login (or TLS) first", _CHECK_SMTP),
    534: ("the mail server requires a stronger login method", _CHECK_SMTP),
    535: ("the mail server refused intake's login", _CHECK_SMTP),
    550: ("the agency's mail server refused the message (no such mailbox, or its policy)",
          "check the agency's address in the routing rules; if it is right, "
          + _ASK_MAIL_ADMINS),
    551: ("the agency's mail server says the address is not local to it", _FIX_ADDRESS),
    552: ("the agency's mail server refused the message as too large (or the mailbox is "
          "full)", _TOO_LARGE),
    553: ("the agency's mail server refused the address as not allowed", _FIX_ADDRESS),
    554: ("the agency's mail server refused the message (rejected as spam or by policy)",
          _ASK_MAIL_ADMINS),
    555: ("the mail server does not accept a MAIL FROM or RCPT TO parameter intake used",
          "report it as a fault in intake (with the server's answer), then retry"),
    556: ("the agency's mail domain accepts no mail", _FIX_ADDRESS),
}

_FIX_WEBHOOK = ("correct the agency's webhook address in the routing rules file, then retry "
                "the dead letter")
_ASK_WEBHOOK_OWNER = "ask the agency to fix their webhook receiver, then retry"

#: Answers of an agency's webhook.
HTTP_STATUSES: dict[int, tuple[str, str]] = {
    400: ("the agency's webhook refused the delivery as malformed", _ASK_WEBHOOK_OWNER),
    401: ("the agency's webhook refused intake's signature or credentials",
          "check with the agency that they verify with intake's webhook key "
          "(INTAKE_WEBHOOK_SECRET), then retry"),
    403: ("the agency's webhook refused intake's signature or credentials",
          "check with the agency that they verify with intake's webhook key "
          "(INTAKE_WEBHOOK_SECRET), then retry"),
    404: ("the agency's webhook address does not exist (any more)", _FIX_WEBHOOK),
    405: ("the agency's webhook address does not take deliveries (wrong URL)", _FIX_WEBHOOK),
    408: ("the agency's webhook timed out", _RETRIES_ITSELF),
    410: ("the agency's webhook address is gone", _FIX_WEBHOOK),
    413: ("the agency's webhook refused the delivery as too large", _TOO_LARGE),
    415: ("the agency's webhook does not accept JSON", _ASK_WEBHOOK_OWNER),
    422: ("the agency's webhook refused the content of the delivery", _ASK_WEBHOOK_OWNER),
    429: ("the agency's webhook asked intake to slow down", _RETRIES_ITSELF),
    500: ("the agency's webhook failed (server error)", _RETRIES_ITSELF),
    502: ("the agency's webhook is not available (bad gateway)", _RETRIES_ITSELF),
    503: ("the agency's webhook is not available", _RETRIES_ITSELF),
    504: ("the agency's webhook timed out (gateway timeout)", _RETRIES_ITSELF),
}

_SMTP_REPLY = re.compile(r"\b([245]\d\d)(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?\b")
_HTTP_ANSWER = re.compile(r"\banswered (\d{3})\b")


def explain_smtp(code: int, enhanced: str | None = None) -> Explanation:
    """An SMTP reply code (and RFC 3463 enhanced code) in plain words, with the next step."""
    if enhanced and enhanced in SMTP_ENHANCED:
        return Explanation(*SMTP_ENHANCED[enhanced])
    if code in SMTP_CODES:
        return Explanation(*SMTP_CODES[code])
    if 400 <= code < 500:
        return Explanation("the mail server deferred the message", _RETRIES_ITSELF)
    return Explanation("the mail server refused the message", _ASK_MAIL_ADMINS)


def explain_http(status: int) -> Explanation:
    """An answer of an agency's webhook in plain words, with the next step."""
    if status in HTTP_STATUSES:
        return Explanation(*HTTP_STATUSES[status])
    if 300 <= status < 400:
        return Explanation("the agency's webhook answered with a redirect, which intake "
                           "never follows", "put the new address in the routing rules, "
                           "then retry")
    if status >= 500:
        return Explanation("the agency's webhook failed (server error)", _RETRIES_ITSELF)
    return Explanation(f"the agency's webhook refused the delivery ({status})",
                       _ASK_WEBHOOK_OWNER)


def explain(reason: str, kind: str = "deliver") -> Explanation:
    """A dead letter's stored reason (``work_items.last_error``) in plain words, with the
    next step: the SMTP or HTTP answer it quotes looked up in the tables above, else what
    the kind of failure calls for. Only a "deliver" item goes to an agency: for the others
    (acknowledgements, relays) the recipient's server is meant."""
    result = _explain(reason)
    if kind != "deliver":
        result = Explanation(result.what.replace("the agency's ", "the recipient's "),
                             result.next_step)
    return result


def _explain(reason: str) -> Explanation:
    text = " ".join(reason.split())
    aged = text.startswith("not delivered in ")
    if "webhook" in text:
        answer = _HTTP_ANSWER.search(text)
        if answer:
            return _aged(explain_http(int(answer.group(1))), aged)
    if "mail server" in text and ("refused" in text or "deferred" in text):
        found = _SMTP_REPLY.search(text.partition(" refused ")[2]
                                   or text.partition(" deferred ")[2] or text)
        if found:
            result = explain_smtp(int(found.group(1)), found.group(2))
            if "refused the session" in text:
                result = Explanation(f"intake could not start a session with its own mail "
                                     f"server ({result.what})", _CHECK_SMTP)
            return _aged(result, aged)
    if text.startswith("could not reach") or "could not reach" in text:
        place = "mail server" if "mail server" in text else "webhook"
        return _aged(Explanation(f"intake could not reach the {place}",
                                 "none while it retries; if it lasts, check that the server "
                                 "is up and reachable from intake (and INTAKE_SMTP_URL)"), aged)
    if "INTAKE_SMTP_URL" in text and "no mail server" in text:
        return Explanation("no outgoing mail server is configured",
                           "set INTAKE_SMTP_URL, restart, then retry the dead letters")
    if "SMTPUTF8" in text or "non-ASCII" in text:
        return Explanation("the mail server does not accept international (non-ASCII) "
                           "addresses", "ask the agency for an ASCII address or a server "
                           "with SMTPUTF8, then retry")
    if "fault in intake" in text or "no handler for work kind" in text:
        return Explanation("a fault in intake stopped this work",
                           "report it with the work item id, upgrade, then retry")
    if "INTAKE_MAX_ATTEMPTS" in text:
        return Explanation("the work failed every time it was tried (a fault in intake or "
                           "the database)", "read the worker log for this work item id, fix "
                           "the cause, then retry")
    return Explanation("the work failed for good",
                       "read the worker log for this work item id, fix the cause, then retry")


def _aged(explanation: Explanation, aged: bool) -> Explanation:
    if not aged:
        return explanation
    return Explanation(f"{explanation.what}, for longer than the retry age limit "
                       "(INTAKE_DELIVERY_MAX_AGE)",
                       "once the destination works again, retry the dead letter")


#: Why an e-mail was quarantined (``quarantined_messages.error_class``).
QUARANTINE_REASONS: dict[str, tuple[str, str]] = {
    "UnstorableMessage": ("the e-mail could not be read as a message (empty, or not in "
                          "e-mail format)", "if it is not a real message, dismiss it; "
                          "else report it as a fault in intake"),
    "UnicodeDecodeError": ("the e-mail's text is in an encoding intake could not read",
                           "report it as a fault in intake with the quarantine id; then "
                           "retry after the upgrade, or dismiss it"),
    "RecursionError": ("the e-mail is nested too deeply to read (a malformed or hostile "
                       "message)", "dismiss it"),
    "MemoryError": ("the e-mail is too large to read", "dismiss it and ask the sender to "
                    "use the web form or smaller attachments"),
}


def explain_quarantine(error_class: str | None, error_message: str | None) -> Explanation:
    """Why an e-mail was quarantined, in plain words, with the next step."""
    if error_class in QUARANTINE_REASONS:
        return Explanation(*QUARANTINE_REASONS[error_class])
    return Explanation(f"intake could not store the e-mail ({error_class or 'unknown error'})",
                       "retry it once the cause is fixed (see the worker or poller log for "
                       "the quarantine id), or report it as a fault in intake")
