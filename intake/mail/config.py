"""Mailbox configuration: ``INTAKE_IMAP_URL`` or the mailboxes file, parsed into values.

``parse_imap_url`` and ``parse_mailboxes`` are pure (text in, values out);
``load_mailboxes`` does the file reading for a :class:`Settings`.

The mailboxes file (YAML)::

    mailboxes:
      - name: info                      # unique; stored on each entry as the recipient
        host: imap.example.gov
        port: 993                       # default: 993 for tls, 143 otherwise
        security: tls                   # tls | starttls | none
        user: info@example.gov
        password_file: /etc/intake/info.pw   # or password_env: INTAKE_IMAP_PASSWORD_INFO
        folder: INBOX                   # default INBOX
        processed_folder: Processed     # default Processed; created if missing
        agency: transport               # optional default agency hint (fields._mailbox_agency)
        form: contact                   # optional form kind (stored as the entry's form slug)
        poll_interval: 60               # seconds between passes when IDLE is not offered
        relay_senders: [noreply@, wordpress@, forms@example.org, "@forms.example.net"]
                                        # web-form relays (default: DEFAULT_RELAY_SENDERS):
                                        # mail from them with a Reply-To is the Reply-To's
        spam_headers: ["X-Spam-Flag: YES"]   # "Header: value" marking spam (default:
                                        # X-Spam-Flag: YES and X-Spam-Status: Yes)
      - name: m365
        host: outlook.office365.com
        user: intake@agency.example.gov      # the mailbox (XOAUTH2 "user=")
        auth: oauth2                    # password (default) | oauth2: no password_* then
        oauth2:                         # see intake.core.oauth2 for every key
          provider: microsoft
          tenant: 00000000-0000-0000-0000-000000000000
          client_id: 11111111-1111-1111-1111-111111111111
          client_secret_env: INTAKE_OAUTH2_M365_SECRET   # or client_secret_file
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from intake.core.mail.automatic import DEFAULT_RELAY_SENDERS, DEFAULT_SPAM_HEADERS, AutoConfig
from intake.core.oauth2 import OAuth2Config, OAuth2ConfigError, parse_auth
from intake.settings import Settings


class MailboxConfigError(ValueError):
    """A mailbox description that cannot work; the message is one line."""


SECURITIES = ("tls", "starttls", "none")
# A mailbox's name is how log lines and the mailbox_state row call it: a label the
# operator chooses, never an address (no "@"), so that "mailbox %s" logs an id.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_RULE = "name must be 1-64 letters, digits, '.', '_' or '-' (it is logged)"


@dataclass(frozen=True)
class MailboxConfig:
    """One mailbox to poll: where it is, how to log in, which folders, how often."""

    name: str
    host: str
    port: int
    security: str  # tls | starttls | none
    user: str
    password: str = ""
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    agency: str | None = None
    form: str | None = None
    poll_interval: float = 60.0
    # Servers without MOVE get COPY + this keyword (never a delete).
    done_keyword: str = "IntakeProcessed"
    # Web-form relay senders and spam headers (see intake.core.mail.automatic).
    relay_senders: tuple[str, ...] = DEFAULT_RELAY_SENDERS
    spam_headers: tuple[str, ...] = DEFAULT_SPAM_HEADERS
    #: ``auth: oauth2``: log in with XOAUTH2 and a token from here (no password then).
    oauth2: OAuth2Config | None = None

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name):
            raise MailboxConfigError(f"mailbox {NAME_RULE}")  # not echoed: it may be anything

    def automatic(self) -> AutoConfig:
        """What the intake needs to know about automatic mail and web-form relays."""
        return AutoConfig(relay_senders=self.relay_senders, spam_headers=self.spam_headers)

    def __repr__(self) -> str:  # never show the password
        return (f"MailboxConfig(name={self.name!r}, host={self.host!r}, port={self.port}, "
                f"security={self.security!r}, folder={self.folder!r})")


def _default_port(security: str) -> int:
    return 993 if security == "tls" else 143


def parse_imap_url(url: str, passwords: Mapping[str, str] | None = None,
                   name: str = "default") -> MailboxConfig:
    """``imaps://user:pass@host:993/INBOX?processed=Done&interval=30`` → one mailbox.

    ``imap://`` is plain, ``imaps://`` TLS, ``imap+starttls://`` STARTTLS. With
    no password in the URL, ``INTAKE_IMAP_PASSWORD`` (from ``passwords``) is used.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    security = {"imaps": "tls", "imap+starttls": "starttls", "imap": "none"}.get(scheme)
    if security is None:
        raise MailboxConfigError(f"INTAKE_IMAP_URL: unknown scheme {scheme!r}")
    if not parts.hostname:
        raise MailboxConfigError("INTAKE_IMAP_URL: no host")
    if not parts.username:
        raise MailboxConfigError("INTAKE_IMAP_URL: no user (imaps://user:pass@host/INBOX)")
    try:
        port = parts.port or _default_port(security)
    except ValueError:
        raise MailboxConfigError("INTAKE_IMAP_URL: bad port") from None
    password = unquote(parts.password) if parts.password else ""
    if not password:
        password = (passwords or {}).get("INTAKE_IMAP_PASSWORD", "")
    if not password:
        raise MailboxConfigError("INTAKE_IMAP_URL: no password (in the URL or "
                                 "INTAKE_IMAP_PASSWORD)")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    query = parse_qs(parts.query)
    processed = query.get("processed", ["Processed"])[0]
    try:
        interval = float(query.get("interval", ["60"])[0])
    except ValueError:
        raise MailboxConfigError("INTAKE_IMAP_URL: interval must be a number") from None
    return MailboxConfig(name=name, host=parts.hostname, port=port, security=security,
                         user=unquote(parts.username), password=password, folder=folder,
                         processed_folder=processed, poll_interval=max(1.0, interval))


