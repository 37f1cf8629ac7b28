"""Property: what each audience gets of an entry never leaks what it may not see.

Random consent histories (grants and withdrawals, general and agency-specific,
at random times) x audiences x the agency a rendition is for x entries whose
subject, body, thread message and form fields carry the submitter's name,
e-mail address, phone and postal address (in other spellings than the
contact block's) and P6 values. Every way out of the rendition is checked:
texts, fields, the contact block and the reply-to address.

The consent oracle is written independently of ``current_consent``: for
agency X the latest share-identity event at or before ``at`` (by ``(at,
id)``) naming "agency" or "agency:X" decides, and consent is live iff it is
a grant.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.core.consent import ConsentAction, ConsentEvent, ConsentMethod, Purpose
from intake.core.pii import Finding
from intake.core.rendition import Audience, EntryValues, Rendition, render, search_text

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RELAY = "reply+k7m2q9x4@relay.examplia.gov"
CLASSES = ["agency", "agency:dot", "agency:parks", "agency:health"]
AGENCIES = ["dot", "parks", "health", None]
# Consonants only: no name, street or city can be spelled by the fixed text
# around it (markers, "Member of the public", the relay address).
CONSONANTS = "bcdfghjklmnpqrstvwxz"
FILLER = ["The pothole", "is still there.", "Please help", "thanks", "Road 9", "\n", "--"]


@dataclass(frozen=True)
class Person:
    first: str
    last: str
    local: str
    domain: str
    phone_digits: str
    house: int
    street: str
    city: str
    zip_code: str

    @property
    def email(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def phone(self) -> str:
        d = self.phone_digits
        return f"({d[:3]}) {d[3:6]}-{d[6:]}"

    @property
    def street_line(self) -> str:
        return f"{self.house} {self.street} St"

    @property
    def postal_address(self) -> str:
        return f"{self.street_line}\n{self.city}, IL {self.zip_code}"


# The entry's texts come from a seeded generator: hypothesis explores seeds,
# consent histories, audiences and agencies; drawing every character through
# hypothesis would make 10,000 cases take minutes instead of seconds.


def _word(rng: random.Random, min_size: int = 3) -> str:
    return "".join(rng.choice(CONSONANTS) for _ in range(rng.randint(min_size, 8))).capitalize()


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def make_person(rng: random.Random) -> Person:
    # Letters only in the address: digits there could spell the phone number.
    local = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 8)))
    if rng.random() < 0.3:
        local += "." + _word(rng, 1).lower()
    return Person(first=_word(rng), last=_word(rng), local=local,
                  domain=_word(rng).lower() + ".example",
                  phone_digits=str(rng.randint(2, 9)) + _digits(rng, 9),
                  house=rng.randint(1, 9999), street=_word(rng, 4), city=_word(rng, 4),
                  zip_code=_digits(rng, 5))


def p6_value(rng: random.Random) -> tuple[str, str]:
    """A P6 value and the kind its finding reports (findings point at its span)."""
    kind = rng.choice(["ssn", "card", "bank_account", "password", "birth_date"])
    if kind == "ssn":
        return kind, f"{rng.randint(100, 665)}-{_digits(rng, 2)}-{_digits(rng, 4)}"
    if kind == "card":
        return kind, "4" + _digits(rng, 3) + " " + " ".join(_digits(rng, 4) for _ in range(3))
    if kind == "bank_account":
        return kind, "ACCT" + _digits(rng, rng.randint(8, 12))
    if kind == "password":
        return kind, "pw=" + "".join(rng.choice("aZ09xQ") for _ in range(8))
    return kind, f"born 0{rng.randint(1, 9)}/1{rng.randint(0, 9)}/19{rng.randint(50, 99)}"


def contact_spellings(p: Person, rng: random.Random) -> list[str]:
    """The person's contact data as people write it in a message."""
    d = p.phone_digits
    return [
        rng.choice([p.email, p.email.upper(), f"<{p.email}>", f"mailto:{p.email}",
                    f"{p.local}%40{p.domain}", f"{p.local}&#64;{p.domain}"]),
        rng.choice([p.name, p.name.upper(), f"{p.first}\n{p.last}",
                    f"{p.first.lower()}  {p.last.lower()}"]),
        rng.choice([f"{d[:3]}.{d[3:6]}.{d[6:]}", f"{d[:3]} {d[3:6]} {d[6:]}",
                    f"({d[:3]}) {d[3:6]}-{d[6:]}", f"{d[:3]}-{d[3:6]}-{d[6:]}"]),
        rng.choice([p.postal_address, p.street_line, p.postal_address.replace("\n", ", ")]),
    ]


