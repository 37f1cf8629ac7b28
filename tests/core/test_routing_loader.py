"""Loading rules files: every error reported, each with its file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from intake.core.routing import RuleError, RulesError, load_rules, load_rules_file

GOOD = """\
version: 1
agencies:
  - id: governor
    name: Governor
    email: gov@example.gov
  - id: dot
    name: Transportation
    email: intake@dot.example.gov
default_agency: governor
rules:
  - id: roads
    when:
      any:
        - {field: body, contains: [pothole]}
    route_to: dot
    stop: true
"""


def line_of(text: str, marker: str, nth: int = 1) -> int:
    """1-based line of the nth line containing ``marker``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if marker in line]
    return hits[nth - 1]


def errors(text: str) -> list[RuleError]:
    with pytest.raises(RulesError) as info:
        load_rules(textwrap.dedent(text))
    return info.value.errors


def only_error(text: str) -> RuleError:
    errs = errors(text)
    assert len(errs) == 1, [str(e) for e in errs]
    return errs[0]


def test_good_file_loads() -> None:
    rs = load_rules(GOOD)
    assert rs.rule_ids == ("roads",)
    assert rs.agencies["dot"].email == "intake@dot.example.gov"
    assert rs.source_name == "routing_rules.yaml"


def test_yaml_syntax_error() -> None:
    text = GOOD.replace("    route_to: dot", "    route_to: [dot")
    e = only_error(text)
    assert e.file == "routing_rules.yaml"
    assert e.message.startswith("YAML syntax error")
    assert e.line == line_of(text, "stop: true")  # where the parser noticed


def test_unknown_top_level_key() -> None:
    text = GOOD + "rulez: []\n"
    e = only_error(text)
    assert (e.line, e.message) == (
        line_of(text, "rulez"),
        "unknown top-level key 'rulez' (did you mean 'rules'?)",
    )


def test_wrong_version() -> None:
    text = GOOD.replace("version: 1", "version: 2")
    e = only_error(text)
    assert e.line == 1
    assert "unsupported version '2'" in e.message


def test_duplicate_agency_id() -> None:
    text = GOOD.replace("  - id: dot\n", "  - id: governor\n")
    text = text.replace("route_to: dot", "route_to: governor")
    e = only_error(text)
    assert e.line == line_of(text, "- id: governor", 2)
    assert e.message == "agency 'governor': duplicate agency id 'governor' (first on line 3)"


def test_duplicate_rule_id() -> None:
    text = GOOD + "  - id: roads\n    tags: [x]\n"
    e = only_error(text)
    assert e.line == line_of(text, "- id: roads", 2)
    assert "rule 'roads': duplicate rule id 'roads' (first on line 11)" == e.message


def test_unknown_agency_with_suggestion() -> None:
    text = GOOD.replace("route_to: dot", "route_to: dott")
    e = only_error(text)
    assert str(e) == (
        f"routing_rules.yaml:{line_of(text, 'dott')}: "
        "rule 'roads': unknown agency 'dott' (did you mean 'dot'?)"
    )


def test_unknown_agency_in_cc_and_default() -> None:
    text = GOOD.replace("default_agency: governor", "default_agency: govenor")
    text = text.replace("    stop: true", "    cc: [dot, press]\n    stop: true")
    errs = errors(text)
    assert [(e.line, e.message) for e in errs] == [
        (line_of(text, "govenor"), "unknown agency 'govenor' (did you mean 'governor'?)"),
        (line_of(text, "cc: [dot, press]"), "rule 'roads': unknown agency 'press'"),
    ]


def test_raw_address_in_route_to_and_cc() -> None:
    text = GOOD.replace("route_to: dot", "route_to: intake@dot.example.gov\n    cc: [a@b.gov]")
    errs = errors(text)
    assert [e.line for e in errs] == [line_of(text, "route_to:"), line_of(text, "cc:")]
    assert "route_to must name an agency id, not an address ('intake@dot.example.gov')" in (
        errs[0].message
    )
    assert errs[1].message.startswith("rule 'roads': cc must name an agency id, not an address")


def test_bad_regex() -> None:
    text = GOOD.replace("contains: [pothole]", "matches: 'pot(hole'")
    e = only_error(text)
    assert e.line == line_of(text, "pot(hole")
    assert e.message.startswith(
        "rule 'roads': bad regular expression 'pot(hole': missing ), unterminated subpattern"
    )


