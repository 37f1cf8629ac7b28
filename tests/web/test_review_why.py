"""Issue 27: the review page says why each part was redacted (kind, confidence, evidence)."""

from __future__ import annotations

import html
import re

from flask import Flask

from intake.runtime import Runtime
from tests.conftest import Account, make_entry
from tests.web import test_records
from tests.web.test_records import officer_client

app = test_records.app
officer = test_records.officer


def rows(page: str) -> list[list[str]]:
    table = page.split('id="why-redacted"', 1)[1].split("</table>", 1)[0]
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
             for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S) if "<td>" in row]


def test_the_review_page_shows_kind_confidence_and_evidence(
        app: Flask, runtime: Runtime, officer: Account) -> None:
    body = ("My SSN is 518-22-4137; the claim number is 2026-118. "
            "Case 401-73-2210 was closed. I am on dialysis.")
    entry_id = make_entry(runtime, "dot", body=body, key="why")
    page = officer_client(app, officer).get(f"/staff/review/{entry_id}").get_data(as_text=True)
    found = {(r[0], r[5]): r for r in rows(page)}
    ssn = found[("body", "ssn.delimited")]
    assert ssn[3] == "0.99" and ssn[4] == "stdnum:valid, context:+ssn"
    medical = found[("body", "medical.lexicon")]
    assert medical[4] == "lexicon:medical"
    # The case number was rejected by its context: no finding, so no row for it.
    assert not any("401-73" in " ".join(r) for r in rows(page))
    assert sum(1 for r in rows(page) if r[5] == "ssn.delimited") == 1
