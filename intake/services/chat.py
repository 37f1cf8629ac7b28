"""Live Help (issue 30): chats between the public and agency operators.

A chat is routed when it starts, by the routing rules, on its topic and first message
(:meth:`RuleSet.decide`, as any entry); operators of that agency see it in their queue,
accept it, chat, transfer it to another agency with a reason, and end it. Every message
is committed before it is acknowledged and before it is announced on the bus
(:mod:`intake.services.chatbus`); a stream reads what came after the last event it
sent, so a reconnect, or a killed process, loses nothing acknowledged.

When the chat ends its transcript becomes an entry on the ``chat`` channel through the
one record store (:func:`intake.services.records.record_submissions`): the same PII
findings, routing, timeline, renditions, publish rules and retention as any entry.
While the chat runs, a message's text is stored with the P6 values replaced by their
markers (the forms' warning step decides: remove them, or send and keep them sealed);
the exact text is sealed under the chat's own key, and once the transcript's sealed
original holds it, the chat's copies and key are erased.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from intake.core import sealing
from intake.core.forms import FormsConfigError, Survey, load_survey
from intake.core.pii import SENSITIVE_KINDS, Finding, warning_kinds
from intake.core.pii.at_rest import redact_at_rest
from intake.core.pii.redact import redact
from intake.core.routing.model import Submission
from intake.db.chat_models import ChatAccess, ChatMessage, ChatOperator, ChatSession
from intake.db.models import Event, utcnow
from intake.db.staff_models import AccessLogEntry, StaffAccount
from intake.services.findings import detect_places
from intake.services.records import NewSubmission, Recorded, SubmitterData, record_submissions
from intake.services.routing import RulesProvider
from intake.settings import Settings

log = logging.getLogger("intake.chat")

CHANNEL = "chat"
KIND = "chat"
MAX_MESSAGE = 4_000
MAX_NAME = 200
MAX_MESSAGES = 2_000  # a chat longer than this is ended: one transcript stays readable
REMOVED_MARK = {"en": "[removed]", "es": "[eliminado]"}
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^\s*([a-z]{3})(?:-([a-z]{3}))?\s+(\d\d):(\d\d)-(\d\d):(\d\d)\s*$")


class HelpConfigError(ValueError):
    pass


class ChatError(ValueError):
    """A request the chat's state does not allow (ended, not yours, unknown agency)."""


@dataclass(frozen=True)
class Hours:
    days: frozenset[int]
    start: time
    end: time | None  # None: until midnight (24:00)

    def contains(self, moment: datetime) -> bool:
        if moment.weekday() not in self.days:
            return False
        now = moment.time()
        return self.start <= now and (self.end is None or now < self.end)


@dataclass(frozen=True)
class AgencyHelp:
    hours: tuple[Hours, ...]
    wait_seconds: int


@dataclass(frozen=True)
class HelpConfig:
    form: str
    wait_seconds: int
    agencies: Mapping[str, AgencyHelp]
    exit_survey: Survey | None
    timezone: str = "America/New_York"

    def open_now(self, agency_id: str, now: datetime | None = None) -> bool:
        agency = self.agencies.get(agency_id)
        if agency is None:
            return False
        moment = (now or utcnow()).astimezone(ZoneInfo(self.timezone))
        return any(h.contains(moment) for h in agency.hours)

    def wait_for(self, agency_id: str) -> int:
        agency = self.agencies.get(agency_id)
        return agency.wait_seconds if agency is not None else self.wait_seconds


def packaged_help_path() -> Path:
    return Path(__file__).resolve().parent.parent / "defaults" / "live_help.yaml"


