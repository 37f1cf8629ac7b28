"""Value types of the routing engine: submissions in, decisions out."""

from __future__ import annotations

import contextlib
import email
import email.message
import email.policy
import email.utils
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BUILTIN_FIELDS",
    "Agency",
    "Decision",
    "RuleError",
    "RulesError",
    "Submission",
    "TestResult",
    "TraceStep",
]

#: Field names with a fixed meaning; every other field name is a form field.
BUILTIN_FIELDS: tuple[str, ...] = (
    "channel",
    "form",
    "subject",
    "body",
    "sender",
    "sender_domain",
    "recipient",
    "attachments",
)

_SUBMISSION_KEYS = frozenset(BUILTIN_FIELDS) - {"sender_domain"}


def _domain_of(address: str | None) -> str | None:
    if not address:
        return None
    addr = email.utils.parseaddr(address)[1] or address
    if "@" not in addr:
        return None
    domain = addr.rsplit("@", 1)[1].strip().strip(">").rstrip(".")
    return domain.lower() or None


@dataclass(frozen=True)
class Submission:
    """One incoming message, from a web form or an e-mail.

    ``fields`` are the form fields (``topic``, ``zip``, ...); a value may be a
    string or a sequence of strings (multi-select).  Field names are matched
    case-insensitively.  ``sender_domain`` is derived from ``sender``.
    """

    channel: str
    form: str | None = None
    subject: str = ""
    body: str = ""
    sender: str | None = None
    recipient: str | None = None
    fields: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    attachments: Sequence[str] = ()

    @property
    def sender_domain(self) -> str | None:
        return _domain_of(self.sender)

    def values(self, name: str) -> tuple[str, ...]:
        """All values of field ``name`` (built-in or form field); () if absent."""
        key = name.casefold()
        if key == "channel":
            return (self.channel,) if self.channel else ()
        if key == "subject":
            return (self.subject,) if self.subject else ()
        if key == "body":
            return (self.body,) if self.body else ()
        if key == "sender" or key == "recipient":
            # the bare address: "Jo <jo@x.org>" -> "jo@x.org"
            value = getattr(self, key)
            if value:
                value = email.utils.parseaddr(value)[1] or value
            return (value,) if value else ()
        if key == "form":
            return (self.form,) if self.form else ()
        if key == "sender_domain":
            domain = self.sender_domain
            return (domain,) if domain else ()
        if key == "attachments":
            return tuple(a for a in self.attachments if a)
        for k, v in self.fields.items():
            if k.casefold() == key:
                if isinstance(v, str):
                    return (v,) if v else ()
                return tuple(str(x) for x in v if x)
        return ()

    @classmethod
    def from_mapping(cls, d: Mapping[str, object]) -> Submission:
        """Build a submission from a plain mapping (a rules-file test ``input``).

        Built-in keys (channel, form, subject, body, sender, recipient,
        attachments) fill the attributes; every other key is a form field.
        ``channel`` defaults to ``""``.  ``sender_domain`` cannot be given: it
        is derived from ``sender`` (ValueError).
        """
        kw: dict[str, Any] = {}
        fields: dict[str, str | Sequence[str]] = {}
        for key, value in d.items():
            k = str(key)
            if k == "sender_domain":
                raise ValueError("sender_domain is derived from sender; give sender instead")
            if k in _SUBMISSION_KEYS:
                if k == "attachments":
                    if isinstance(value, str):
                        kw[k] = (value,)
                    elif isinstance(value, Sequence):
                        kw[k] = tuple(str(x) for x in value)
                    else:
                        raise ValueError("attachments must be a list of file names")
                elif value is None:
                    kw[k] = "" if k in ("subject", "body", "channel") else None
                elif isinstance(value, str | int | float):
                    kw[k] = str(value)
                else:
                    raise ValueError(f"{k} must be a string")
            else:
                if isinstance(value, str):
                    fields[k] = value
                elif isinstance(value, Sequence):
                    fields[k] = tuple(str(x) for x in value)
                elif value is None:
                    continue
                else:
                    fields[k] = str(value)
        kw.setdefault("channel", "")
        return cls(fields=fields, **kw)

    @classmethod
    def from_email_bytes(cls, raw: bytes, recipient: str | None = None) -> Submission:
        """Parse an RFC 5322 message.  Never raises on broken mail.

        ``recipient`` is the mailbox the message arrived at; if not given, the
        first address of ``Delivered-To`` or else ``To`` is used.  The text
        body is preferred; an HTML-only body is crudely converted to text.
        """
        try:
            msg: email.message.Message = email.message_from_bytes(raw, policy=email.policy.default)
            subject = _header(msg, "subject")
        except Exception:  # noqa: BLE001 - broken mail must never raise
            msg = email.message_from_bytes(raw, policy=email.policy.compat32)
            subject = _header(msg, "subject")
        sender_raw = _header(msg, "from")
        sender = email.utils.parseaddr(sender_raw)[1] or None
        if recipient is None:
            for name in ("delivered-to", "to"):
                value = _header(msg, name)
                if value:
                    addrs = email.utils.getaddresses([value])
                    if addrs and addrs[0][1]:
                        recipient = addrs[0][1]
                        break
        body, attachments = _body_and_attachments(msg)
        return cls(
            channel="email",
            form=None,
            subject=" ".join(subject.split()),
            body=body,
            sender=sender,
            recipient=recipient,
            attachments=tuple(attachments),
        )


