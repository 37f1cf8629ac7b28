"""Staff accounts, logins and sessions: argon2 passwords, TOTP, throttling, management.

- Passwords are argon2id hashes (argon2-cffi); an unknown e-mail costs the
  same hash as a known one, so the answer time does not reveal accounts.
- TOTP (pyotp, RFC 6238, 30-second steps, one step of clock drift either
  way); an accepted time step is remembered, so a code works once. Every
  account has one; only ``INTAKE_ALLOW_STAFF_WITHOUT_TOTP`` (development)
  lets an account be created, or log in, without.
- Failed logins are throttled, never locked (:class:`Throttles`): an
  outsider who knows a staff e-mail cannot keep its owner out. Three keys
  count failures, in the database so that every web worker sees them:

  * (account, client): :data:`PAIR_POLICY`: the owner's own browser is slowed
    down only by the owner's own mistakes;
  * client: :data:`CLIENT_POLICY`, across every account it tries;
  * account: :data:`ACCOUNT_POLICY`, the ceiling for many clients together.
    Past it, the password is checked only together with a valid TOTP code in
    the same form, so a botnet gets no answer about the password while the
    owner still logs in with password and code.

  Each policy lets ``free`` failures pass, then refuses the key for a delay
  that doubles with each further failure, up to ``max_delay``; a key's count
  is forgotten a day after its last failure. Keys are HMACs (the client
  address and e-mail are never stored, per promise P1).
- Sessions: the signed cookie carries a random token; the database keeps its
  SHA-256, creation and last-seen times, so logout ends the session for good
  and the idle and absolute timeouts are enforced on the server. Disabling an
  account, or resetting its password or second factor, ends its sessions.
- Every change to an account is a :class:`StaffAccountEvent` (who, what,
  to whom, when).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from intake.core.roles import ADMIN_ROLES, ROLES
from intake.db import Database
from intake.db.models import utcnow
from intake.db.staff_models import LoginThrottle as ThrottleRow
from intake.db.staff_models import StaffAccount, StaffAccountEvent, StaffSession

log = logging.getLogger("intake.staff")

IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
# last_seen_at is written at most this often, so reading pages costs no write each time.
TOUCH_EVERY = timedelta(seconds=60)
MIN_PASSWORD_LENGTH = 12
TOTP_ISSUER = "intake"

ROLE_LABELS = {
    "agent": "Agent",
    "agency_admin": "Agency administrator",
    "records_officer": "Records officer",
    "system_admin": "System administrator",
    "operator": "Live Help operator",
}

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

NO_TOTP_REFUSED = ("every staff account needs a second factor (TOTP); "
                   "INTAKE_ALLOW_STAFF_WITHOUT_TOTP=1 allows accounts without one, "
                   "for development only")


class AccountError(ValueError):
    """An account cannot be created or changed as asked; the message is one line."""


@dataclass(frozen=True)
class Actor:
    """Who changes an account: an administrator's account, or the command line."""

    id: int | None
    label: str

    @classmethod
    def staff(cls, account: StaffAccount) -> Actor:
        return cls(account.id, f"staff:{account.id}")

    @classmethod
    def command_line(cls, user: str) -> Actor:
        return cls(None, f"cli:{user}"[:128])


def normalise_email(email: str) -> str:
    return email.strip().lower()


def create_account(
    session: Session, *, email: str, agency_id: str, role: str, password: str,
    with_totp: bool = True, allow_without_totp: bool = False, actor: Actor | None = None,
) -> tuple[StaffAccount, str | None]:
    """A new account; returns it and its TOTP secret (shown once), if any."""
    email = normalise_email(email)
    if not _EMAIL.match(email) or len(email) > 320:
        raise AccountError(f"not an e-mail address: {email!r}")
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r} (expected one of: {', '.join(ROLES)})")
    if not with_totp and role in ADMIN_ROLES:
        raise AccountError(f"role {role} requires a second factor (TOTP)")
    if not with_totp and not allow_without_totp:
        raise AccountError(NO_TOTP_REFUSED)
    _check_password_rules(password)
    if session.scalar(select(StaffAccount.id).where(StaffAccount.email == email)) is not None:
        raise AccountError(f"an account for {email} already exists")
    secret = pyotp.random_base32() if with_totp else None
    account = StaffAccount(email=email, agency_id=agency_id, role=role,
                           password_hash=_hasher.hash(password), totp_secret=secret,
                           failed_logins=0, disabled=False)
    session.add(account)
    session.flush()
    if actor is not None:
        _event(session, actor, account.id, "created")
    return account, secret