def _parse_hours(value: Any, where: str) -> tuple[Hours, ...]:
    if not isinstance(value, list) or not value:
        raise HelpConfigError(f"{where}: hours must be a list like ['mon-fri 08:00-17:00']")
    out = []
    for item in value:
        match = _HOURS.match(str(item).lower())
        if match is None or match.group(1) not in _DAYS or \
                (match.group(2) and match.group(2) not in _DAYS):
            raise HelpConfigError(f"{where}: {item!r} is not like 'mon-fri 08:00-17:00'")
        first = _DAYS.index(match.group(1))
        last = _DAYS.index(match.group(2)) if match.group(2) else first
        days = frozenset(range(first, last + 1)) if first <= last else \
            frozenset([*range(first, 7), *range(0, last + 1)])
        h1, m1, h2, m2 = (int(match.group(i)) for i in range(3, 7))
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
            raise HelpConfigError(f"{where}: {item!r} has an impossible time")
        end = None if h2 == 24 else time(h2, m2)
        if end is not None and end <= time(h1, m1):
            raise HelpConfigError(f"{where}: {item!r} ends before it starts")
        out.append(Hours(days, time(h1, m1), end))
    return tuple(out)


def _seconds(value: Any, where: str, default: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not 5 <= value <= 3600:
        raise HelpConfigError(f"{where}: wait_seconds must be a whole number from 5 to 3600")
    return value


def load_help(settings: Settings) -> HelpConfig:
    """The Live Help file (``INTAKE_HELP``, else the packaged example), checked."""
    path = settings.help_path or packaged_help_path()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise HelpConfigError(f"{path}: cannot be read ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise HelpConfigError(f"{path}: must be a mapping with version: 1")
    unknown = set(data) - {"version", "form", "wait_seconds", "exit_survey", "agencies"}
    if unknown:
        raise HelpConfigError(f"{path}: unknown key {sorted(unknown)[0]!r}")
    wait = _seconds(data.get("wait_seconds"), str(path), 180)
    agencies: dict[str, AgencyHelp] = {}
    raw_agencies = data.get("agencies") or {}
    if not isinstance(raw_agencies, dict):
        raise HelpConfigError(f"{path}: agencies must be a mapping of agency id to settings")
    for agency_id, item in raw_agencies.items():
        where = f"{path}: agencies.{agency_id}"
        if not isinstance(item, dict):
            raise HelpConfigError(f"{where}: must be a mapping with hours")
        agencies[str(agency_id)] = AgencyHelp(
            _parse_hours(item.get("hours"), where),
            _seconds(item.get("wait_seconds"), where, wait))
    survey = None
    if data.get("exit_survey"):
        survey_path = (path.parent / str(data["exit_survey"])).resolve()
        try:
            survey = load_survey(yaml.safe_load(survey_path.read_text(encoding="utf-8")),
                                 str(survey_path))
        except (OSError, yaml.YAMLError) as exc:
            raise HelpConfigError(f"{survey_path}: cannot be read ({type(exc).__name__})"
                                  ) from None
        except FormsConfigError as exc:
            raise HelpConfigError(exc.errors[0]) from None
    return HelpConfig(form=str(data.get("form") or "contact"), wait_seconds=wait,
                      agencies=agencies, exit_survey=survey, timezone=settings.timezone)


def browser_of(user_agent: str | None) -> str:
    """"Firefox 128": the browser's family and major version, parsed in memory. The
    User-Agent string itself is never stored."""
    if not user_agent:
        return ""
    from ua_parser import parse_user_agent

    parsed = parse_user_agent(user_agent[:1000])
    if parsed is None:
        return "Other"
    return f"{parsed.family} {parsed.major or ''}".strip()[:64]


# -- messages --------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """A message as it will be stored: the text (P6 values as markers or removed), the
    exact text to seal, and the P6 kinds the visitor should be warned about."""

    body: str
    raw: str
    warn: tuple[str, ...] = ()


def check_message(text: str, pii_key: bytes, choice: str | None, lang: str) -> Checked:
    """The forms' sensitive-data step for one message: ``choice`` None warns (the
    message is not stored), "remove" removes the values everywhere, "seal" keeps them
    only in the sealed text."""
    findings: list[Finding] = detect_places({"body": text}, pii_key).get("body", [])
    kinds = tuple(warning_kinds(findings))
    if not kinds:
        return Checked(text, text)
    if choice is None:
        return Checked(text, text, kinds)
    if choice == "remove":
        mark = REMOVED_MARK.get(lang, REMOVED_MARK["en"])
        sensitive = [f for f in findings if f.kind in SENSITIVE_KINDS]
        out: list[str] = []
        last = 0
        for r in redact(text, sensitive).redactions:
            out.extend((text[last:r.start], mark))
            last = r.end
        out.append(text[last:])
        cleaned = "".join(out)
        return Checked(cleaned, cleaned)
    return Checked(redact_at_rest(text, findings).text, text)


@dataclass(frozen=True)
class ChatEvent:
    id: int
    author: str
    author_name: str
    body: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "author": self.author, "name": self.author_name,
                "body": self.body, "at": self.at.isoformat()}


def _chat_key(settings_key: bytes, chat: ChatSession) -> bytes:
    if chat.wrapped_key is None:
        raise ChatError("chat already transcribed")
    return sealing.unwrap_key(settings_key, chat.wrapped_key)


def _context(chat: ChatSession) -> bytes:
    return f"intake chat {chat.public_id}".encode()


def _add(session: Session, chat: ChatSession, originals_key: bytes, author: str, name: str,
         body: str, raw: str | None = None) -> int:
    sealed = None
    if raw is not None and raw != body:
        sealed = sealing.seal(_chat_key(originals_key, chat), raw.encode("utf-8"),
                              _context(chat))
    message = ChatMessage(chat_id=chat.id, author=author, author_name=name, body=body,
                          raw=sealed, at=utcnow())
    session.add(message)
    session.flush()
    return int(message.id)


def route_chat(rules: RulesProvider, topic: str, first_message: str) -> str:
    """The agency the routing rules give a chat, on its topic and first message."""
    decision = rules.current().decide(Submission(
        channel=CHANNEL, form=None, subject="", body=first_message,
        fields={"topic": topic} if topic else {}))
    return decision.route_to


@dataclass(frozen=True)
class Started:
    chat_id: int
    public_id: str
    agency_id: str
    event_id: int


def start(session: Session, *, rules: RulesProvider, originals_key: bytes, topic: str,
          visitor_name: str | None, language: str, browser: str,
          first: Checked) -> Started:
    """A new chat with its first message, routed; committed by the caller."""
    agency = route_chat(rules, topic, first.body)
    chat = ChatSession(
        public_id=secrets.token_urlsafe(18), state="waiting", agency_id=agency, topic=topic,
        visitor_name=(visitor_name or "").strip()[:MAX_NAME] or None, language=language,
        browser=browser, started_at=utcnow(), detail={"transfers": []},
        wrapped_key=sealing.wrap_key(originals_key, sealing.new_data_key()))
    session.add(chat)
    session.flush()
    event_id = _add(session, chat, originals_key, "visitor", chat.visitor_name or "",
                    first.body, first.raw)
    log.info("chat %s started, routed to %s", chat.id, agency)
    return Started(int(chat.id), chat.public_id, agency, event_id)


def by_public_id(session: Session, public_id: str) -> ChatSession | None:
    return session.scalars(select(ChatSession).where(ChatSession.public_id == public_id)
                           ).one_or_none()


def post(session: Session, chat: ChatSession, originals_key: bytes, *, author: str,
         name: str, message: Checked) -> int:
    """Store one message; its event id. Ended chats take no more."""
    if chat.state not in ("waiting", "active"):
        raise ChatError("This chat has ended.")
    count = session.scalar(select(ChatMessage.id).where(ChatMessage.chat_id == chat.id)
                           .order_by(ChatMessage.id.desc()).limit(1).offset(MAX_MESSAGES))
    if count is not None:
        raise ChatError("This chat is too long: please end it and start a new one.")
    return _add(session, chat, originals_key, author, name, message.body, message.raw)


def events_after(session: Session, chat_id: int, after: int, limit: int = 500
                 ) -> list[ChatEvent]:
    rows = session.execute(
        select(ChatMessage.id, ChatMessage.author, ChatMessage.author_name, ChatMessage.body,
               ChatMessage.at)
        .where(ChatMessage.chat_id == chat_id, ChatMessage.id > after)
        .order_by(ChatMessage.id).limit(limit)).all()
    return [ChatEvent(int(r.id), r.author, r.author_name, r.body, r.at) for r in rows]


def operator_name(session: Session, user: StaffAccount) -> str:
    row = session.get(ChatOperator, user.id)
    return row.display_name if row is not None else "Operator"


def set_operator_name(session: Session, user: StaffAccount, name: str) -> None:
    name = " ".join(name.split())[:MAX_NAME]
    if not name:
        raise ChatError("Enter the name visitors will see.")
    if "@" in name:
        raise ChatError("Use a name, not an e-mail address.")
    row = session.get(ChatOperator, user.id)
    if row is None:
        session.add(ChatOperator(staff_id=user.id, display_name=name))
    else:
        row.display_name = name


def queue(session: Session, agency_id: str) -> list[ChatSession]:
    return list(session.scalars(
        select(ChatSession).where(ChatSession.agency_id == agency_id,
                                  ChatSession.state.in_(("waiting", "active")))
        .order_by(ChatSession.started_at, ChatSession.id)))


def log_view(session: Session, user: StaffAccount, chat: ChatSession) -> None:
    """A staff view of a chat (P8): copied to the entry's access log when it ends, or
    written there at once once the chat has its transcript entry."""
    if chat.entry_id is not None:
        session.add(AccessLogEntry(staff_id=user.id, entry_id=chat.entry_id, what="chat",
                                   at=utcnow()))
        return
    session.add(ChatAccess(chat_id=chat.id, staff_id=user.id, at=utcnow()))


def accept(session: Session, chat: ChatSession, user: StaffAccount, originals_key: bytes
           ) -> int:
    if chat.agency_id != user.agency_id:
        raise ChatError("This chat is not with your agency.")
    if chat.state != "waiting":
        raise ChatError("Another operator has taken this chat, or it has ended.")
    # Only one operator wins: the update counts.
    done = session.execute(update(ChatSession).where(
        ChatSession.id == chat.id, ChatSession.state == "waiting").values(
        state="active", operator_id=user.id, operator_name=operator_name(session, user),
        accepted_at=utcnow()))
    if getattr(done, "rowcount", 1) != 1:
        raise ChatError("Another operator has taken this chat.")
    session.refresh(chat)
    return _add(session, chat, originals_key, "system", "", f"joined:{chat.operator_name}")


def transfer(session: Session, chat: ChatSession, user: StaffAccount, rules: RulesProvider,
             originals_key: bytes, agency_id: str, reason: str) -> int:
    reason = " ".join(reason.split())[:500]
    if not reason:
        raise ChatError("Say why the chat is transferred.")
    agencies = rules.current().agencies
    if agency_id not in agencies:
        raise ChatError("Unknown agency.")
    if agency_id == chat.agency_id:
        raise ChatError("The chat is already with that agency.")
    if chat.operator_id != user.id and chat.agency_id != user.agency_id:
        raise ChatError("This chat is not with your agency.")
    detail = dict(chat.detail or {})
    detail["transfers"] = [*detail.get("transfers", []), {
        "from": chat.agency_id, "to": agency_id, "reason": reason,
        "by": f"staff:{user.id}", "at": utcnow().isoformat()}]
    chat.detail = detail
    chat.agency_id, chat.state, chat.operator_id, chat.operator_name = \
        agency_id, "waiting", None, None
    return _add(session, chat, originals_key, "system", "",
                f"transferred:{agencies[agency_id].name}")


def waiting_since(chat: ChatSession) -> datetime:
    """When the chat began to wait for its present agency (its start, or last transfer)."""
    transfers = (chat.detail or {}).get("transfers") or []
    if transfers:
        return datetime.fromisoformat(transfers[-1]["at"])
    return chat.started_at


def waited_too_long(config: HelpConfig, chat: ChatSession, now: datetime | None = None
                    ) -> bool:
    if chat.state != "waiting":
        return False
    return (now or utcnow()) - waiting_since(chat) > \
        timedelta(seconds=config.wait_for(chat.agency_id))


# -- the transcript ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ending:
    """How the chat ends: by whom, the exit interview's answers, the transcript copy."""

    by: str  # "visitor", "operator", "message" (left as a contact-form message)
    answers: Mapping[str, Any] = field(default_factory=dict)
    survey_id: str | None = None
    copy_to: str | None = None  # the visitor's address, given for the copy alone


def _texts(session: Session, chat: ChatSession, originals_key: bytes
           ) -> list[tuple[ChatMessage, str]]:
    key = _chat_key(originals_key, chat)
    rows = session.scalars(select(ChatMessage).where(ChatMessage.chat_id == chat.id)
                           .order_by(ChatMessage.id)).all()
    out = []
    for m in rows:
        text = m.body if m.raw is None else \
            sealing.unseal(key, m.raw, _context(chat)).decode("utf-8")
        out.append((m, text))
    return out


def _line(message: ChatMessage, text: str, tz: ZoneInfo) -> str | None:
    at = message.at.astimezone(tz).strftime("%H:%M:%S")
    if message.author == "system":
        what, _, value = text.partition(":")
        if what == "joined":
            return f"[{at}] {value} joined the chat."
        if what == "transferred":
            return f"[{at}] Transferred to {value}."
        if what == "ended":
            return f"[{at}] The chat ended."
        return None
    who = message.author_name or ("Visitor" if message.author == "visitor" else "Operator")
    return f"[{at}] {who}: {text}"


def end(session: Session, chat: ChatSession, ending: Ending, *, originals_key: bytes,
        pii_key: bytes, record_prefix: str, timezone: str) -> Recorded:
    """End the chat and record its transcript as an entry on the chat channel (the one
    record store), with the status link; the chat's sealed copies are then erased."""
    if chat.entry_id is not None:
        raise ChatError("This chat has already ended.")
    now = utcnow()
    _add(session, chat, originals_key, "system", "", f"ended:{ending.by}")
    chat.state = "left" if ending.by == "message" else "ended"
    chat.ended_at = now
    tz = ZoneInfo(timezone)
    texts = _texts(session, chat, originals_key)
    lines = [line for m, t in texts if (line := _line(m, t, tz)) is not None]
    transcript = "\n".join(lines)
    started = chat.started_at.astimezone(tz)
    transfers = list((chat.detail or {}).get("transfers", []))
    facts: dict[str, Any] = {
        "session_date": started.date().isoformat(),
        "start_time": started.strftime("%H:%M:%S"),
        "end_time": now.astimezone(tz).strftime("%H:%M:%S"),
        "operator": chat.operator_name or "",
        "visitor_name": chat.visitor_name or "",
        "topic": chat.topic,
        "browser": chat.browser,
        "agency_at_end": chat.agency_id,
        "transfers": transfers,
        "ended_by": ending.by,
        "transcript_copy": ending.copy_to is not None,
    }
    fields: dict[str, Any] = {"topic": chat.topic, "lang": chat.language, "chat": facts}
    if ending.survey_id:
        fields["survey"] = ending.survey_id
        fields["answers"] = dict(ending.answers)
    raw = json.dumps({"chat": facts, "messages": [
        {"author": m.author, "name": m.author_name, "at": m.at.isoformat(), "text": t}
        for m, t in texts]}, ensure_ascii=False, sort_keys=True).encode("utf-8")
    subject = f"Live Help: {chat.topic}" if chat.topic else "Live Help"
    [recorded] = record_submissions(session, [NewSubmission(
        channel=CHANNEL, kind=KIND, raw=raw, content_type="application/json",
        subject=subject, body=transcript, fields=fields,
        submitter=SubmitterData(name=chat.visitor_name, email=ending.copy_to),
        received_at=chat.started_at, idempotency_key=f"chat:{chat.public_id}",
        status_link=True, language=chat.language)],
        record_prefix=record_prefix, originals_key=originals_key, pii_key=pii_key)
    chat.entry_id = recorded.entry_id
    if recorded.status_token:
        chat.status_sealed = sealing.seal(_chat_key(originals_key, chat),
                                          recorded.status_token.encode(), _context(chat))
    # The views of the running chat join the entry's access log (P8).
    for access in session.scalars(select(ChatAccess).where(ChatAccess.chat_id == chat.id)):
        session.add(AccessLogEntry(staff_id=access.staff_id, entry_id=recorded.entry_id,
                                   what="chat", at=access.at))
    session.add(Event(entry_id=recorded.entry_id, kind="chat_ended", at=now,
                      actor="chat", detail={"ended_by": ending.by,
                                            "transfers": len(transfers)}))
    # The transcript's sealed original holds the exact texts now: erase the chat's.
    session.execute(update(ChatMessage).where(ChatMessage.chat_id == chat.id)
                    .values(raw=None))
    log.info("chat %s ended by %s: entry %s", chat.id, ending.by, recorded.entry_id)
    return recorded


def status_token(chat: ChatSession, originals_key: bytes) -> str | None:
    """The transcript entry's status token, for the visitor's last page."""
    if chat.status_sealed is None or chat.wrapped_key is None:
        return None
    return sealing.unseal(_chat_key(originals_key, chat), chat.status_sealed,
                          _context(chat)).decode()


def forget_status_token(chat: ChatSession) -> None:
    """Once the visitor has had it for long enough: the chat's key goes too."""
    chat.status_sealed = None
    chat.wrapped_key = None


def summary(chat: ChatSession) -> dict[str, Any]:
    """What an operator sees of the visitor: name as entered, topic, browser, language;
    never an address (the chat has none until the transcript, and then only the gate)."""
    return {"name": chat.visitor_name or "", "topic": chat.topic, "browser": chat.browser,
            "language": chat.language, "state": chat.state, "agency": chat.agency_id}


def validate_exit(survey: Survey | None, data: Mapping[str, Sequence[str]]
                  ) -> dict[str, Any]:
    from intake.core.forms import validate_survey_answers

    if survey is None:
        return {}
    result = validate_survey_answers(survey, data)
    return {k: v for k, v in result.answers.items() if k not in result.errors}


def valid_email(address: str) -> bool:
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return len(address) <= 320


def record_number(session: Session, entry_id: int) -> str:
    from intake.db.models import Entry

    return str(session.scalar(select(Entry.record_number).where(Entry.id == entry_id)))


def add_exit_answers(session: Session, chat: ChatSession, survey_id: str,
                     answers: Mapping[str, Any]) -> None:
    """The exit interview answered after an operator ended the chat: stored with the
    transcript entry (once)."""
    from intake.db.models import Entry

    if chat.entry_id is None or not answers:
        return
    entry = session.get(Entry, chat.entry_id)
    if entry is None or (entry.fields or {}).get("answers"):
        return
    entry.fields = {**(entry.fields or {}), "survey": survey_id, "answers": dict(answers)}


def forget(session: Session, entry_ids: Sequence[int]) -> None:
    """Retention (:func:`intake.services.retention.destroy_entries`): the chats whose
    transcripts these entries are keep no text, name or key of theirs either."""
    if not entry_ids:
        return
    chat_ids = select(ChatSession.id).where(ChatSession.entry_id.in_(list(entry_ids)))
    session.execute(update(ChatMessage).where(ChatMessage.chat_id.in_(chat_ids))
                    .values(body="", author_name="", raw=None))
    session.execute(update(ChatSession).where(ChatSession.entry_id.in_(list(entry_ids)))
                    .values(visitor_name=None, operator_name=None, topic="", browser="",
                            detail={}, wrapped_key=None, status_sealed=None))


def idle_chats(session: Session, older_than: timedelta, now: datetime | None = None
               ) -> list[ChatSession]:
    """Running chats (waiting or active) whose last event is older than ``older_than``:
    the visitor closed the page and never ended it."""
    from sqlalchemy import func

    cutoff = (now or utcnow()) - older_than
    last = (select(ChatMessage.chat_id, func.max(ChatMessage.at).label("last_at"))
            .group_by(ChatMessage.chat_id).subquery())
    return list(session.scalars(
        select(ChatSession).join(last, last.c.chat_id == ChatSession.id)
        .where(ChatSession.state.in_(("waiting", "active")), last.c.last_at < cutoff)
        .order_by(ChatSession.id)))