def test_unknown_operator_with_suggestion() -> None:
    text = GOOD.replace("contains: [pothole]", "contians: [pothole]")
    e = only_error(text)
    assert (e.line, e.message) == (
        line_of(text, "contians"),
        "rule 'roads': unknown operator 'contians' (did you mean 'contains'?)",
    )


def test_misspelt_builtin_field_and_shorthand() -> None:
    text = GOOD.replace(
        "        - {field: body, contains: [pothole]}",
        "        - {field: bdy, contains: [pothole]}\n"
        "        - {chanel: email}\n"
        "        - {topic: roads}\n"
        "        - {field: topic, equals: roads}",
    )
    errs = errors(text)
    assert [(e.line, e.message) for e in errs] == [
        (line_of(text, "bdy"), "rule 'roads': unknown field 'bdy' (did you mean 'body'?); "
                               "form fields must not look like built-in field names"),
        (line_of(text, "chanel"), "rule 'roads': unknown key 'chanel' (did you mean 'channel'?)"),
        (line_of(text, "{topic: roads}"),
         "rule 'roads': unknown key 'topic' (for a form field write {field: topic, equals: ...})"),
    ]


def test_leaf_with_zero_or_two_operators() -> None:
    text = GOOD.replace(
        "        - {field: body, contains: [pothole]}",
        "        - {field: body}\n        - {field: body, contains: x, equals: y}",
    )
    errs = errors(text)
    assert [(e.line, e.message) for e in errs] == [
        (line_of(text, "{field: body}"),
         "rule 'roads': condition on field 'body' has no operator (one of equals, in, contains, "
         "starts_with, ends_with, matches, exists)"),
        (line_of(text, "equals: y"),
         "rule 'roads': condition on field 'body' has 2 operators ('contains', 'equals'); "
         "use all: to combine them"),
    ]


def test_not_with_a_list() -> None:
    text = GOOD.replace(
        "      any:\n        - {field: body, contains: [pothole]}",
        "      not:\n        - {field: body, contains: [pothole]}",
    )
    e = only_error(text)
    assert e.line == line_of(text, "not:")
    assert e.message.startswith("rule 'roads': 'not' takes one condition, not a list")


@pytest.mark.parametrize("group", ["any", "all"])
def test_empty_group(group: str) -> None:
    text = GOOD.replace(
        "      any:\n        - {field: body, contains: [pothole]}",
        f"      all:\n        - {group}: []\n        - {{channel: web}}",
    )
    e = only_error(text)
    assert (e.line, e.message) == (
        line_of(text, f"{group}: []"),
        f"rule 'roads': empty '{group}': it needs at least one condition",
    )


def test_unreachable_rule() -> None:
    text = GOOD.replace(
        "rules:\n",
        "rules:\n  - id: catchall\n    route_to: governor\n    stop: true\n",
    ) + "  - id: later\n    when: always\n    tags: [x]\n"
    errs = errors(text)
    catch = line_of(text, "- id: catchall")
    assert [(e.line, e.message) for e in errs] == [
        (line_of(text, "- id: roads"),
         f"rule 'roads': rule 'roads' can never be reached: rule 'catchall' on line {catch} "
         "always stops"),
        (line_of(text, "- id: later"),
         f"rule 'later': rule 'later' can never be reached: rule 'catchall' on line {catch} "
         "always stops"),
    ]


def test_priority_can_make_a_rule_reachable() -> None:
    text = GOOD.replace(
        "rules:\n",
        "rules:\n  - id: catchall\n    route_to: governor\n    stop: true\n",
    ).replace("    stop: true\n", "    priority: 1\n    stop: true\n", 2)
    # 'roads' has a higher priority than the catch-all, so it runs first
    text = text.replace("  - id: catchall\n    route_to: governor\n    priority: 1\n",
                        "  - id: catchall\n    route_to: governor\n")
    rs = load_rules(text)
    assert rs.rule_ids == ("roads", "catchall")


def test_test_with_unknown_agency_and_unknown_expect_key() -> None:
    text = GOOD + textwrap.dedent(
        """\
        tests:
          - name: t1
            input: {channel: web, body: pothole}
            expect: {route_to: dto}
          - name: t2
            input: {channel: web, body: pothole}
            expect: {route_to: dot, tag: [x]}
        """
    )
    errs = errors(text)
    assert [(e.line, e.message) for e in errs] == [
        (line_of(text, "route_to: dto"), "test 't1': unknown agency 'dto' (did you mean 'dot'?)"),
        (line_of(text, "tag: [x]"), "test 't2': unknown expect key 'tag' (did you mean 'tags'?)"),
    ]