def _text(item: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = item.get(key, default)
    if value is None:
        raise MailboxConfigError(f"{where}: '{key}' is required")
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value).strip() == "":
        raise MailboxConfigError(f"{where}: '{key}' must be a non-empty string")
    return str(value).strip()


_KNOWN_KEYS = {"name", "host", "port", "security", "user", "password", "password_file",
               "password_env", "auth", "oauth2", "folder", "processed_folder", "agency", "form",
               "poll_interval", "relay_senders", "spam_headers"}


def parse_mailboxes(text: str, passwords: Mapping[str, str] | None = None,
                    read_file: Any = None, source: str = "INTAKE_MAILBOXES_FILE"
                    ) -> list[MailboxConfig]:
    """The mailboxes of a YAML mailboxes file.

    ``read_file(path) -> str`` reads ``password_file`` and the oauth2 secret files
    (injected so this function stays free of I/O); ``passwords`` resolves
    ``password_env`` and the oauth2 ``*_env`` (``INTAKE_OAUTH2_*``) names.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise MailboxConfigError(f"{source}: not valid YAML{line}") from None
    if not isinstance(data, dict) or not isinstance(data.get("mailboxes"), list):
        raise MailboxConfigError(f"{source}: expected a 'mailboxes:' list")
    result: list[MailboxConfig] = []
    seen: set[str] = set()
    for index, item in enumerate(data["mailboxes"], 1):
        name = _mailbox_name(item, f"{source}: mailbox {index}", seen)
        result.append(_mailbox(item, name, f"{source}: mailbox {name!r}", passwords,
                               read_file))
    if not result:
        raise MailboxConfigError(f"{source}: the mailboxes list is empty")
    return result


def _mailbox_name(item: Any, where: str, seen: set[str]) -> str:
    """The entry's name, checked (a mapping of known keys, a valid and new name)."""
    if not isinstance(item, dict):
        raise MailboxConfigError(f"{where}: expected a mapping")
    unknown = sorted(set(map(str, item)) - _KNOWN_KEYS)
    if unknown:
        raise MailboxConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    name = _text(item, "name", where)
    if not _NAME_RE.fullmatch(name):
        raise MailboxConfigError(f"{where}: {NAME_RULE}")
    if name in seen:
        raise MailboxConfigError(f"{where}: duplicate name {name!r}")
    seen.add(name)
    return name


