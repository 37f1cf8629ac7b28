"""The records officers' review over HTTP: who may, marks, withholds, releases, the rule.

Each action is checked where a user would notice it (the public pages and
search) and where the records office reads it (timeline events, access log).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from intake import create_app
from intake.db.models import Disclosure, Entry, Event
from intake.db.publication_models import RedactionMark
from intake.db.staff_models import AccessLogEntry
from intake.runtime import Runtime
from intake.services.consent import verify_chains
from tests.conftest import Account, csrf, login, make_account, make_entry, make_settings
from tests.web import test_records
from tests.web.test_records import officer_client, publish, record_number_of

# The portal tests' fixtures: the app on the parametrised runtime, a records officer of dot.
app = test_records.app
officer = test_records.officer


def post(client: FlaskClient, entry_id: int, action: str, **data: str) -> str:
    """POST an action on the review page; the page it leads to (with its flash message)."""
    token = csrf(client, f"/staff/review/{entry_id}")
    response = client.post(f"/staff/review/{entry_id}/{action}",
                           data={"csrf_token": token, **data})
    assert response.status_code == 303, response.status_code
    return client.get(response.headers["Location"]).get_data(as_text=True)


def events(runtime: Runtime, entry_id: int, kind: str) -> list[Event]:
    with runtime.db.session() as s:
        found = list(s.scalars(select(Event).where(Event.entry_id == entry_id,
                                                   Event.kind == kind)))
        s.expunge_all()
        return found


def access_rows(runtime: Runtime, entry_id: int, what: str) -> list[AccessLogEntry]:
    with runtime.db.session() as s:
        found = list(s.scalars(select(AccessLogEntry).where(
            AccessLogEntry.entry_id == entry_id, AccessLogEntry.what == what)))
        s.expunge_all()
        return found


def public_json(app: Flask, **args: str) -> list[str]:
    data = app.test_client().get("/records", query_string={**args, "format": "json"})
    return [r["record_number"] for r in json.loads(data.get_data(as_text=True))["records"]]


def test_only_records_officers_of_the_owning_agency_reach_the_review(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    entry_id = make_entry(runtime, "dot")
    anonymous = app.test_client()
    assert anonymous.get("/staff/review").status_code == 302
    agent = make_account(runtime, "agent@dot.examplia.gov", "dot")
    agent_client = app.test_client()
    login(agent_client, agent)
    assert agent_client.get("/staff/review").status_code == 403
    assert agent_client.get(f"/staff/review/{entry_id}").status_code == 403
    token = csrf(agent_client)
    assert agent_client.post(f"/staff/review/{entry_id}/publish",
                             data={"csrf_token": token}).status_code == 403
    other = make_account(runtime, "records@parks.examplia.gov", "parks", role="records_officer")
    other_client = app.test_client()
    login(other_client, other)
    assert other_client.get(f"/staff/review/{entry_id}").status_code == 404
    token = csrf(other_client, "/staff/review")
    assert other_client.post(f"/staff/review/{entry_id}/publish",
                             data={"csrf_token": token}).status_code == 404
    assert record_number_of(runtime, entry_id) not in other_client.get(
        "/staff/review").get_data(as_text=True)
    # Without the CSRF token nothing happens.
    client = officer_client(app, officer)
    assert client.post(f"/staff/review/{entry_id}/publish").status_code == 400
    assert public_json(app) == []
    make_entry(runtime, "dot", subject="Call me at (217) 555-0143", key="phone")
    queue = client.get("/staff/review").get_data(as_text=True)
    assert record_number_of(runtime, entry_id) in queue
    assert "Pothole on Route 9" in queue  # the subject, as a records officer sees it
    assert "555-0143" not in queue


def test_a_literal_mark_hides_its_text_from_the_page_and_search_and_logs_no_text(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    entry_id = make_entry(runtime, "dot", body="The pothole near the Quimbly bakery is deep.")
    client = officer_client(app, officer)
    publish(client, entry_id)
    number = record_number_of(runtime, entry_id)
    assert public_json(app, q="quimbly") == [number]

    page = post(client, entry_id, "marks", how="literal", pattern="quimbly",
                reason_code="preliminary", comment="names a private business")
    assert "Redaction mark added." in page

    public = app.test_client().get(f"/records/{number}").get_data(as_text=True)
    assert "Quimbly" not in public and "quimbly" not in public
    assert ("[preliminary draft or recommendation withheld — KRS 61.878(1)(i)]"
            in public)
    assert "bakery is deep" in public
    assert public_json(app, q="quimbly") == []
    assert public_json(app, q="bakery") == [number]
    with runtime.db.session() as s:
        entry = s.get(Entry, entry_id)
        assert entry is not None and "Quimbly" in entry.body  # the stored text is unchanged
    [event] = events(runtime, entry_id, "redaction-marked")
    assert event.detail["reason_code"] == "preliminary"
    assert "quimbly" not in json.dumps(event.detail).lower()
    [logged] = access_rows(runtime, entry_id, "review:mark")
    assert logged.detail is not None and logged.detail["comment"] == "names a private business"


def test_a_span_is_chosen_without_javascript_by_phrase_and_occurrence_or_offsets(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    body = "Bridge one is fine. Bridge two is broken. Bridge three is closed."
    entry_id = make_entry(runtime, "dot", subject="Highway bridges", body=body)
    client = officer_client(app, officer)
    publish(client, entry_id)
    post(client, entry_id, "marks", how="span", pattern="bridge", occurrence="2",
         place="body", reason_code="preliminary", comment="second one only")
    start = body.index("three")
    post(client, entry_id, "marks", how="span", place="body", start=str(start),
         end=str(start + len("three")), reason_code="law-enforcement", comment="offsets")
    public = app.test_client().get(f"/records/{record_number_of(runtime, entry_id)}")
    text = public.get_data(as_text=True)
    body_html = re.search(r'class="record-text record-body">(.*?)</div>', text, re.S)
    assert body_html is not None
    shown = re.sub(r"<mark[^>]*>\[([^\]]*)\]</mark>", r"<\1>", body_html.group(1))
    assert shown == ("Bridge one is fine. <preliminary draft or recommendation withheld — "
                     "KRS 61.878(1)(i)> two is broken. Bridge <law enforcement record "
                     "withheld — KRS 61.878(1)(h)> is closed.")


@pytest.mark.parametrize(("form", "problem"), [
    ({"how": "literal", "pattern": "pothole", "reason_code": "preliminary", "comment": " "},
     "A comment is required."),
    ({"how": "literal", "pattern": "pothole", "reason_code": "made-up", "comment": "x"},
     "Choose a reason."),
    ({"how": "regex", "pattern": "(unclosed", "reason_code": "preliminary", "comment": "x"},
     "That regular expression is not valid."),
    ({"how": "regex", "pattern": "a*", "reason_code": "preliminary", "comment": "x"},
     "That regular expression matches empty text."),
    ({"how": "literal", "pattern": "zeppelin", "reason_code": "preliminary", "comment": "x"},
     "Nothing in the entry matches; no mark added."),
    ({"how": "span", "place": "body", "start": "5", "end": "500", "reason_code": "preliminary",
      "comment": "x"}, "The span&#39;s start and end must lie inside that text"),
    ({"how": "span", "place": "body", "pattern": "pothole", "occurrence": "9",
      "reason_code": "preliminary", "comment": "x"}, "does not occur that often"),
    ({"how": "literal", "pattern": "pothole", "place": "field:nope",
      "reason_code": "preliminary", "comment": "x"}, "That part of the entry does not exist."),
])
def test_a_mark_the_officer_cannot_make_is_refused_with_a_reason(
        app: Flask, runtime: Runtime, officer: Account, form: dict[str, str],
        problem: str) -> None:
    entry_id = make_entry(runtime, "dot", body="A pothole on the highway.")
    page = post(officer_client(app, officer), entry_id, "marks", **form)
    assert problem in page
    with runtime.db.session() as s:
        assert s.scalars(select(RedactionMark)).all() == []
    assert events(runtime, entry_id, "redaction-marked") == []


def test_a_withheld_entry_is_gone_from_the_public_until_lifted_and_published_again(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    entry_id = make_entry(runtime, "dot")
    client = officer_client(app, officer)
    publish(client, entry_id)
    number = record_number_of(runtime, entry_id)
    assert public_json(app) == [number]

    page = post(client, entry_id, "withhold", reason_code="law-enforcement", comment="")
    assert "A comment is required." in page
    assert public_json(app) == [number]
    post(client, entry_id, "withhold", reason_code="law-enforcement",
         comment="open investigation")
    assert public_json(app) == []
    assert app.test_client().get(f"/records/{number}").status_code == 404
    [event] = events(runtime, entry_id, "withheld")
    assert event.detail == {"reason_code": "law-enforcement", "citation": "KRS 61.878(1)(h)"}
    assert access_rows(runtime, entry_id, "review:withhold")[0].detail == {
        "reason_code": "law-enforcement", "citation": "KRS 61.878(1)(h)",
        "comment": "open investigation"}
    assert "KRS 61.878(1)(h)" in client.get("/staff/review").get_data(as_text=True)

    page = post(client, entry_id, "publish")
    assert "lift the withhold first" in page
    assert public_json(app) == []
    post(client, entry_id, "lift", comment="investigation closed")
    assert public_json(app) == []  # lifting does not publish
    publish(client, entry_id)
    assert public_json(app) == [number]
    kinds = [e.kind for e in events(runtime, entry_id, "published")]
    assert kinds == ["published", "published"]
    assert len(access_rows(runtime, entry_id, "review:lift-withhold")) == 1


def test_an_entry_whose_rule_is_never_cannot_be_published(
        tmp_path: Path, db_url: str, officer: Account) -> None:
    records = tmp_path / "records.yaml"
    records.write_text(
        "version: 1\npublish: {default: after_review, agencies: {dot: never}}\n"
        "reasons:\n  personal-information: {label: withheld, citation: 'CGS § 1-210(b)(2)'}\n")
    runtime = Runtime(make_settings(tmp_path, db_url, INTAKE_RECORDS=str(records)))
    runtime.rules.load()
    try:
        app_never = create_app(runtime=runtime)
        account = make_account(runtime, "records2@dot.examplia.gov", "dot",
                               role="records_officer")
        client = app_never.test_client()
        login(client, account)
        entry_id = make_entry(runtime, "dot")
        page = post(client, entry_id, "publish")
        assert "it cannot be published" in page
        assert public_json(app_never) == []
        assert access_rows(runtime, entry_id, "review:publish")[0].detail == {
            "allowed": "False", "reason": "rule-never"}
    finally:
        runtime.close()


def test_a_released_attachment_is_offered_under_its_public_name(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    entry_id = make_entry(runtime, "dot", name="Ada Lovelace",
                          attachment=("Ada Lovelace photo.txt", b"the pothole, seen close"))
    client = officer_client(app, officer)
    publish(client, entry_id)
    number = record_number_of(runtime, entry_id)
    public = app.test_client()
    assert "/attachments/" not in public.get(f"/records/{number}").get_data(as_text=True)
    with runtime.db.session() as s:
        from intake.db.models import Attachment

        attachment_id = s.scalars(select(Attachment.id)).one()
    assert public.get(f"/records/{number}/attachments/{attachment_id}").status_code == 404

    post(client, entry_id, f"attachments/{attachment_id}/release", comment="shows the road")
    page = public.get(f"/records/{number}").get_data(as_text=True)
    assert f"/records/{number}/attachments/{attachment_id}" in page
    assert "Lovelace" not in page
    download = public.get(f"/records/{number}/attachments/{attachment_id}")
    assert download.status_code == 200
    assert download.get_data() == b"the pothole, seen close"
    assert "Lovelace" not in download.headers["Content-Disposition"]
    assert download.headers["Content-Type"] == "application/octet-stream"
    [event] = events(runtime, entry_id, "attachment-released")
    assert event.detail == {"attachment_id": attachment_id}


def test_an_entry_retention_destroyed_leaves_the_portal_for_good(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    """Retention's destroy takes a published entry off every public answer, blanks the
    public copy and the marks (a literal mark may be a name), and the gate refuses to
    publish it again."""
    from intake.db.publication_models import Publication
    from intake.services import retention

    entry_id = make_entry(runtime, "dot", body="The pothole near the Quimbly bakery is deep.")
    kept_id = make_entry(runtime, "dot", body="The pothole near the Zorvex garage is deep.")
    client = officer_client(app, officer)
    publish(client, entry_id)
    publish(client, kept_id)
    post(client, entry_id, "marks", how="literal", pattern="quimbly",
         reason_code="preliminary", comment="names Quimbly's business")
    number, kept = record_number_of(runtime, entry_id), record_number_of(runtime, kept_id)
    assert public_json(app, q="bakery") == [number]

    with runtime.db.session() as s:
        assert retention.destroy_entries(s, [entry_id]) == [entry_id]
        s.commit()

    public = app.test_client()
    missing = public.get("/records/EX-1999-999999")
    gone = public.get(f"/records/{number}")
    assert gone.status_code == 404 and gone.get_data() == missing.get_data()
    assert public_json(app) == [kept]
    assert public_json(app, q="bakery") == []
    assert number not in public.get("/records", query_string={"format": "csv"}).get_data(
        as_text=True)
    with runtime.db.session() as s:
        row = s.get(Publication, entry_id)
        assert row is not None and row.state == "destroyed"
        assert (row.public_subject, row.public_text) == ("", "")
        marks = s.scalars(select(RedactionMark).where(RedactionMark.entry_id == entry_id)).all()
        assert marks and all(m.pattern == "" and m.comment == "" for m in marks)
    page = post(client, entry_id, "publish")
    assert "destroyed under its retention schedule" in page
    assert public.get(f"/records/{number}").status_code == 404


# -- a release of personal information under law (P9) -----------------------------------------

RELEASE_BODY = ("Commissioner Hollis Quade approved the lane closure. Reach me at "
                "hquade@example.org or (217) 555-0143; my SSN is 219-45-6781. "
                "Thank you, Hollis Quade")


def release_entry(runtime: Runtime) -> int:
    return make_entry(runtime, "dot", subject="Lane closure on Route 9", body=RELEASE_BODY,
                      name="Hollis Quade", email="hquade@example.org")


def redactions(page: str) -> dict[str, list[str]]:
    """The review page's list of redactions a release may choose: label -> span keys."""
    found: dict[str, list[str]] = {}
    for key, label in re.findall(r'name="span" value="([^"]+)"[^>]*><label[^>]*>'
                                 r'(?:Subject|Message), characters \d+–\d+, ([^(]+) \(', page):
        found.setdefault(label.strip(), []).append(key)
    return found