def text_with_findings(rng: random.Random, p: Person, p6: bool
                       ) -> tuple[str, list[Finding], list[str]]:
    spellings = contact_spellings(p, rng)
    pieces: list[tuple[str, str | None]] = [
        (rng.choice(spellings), None) for _ in range(rng.randint(0, 4))]
    secrets = [p6_value(rng) for _ in range(rng.randint(0, 3))] if p6 else []
    pieces += [(value, kind) for kind, value in secrets]
    pieces += [(rng.choice(FILLER), None) for _ in range(rng.randint(0, 4))]
    rng.shuffle(pieces)
    text, findings, pos = "", [], 0
    for piece, kind in pieces:
        if text:
            text += " "
            pos += 1
        if kind is not None:
            findings.append(Finding(kind=kind, start=pos, end=pos + len(piece),
                                    detector="test", severity="high", value_hash="0" * 64))
        text += piece
        pos += len(piece)
    return text, findings, [value for _, value in secrets]


@st.composite
def consent_histories(draw: st.DrawFn) -> list[ConsentEvent]:
    n = draw(st.integers(0, 6))
    return [
        ConsentEvent(
            id=i + 1,
            action=draw(st.sampled_from([ConsentAction.GRANT, ConsentAction.WITHDRAW])),
            purpose=draw(st.sampled_from([Purpose.SHARE_IDENTITY, Purpose.SHARE_IDENTITY,
                                          Purpose.REDIRECT])),
            recipient_class=draw(st.sampled_from(CLASSES)),
            policy_version="share-identity-2026-01-en",
            method=ConsentMethod.WEB_CHECKBOX,
            at=T0 + timedelta(hours=draw(st.integers(0, 96))),
            evidence_sha256="0" * 64,
        )
        for i in range(n)
    ]


def oracle_consent(events: list[ConsentEvent], agency: str | None, at: datetime) -> bool:
    if agency is None:
        return False
    covering = [e for e in events if e.purpose is Purpose.SHARE_IDENTITY and e.at <= at
                and e.recipient_class in ("agency", f"agency:{agency}")]
    if not covering:
        return False
    return max(covering, key=lambda e: (e.at, e.id)).action is ConsentAction.GRANT


def everything(r: Rendition) -> str:
    """Every way out of a rendition, as one text."""
    parts = [*r.texts.values(), *(f"{k}: {v}" for k, v in r.fields), r.reply_to]
    parts += [item.value or "" for item in (r.name, r.email, r.phone, r.postal_address)]
    return "\n".join(parts)


def leaks(p: Person, shown: str) -> set[str]:
    found = set()
    low = shown.lower()
    for form in (p.email, f"{p.local}%40{p.domain}", f"{p.local}&#64;{p.domain}"):
        if form.lower() in low:
            found.add("email")
    if re.search(rf"(?<!\w){p.first}\s+{p.last}(?!\w)", shown, re.IGNORECASE):
        found.add("name")
    if re.search(r"(?<![0-9])" + r"[^0-9A-Za-z\n]{0,3}".join(p.phone_digits) + r"(?![0-9])",
                 shown):
        found.add("phone")
    if re.search(rf"(?<!\w){p.house}[\s,]+{p.street}[\s,]+St(?!\w)", shown, re.IGNORECASE):
        found.add("street_address")
    return found


AUDIENCES = list(Audience)


