"""Behaviour of the routing engine: semantics, operators, folding, index."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from intake.core.routing import (
    Decision,
    RuleSet,
    Submission,
    TestResult,
    fold,
    load_rules,
    load_rules_file,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "intake" / "defaults" / "routing_rules.yaml"

HEADER = """\
version: 1
agencies:
  - {id: gov, name: Governor, email: gov@example.gov}
  - {id: dot, name: Transportation, email: dot@example.gov}
  - {id: dmv, name: Motor Vehicles, email: dmv@example.gov}
  - {id: health, name: Health, email: health@example.gov}
  - {id: press, name: Press Office, webhook: https://press.example.gov/hook}
default_agency: gov
rules:
"""


def rules(body: str, tests: str = "") -> RuleSet:
    text = HEADER + textwrap.indent(textwrap.dedent(body).strip("\n"), "  ") + "\n"
    if tests:
        text += "tests:\n" + textwrap.indent(textwrap.dedent(tests).strip("\n"), "  ") + "\n"
    return load_rules(text)


def web(body: str = "", **fields: str) -> Submission:
    return Submission(channel="web", form="contact", body=body, fields=fields)


def both(rs: RuleSet, sub: Submission) -> Decision:
    """decide and decide_naive must agree; return the decision."""
    d = rs.decide(sub)
    assert d == rs.decide_naive(sub)
    assert d == rs.decide(sub, explain=True)
    return d


def matches(when: str, sub: Submission) -> bool:
    rs = rules(f"- id: r\n  when: {when}\n  route_to: dot\n  stop: true\n")
    return both(rs, sub).route_to == "dot"


# ------------------------------------------------------------ operators


@pytest.mark.parametrize(
    ("when", "sub", "expected"),
    [
        ("{field: topic, equals: transportation}", web(topic="Transportation"), True),
        ("{field: topic, equals: transportation}", web(topic="transport"), False),
        ("{field: topic, equals: transportation}", web(), False),
        ("{field: zip, in: ['01234', '01235']}", web(zip="01235"), True),
        ("{field: zip, in: ['01234', '01235']}", web(zip="1235"), False),
        ("{field: zip, equals: 01234}", web(zip="01234"), True),  # scalar kept as written
        ("{field: body, contains: pothole}", web("a POTHOLE here"), True),
        ("{field: body, contains: [bridge, pothole]}", web("the bridge."), True),
        ("{field: body, contains: [bridge, pothole]}", web("tunnel"), False),
        ("{field: body, contains: 'road closure'}", web("Road\n  closure ahead"), True),
        ("{field: body, starts_with: urgent}", web("  URGENT: help"), True),
        ("{field: body, starts_with: urgent}", web("not urgent"), False),
        ("{field: body, ends_with: [thanks, gracias]}", web("help me. Gracias"), True),
        ("{field: body, ends_with: thanks}", web("thanks, but"), False),
        ("{field: body, matches: 'route\\s+\\d+'}", web("on Route  9"), True),
        ("{field: body, matches: '^route'}", web("on Route 9"), False),
        ("{field: zip, exists: true}", web(zip="01234"), True),
        ("{field: zip, exists: true}", web(zip="  "), False),
        ("{field: zip, exists: false}", web(), True),
        ("{field: zip, exists: false}", web(zip="01234"), False),
        ("{channel: web}", web(), True),
        ("{channel: email}", web(), False),
        ("{channel: [email, web]}", web(), True),
        ("{form: contact}", web(), True),
        ("always", web(), True),
    ],
)
def test_operators(when: str, sub: Submission, expected: bool) -> None:
    assert matches(when, sub) is expected


def test_builtin_fields() -> None:
    sub = Submission(
        channel="email",
        subject="Re: Licence",
        body="text",
        sender="Jo Smith <jo@Mail.Example.COM>",
        recipient="intake@examplia.gov",
        attachments=("scan.PDF", "photo.jpg"),
    )
    assert sub.sender_domain == "mail.example.com"
    assert matches("{field: sender_domain, equals: mail.example.com}", sub)
    assert matches("{field: sender, ends_with: '@mail.example.com'}", sub)
    assert matches("{recipient: intake@examplia.gov}", sub)
    assert matches("{field: subject, starts_with: 're:'}", sub)
    assert matches("{field: attachments, ends_with: .pdf}", sub)  # any attachment
    assert matches("{field: attachments, contains: photo}", sub)
    assert not matches("{field: attachments, ends_with: .docx}", sub)
    assert not matches("{field: form, exists: true}", sub)


def test_multi_valued_form_field() -> None:
    sub = web(interests=("parks", "roads"))  # type: ignore[arg-type]
    assert matches("{field: interests, equals: roads}", sub)
    assert not matches("{field: interests, equals: taxes}", sub)


def test_form_field_names_are_case_insensitive() -> None:
    assert matches("{field: Topic, equals: health}", web(TOPIC="Health"))


# ------------------------------------------------------ word boundaries


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("highway 9", True),
        ("the highway.", True),
        ("(highway)", True),
        ("highways", False),  # whole words only: list plurals explicitly
        ("superhighway", False),
        ("highway_9", False),  # underscore is a word character
        ("HIGHWAY", True),
    ],
)
def test_contains_is_whole_word(text: str, expected: bool) -> None:
    assert matches("{field: body, contains: highway}", web(text)) is expected


def test_contains_substring_syntax() -> None:
    when = "{field: body, contains: {any: [highway, 'road'], word: false}}"
    assert matches(when, web("highways"))
    assert matches(when, web("railroad"))
    assert not matches(when, web("rail"))
    # a single word is accepted as well as a list
    assert matches("{field: body, contains: {any: highway, word: false}}", web("highways"))


def test_keyword_with_punctuation_edges() -> None:
    # boundaries are only required next to word characters of the keyword
    assert matches("{field: body, contains: 'w-2'}", web("my W-2 form"))
    assert matches("{field: body, contains: '#help'}", web("tag#help"))
    assert not matches("{field: body, contains: 'w-2'}", web("my w-2x form"))


# ------------------------------------------------------- Unicode folding


@pytest.mark.parametrize(
    ("keyword", "text", "expected"),
    [
        ("senal", "La Señal está rota", True),
        ("señal", "la senal esta rota", True),
        ("SEÑAL", "la señal", True),
        ("semáforo", "SEMAFORO roto", True),
        ("strasse", "Straße 5", True),
        ("strasse", "Hauptstraße 5", False),  # folds to 'hauptstrasse': not the whole word
        ("straße", "HAUPTSTRASSE", False),  # whole word: 'hauptstrasse' != 'strasse'
        ("straße", "die STRASSE ist kaputt", True),
        ("istanbul", "İSTANBUL", True),  # Turkish dotted capital I
        ("istanbul", "ıstanbul", True),  # Turkish dotless small i
        ("pothole", "ＰＯＴＨＯＬＥ on Route 9", True),  # full-width
        ("route 9", "Route ９", True),  # full-width digit
        ("cafe", "Café", True),
        ("café", "cafe", True),
        ("cafe", "cafe\u0301", True),  # decomposed accent
        ("naïve", "NAIVE", True),
        ("ﬁsh", "fish", True),  # ligature in the rule
        ("senal", "señales", False),  # accents fold, but plurals still do not
    ],
)
def test_unicode_contains(keyword: str, text: str, expected: bool) -> None:
    assert matches(f"{{field: body, contains: '{keyword}'}}", web(text)) is expected


@pytest.mark.parametrize(
    ("value", "text"),
    [("Señal", "senal"), ("senal", "SEÑAL"), ("Straße", "strasse"), ("İzmir", "izmir")],
)
def test_unicode_equals(value: str, text: str) -> None:
    assert matches(f"{{field: city, equals: '{value}'}}", web(city=text))


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        (r"\bseñal\b", "la SENAL", True),
        (r"\bsenal\b", "la Señal", True),
        (r"SEÑAL\s+\S+", "señal rota", True),  # \S survives: pattern not casefolded
        (r"Straße", "STRASSE", True),
        (r"\bcafé\b", "CAFÉ", True),
        (r"\d{5}", "zip ０１２３４", True),  # full-width digits in the text
        (r"^\S+$", "Señal", True),
        (r"\bx\b", "Señal", False),
    ],
)
def test_unicode_regex(pattern: str, text: str, expected: bool) -> None:
    assert matches(f"{{field: body, matches: '{pattern}'}}", web(text)) is expected


def test_fold_is_idempotent_on_samples() -> None:
    for s in ["Señal", "STRAẞE", "İstanbul", "ＡＢＣ", "ﬁ", "Ωμέγα", "㎒", "e\u0301"]:
        assert fold(fold(s)) == fold(s)


def test_ascii_letters_only_match_themselves_in_folded_text() -> None:
    """Justifies regex literal extraction: IGNORECASE on folded text is plain lowercase."""
    import re

    alnum = re.compile("[a-z0-9]", re.IGNORECASE)
    odd = [chr(u) for u in range(128, 0x110000) if alnum.fullmatch(chr(u))]
    assert odd  # e.g. KELVIN SIGN, LONG S, dotted/dotless i
    for ch in odd:
        assert fold(ch) != ch and fold(ch).isascii(), hex(ord(ch))


# ------------------------------------------------------------- semantics


SEMANTICS = """
- id: press
  when: {field: body, contains: [reporter, journalist]}
  cc: [press, gov]
  tags: [press]
- id: suggest-dmv
  when: {field: body, contains: [car]}
  route_to: dmv
  cc: [health]
  tags: [car]
- id: roads
  when: {field: body, contains: [pothole, potholes]}
  route_to: dot
  cc: [press, gov]
  tags: [roads, press]
  stop: true
- id: after-stop
  when: {field: body, contains: [pothole]}
  route_to: health
  tags: [never]
  stop: true
"""


def test_stop_rule_decides_and_earlier_rules_add_cc_and_tags() -> None:
    rs = rules(SEMANTICS)
    d = both(rs, web("A reporter asks: my car hit a pothole"))
    assert d.route_to == "dot"
    assert d.decided_by == "roads"
    assert d.matched_rules == ("press", "suggest-dmv", "roads")
    assert d.cc == ("press", "gov", "health")  # order kept, no duplicates
    assert d.tags == ("press", "car", "roads")
    assert "never" not in d.tags


def test_non_stop_route_to_used_when_no_stop_rule_matches() -> None:
    rs = rules(SEMANTICS)
    d = both(rs, web("my car is making noises"))
    assert (d.route_to, d.decided_by, d.cc) == ("dmv", "suggest-dmv", ("health",))


def test_cc_never_contains_route_to() -> None:
    rs = rules(
        """
        - id: a
          when: {field: body, contains: x}
          cc: [dot, gov, dot]
        - id: b
          when: {field: body, contains: x}
          route_to: dot
          cc: [gov]
          stop: true
        """
    )
    d = both(rs, web("x"))
    assert d.route_to == "dot"
    assert d.cc == ("gov",)


def test_default_agency_when_nothing_matches() -> None:
    rs = rules(SEMANTICS)
    d = both(rs, web("hello"))
    assert d.route_to == "gov"
    assert d.decided_by is None
    assert d.matched_rules == () and d.cc == () and d.tags == ()
    assert "default agency" in d.explain()


def test_default_agency_when_only_tag_rules_match() -> None:
    rs = rules(SEMANTICS)
    d = both(rs, web("a journalist writes"))
    assert (d.route_to, d.decided_by) == ("gov", None)
    assert d.cc == ("press",)  # gov is the route, so it is not cc'd
    assert d.tags == ("press",)


def test_nested_conditions_four_levels() -> None:
    rs = rules(
        """
        - id: deep
          when:
            all:
              - {channel: email}
              - any:
                  - {field: subject, contains: bridge}
                  - all:
                      - {field: body, contains: [road, street]}
                      - not:
                          any:
                            - {field: sender_domain, in: [dot.example.gov]}
                            - {field: body, contains: resolved}
          route_to: dot
          stop: true
        """
    )

    def mail(subject: str, body: str, sender: str = "a@b.org") -> Submission:
        return Submission("email", subject=subject, body=body, sender=sender)

    assert both(rs, mail("Bridge", "")).route_to == "dot"
    assert both(rs, mail("hi", "the road is bad")).route_to == "dot"
    assert both(rs, mail("hi", "the road is bad", "x@dot.example.gov")).route_to == "gov"
    assert both(rs, mail("hi", "road issue resolved")).route_to == "gov"
    assert both(rs, Submission("web", subject="bridge")).route_to == "gov"
    d = rs.decide(mail("hi", "the road is bad"))
    assert d.trace[0].reason == (
        "(channel equals 'email' and (body contains 'road' and "
        "none of: sender_domain is not in ['dot.example.gov']; "
        "body does not contain the word 'resolved'))"
    )


def test_priority_reorders_stably() -> None:
    rs = rules(
        """
        - id: low
          when: {field: body, contains: x}
          route_to: dot
          stop: true
        - id: high
          priority: 5
          when: {field: body, contains: x}
          route_to: dmv
          stop: true
        - id: high-too
          priority: 5
          when: {field: body, contains: x}
          route_to: health
          stop: true
        - id: negative
          priority: -1
          when: {field: body, contains: y}
          tags: [y]
        """
    )
    assert rs.rule_ids == ("high", "high-too", "low", "negative")
    d = both(rs, web("x y"))
    assert (d.route_to, d.decided_by, d.matched_rules) == ("dmv", "high", ("high",))


def test_when_omitted_is_unconditional() -> None:
    rs = rules("- id: tag-all\n  tags: [seen]\n")
    assert both(rs, web("")).tags == ("seen",)


def test_captures_named_groups() -> None:
    rs = rules(
        r"""
        - id: case
          when:
            all:
              - {field: subject, matches: 'case\s*#?(?P<case>[a-z]{2}-\d+)'}
              - {field: body, matches: '(?P<street>\w+ straße)'}
          route_to: dot
          stop: true
        - id: under-not
          when:
            not: {field: body, matches: '(?P<nope>zzz)'}
          tags: [t]
        """
    )
    d = both(rs, Submission("web", subject="Re: CASE #AB-123", body="an der Haupt STRAẞE 4"))
    assert d.captures == {"case": {"case": "AB-123", "street": "Haupt STRAẞE"}}
    assert d.to_dict()["captures"] == {"case": {"case": "AB-123", "street": "Haupt STRAẞE"}}


def test_decision_to_dict_and_explain() -> None:
    import json

    rs = rules(SEMANTICS)
    d = rs.decide(web("A reporter asks about potholes"))
    data = d.to_dict()
    json.dumps(data)
    assert data["route_to"] == "dot"
    assert data["matched_rules"] == ["press", "roads"]
    assert data["rules_sha256"] == rs.sha256 and len(rs.sha256) == 64
    assert data["trace"] == [
        {"rule_id": "press", "matched": True, "reason": "body contains 'reporter'"},
        {"rule_id": "roads", "matched": True, "reason": "body contains 'potholes'"},
    ]
    text = d.explain()
    assert "rule 'roads' matched: body contains 'potholes'" in text
    assert "route to 'dot': stop rule 'roads'" in text


def test_explain_mode_traces_every_rule() -> None:
    rs = rules(SEMANTICS)
    d = rs.decide(web("pothole"), explain=True)
    steps = {s.rule_id: s for s in d.trace}
    assert [s.rule_id for s in d.trace] == list(rs.rule_ids)
    assert steps["press"].reason.startswith("no condition matched: body does not contain")
    assert steps["roads"].matched and steps["roads"].reason == "body contains 'pothole'"
    assert steps["after-stop"].reason == "skipped: after stop rule 'roads'"
    assert not steps["after-stop"].matched


def test_sha256_is_of_exact_bytes() -> None:
    import hashlib

    data = SHIPPED.read_bytes()
    assert load_rules(data).sha256 == hashlib.sha256(data).hexdigest()
    assert load_rules_file(SHIPPED).sha256 == hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------- rule tests


def test_embedded_tests_pass_and_fail() -> None:
    rs = rules(
        SEMANTICS,
        tests="""
        - name: good
          input: {channel: web, body: pothole}
          expect: {route_to: dot, tags: [roads, press], matched_rules: [roads]}
        - name: bad
          input: {channel: web, body: pothole}
          expect: {route_to: dmv, cc: []}
        """,
    )
    results = rs.run_tests()
    assert [(r.name, r.passed) for r in results] == [("good", True), ("bad", False)]
    assert isinstance(results[1], TestResult)
    assert "expected route_to 'dmv', got 'dot'" in results[1].message
    assert "expected cc [], got ['press', 'gov']" in results[1].message
    lines = (HEADER + SEMANTICS).count("\n")
    assert results[0].line > lines


def test_shipped_rules_load_and_their_tests_pass() -> None:
    rs = load_rules_file(SHIPPED)
    assert len(rs.agencies) >= 10
    assert rs.default_agency == "governor"
    results = rs.run_tests()
    assert len(results) >= 15
    failed = [f"{r.line}: {r.name}: {r.message}" for r in results if not r.passed]
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize(
    ("body", "topic", "agency"),
    [
        ("Necesito ayuda con mi licencia", "other", "dmv"),
        ("El bache en la calle 5", "other", "dot"),
        ("my unemployment claim number: UI-1234567 is stuck", "other", "labor"),
        ("nothing specific", "parks", "parks"),
        ("nothing specific", "other", "governor"),
    ],
)
def test_shipped_rules_examples(body: str, topic: str, agency: str) -> None:
    rs = load_rules_file(SHIPPED)
    assert both(rs, web(body, topic=topic)).route_to == agency


def test_shipped_rules_capture_claim_id() -> None:
    rs = load_rules_file(SHIPPED)
    d = both(rs, web("My claim number: UI-1234567 has not been paid"))
    assert d.captures == {"unemployment": {"claim_id": "UI-1234567"}}


# ------------------------------------------------------------- e-mail


def test_from_email_bytes_normal_multipart() -> None:
    raw = (
        b"From: =?utf-8?q?Jos=C3=A9_P=C3=A9rez?= <jose@Example.ORG>\r\n"
        b"To: Intake <intake@examplia.gov>\r\n"
        b"Subject: =?utf-8?q?Se=C3=B1al_rota?=\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\n"
        b'Content-Type: multipart/alternative; boundary="b2"\r\n\r\n'
        b"--b2\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"La se=C3=B1al de la carretera est=C3=A1 rota.\r\n"
        b"--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>HTML version</p>\r\n"
        b"--b2--\r\n"
        b"--b1\r\nContent-Type: image/jpeg\r\n"
        b'Content-Disposition: attachment; filename="sign.jpg"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n/9j/4AAQ\r\n"
        b"--b1--\r\n"
    )
    sub = Submission.from_email_bytes(raw)
    assert sub.channel == "email" and sub.form is None
    assert sub.subject == "Señal rota"
    assert sub.sender == "jose@Example.ORG"
    assert sub.sender_domain == "example.org"
    assert sub.recipient == "intake@examplia.gov"
    assert sub.body == "La señal de la carretera está rota."
    assert tuple(sub.attachments) == ("sign.jpg",)
    assert Submission.from_email_bytes(raw, recipient="other@x.gov").recipient == "other@x.gov"
    rs = load_rules_file(SHIPPED)
    d = both(rs, sub)
    assert d.route_to == "dot"
    assert "has-photo" in d.tags


def test_from_email_bytes_html_only() -> None:
    raw = (
        b"From: a@b.org\r\nSubject: hi\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><style>p{}</style><body><p>Huge&nbsp;pothole</p><br>on Route 9</body></html>"
    )
    sub = Submission.from_email_bytes(raw)
    assert "Huge pothole" in sub.body and "on Route 9" in sub.body
    assert "<" not in sub.body and "p{}" not in sub.body


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe\x00garbage\x00\x00",
        b"Subject: =?bogus-charset?q?caf=E9?=\r\nFrom: <<<@@@>>>\r\n"
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nbody \xe9 text\r\n",
        b"Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: text/plain\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",  # no closing boundary
        b"From: a@b.org\r\nSubject: =?utf-8?b?not-base64?=\r\n\r\n\xc3\x28 invalid utf-8",
    ],
)
def test_from_email_bytes_broken_mail_never_raises(raw: bytes) -> None:
    sub = Submission.from_email_bytes(raw)
    assert sub.channel == "email"
    assert isinstance(sub.body, str) and isinstance(sub.subject, str)
    load_rules_file(SHIPPED).decide(sub)


def test_from_email_bytes_bad_charset_body_is_replaced() -> None:
    raw = (
        b"From: a@b.org\r\nSubject: x\r\n"
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\npothole \xe9\r\n"
    )
    sub = Submission.from_email_bytes(raw)
    assert sub.body.startswith("pothole")


def test_from_mapping() -> None:
    sub = Submission.from_mapping(
        {"channel": "web", "form": "contact", "topic": "health", "attachments": ["a.pdf"],
         "zip": 1234, "sender": "x@y.org"}
    )
    assert sub.fields == {"topic": "health", "zip": "1234"}
    assert tuple(sub.attachments) == ("a.pdf",)
    assert sub.sender_domain == "y.org"
    with pytest.raises(ValueError, match="derived"):
        Submission.from_mapping({"channel": "web", "sender_domain": "x.org"})