def ledger_releases(runtime: Runtime, entry_id: int) -> list[Disclosure]:
    with runtime.db.session() as s:
        found = list(s.scalars(select(Disclosure).where(
            Disclosure.entry_id == entry_id, Disclosure.nature == "records-release")
            .order_by(Disclosure.seq)))
        s.expunge_all()
        return found


def stored_body(runtime: Runtime, entry_id: int) -> str:
    with runtime.db.session() as s:
        entry = s.get(Entry, entry_id)
        assert entry is not None
        return entry.body


def test_an_officer_releases_one_name_under_law_and_the_portal_shows_it_and_nothing_else(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    entry_id = release_entry(runtime)
    client = officer_client(app, officer)
    publish(client, entry_id)
    number = record_number_of(runtime, entry_id)
    assert "Quade" not in app.test_client().get(f"/records/{number}").get_data(as_text=True)
    assert public_json(app, q="quade") == []

    body = stored_body(runtime, entry_id)
    start = body.index("Hollis Quade")
    key = f"body:{start}:{start + len('Hollis Quade')}"
    review = client.get(f"/staff/review/{entry_id}").get_data(as_text=True)
    assert key in redactions(review)["name"]
    assert "Hollis" not in review  # the list shows the public words around it, not the value

    page = post(client, entry_id, "release-value", span=key, citation=" KRS 61.870(2) ",
                comment="an official acting in office")
    assert "Released to the public under KRS 61.870(2)." in page

    public = app.test_client().get(f"/records/{number}").get_data(as_text=True)
    assert public.count("Hollis Quade") == 1  # that occurrence; the signature stays redacted
    assert ('Commissioner <span class="released">Hollis Quade [released under law]</span> '
            'approved') in public  # the page says so
    spanish = app.test_client().get(f"/records/{number}?lang=es").get_data(as_text=True)
    assert "Hollis Quade [divulgado conforme a la ley]</span>" in spanish
    for planted in ("hquade", "555-0143", "219-45-6781", "6781"):
        assert planted not in public
    assert public_json(app, q="quade") == [number]
    assert public_json(app, q="hquade") == []

    [row] = ledger_releases(runtime, entry_id)
    assert (row.allowed, row.purpose, row.basis, row.reason, row.citation) == (
        True, "legal-obligation", "law", "law", "KRS 61.870(2)")
    assert (row.recipient_kind, row.recipient_address) == ("public", f"/records/{number}")
    assert row.actor == f"staff:{officer.id}" and row.work_item_id is None
    assert row.include_identity is False  # the accounting says: your address not shared
    with runtime.db.session() as s:
        assert all(r.verdict.ok for r in verify_chains(s))
    [event] = events(runtime, entry_id, "value-released")
    assert event.detail["place"] == "body" and event.detail["kind"] == "name"
    assert event.detail["citation"] == "KRS 61.870(2)"
    assert "quade" not in json.dumps(event.detail).lower()
    [logged] = access_rows(runtime, entry_id, "review:release-value")
    assert logged.detail is not None and logged.detail["allowed"] == "True"
    assert logged.detail["comment"] == "an official acting in office"
    page = post(client, entry_id, "release-value", span=key, citation="KRS 61.870(2)",
                comment="again")
    assert "That value is already released." in page
    assert len(ledger_releases(runtime, entry_id)) == 1


@pytest.mark.parametrize("citation", ["", "   ", "because the law says so", "61.870"])
def test_a_release_without_a_citation_is_refused_by_the_gate_and_shows_nothing(
        app: Flask, runtime: Runtime, officer: Account, citation: str) -> None:
    entry_id = release_entry(runtime)
    client = officer_client(app, officer)
    publish(client, entry_id)
    number = record_number_of(runtime, entry_id)
    body = stored_body(runtime, entry_id)
    start = body.index("Hollis Quade")
    page = post(client, entry_id, "release-value", span=f"body:{start}:{start + 12}",
                citation=citation, comment="an official acting in office")
    assert "Not released: Give the legal citation" in page
    assert "Quade" not in app.test_client().get(f"/records/{number}").get_data(as_text=True)
    assert public_json(app, q="quade") == []
    [row] = ledger_releases(runtime, entry_id)  # the refusal is in the ledger too
    assert (row.allowed, row.reason, row.citation) == (False, "citation-required", None)
    assert events(runtime, entry_id, "value-released") == []
    assert [e.detail["reason"] for e in events(runtime, entry_id, "disclosure-refused")] == [
        "citation-required"]


def test_an_ssn_marker_the_submitters_address_a_mark_or_no_redaction_cannot_be_released(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    entry_id = release_entry(runtime)
    client = officer_client(app, officer)
    publish(client, entry_id)
    post(client, entry_id, "marks", how="literal", pattern="lane closure",
         reason_code="preliminary", comment="draft plan")
    choices = redactions(client.get(f"/staff/review/{entry_id}").get_data(as_text=True))
    [ssn] = choices["Social Security number"]
    [address] = choices["e-mail address"]
    body = stored_body(runtime, entry_id)
    mark = body.index("lane closure")
    for span, problem in [
            (ssn, "is kept only as a marker, never in clear: it cannot be released."),
            (address, "The submitter&#39;s own e-mail address is never released"),
            (f"body:{mark}:{mark + 12}", "That is a records officer&#39;s mark"),
            ("body:0:12", "Choose one of the automatic redactions"),
            ("subject:x:3", "Choose one of the automatic redactions."),
            ("field:topic:0:5", "Choose one of the automatic redactions")]:
        page = post(client, entry_id, "release-value", span=span, citation="KRS 61.870(2)",
                    comment="try")
        assert problem in page, span
    assert ledger_releases(runtime, entry_id) == []
    assert events(runtime, entry_id, "value-released") == []
    public = app.test_client().get(f"/records/{record_number_of(runtime, entry_id)}")
    assert "hquade" not in public.get_data(as_text=True)


def test_another_agencys_officer_cannot_release(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    entry_id = release_entry(runtime)
    publish(officer_client(app, officer), entry_id)
    other = make_account(runtime, "records@parks.examplia.gov", "parks", role="records_officer")
    other_client = app.test_client()
    login(other_client, other)
    start = stored_body(runtime, entry_id).index("Hollis Quade")
    token = csrf(other_client, "/staff/review")
    response = other_client.post(f"/staff/review/{entry_id}/release-value", data={
        "csrf_token": token, "span": f"body:{start}:{start + 12}",
        "citation": "KRS 61.870(2)", "comment": "not mine"})
    assert response.status_code == 404
    assert ledger_releases(runtime, entry_id) == []
    assert "Quade" not in app.test_client().get(
        f"/records/{record_number_of(runtime, entry_id)}").get_data(as_text=True)


def test_a_release_ends_with_retentions_destroy(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    """Destroy blanks the stored texts: the release (offsets into them) shows nothing,
    the entry is off the portal for good, the ledger chain still verifies."""
    from intake.services import publication, retention

    entry_id = release_entry(runtime)
    client = officer_client(app, officer)
    publish(client, entry_id)
    number = record_number_of(runtime, entry_id)
    start = stored_body(runtime, entry_id).index("Hollis Quade")
    page = post(client, entry_id, "release-value", span=f"body:{start}:{start + 12}",
                citation="KRS 61.870(2)", comment="an official acting in office")
    assert "Released to the public" in page
    with runtime.db.session() as s:
        assert retention.destroy_entries(s, [entry_id]) == [entry_id]
        s.commit()
    assert app.test_client().get(f"/records/{number}").status_code == 404
    with runtime.db.session() as s:
        entry = s.get(Entry, entry_id)
        assert entry is not None
        shown = publication.public_rendition(s, entry, runtime.settings.relay_domain)
        assert "Quade" not in shown.body
        assert all(r.verdict.ok for r in verify_chains(s))
    page = post(client, entry_id, "release-value", span=f"body:{start}:{start + 12}",
                citation="KRS 61.870(2)", comment="again")
    assert "destroyed under its retention schedule" in page
    assert len(ledger_releases(runtime, entry_id)) == 1


def test_an_officials_office_address_can_be_released_the_submitters_never(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    body = ("The county clerk (clerk.office@county.examplia.gov) closed the lane. "
            "Reply to me at hquade@example.org.")
    entry_id = make_entry(runtime, "dot", subject="Lane closure", body=body,
                          name="Hollis Quade", email="hquade@example.org")
    client = officer_client(app, officer)
    publish(client, entry_id)
    number = record_number_of(runtime, entry_id)
    choices = redactions(client.get(f"/staff/review/{entry_id}").get_data(as_text=True))
    office, own = choices["e-mail address"]
    page = post(client, entry_id, "release-value", span=own, citation="KRS 61.870(2)",
                comment="try")
    assert "The submitter&#39;s own e-mail address is never released" in page
    page = post(client, entry_id, "release-value", span=office, citation="KRS 61.870(2)",
                comment="the office's published address")
    assert "Released to the public under KRS 61.870(2)." in page
    public = app.test_client().get(f"/records/{number}").get_data(as_text=True)
    assert "clerk.office@county.examplia.gov" in public
    assert "hquade" not in public
    assert [r.allowed for r in ledger_releases(runtime, entry_id)] == [True]