def _check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise AccountError("the password must be at most 1024 characters")


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


# -- throttling ------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottlePolicy:
    """``free`` failures pass; each further one blocks the key for a doubling delay."""

    free: int
    first_delay: timedelta
    max_delay: timedelta

    def delay_after(self, failures: int) -> timedelta | None:
        """How long a key is refused after its ``failures``-th failure (None: not at all)."""
        if failures < self.free:
            return None
        doublings = min(failures - self.free, 32)
        return min(self.first_delay * (2 ** doublings), self.max_delay)


PAIR_POLICY = ThrottlePolicy(free=5, first_delay=timedelta(minutes=1),
                             max_delay=timedelta(hours=1))
# An office behind one address has many staff: more room before the client slows down.
CLIENT_POLICY = ThrottlePolicy(free=20, first_delay=timedelta(minutes=1),
                               max_delay=timedelta(hours=1))
# The ceiling for many clients together: past it the password needs the code beside it.
ACCOUNT_POLICY = ThrottlePolicy(free=10, first_delay=timedelta(minutes=1),
                                max_delay=timedelta(hours=1))
POLICIES = {"pair": PAIR_POLICY, "client": CLIENT_POLICY, "account": ACCOUNT_POLICY}
# The purpose of the key (Settings.derived_key) that makes the throttle keys.
THROTTLE_KEY_PURPOSE = "staff login throttle"
# A key with no failure for this long starts again from zero.
FORGET_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class ThrottleKeys:
    """The three keys of one login attempt (keyed hashes; nothing in them is readable)."""

    pair: str
    client: str
    account: str

    @classmethod
    def of(cls, secret: bytes, email: str, client: str) -> ThrottleKeys:
        return cls(pair=_keyed(secret, "pair", normalise_email(email), client),
                   client=_keyed(secret, "client", client),
                   account=account_key(secret, email))

    def rows(self) -> list[tuple[str, str, str | None]]:
        """(key, scope, account key), sorted by key: locks are always taken in one order."""
        return sorted([(self.pair, "pair", self.account), (self.client, "client", None),
                       (self.account, "account", self.account)])