def test_all_errors_reported_at_once_sorted_by_line() -> None:
    text = GOOD.replace("version: 1", "version: 3").replace("route_to: dot", "route_to: dott")
    text = text.replace("contains: [pothole]", "contans: [pothole]")
    text += "  - id: roads\n    tags: [x]\nextra: 1\n"
    errs = errors(text)
    assert len(errs) == 5
    assert [e.line for e in errs] == sorted(e.line for e in errs)
    text_of = str(RulesError(errs))
    assert text_of.count("\n") == 4 and text_of.startswith("routing_rules.yaml:1: ")


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("    when: {field: body, equals: [a, b]}\n",
         "equals takes one value; use 'in' for a list"),
        ("    when: {field: body, in: a}\n", "'in' takes a list; use 'equals' for one value"),
        ("    when: {field: body, exists: maybe}\n", "exists must be true or false"),
        ("    when: {field: body, contains: {any: [a], wrd: false}}\n",
         "unknown contains key 'wrd' (did you mean 'word'?)"),
        ("    when: {contains: pothole}\n",
         "operator 'contains' needs a field: write {field: ..., contains: ...}"),
        ("    when: {any: [{channel: web}], channel: web}\n",
         "'any' cannot be combined with 'channel' in one condition"),
        ("    when: {field: body, contains: ''}\n", "contains must not be empty"),
        ("    when: [{channel: web}]\n",
         "a condition must be a mapping, not a list; use any: or all: for several"),
        ("    priority: high\n", "priority must be an integer"),
        ("    stop: sometimes\n", "stop must be true or false"),
        ("    rout_to: dot\n", "unknown rule key 'rout_to' (did you mean 'route_to'?)"),
    ],
)
def test_more_errors(snippet: str, message: str) -> None:
    text = GOOD + "  - id: extra\n    tags: [t]\n" + snippet
    e = only_error(text)
    assert e.line == len(text.splitlines())
    assert e.message == f"rule 'extra': {message}"


def test_stop_rule_needs_route_to_and_rules_need_an_effect() -> None:
    text = GOOD + "  - id: a\n    stop: true\n  - id: b\n    when: {channel: web}\n"
    errs = errors(text)
    assert [(e.line, e.message) for e in errs] == [
        (line_of(text, "- id: a"), "rule 'a': a rule with stop: true needs route_to"),
        (line_of(text, "- id: a"), "rule 'a': rule has no effect: give it route_to, cc or tags"),
        (line_of(text, "- id: b"), "rule 'b': rule has no effect: give it route_to, cc or tags"),
    ]


def test_agency_needs_exactly_one_of_email_or_webhook() -> None:
    text = GOOD.replace("    email: intake@dot.example.gov\n",
                        "    email: intake@dot.example.gov\n    webhook: http://x\n")
    errs = errors(text)
    assert [(e.line, e.message) for e in errs] == [
        (line_of(text, "- id: dot"), "agency 'dot': needs exactly one of 'email' or 'webhook'"),
        (line_of(text, "webhook"), "agency 'dot': webhook must be an https:// URL, not 'http://x'"),
    ]


def test_duplicate_mapping_key() -> None:
    text = GOOD.replace("    stop: true", "    stop: true\n    stop: false")
    e = only_error(text)
    assert (e.line, e.message) == (
        line_of(text, "stop: false"), "rule 'roads': duplicate key 'stop' (first on line 16)"
    )


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as info:
        load_rules_file(tmp_path / "missing.yaml")
    (e,) = info.value.errors
    assert e.line == 0 and e.file.endswith("missing.yaml")
    assert "cannot read rules file" in e.message


def test_file_name_used_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text(GOOD.replace("dot\n    stop", "dott\n    stop"))
    with pytest.raises(RulesError) as info:
        load_rules_file(path)
    # The path as given, like a compiler: the operator can open the file at that line.
    assert str(info.value).startswith(f"{path}:15: rule 'roads': unknown agency 'dott'")
    assert load_rules(GOOD.encode(), filename="x.yaml").source_name == "x.yaml"


def test_empty_and_non_mapping_documents() -> None:
    assert only_error("").message == "the rules file is empty"
    assert only_error("- a\n- b\n").message == "the rules file must be a mapping"
    errs = errors("version: 1\n")
    assert [e.message for e in errs] == [
        "missing 'agencies'", "missing 'default_agency'", "missing 'rules'"
    ]
