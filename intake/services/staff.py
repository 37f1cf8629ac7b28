"""Staff accounts, logins and sessions: argon2 passwords, TOTP, lockout, throttling.

- Passwords are argon2id hashes (argon2-cffi); an unknown e-mail costs the
  same hash as a known one, so the answer time does not reveal accounts.
- TOTP (pyotp, RFC 6238, 30-second steps, one step of clock drift either
  way); an accepted time step is remembered, so a code works once.
- Every failed password or code counts; at :data:`MAX_FAILED_LOGINS` the
  account is locked for :data:`LOCKOUT`, and while locked even the right
  password and code are refused with the same answer as a wrong one.
- :class:`LoginThrottle` limits attempts per client address in memory (the
  address is never stored, per promise P1).
- Sessions: the signed cookie carries a random token; the database keeps its
  SHA-256, creation and last-seen times, so logout ends the session for good
  and the idle and absolute timeouts are enforced on the server.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from intake.core.roles import ADMIN_ROLES, ROLES
from intake.db.models import utcnow
from intake.db.staff_models import StaffAccount, StaffSession

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
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
}

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class AccountError(ValueError):
    """An account cannot be created as asked; the message is one line."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def create_account(
    session: Session, *, email: str, agency_id: str, role: str, password: str,
    with_totp: bool = True,
) -> tuple[StaffAccount, str | None]:
    """A new account; returns it and its TOTP secret (shown once), if any."""
    email = normalise_email(email)
    if not _EMAIL.match(email) or len(email) > 320:
        raise AccountError(f"not an e-mail address: {email!r}")
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r} (expected one of: {', '.join(ROLES)})")
    if role in ADMIN_ROLES and not with_totp:
        raise AccountError(f"role {role} requires a second factor (TOTP)")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if session.scalar(select(StaffAccount.id).where(StaffAccount.email == email)) is not None:
        raise AccountError(f"an account for {email} already exists")
    secret = pyotp.random_base32() if with_totp else None
    account = StaffAccount(email=email, agency_id=agency_id, role=role,
                           password_hash=_hasher.hash(password), totp_secret=secret,
                           failed_logins=0, disabled=False)
    session.add(account)
    session.flush()
    return account, secret


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


# -- login -------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginStep:
    """The result of one login step. ``reason`` is for logs and tests, never shown."""

    ok: bool
    reason: str  # ok, totp-required, totp-missing, bad-credentials, locked, disabled, bad-code
    account_id: int | None = None


def is_locked(account: StaffAccount, now: datetime) -> bool:
    return account.locked_until is not None and account.locked_until > now


def _record_failure(session: Session, account: StaffAccount, now: datetime) -> None:
    account.failed_logins = (account.failed_logins or 0) + 1
    if account.failed_logins >= MAX_FAILED_LOGINS:
        account.locked_until = now + LOCKOUT
        account.failed_logins = 0


def check_password(session: Session, email: str, password: str,
                   now: datetime | None = None) -> LoginStep:
    """First step: the password. Locks the account after repeated failures."""
    now = now or utcnow()
    account = session.scalar(
        select(StaffAccount).where(StaffAccount.email == normalise_email(email))
        .with_for_update()
    )
    if account is None:
        try:  # same cost as a real check
            _hasher.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        return LoginStep(False, "bad-credentials")
    if account.disabled:
        return LoginStep(False, "disabled")
    if is_locked(account, now):
        return LoginStep(False, "locked")
    try:
        _hasher.verify(account.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        _record_failure(session, account, now)
        return LoginStep(False, "bad-credentials")
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    if account.totp_secret:
        return LoginStep(False, "totp-required", account.id)
    if account.role in ADMIN_ROLES:
        # Administrators must have a second factor; an account without one cannot log in.
        return LoginStep(False, "totp-missing")
    _login_succeeded(account, now)
    return LoginStep(True, "ok", account.id)


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


def check_totp(session: Session, account_id: int, code: str,
               now: datetime | None = None) -> LoginStep:
    """Second step: the TOTP code. A code (time step) is accepted once."""
    now = now or utcnow()
    account = session.scalar(
        select(StaffAccount).where(StaffAccount.id == account_id).with_for_update()
    )
    if account is None or not account.totp_secret:
        return LoginStep(False, "bad-code")
    if account.disabled:
        return LoginStep(False, "disabled")
    if is_locked(account, now):
        return LoginStep(False, "locked")
    step = _matching_step(account.totp_secret, code, now)
    if step is None or (account.totp_last_step is not None and step <= account.totp_last_step):
        _record_failure(session, account, now)
        return LoginStep(False, "bad-code", account.id)
    account.totp_last_step = step
    _login_succeeded(account, now)
    return LoginStep(True, "ok", account.id)


def _login_succeeded(account: StaffAccount, now: datetime) -> None:
    account.failed_logins = 0
    account.locked_until = None
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


def unlock(session: Session, account_id: int) -> None:
    session.execute(update(StaffAccount).where(StaffAccount.id == account_id)
                    .values(locked_until=None, failed_logins=0))


class LoginThrottle:
    """At most ``limit`` login attempts per client key in ``window`` seconds (in memory)."""

    def __init__(self, limit: int = 20, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._lock = threading.Lock()
        self._attempts: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        # Only a digest of the address is held, and only in memory.
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        with self._lock:
            if len(self._attempts) > 10_000:
                self._attempts = {k: v for k, v in self._attempts.items()
                                  if v and v[-1] > now - self.window}
            attempts = self._attempts.setdefault(digest, deque())
            while attempts and attempts[0] <= now - self.window:
                attempts.popleft()
            if len(attempts) >= self.limit:
                return False
            attempts.append(now)
            return True


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