def _keyed(secret: bytes, *parts: str) -> str:
    return hmac.new(secret, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()


def account_key(secret: bytes, email: str) -> str:
    return _keyed(secret, "account", normalise_email(email))


@dataclass(frozen=True)
class ThrottleState:
    refused_until: datetime | None  # the pair or client key is refused until then
    ceiling: bool  # the account is past its ceiling: password and code together


def _insert_if_missing(session: Session, **values: object) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(pg_insert(ThrottleRow).values(**values)
                        .on_conflict_do_nothing(index_elements=["key"]))
    else:
        session.execute(sqlite_insert(ThrottleRow).values(**values)
                        .on_conflict_do_nothing(index_elements=["key"]))


class Throttles:
    """The three rows of one attempt, locked until its transaction ends.

    Concurrent attempts on the same key wait for each other (PostgreSQL row locks;
    SQLite's write lock), so a burst of parallel requests cannot all pass a key that the
    first of them is about to block. Rows are made on first use and locked in key order
    (no deadlock between two attempts); the row of a key idle for :data:`FORGET_AFTER` is
    dropped by a later attempt, so keys of made-up e-mails do not pile up.
    """

    def __init__(self, session: Session, keys: ThrottleKeys, now: datetime) -> None:
        self.session, self.keys, self.now = session, keys, now
        stale = (select(ThrottleRow.key).where(ThrottleRow.last_failure_at < now - FORGET_AFTER)
                 .limit(100).with_for_update(skip_locked=True).scalar_subquery())
        session.execute(delete(ThrottleRow).where(ThrottleRow.key.in_(stale)))
        for key, scope, account in keys.rows():
            _insert_if_missing(session, key=key, scope=scope, account_key=account,
                               failures=0, last_failure_at=now)
        self.rows = {row.key: row for row in session.scalars(
            select(ThrottleRow).where(ThrottleRow.key.in_([keys.pair, keys.client,
                                                           keys.account]))
            .order_by(ThrottleRow.key).with_for_update()
            .execution_options(populate_existing=True))}
        for row in self.rows.values():
            if row.last_failure_at < now - FORGET_AFTER:  # forgotten
                row.failures, row.blocked_until = 0, None

    def _blocked(self, key: str) -> datetime | None:
        until = self.rows[key].blocked_until
        return until if until is not None and until > self.now else None

    def state(self) -> ThrottleState:
        refused = [t for t in (self._blocked(self.keys.pair), self._blocked(self.keys.client))
                   if t is not None]
        return ThrottleState(max(refused) if refused else None,
                             self._blocked(self.keys.account) is not None)

    def failed(self) -> None:
        """Count a failed password or code under each key; block a key past its free ones."""
        for row in self.rows.values():
            row.failures += 1
            row.last_failure_at = self.now
            delay = POLICIES[row.scope].delay_after(row.failures)
            row.blocked_until = self.now + delay if delay is not None else None
        self.session.flush()

    def succeeded(self) -> None:
        """A success forgives the owner's own client only: an attacker's counts stay."""
        pair = self.rows[self.keys.pair]
        pair.failures, pair.blocked_until = 0, None


# -- login -------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginStep:
    """The result of one login step. ``reason`` is for logs and tests, never shown."""

    ok: bool
    # ok, totp-required, totp-missing, bad-credentials, disabled, bad-code, throttled,
    # code-needed (the account is past its ceiling: send the password with a code)
    reason: str
    account_id: int | None = None
    retry_at: datetime | None = None


@dataclass(frozen=True)
class Attempt:
    """Where a login attempt comes from: the client address and the throttle key."""

    client: str
    secret: bytes
    allow_without_totp: bool = False


def _verify(account: StaffAccount | None, password: str) -> bool:
    if account is None:
        try:  # same cost as a real check
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        return False
    try:
        _hasher.verify(account.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    return True


def check_password(session: Session, email: str, password: str, attempt: Attempt,
                   code: str | None = None, now: datetime | None = None) -> LoginStep:
    """First step: the password (with the code too when the account is past its ceiling)."""
    now = now or utcnow()
    throttles = Throttles(session, ThrottleKeys.of(attempt.secret, email, attempt.client), now)
    state = throttles.state()
    if state.refused_until is not None:
        return LoginStep(False, "throttled", retry_at=state.refused_until)
    if state.ceiling and not code:
        # Nothing is checked, so nothing is learnt about the password.
        return LoginStep(False, "code-needed")
    account = session.scalar(
        select(StaffAccount).where(StaffAccount.email == normalise_email(email))
        .with_for_update()
    )
    password_ok = _verify(account, password)
    if account is None or not password_ok:
        throttles.failed()
        return LoginStep(False, "bad-credentials")
    if account.disabled:
        return LoginStep(False, "disabled")
    if not account.totp_secret:
        if account.role in ADMIN_ROLES or not attempt.allow_without_totp or state.ceiling:
            return LoginStep(False, "totp-missing")
        _login_succeeded(account, throttles, now)
        return LoginStep(True, "ok", account.id)
    if state.ceiling:
        assert code is not None
        if not _accept_code(account, code, now):
            throttles.failed()
            return LoginStep(False, "bad-code")
        _login_succeeded(account, throttles, now)
        return LoginStep(True, "ok", account.id)
    return LoginStep(False, "totp-required", account.id)


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    code = re.sub(r"\s", "", code)
    if not re.fullmatch(r"\d{6}", code):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _accept_code(account: StaffAccount, code: str, now: datetime) -> bool:
    if not account.totp_secret:
        return False
    step = _matching_step(account.totp_secret, code, now)
    if step is None or (account.totp_last_step is not None and step <= account.totp_last_step):
        return False
    account.totp_last_step = step
    return True


def check_totp(session: Session, account_id: int, code: str, attempt: Attempt,
               now: datetime | None = None) -> LoginStep:
    """Second step: the TOTP code. A code (time step) is accepted once."""
    now = now or utcnow()
    email = session.scalar(select(StaffAccount.email).where(StaffAccount.id == account_id))
    if email is None:
        return LoginStep(False, "bad-code")
    # The throttle rows first, then the account: the order of check_password.
    throttles = Throttles(session, ThrottleKeys.of(attempt.secret, email, attempt.client), now)
    state = throttles.state()
    if state.refused_until is not None:
        return LoginStep(False, "throttled", account_id, retry_at=state.refused_until)
    account = session.scalar(
        select(StaffAccount).where(StaffAccount.id == account_id).with_for_update()
    )
    if account is None or not account.totp_secret:
        return LoginStep(False, "bad-code")
    if account.disabled:
        return LoginStep(False, "disabled")
    if not _accept_code(account, code, now):
        throttles.failed()
        return LoginStep(False, "bad-code", account.id)
    _login_succeeded(account, throttles, now)
    return LoginStep(True, "ok", account.id)


def _login_succeeded(account: StaffAccount, throttles: Throttles, now: datetime) -> None:
    throttles.succeeded()
    account.last_login_at = now


def account_id_for(session: Session, email: str) -> int | None:
    """The id of the staff account with this e-mail address (any case), or None."""
    return session.scalar(select(StaffAccount.id).where(
        StaffAccount.email == normalise_email(email)))


def emails_of(session: Session, account_ids: Collection[int]) -> dict[int, str]:
    """The e-mail address of each of these accounts (the names on staff replies)."""
    if not account_ids:
        return {}
    rows = session.execute(select(StaffAccount.id, StaffAccount.email)
                           .where(StaffAccount.id.in_(account_ids)))
    return {account_id: email for account_id, email in rows}


# -- account management -------------------------------------------------------------


ACTIONS = ("created", "disabled", "enabled", "password-reset", "totp-reset", "unlocked",
           "password-changed")


@dataclass(frozen=True)
class AccountSummary:
    """One row of the account list: nothing secret in it."""

    id: int
    email: str
    agency_id: str
    role: str
    disabled: bool
    has_second_factor: bool
    created_at: datetime
    last_login_at: datetime | None


def list_accounts(session: Session, agency_id: str | None = None) -> list[AccountSummary]:
    """Every account (or one agency's), by agency and e-mail address."""
    query = select(StaffAccount).order_by(StaffAccount.agency_id,
                                          func.lower(StaffAccount.email))
    if agency_id is not None:
        query = query.where(StaffAccount.agency_id == agency_id)
    return [AccountSummary(a.id, a.email, a.agency_id, a.role, a.disabled,
                           bool(a.totp_secret), a.created_at, a.last_login_at)
            for a in session.scalars(query)]


def may_manage(admin: StaffAccount, target: StaffAccount) -> bool:
    """System administrators manage every other account; an agency administrator the agents
    and records officers of its own agency (not other administrators: resetting a peer's
    password would be a way into the peer's account)."""
    if admin.id == target.id or admin.disabled:
        return False
    if admin.role == "system_admin":
        return True
    return (admin.role == "agency_admin" and target.agency_id == admin.agency_id
            and target.role not in ADMIN_ROLES)


def _event(session: Session, actor: Actor, target_id: int, action: str) -> None:
    assert action in ACTIONS
    session.add(StaffAccountEvent(actor_id=actor.id, actor=actor.label, target_id=target_id,
                                  action=action, at=utcnow()))
    session.flush()
    log.info("staff account %s: %s by %s", target_id, action, actor.label)


def _end_sessions(session: Session, account_id: int) -> None:
    session.execute(update(StaffSession).where(StaffSession.staff_id == account_id,
                                               StaffSession.ended_at.is_(None))
                    .values(ended_at=utcnow()))


def _target(session: Session, account_id: int) -> StaffAccount:
    account = session.scalar(select(StaffAccount).where(StaffAccount.id == account_id)
                             .with_for_update())
    if account is None:
        raise AccountError(f"no staff account {account_id}")
    return account


def set_disabled(session: Session, account_id: int, disabled: bool, actor: Actor) -> None:
    """Disable (and end every session of) or re-enable an account."""
    account = _target(session, account_id)
    account.disabled = disabled
    if disabled:
        _end_sessions(session, account_id)
    _event(session, actor, account_id, "disabled" if disabled else "enabled")


def reset_password(session: Session, account_id: int, password: str, actor: Actor) -> None:
    """Set a new password chosen by an administrator; the account's sessions end, and its
    next login must choose a password of its own (the administrator knows this one)."""
    _check_password_rules(password)
    account = _target(session, account_id)
    account.password_hash = _hasher.hash(password)
    account.password_must_change = True
    _end_sessions(session, account_id)
    _event(session, actor, account_id, "password-reset")


def change_own_password(session: Session, account_id: int, current: str, new: str,
                        keep_session: str) -> None:
    """The employee's own change: the current password, then a new, different one; every
    other session of the account ends."""
    account = _target(session, account_id)
    if not _verify(account, current):
        raise AccountError("the current password is not right")
    _check_password_rules(new)
    if hmac.compare_digest(current.encode(), new.encode()):
        raise AccountError("the new password must differ from the current one")
    account.password_hash = _hasher.hash(new)
    account.password_must_change = False
    session.execute(update(StaffSession).where(
        StaffSession.staff_id == account_id, StaffSession.ended_at.is_(None),
        StaffSession.token_sha256 != _digest(keep_session)).values(ended_at=utcnow()))
    _event(session, Actor.staff(account), account_id, "password-changed")


def reset_totp(session: Session, account_id: int, actor: Actor) -> str:
    """A new TOTP secret (returned to be shown once); the old one and the sessions end."""
    account = _target(session, account_id)
    secret = pyotp.random_base32()
    account.totp_secret = secret
    account.totp_last_step = None
    _end_sessions(session, account_id)
    _event(session, actor, account_id, "totp-reset")
    return secret


def unlock(session: Session, account_id: int, secret: bytes, actor: Actor) -> None:
    """Lift every throttle of the account (all its clients, and its ceiling)."""
    email = session.scalar(select(StaffAccount.email).where(StaffAccount.id == account_id))
    if email is None:
        raise AccountError(f"no staff account {account_id}")
    # The throttle rows before the account row, in the order a login locks them.
    session.execute(delete(ThrottleRow).where(
        ThrottleRow.account_key == account_key(secret, email)))
    _event(session, actor, account_id, "unlocked")


def account_events(session: Session, account_ids: Iterable[int] | None = None,
                   limit: int = 50) -> list[StaffAccountEvent]:
    """The latest changes to these accounts (or to all), newest first."""
    query = select(StaffAccountEvent).order_by(StaffAccountEvent.id.desc()).limit(limit)
    if account_ids is not None:
        query = query.where(StaffAccountEvent.target_id.in_(list(account_ids)))
    return list(session.scalars(query))


def accounts_without_second_factor(session: Session) -> int:
    """How many enabled accounts have no TOTP secret."""
    return session.scalar(select(func.count()).select_from(StaffAccount).where(
        StaffAccount.disabled.is_(False), StaffAccount.totp_secret.is_(None))) or 0


def warn_about_missing_second_factors(db: Database) -> int:
    """Log a warning at start when an enabled account has no second factor; return the count."""
    try:
        with db.session() as session:
            missing = accounts_without_second_factor(session)
    except SQLAlchemyError as exc:  # a database not migrated yet: say so, do not stop
        log.warning("could not check staff accounts for a second factor (%s)",
                    type(exc).__name__)
        return 0
    if missing:
        log.warning("%d active staff account(s) have no second factor (TOTP): run "
                    "`intake staff list` and `intake staff reset-totp --email E`; "
                    "INTAKE_ALLOW_STAFF_WITHOUT_TOTP is for development only", missing)
    return missing


# -- sessions ----------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, account_id: int) -> str:
    """A new server-side session; returns the token to put in the signed cookie."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(StaffSession(token_sha256=_digest(token), staff_id=account_id,
                             created_at=now, last_seen_at=now))
    session.flush()
    return token


def resume_session(session: Session, token: str, now: datetime | None = None
                   ) -> StaffAccount | None:
    """The account of a live session, or None (unknown, ended, idle or too old)."""
    if not token or len(token) > 128:
        return None
    now = now or utcnow()
    row = session.scalar(select(StaffSession).where(StaffSession.token_sha256 == _digest(token)))
    if row is None or row.ended_at is not None:
        return None
    if now - row.last_seen_at > IDLE_TIMEOUT or now - row.created_at > ABSOLUTE_TIMEOUT:
        row.ended_at = now
        return None
    account = session.get(StaffAccount, row.staff_id)
    if account is None or account.disabled:
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
    return account


def end_session(session: Session, token: str) -> None:
    session.execute(update(StaffSession).where(StaffSession.token_sha256 == _digest(token),
                                               StaffSession.ended_at.is_(None))
                    .values(ended_at=utcnow()))


def agency_accounts(session: Session, agency_id: str) -> list[StaffAccount]:
    return list(session.scalars(select(StaffAccount).where(
        StaffAccount.agency_id == agency_id, StaffAccount.disabled.is_(False))
        .order_by(func.lower(StaffAccount.email))))
