"""The indexed evaluator (decide) must agree with the naive one (decide_naive)."""

from __future__ import annotations

import random
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.core.routing import RuleSet, Submission, load_rules

# small vocabulary so that keywords actually occur; includes accents, ß, Turkish
# I, full-width forms, multi-word phrases and punctuation-edged keywords
WORDS = [
    "road", "roads", "pothole", "bridge", "señal", "senal", "straße", "strasse", "İzmir",
    "izmir", "ＰＡＲＫ", "park", "tax", "taxes", "w-2", "road closure", "café", "cafe",
    "ab", "a", "12", "x_y", "#tag", "licencia",
]
FIELDS = ["body", "subject", "topic", "zip", "attachments", "sender_domain", "channel"]
TOPICS = ["roads", "Taxes", "parks", "other", "señal"]
AGENCIES = ["gov", "dot", "dmv", "tax"]
REGEXES = [r"\broad\b", r"brid(?:ge|gy)", r"tax(?:es)?\s*\d+", r"(?P<n>\d+)", r"^pot",
           r"señal|senal", r"(?:park|road)s?$", r"[a-z]+-\d", r"z{0}", r"(?i)STRASSE",
           r"(?P<w>ab)+", r"(?-i:Road)"]


def leaf(rnd: random.Random) -> dict[str, Any]:
    field = rnd.choice(FIELDS)
    op = rnd.choice(["contains", "contains", "contains_sub", "equals", "in", "starts_with",
                     "ends_with", "matches", "exists"])
    if op == "contains":
        return {"field": field, "contains": rnd.sample(WORDS, rnd.randint(1, 3))}
    if op == "contains_sub":
        return {"field": field, "contains": {"any": rnd.sample(WORDS, rnd.randint(1, 3)),
                                             "word": False}}
    if op == "equals":
        return {"field": field, "equals": rnd.choice(WORDS + TOPICS)}
    if op == "in":
        return {"field": field, "in": rnd.sample(WORDS + TOPICS, 2)}
    if op in ("starts_with", "ends_with"):
        return {"field": field, op: rnd.sample(WORDS, rnd.randint(1, 2))}
    if op == "matches":
        return {"field": field, "matches": rnd.choice(REGEXES)}
    return {"field": field, "exists": rnd.random() < 0.5}


def cond(rnd: random.Random, depth: int) -> dict[str, Any]:
    r = rnd.random()
    if depth <= 0 or r < 0.45:
        return leaf(rnd)
    if r < 0.65:
        return {"any": [cond(rnd, depth - 1) for _ in range(rnd.randint(1, 3))]}
    if r < 0.85:
        return {"all": [cond(rnd, depth - 1) for _ in range(rnd.randint(1, 3))]}
    return {"not": cond(rnd, depth - 1)}


def ruleset(seed: int, n: int) -> RuleSet:
    rnd = random.Random(seed)
    rules = []
    for i in range(n):
        rule: dict[str, Any] = {"id": f"r{i}", "when": cond(rnd, 3)}
        if rnd.random() < 0.8:
            rule["route_to"] = rnd.choice(AGENCIES)
            rule["stop"] = rnd.random() < 0.5
        if rnd.random() < 0.4:
            rule["cc"] = rnd.sample(AGENCIES, 2)
        rule["tags"] = [f"t{i}"]
        if rnd.random() < 0.2:
            rule["priority"] = rnd.randint(-2, 2)
        rules.append(rule)
    doc = {
        "version": 1,
        "agencies": [{"id": a, "name": a, "email": f"{a}@example.gov"} for a in AGENCIES],
        "default_agency": "gov",
        "rules": rules,
    }
    return load_rules(yaml.safe_dump(doc, allow_unicode=True))


def text(rnd: random.Random) -> str:
    parts = []
    for _ in range(rnd.randint(0, 10)):
        w = rnd.choice(WORDS + ["the", "my", "is", "9", "", "roadway", "potholes", "xroad"])
        if rnd.random() < 0.3:
            w = w.upper()
        parts.append(w + rnd.choice(["", "", "s", "-", "_", ".", "'s", "é"]))
    return rnd.choice([" ", "  ", "\n", ", "]).join(parts)


def submission(rnd: random.Random) -> Submission:
    fields: dict[str, str] = {}
    if rnd.random() < 0.7:
        fields["topic"] = rnd.choice(TOPICS + WORDS)
    if rnd.random() < 0.5:
        fields["zip"] = rnd.choice(["01234", "12", "ab 12", text(rnd)])
    return Submission(
        channel=rnd.choice(["web", "email", "road"]),
        subject=text(rnd),
        body=text(rnd),
        sender=rnd.choice([None, "a@road.example", "b@ＰＡＲＫ.gov", "c@x.org"]),
        fields=fields,
        attachments=tuple(text(rnd) for _ in range(rnd.randint(0, 2))),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.integers(1, 40))
def test_decide_equals_decide_naive(seed: int, n: int) -> None:
    rs = ruleset(seed, n)
    rnd = random.Random(seed + 1)
    for _ in range(25):
        sub = submission(rnd)
        fast = rs.decide(sub)
        slow = rs.decide_naive(sub)
        assert fast == slow, (sub, fast.to_dict(), slow.to_dict())
        assert fast.to_dict()["trace"] == slow.to_dict()["trace"]


def test_randomized_sets_do_match_something() -> None:
    """Guard against a vacuous equivalence test: rules must actually fire."""
    fired = 0
    for seed in range(30):
        rs = ruleset(seed, 30)
        rnd = random.Random(seed)
        for _ in range(20):
            fired += len(rs.decide(submission(rnd)).matched_rules)
    assert fired > 200


def test_index_skips_rules() -> None:
    """The index really filters: most rules are never evaluated."""
    doc = {
        "version": 1,
        "agencies": [{"id": "a", "name": "A", "email": "a@x.gov"}],
        "default_agency": "a",
        "rules": [{"id": f"r{i}", "when": {"field": "body", "contains": f"word{i}"},
                   "tags": [str(i)]} for i in range(500)],
    }
    rs = load_rules(yaml.safe_dump(doc))
    from intake.core.routing.conditions import Ctx

    ctx = Ctx(Submission("web", body="word7 and word42 but not word4200"))
    assert rs._candidates(ctx) == [7, 42]
    assert rs.decide(Submission("web", body="word7 and word42")).tags == ("7", "42")