@settings(max_examples=10_000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_no_audience_gets_what_it_may_not_see(data: st.DataObject) -> None:
    rng = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    p = make_person(rng)
    subject, subject_findings, s1 = text_with_findings(rng, p, p6=True)
    body, body_findings, s2 = text_with_findings(rng, p, p6=True)
    reply, reply_findings, s3 = text_with_findings(rng, p, p6=True)
    field_text, _, _ = text_with_findings(rng, p, p6=False)
    events = data.draw(consent_histories())
    audience = data.draw(st.sampled_from(AUDIENCES))
    agency = data.draw(st.sampled_from(AGENCIES))
    at = T0 + timedelta(hours=data.draw(st.integers(0, 100)))
    values = EntryValues(
        texts={"subject": subject, "body": body, "thread:1:body": reply},
        fields={"topic": "roads", "about": field_text, "_internal": p.email},
        name=p.name, email=p.email, phone=p.phone, postal_address=p.postal_address)

    r = render(values, audience, consents=events,
               findings={"subject": subject_findings, "body": body_findings,
                         "thread:1:body": reply_findings},
               agency_id=agency, relay_address=RELAY, at=at)

    # Not the easy way out: valid input is rendered, not withheld wholesale.
    assert r.reason != "invalid-input"
    assert not any(x.reason == "redaction-failed" for x in r.removals), r.removals
    shown = everything(r)
    for secret in s1 + s2 + s3:
        assert secret not in shown  # P6: never, for anyone
    consented = audience in (Audience.AGENCY, Audience.CC_AGENCY) and \
        oracle_consent(events, agency, at)
    assert r.identity_shared == (consented or audience is Audience.SUBMITTER)
    if audience is Audience.SUBMITTER:
        allowed = {"email", "name", "phone", "street_address"}
    elif consented:
        allowed = {"email", "name"}  # what the consent text names, no more
        assert r.email.value == p.email and r.name.value == p.name and r.reply_to == p.email
    else:
        allowed = set()
    assert leaks(p, shown) <= allowed, (audience, consented, leaks(p, shown) - allowed)
    if audience in (Audience.AGENCY, Audience.CC_AGENCY) and not consented:
        assert r.email.value == RELAY and r.reply_to == RELAY
        assert r.name.value == "Member of the public"
    if audience in (Audience.PUBLIC, Audience.RECORDS_OFFICER):
        assert all(item.value is None for item in (r.name, r.email, r.phone, r.postal_address))
    assert "_internal" not in dict(r.fields)


@settings(max_examples=300, deadline=None)
@given(audience=st.one_of(st.text(max_size=12), st.none(), st.integers()),
       relay=st.sampled_from([RELAY, "", "no-at-sign", "a@b\r\nBcc: x@y"]))
def test_unknown_input_fails_closed(audience: object, relay: str) -> None:
    values = EntryValues(texts={"subject": "from ada@example.org", "body": "hi"},
                         email="ada@example.org", name="Ada Lovelace")
    r = render(values, audience, consents=[], findings={},  # type: ignore[arg-type]
               agency_id="dot", relay_address=relay, at=T0)
    if audience in {a.value for a in Audience} and relay == RELAY:
        assert r.reason != "invalid-input"
    else:
        assert r.reason == "invalid-input" and "ada@example.org" not in everything(r)
        assert r.identity_shared is False


@settings(max_examples=2_000, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), p6=st.booleans())
def test_the_search_index_keeps_the_public_renditions_words_and_leaks_nothing(
        seed: int, p6: bool) -> None:
    """``search_text`` cuts the spans itself (it runs for every submission); it must keep
    exactly the words of the public rendition's kept segments, and no contact value."""
    rng = random.Random(seed)
    person = make_person(rng)
    subject, subject_findings, _ = text_with_findings(rng, person, p6)
    body, body_findings, secrets = text_with_findings(rng, person, p6)
    values = EntryValues(texts={"subject": subject, "body": body}, name=person.name,
                         email=person.email, phone=person.phone,
                         postal_address=person.postal_address)
    findings = {"subject": subject_findings, "body": body_findings}
    indexed = search_text(values, findings)
    public = render(values, Audience.PUBLIC, consents=[], findings=findings, agency_id=None,
                    relay_address=RELAY, at=T0)
    words = " ".join(s.text for place in ("subject", "body")
                     for s in public.segments[place] if not s.removed).split()
    assert indexed.split() == words
    assert leaks(person, indexed) == set()
    assert not any(secret in indexed for secret in secrets)
