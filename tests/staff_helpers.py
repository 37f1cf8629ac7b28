"""Helpers for the staff inbox tests: accounts, entries, logging in over HTTP."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyotp
from flask.testing import FlaskClient

from intake.core.routing import Decision
from intake.db.models import Attachment, Entry
from intake.runtime import Runtime
from intake.services import staff as accounts
from intake.services.records import (
    NewSubmission,
    SubmitterData,
    record_submissions,
    seal_for_entry,
)
from intake.services.routing import apply_decision
from tests.conftest import ORIGINALS_KEY

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Account:
    id: int
    email: str
    agency: str
    role: str
    secret: str | None
    password: str = PASSWORD

    def code(self, offset_steps: int = 0) -> str:
        assert self.secret is not None
        totp = pyotp.TOTP(self.secret)
        return totp.at(datetime.now(UTC) + timedelta(seconds=30 * offset_steps))


def make_account(runtime: Runtime, email: str, agency: str, role: str = "agent",
                 totp: bool = True) -> Account:
    with runtime.db.session() as s:
        account, secret = accounts.create_account(s, email=email, agency_id=agency, role=role,
                                                  password=PASSWORD, with_totp=totp)
        return Account(account.id, account.email, agency, role, secret)


def make_entry(runtime: Runtime, agency: str, *, subject: str = "Pothole on Route 9",
               body: str = "A pothole on Route 9, write to ada@example.org or call "
                           "(217) 555-0143.",
               name: str = "Ada Lovelace", email: str = "ada@example.org",
               cc: tuple[str, ...] = (), attachment: tuple[str, bytes] | None = None,
               received_at: datetime | None = None, key: str | None = None) -> int:
    with runtime.db.session() as s:
        recorded = record_submissions(s, [NewSubmission(
            channel="web", kind="contact", raw=(key or subject + body).encode(),
                             content_type="application/json", subject=subject, body=body,
                             form_slug="contact", fields={"topic": "roads"},
                             submitter=SubmitterData(name=name, email=email),
                             received_at=received_at)],
                                 record_prefix=runtime.settings.record_prefix,
                                     pii_key=runtime.pii_key, originals_key=ORIGINALS_KEY)[0]
        entry = s.get(Entry, recorded.entry_id)
        assert entry is not None
        rules = runtime.rules.current()
        apply_decision(s, entry, Decision(route_to=agency, cc=cc, tags=(), matched_rules=(),
                                          decided_by=None, captures={}, trace=(),
                                          rules_sha256=rules.sha256), actor="rules")
        if attachment is not None:
            filename, content = attachment
            digest = hashlib.sha256(content).hexdigest()
            s.add(Attachment(entry_id=entry.id, filename=filename, declared_type="text/html",
                             sniffed_type="text/html", size=len(content), sha256=digest,
                             content=seal_for_entry(s, entry.id, ORIGINALS_KEY, content,
                                                    digest)))
        return recorded.entry_id


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: FlaskClient, account: Account, code: str | None = None) -> None:
    page = client.get("/staff/login")
    token = csrf_from(page.get_data(as_text=True))
    response = client.post("/staff/login", data={"email": account.email,
                                                  "password": account.password,
                                                  "csrf_token": token})
    if account.secret is not None:
        assert response.status_code == 303, response.status_code
        assert response.headers["Location"].endswith("/staff/login/code")
        page = client.get("/staff/login/code")
        token = csrf_from(page.get_data(as_text=True))
        response = client.post("/staff/login/code",
                               data={"code": code or account.code(), "csrf_token": token})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    assert "/staff/login" not in response.headers["Location"]


def csrf(client: FlaskClient, path: str = "/staff/inbox") -> str:
    return csrf_from(client.get(path).get_data(as_text=True))