def _mailbox(item: Mapping[str, Any], name: str, where: str,
             passwords: Mapping[str, str] | None, read_file: Any) -> MailboxConfig:
    """One entry of the mailboxes file (its name already checked) as a mailbox."""
    security = _text(item, "security", where, "tls").lower()
    if security not in SECURITIES:
        raise MailboxConfigError(f"{where}: security must be tls, starttls or none")
    port = item.get("port", _default_port(security))
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise MailboxConfigError(f"{where}: port must be a number from 1 to 65535")
    try:
        oauth2 = parse_auth(item, where, passwords, read_file)
    except OAuth2ConfigError as exc:
        raise MailboxConfigError(str(exc)) from None
    if oauth2 is not None:
        if any(k in item for k in ("password", "password_file", "password_env")):
            raise MailboxConfigError(f"{where}: auth: oauth2 takes no password")
        password = ""
    else:
        password = _password(item, where, passwords, read_file)
    interval = item.get("poll_interval", 60)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 1:
        raise MailboxConfigError(f"{where}: poll_interval must be a number ≥ 1")
    agency = item.get("agency")
    form = item.get("form")
    return MailboxConfig(
        name=name,
        host=_text(item, "host", where),
        port=port,
        security=security,
        user=_text(item, "user", where),
        password=password,
        folder=_text(item, "folder", where, "INBOX"),
        processed_folder=_text(item, "processed_folder", where, "Processed"),
        agency=str(agency) if agency else None,
        form=str(form) if form else None,
        poll_interval=float(interval),
        relay_senders=_strings(item, "relay_senders", where, DEFAULT_RELAY_SENDERS,
                               _RELAY_SENDER_RE, "'local@', 'local@domain' or '@domain'"),
        spam_headers=_strings(item, "spam_headers", where, DEFAULT_SPAM_HEADERS,
                              _SPAM_HEADER_RE, "'Header-Name: value'"),
        oauth2=oauth2,
    )


_RELAY_SENDER_RE = re.compile(r"[^\s@]*@[^\s@]*")
_SPAM_HEADER_RE = re.compile(r"[!-9;-~]+:\s*\S.{0,200}")


def _strings(item: Mapping[str, Any], key: str, where: str, default: tuple[str, ...],
             shape: re.Pattern[str], what: str) -> tuple[str, ...]:
    """A list of strings of one shape (an empty list is allowed: none at all)."""
    if key not in item:
        return default
    values = item[key]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise MailboxConfigError(f"{where}: '{key}' must be a list of strings")
    result = tuple(v.strip() for v in values)
    for value in result:
        if not shape.fullmatch(value) or value == "@":
            raise MailboxConfigError(f"{where}: each of '{key}' must look like {what}")
    return result


def _password(item: Mapping[str, Any], where: str, passwords: Mapping[str, str] | None,
              read_file: Any) -> str:
    """The password from exactly one of ``password``, ``password_env``, ``password_file``."""
    sources = [k for k in ("password", "password_file", "password_env") if k in item]
    if len(sources) != 1:
        raise MailboxConfigError(
            f"{where}: give exactly one of password, password_file, password_env")
    if sources[0] == "password":
        return _text(item, "password", where)
    if sources[0] == "password_env":
        variable = _text(item, "password_env", where)
        if not variable.startswith("INTAKE_IMAP_PASSWORD"):
            raise MailboxConfigError(
                f"{where}: password_env must name an INTAKE_IMAP_PASSWORD_<NAME> variable")
        password = (passwords or {}).get(variable, "")
        if not password:
            raise MailboxConfigError(f"{where}: {variable} is not set")
        return password
    path = _text(item, "password_file", where)
    if read_file is None:
        raise MailboxConfigError(f"{where}: password_file cannot be read here")
    try:
        password = str(read_file(path)).strip()
    except OSError as exc:
        raise MailboxConfigError(
            f"{where}: cannot read password_file: {exc.strerror or exc}") from None
    if not password:
        raise MailboxConfigError(f"{where}: password_file is empty")
    return password


def load_mailboxes(settings: Settings) -> list[MailboxConfig]:
    """Every configured mailbox: ``INTAKE_IMAP_URL`` (named "default") and the file's."""
    mailboxes: list[MailboxConfig] = []
    if settings.imap_url:
        mailboxes.append(parse_imap_url(settings.imap_url, settings.imap_passwords))
    if settings.mailboxes_file is not None:
        path = settings.mailboxes_file
        base = path.parent

        def read(name: str) -> str:
            target = Path(name).expanduser()
            if not target.is_absolute():
                target = base / target
            return target.read_text(encoding="utf-8")

        secrets = {**settings.imap_passwords, **settings.oauth2_secrets}
        mailboxes.extend(parse_mailboxes(path.read_text(encoding="utf-8"), secrets, read))
    names = [m.name for m in mailboxes]
    if len(set(names)) != len(names):
        raise MailboxConfigError("INTAKE_MAILBOXES_FILE: a mailbox is named 'default', which "
                                 "INTAKE_IMAP_URL already uses")
    return mailboxes