def _header(msg: email.message.Message, name: str) -> str:
    try:
        value = msg.get(name)
        return "" if value is None else str(value)
    except Exception:  # noqa: BLE001 - broken mail must never raise
        raw = msg.get_all(name, failobj=[]) if hasattr(msg, "get_all") else []
        try:
            return str(raw[0]) if raw else ""
        except Exception:  # noqa: BLE001 - broken mail must never raise
            return ""


_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)
_BLOCK = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h\d)\b[^>]*>", re.I)


def html_to_text(markup: str) -> str:
    """Crude HTML to text: drop scripts/styles and tags, unescape entities."""
    text = _BLOCK.sub("\n", markup)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    return "\n".join(" ".join(line.split()) for line in text.splitlines()).strip()


def _part_text(part: email.message.Message) -> str:
    getter = getattr(part, "get_content", None)
    if getter is not None:
        with contextlib.suppress(Exception):
            content = getter()
            if isinstance(content, str):
                return content
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - broken mail must never raise
        payload = None
    if isinstance(payload, bytes):
        charset = "utf-8"
        with contextlib.suppress(Exception):
            charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, errors="replace")
        except LookupError:
            return payload.decode("utf-8", errors="replace")
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


def _body_and_attachments(msg: email.message.Message) -> tuple[str, list[str]]:
    plain: list[str] = []
    htmls: list[str] = []
    attachments: list[str] = []
    try:
        parts = list(msg.walk())
    except Exception:  # noqa: BLE001 - broken mail must never raise
        parts = [msg]
    for part in parts:
        try:
            if part.is_multipart():
                continue
            filename = None
            try:
                filename = part.get_filename()
            except Exception:  # noqa: BLE001 - broken mail must never raise
                filename = None
            try:
                disposition = (part.get_content_disposition() or "").lower()
            except Exception:  # noqa: BLE001 - broken mail must never raise
                disposition = ""
            if filename or disposition == "attachment":
                attachments.append(str(filename or "unnamed"))
                continue
            ctype = part.get_content_type()
            if ctype == "text/plain":
                plain.append(_part_text(part))
            elif ctype == "text/html":
                htmls.append(_part_text(part))
        except Exception:  # noqa: BLE001, S112 - skip a broken part, keep the rest
            continue
    if plain:
        body = "\n".join(plain)
    elif htmls:
        body = "\n".join(html_to_text(h) for h in htmls)
    else:
        body = ""
    return body.strip(), attachments


@dataclass(frozen=True)
class Agency:
    id: str
    name: str
    email: str | None
    webhook: str | None


@dataclass(frozen=True)
class TraceStep:
    rule_id: str
    matched: bool
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"rule_id": self.rule_id, "matched": self.matched, "reason": self.reason}


@dataclass(frozen=True)
class Decision:
    """Where a submission goes and why.

    Equality ignores ``trace`` (the indexed and the naive evaluator record
    different amounts of trace but must agree on everything else).
    """

    route_to: str
    cc: tuple[str, ...]
    tags: tuple[str, ...]
    matched_rules: tuple[str, ...]
    decided_by: str | None
    captures: Mapping[str, Mapping[str, str]] = field(hash=False)
    trace: tuple[TraceStep, ...] = field(compare=False, hash=False)
    rules_sha256: str = ""
    route_reason: str = field(default="", compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "route_to": self.route_to,
            "cc": list(self.cc),
            "tags": list(self.tags),
            "matched_rules": list(self.matched_rules),
            "decided_by": self.decided_by,
            "captures": {k: dict(v) for k, v in self.captures.items()},
            "rules_sha256": self.rules_sha256,
            "trace": [s.to_dict() for s in self.trace],
        }

    def explain(self) -> str:
        lines = [f"route to '{self.route_to}': {self.route_reason or 'decided'}"]
        if self.cc:
            lines.append("cc: " + ", ".join(f"'{c}'" for c in self.cc))
        if self.tags:
            lines.append("tags: " + ", ".join(f"'{t}'" for t in self.tags))
        for step in self.trace:
            verdict = "matched" if step.matched else "did not match"
            lines.append(f"rule '{step.rule_id}' {verdict}: {step.reason}")
        if not self.matched_rules:
            lines.append("no rule matched")
        for rule_id, caps in self.captures.items():
            shown = ", ".join(f"{k}={v!r}" for k, v in caps.items())
            lines.append(f"rule '{rule_id}' captured {shown}")
        lines.append(f"rules sha256 {self.rules_sha256}")
        return "\n".join(lines)


@dataclass(frozen=True)
class RuleError:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class RulesError(Exception):
    """A rules file could not be loaded; ``errors`` lists every problem found."""

    def __init__(self, errors: Sequence[RuleError]) -> None:
        self.errors: list[RuleError] = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


@dataclass(frozen=True)
class TestResult:
    __test__ = False  # not a pytest test class

    name: str
    line: int
    passed: bool
    message: str
