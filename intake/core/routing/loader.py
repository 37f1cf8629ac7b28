"""Load and validate a routing rules file (YAML), reporting every error found.

The document is *composed* (not constructed) so that every node keeps its
line number; scalars are read as written (``zip: 01234`` stays ``"01234"``).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Sequence
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .conditions import (
    Affix,
    AllOf,
    Always,
    AnyOf,
    Cond,
    Contains,
    Equals,
    Exists,
    Matches,
    Not,
    regex_literals,
)
from .engine import Rule, RuleSet, RuleTest
from .model import BUILTIN_FIELDS, Agency, RuleError, RulesError, Submission
from .text import fold_pattern, norm

__all__ = ["load_rules", "load_rules_file"]

TOP_KEYS = ("version", "agencies", "default_agency", "rules", "tests")
AGENCY_KEYS = ("id", "name", "email", "webhook")
_LOOPBACK_HTTP = re.compile(r"http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?(/|$)")
RULE_KEYS = ("id", "description", "priority", "when", "route_to", "cc", "tags", "stop")
TEST_KEYS = ("name", "input", "expect")
EXPECT_KEYS = ("route_to", "cc", "tags", "matched_rules", "decided_by")
OPERATORS = ("equals", "in", "contains", "starts_with", "ends_with", "matches", "exists")
CONTAINS_KEYS = ("any", "word")
GROUPS = ("all", "any", "not")

_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _line(node: Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 0


def _suggest(word: str, choices: Sequence[str], cutoff: float = 0.6) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _NodeReader:
    """Reads typed values out of composed YAML nodes, collecting every error with its line."""

    def __init__(self, filename: str) -> None:
        self.file = filename
        self.errors: list[RuleError] = []
        self.ctx = ""  # "rule 'x': " prefix while inside a rule / agency / test

    def err(self, node: Node | int | None, message: str) -> None:
        line = node if isinstance(node, int) else _line(node)
        self.errors.append(RuleError(self.file, line, self.ctx + message))

    def items(self, node: Node, what: str) -> list[tuple[str, Node, Node]] | None:
        if not isinstance(node, MappingNode):
            self.err(node, f"{what} must be a mapping")
            return None
        out: list[tuple[str, Node, Node]] = []
        seen: dict[str, int] = {}
        for k, v in node.value:
            if not isinstance(k, ScalarNode):
                self.err(k, f"{what}: keys must be plain names")
                continue
            key = str(k.value)
            if key in seen:
                self.err(k, f"duplicate key '{key}' (first on line {seen[key]})")
                continue
            seen[key] = _line(k)
            out.append((key, k, v))
        return out

    def check_keys(
        self, items: list[tuple[str, Node, Node]], allowed: Sequence[str], what: str
    ) -> None:
        for key, knode, _v in items:
            if key not in allowed:
                self.err(knode, f"unknown {what} key '{key}'{_suggest(key, allowed)}")

    def string(self, node: Node, what: str, *, allow_empty: bool = False) -> str | None:
        if not isinstance(node, ScalarNode) or node.tag == _NULL:
            self.err(node, f"{what} must be a string")
            return None
        value = str(node.value)
        if not allow_empty and not value.strip():
            self.err(node, f"{what} must not be empty")
            return None
        return value

    def strings(self, node: Node, what: str) -> list[tuple[str, Node]] | None:
        """A scalar or a non-empty list of scalars."""
        if isinstance(node, ScalarNode) and node.tag != _NULL:
            s = self.string(node, what)
            return None if s is None else [(s, node)]
        if isinstance(node, SequenceNode):
            if not node.value:
                self.err(node, f"{what} must not be an empty list")
                return None
            out = []
            for item in node.value:
                s = self.string(item, f"{what} item")
                if s is not None:
                    out.append((s, item))
            return out
        self.err(node, f"{what} must be a string or a list of strings")
        return None

    def boolean(self, node: Node, what: str) -> bool | None:
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            return str(node.value).lower() in ("true", "yes", "on", "y")
        self.err(node, f"{what} must be true or false")
        return None

    def integer(self, node: Node, what: str) -> int | None:
        if isinstance(node, ScalarNode) and node.tag == _INT:
            value = yaml.safe_load(node.value)
            if isinstance(value, int):
                return value
        self.err(node, f"{what} must be an integer")
        return None

    def plain(self, node: Node) -> object:
        """Scalars as written, lists as lists, mappings as dicts (for test input)."""
        if isinstance(node, ScalarNode):
            return None if node.tag == _NULL else str(node.value)
        if isinstance(node, SequenceNode):
            return [self.plain(n) for n in node.value]
        if isinstance(node, MappingNode):
            return {str(k.value): self.plain(v) for k, v in node.value}
        return None  # pragma: no cover


class _ConditionParser(_NodeReader):
    """The grammar of a rule's ``when:``: all/any/not groups over field tests."""

    def cond(self, node: Node) -> Cond | None:
        if isinstance(node, ScalarNode):
            hint = " ('always' is only allowed as `when: always`)" if node.value == "always" else ""
            self.err(node, f"a condition must be a mapping: a field test or all/any/not{hint}")
            return None
        if isinstance(node, SequenceNode):
            self.err(node, "a condition must be a mapping, not a list; "
                           "use any: or all: for several")
            return None
        items = self.items(node, "a condition")
        if items is None:
            return None
        if not items:
            self.err(node, "empty condition")
            return None
        groups = [(k, kn, v) for k, kn, v in items if k in GROUPS]
        if groups:
            if len(items) > 1:
                others = ", ".join(f"'{k}'" for k, _kn, _v in items if k != groups[0][0])
                first = groups[0][0]
                self.err(node, f"'{first}' cannot be combined with {others} in one condition")
                return None
            key, knode, value = groups[0]
            if key == "not":
                if isinstance(value, SequenceNode):
                    self.err(knode, "'not' takes one condition, not a list; use not: {any: [...]}")
                    return None
                child = self.cond(value)
                return None if child is None else Not(child, line=_line(knode))
            if not isinstance(value, SequenceNode):
                self.err(knode, f"'{key}' takes a list of conditions")
                return None
            if not value.value:
                self.err(knode, f"empty '{key}': it needs at least one condition")
                return None
            children = [self.cond(c) for c in value.value]
            if any(c is None for c in children):
                return None
            kids = tuple(c for c in children if c is not None)
            if key == "all":
                return AllOf(kids, line=_line(knode))
            return AnyOf(kids, line=_line(knode))
        return self.leaf(node, items)

    def field_name(self, node: Node) -> str | None:
        name = self.string(node, "field")
        if name is None:
            return None
        key = name.strip().casefold()
        if key in BUILTIN_FIELDS:
            return key
        close = difflib.get_close_matches(key, BUILTIN_FIELDS, n=1, cutoff=0.8)
        if close:
            self.err(node, f"unknown field '{name}' (did you mean '{close[0]}'?); "
                           "form fields must not look like built-in field names")
            return None
        if not re.fullmatch(r"[\w.-]+", key):
            self.err(node, f"bad field name '{name}'")
            return None
        return key

    def leaf(self, node: Node, items: list[tuple[str, Node, Node]]) -> Cond | None:
        keys = [k for k, _kn, _v in items]
        if "field" not in keys:
            if len(items) == 1 and keys[0] in BUILTIN_FIELDS:
                key, knode, value = items[0]
                if isinstance(value, SequenceNode):
                    return self.operator("in", key, knode, value)
                return self.operator("equals", key, knode, value)
            bad = False
            for key, knode, _v in items:
                if key in OPERATORS:
                    self.err(knode, f"operator '{key}' needs a field: "
                                    f"write {{field: ..., {key}: ...}}")
                    bad = True
                elif key not in BUILTIN_FIELDS:
                    hint = _suggest(key, OPERATORS + BUILTIN_FIELDS + GROUPS + ("field",), 0.75)
                    if not hint:
                        hint = f" (for a form field write {{field: {key}, equals: ...}})"
                    self.err(knode, f"unknown key '{key}'{hint}")
                    bad = True
            if not bad:
                self.err(node, "a condition tests one field; use all: to combine "
                         + ", ".join(f"'{k}'" for k in keys))
            return None
        fnode = next(v for k, _kn, v in items if k == "field")
        fld = self.field_name(fnode)
        ops: list[tuple[str, Node, Node]] = []
        ok = fld is not None
        for key, knode, value in items:
            if key == "field":
                continue
            if key in OPERATORS:
                ops.append((key, knode, value))
            else:
                self.err(knode, f"unknown operator '{key}'{_suggest(key, OPERATORS)}")
                ok = False
        if not ok:
            return None
        if not ops:
            choices = ", ".join(OPERATORS)
            self.err(node, f"condition on field '{fld}' has no operator (one of {choices})")
            return None
        if len(ops) > 1:
            self.err(node, f"condition on field '{fld}' has {len(ops)} operators ("
                     + ", ".join(f"'{k}'" for k, _kn, _v in ops) + "); use all: to combine them")
            return None
        assert fld is not None
        return self.operator(ops[0][0], fld, ops[0][1], ops[0][2])

    def operator(self, op: str, fld: str, knode: Node, value: Node) -> Cond | None:
        line = _line(knode)
        if op == "exists":
            b = self.boolean(value, "exists")
            return None if b is None else Exists(fld, b, line=line)
        if op == "equals":
            if isinstance(value, SequenceNode):
                self.err(value, "equals takes one value; use 'in' for a list")
                return None
            s = self.string(value, "equals")
            if s is None:
                return None
            return Equals(fld, frozenset({norm(s)}), (s,), "equals", line=line)
        if op == "in":
            if not isinstance(value, SequenceNode):
                self.err(value, "'in' takes a list; use 'equals' for one value")
                return None
            vals = self.strings(value, "in")
            if not vals:
                return None
            normed = frozenset(norm(v) for v, _n in vals)
            return Equals(fld, normed, tuple(v for v, _n in vals), "in", line=line)
        if op == "matches":
            pattern = self.string(value, "matches")
            if pattern is None:
                return None
            folded = fold_pattern(pattern)
            try:
                rx = re.compile(folded, re.IGNORECASE)
            except re.error as e:
                self.err(value, f"bad regular expression '{pattern}': {e}")
                return None
            return Matches(fld, pattern, rx, regex_literals(folded), line=line)
        return self.words_operator(op, fld, value, line)

    def words_operator(self, op: str, fld: str, value: Node, line: int) -> Cond | None:
        """contains / starts_with / ends_with: words folded and deduplicated, as written shown."""
        word = True
        src: Node = value
        if op == "contains" and isinstance(value, MappingNode):
            sub = self.items(value, "contains")
            if sub is None:
                return None
            self.check_keys(sub, CONTAINS_KEYS, "contains")
            subd = {k: v for k, _kn, v in sub}
            if "word" in subd:
                w = self.boolean(subd["word"], "contains: word")
                if w is None:
                    return None
                word = w
            if "any" not in subd:
                self.err(value, "contains: {...} needs 'any: [words]'")
                return None
            src = subd["any"]
        vals = self.strings(src, op)
        if not vals:
            return None
        words: list[str] = []
        shown: dict[str, str] = {}
        for v, vnode in vals:
            n = norm(v)
            if not n:
                self.err(vnode, f"{op}: '{v}' is empty once folded")
                return None
            if n not in shown:
                words.append(n)
                shown[n] = v
        if op == "contains":
            return Contains(fld, tuple(words), shown, word, line=line)
        return Affix(fld, tuple(words), tuple(shown[w] for w in words),
                     at_end=op == "ends_with", line=line)


class _Parser(_ConditionParser):
    """The grammar of a rules file: agencies, rules (conditions: see the base class), tests."""

    # --------------------------------------------------------- document

    def document(self, text: str) -> tuple[dict[str, Agency], str, list[Rule], list[RuleTest]]:
        try:
            root = yaml.compose(text, Loader=_Loader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = mark.line + 1 if mark is not None else 0
            problem = " ".join(x for x in (e.context, e.problem) if x)
            self.err(line, f"YAML syntax error: {problem}")
            return {}, "", [], []
        except yaml.YAMLError as e:
            self.err(0, f"YAML error: {e}")
            return {}, "", [], []
        if root is None:
            self.err(1, "the rules file is empty")
            return {}, "", [], []
        top = self.items(root, "the rules file")
        if top is None:
            return {}, "", [], []
        self.check_keys(top, TOP_KEYS, "top-level")
        section = {k: (kn, v) for k, kn, v in top}

        if "version" not in section:
            self.err(1, "missing 'version: 1'")
        else:
            vnode = section["version"][1]
            ok = isinstance(vnode, ScalarNode) and vnode.tag == _INT and vnode.value.strip() == "1"
            if not ok:
                got = getattr(vnode, "value", "?")
                self.err(vnode, f"unsupported version '{got}' (this intake reads version 1)")

        agencies = self.agencies(section["agencies"][1]) if "agencies" in section else None
        if agencies is None and "agencies" not in section:
            self.err(1, "missing 'agencies'")
        agencies = agencies or {}

        default = ""
        if "default_agency" not in section:
            self.err(1, "missing 'default_agency'")
        else:
            dnode = section["default_agency"][1]
            d = self.string(dnode, "default_agency")
            if d is not None:
                default = d
                self.agency_ref(d, dnode, agencies, "default_agency")

        rules: list[Rule] = []
        if "rules" not in section:
            self.err(1, "missing 'rules'")
        else:
            rules = self.rules(section["rules"][1], agencies)
        tests: list[RuleTest] = []
        if "tests" in section:
            tests = self.tests(section["tests"][1], agencies, {r.id for r in rules})
        return agencies, default, rules, tests

    def agency_ref(self, name: str, node: Node, agencies: dict[str, Agency], what: str) -> bool:
        if "@" in name:
            self.err(node, f"{what} must name an agency id, not an address ('{name}'); "
                           "declare an agency for it")
            return False
        if agencies and name not in agencies:
            self.err(node, f"unknown agency '{name}'{_suggest(name, list(agencies))}")
            return False
        return True

    # ---------------------------------------------------------- agencies

    def agencies(self, node: Node) -> dict[str, Agency] | None:
        if not isinstance(node, SequenceNode) or not node.value:
            self.err(node, "agencies must be a non-empty list")
            return None
        out: dict[str, Agency] = {}
        lines: dict[str, int] = {}
        for anode in node.value:
            items = self.items(anode, "an agency")
            if items is None:
                continue
            fields = {k: v for k, _kn, v in items}
            aid = self.string(fields["id"], "agency id") if "id" in fields else None
            if "id" not in fields:
                self.err(anode, "agency without 'id'")
            self.ctx = f"agency '{aid}': " if aid else ""
            self.check_keys(items, AGENCY_KEYS, "agency")
            if aid is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", aid):
                self.err(fields["id"], "agency ids are letters, digits, '-', '_' and '.' only")
                aid = None
            name = self.string(fields["name"], "name") if "name" in fields else None
            if "name" not in fields:
                self.err(anode, "missing 'name'")
            mail = self.string(fields["email"], "email") if "email" in fields else None
            hook = self.string(fields["webhook"], "webhook") if "webhook" in fields else None
            if ("email" in fields) == ("webhook" in fields):
                self.err(anode, "needs exactly one of 'email' or 'webhook'")
            if mail is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", mail):
                self.err(fields["email"], f"'{mail}' is not an e-mail address")
            # https only, except to this machine's loopback (local receivers, tests).
            if hook is not None and not (
                hook.startswith("https://") or _LOOPBACK_HTTP.match(hook)
            ):
                self.err(fields["webhook"], f"webhook must be an https:// URL, not '{hook}'")
            if aid is not None:
                if aid in out:
                    first = lines[aid]
                    self.err(fields["id"], f"duplicate agency id '{aid}' (first on line {first})")
                else:
                    lines[aid] = _line(fields["id"])
                    out[aid] = Agency(aid, name or aid, mail, hook)
            self.ctx = ""
        return out

    # ------------------------------------------------------------- rules

    def rules(self, node: Node, agencies: dict[str, Agency]) -> list[Rule]:
        if not isinstance(node, SequenceNode):
            self.err(node, "rules must be a list")
            return []
        out: list[Rule] = []
        first_line: dict[str, int] = {}
        for n, rnode in enumerate(node.value, 1):
            self.ctx = f"rule #{n}: "
            if isinstance(rnode, MappingNode):
                for k, v in rnode.value:
                    if getattr(k, "value", None) == "id" and isinstance(v, ScalarNode) and v.value:
                        self.ctx = f"rule '{v.value}': "
                        break
            items = self.items(rnode, "a rule")
            if items is None:
                continue
            fields = {k: v for k, _kn, v in items}
            rid = self.string(fields["id"], "rule id") if "id" in fields else None
            if rid is None:
                if "id" not in fields:
                    self.err(rnode, "rule without 'id'")
            else:
                self.ctx = f"rule '{rid}': "
                if rid in first_line:
                    first = first_line[rid]
                    self.err(fields["id"], f"duplicate rule id '{rid}' (first on line {first})")
                    rid = None
                else:
                    first_line[rid] = _line(rnode)
            self.check_keys(items, RULE_KEYS, "rule")
            rule = self.rule(rnode, fields, rid, agencies)
            if rule is not None:
                out.append(rule)
            self.ctx = ""
        # evaluation order: priority (higher first), stable by file order
        out.sort(key=lambda r: -r.priority)
        blocker: Rule | None = None
        for rule in out:
            if blocker is not None:
                self.ctx = f"rule '{rule.id}': "
                self.err(
                    rule.line,
                    f"rule '{rule.id}' can never be reached: "
                    f"rule '{blocker.id}' on line {blocker.line} always stops",
                )
                self.ctx = ""
            elif rule.stop and rule.cond.unconditional():
                blocker = rule
        return out

    def rule(
        self, rnode: Node, fields: dict[str, Node], rid: str | None, agencies: dict[str, Agency]
    ) -> Rule | None:
        n_errors = len(self.errors)
        desc = ""
        if "description" in fields:
            desc = self.string(fields["description"], "description", allow_empty=True) or ""
        priority = 0
        if "priority" in fields:
            priority = self.integer(fields["priority"], "priority") or 0
        cond: Cond | None = Always()
        if "when" in fields:
            w = fields["when"]
            if isinstance(w, ScalarNode) and w.value == "always":
                cond = Always()
            else:
                cond = self.cond(w)
        route_to: str | None = None
        if "route_to" in fields:
            r = self.string(fields["route_to"], "route_to")
            if r is not None and self.agency_ref(r, fields["route_to"], agencies, "route_to"):
                route_to = r
        cc: list[str] = []
        if "cc" in fields:
            for a, anode in self.strings(fields["cc"], "cc") or []:
                if self.agency_ref(a, anode, agencies, "cc") and a not in cc:
                    cc.append(a)
        tags: list[str] = []
        if "tags" in fields:
            for t, _tn in self.strings(fields["tags"], "tags") or []:
                if t not in tags:
                    tags.append(t)
        stop = False
        if "stop" in fields:
            stop = bool(self.boolean(fields["stop"], "stop"))
        if stop and "route_to" not in fields:
            self.err(rnode, "a rule with stop: true needs route_to")
        if not ({"route_to", "cc", "tags"} & fields.keys()):
            self.err(rnode, "rule has no effect: give it route_to, cc or tags")
        if rid is None or cond is None or len(self.errors) != n_errors:
            return None
        return Rule(rid, _line(rnode), cond, route_to, tuple(cc), tuple(tags), stop, priority, desc)

    # ------------------------------------------------------------- tests

    def tests(self, node: Node, agencies: dict[str, Agency], rule_ids: set[str]) -> list[RuleTest]:
        if not isinstance(node, SequenceNode):
            self.err(node, "tests must be a list")
            return []
        out: list[RuleTest] = []
        for n, tnode in enumerate(node.value, 1):
            self.ctx = f"test #{n}: "
            items = self.items(tnode, "a test")
            if items is None:
                continue
            fields = {k: v for k, _kn, v in items}
            name = self.string(fields["name"], "test name") if "name" in fields else None
            if name:
                self.ctx = f"test '{name}': "
            elif "name" not in fields:
                self.err(tnode, "test without 'name'")
            before = len(self.errors)
            self.check_keys(items, TEST_KEYS, "test")
            sub: Submission | None = None
            if "input" not in fields:
                self.err(tnode, "test without 'input'")
            else:
                inp = fields["input"]
                if not isinstance(inp, MappingNode):
                    self.err(inp, "input must be a mapping")
                else:
                    data = self.plain(inp)
                    assert isinstance(data, dict)
                    try:
                        sub = Submission.from_mapping(data)
                    except ValueError as e:
                        self.err(inp, f"bad input: {e}")
            expect: dict[str, Any] = {}
            if "expect" not in fields:
                self.err(tnode, "test without 'expect'")
            else:
                expect = self.expect(fields["expect"], agencies, rule_ids)
            if name and sub is not None and expect and len(self.errors) == before:
                out.append(RuleTest(name, _line(tnode), sub, expect))
            self.ctx = ""
        return out

    def expect(self, node: Node, agencies: dict[str, Agency], rule_ids: set[str]) -> dict[str, Any]:
        items = self.items(node, "expect")
        if items is None:
            return {}
        if not items:
            self.err(node, "expect is empty")
        out: dict[str, Any] = {}
        for key, knode, value in items:
            if key not in EXPECT_KEYS:
                self.err(knode, f"unknown expect key '{key}'{_suggest(key, EXPECT_KEYS)}")
                continue
            if key == "route_to":
                a = self.string(value, "route_to")
                if a is not None and self.agency_ref(a, value, agencies, "expect route_to"):
                    out[key] = a
            elif key == "decided_by":
                if isinstance(value, ScalarNode) and value.tag == _NULL:
                    out[key] = None
                    continue
                r = self.string(value, "decided_by")
                if r is not None:
                    if r not in rule_ids:
                        self.err(value, f"unknown rule '{r}'{_suggest(r, sorted(rule_ids))}")
                    out[key] = r
            else:
                if not isinstance(value, SequenceNode):
                    self.err(value, f"expect {key} must be a list (use [] for none)")
                    continue
                vals: list[str] = []
                for item in value.value:
                    s = self.string(item, f"{key} item")
                    if s is None:
                        continue
                    if key == "cc":
                        self.agency_ref(s, item, agencies, "expect cc")
                    elif key == "matched_rules" and s not in rule_ids:
                        self.err(item, f"unknown rule '{s}'{_suggest(s, sorted(rule_ids))}")
                    vals.append(s)
                out[key] = vals
        return out


def load_rules(text: str | bytes, filename: str = "routing_rules.yaml") -> RuleSet:
    """Parse and validate a rules file; raises RulesError listing every problem."""
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    sha = hashlib.sha256(raw).hexdigest()
    parser = _Parser(filename)
    if isinstance(text, bytes):
        try:
            decoded = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise RulesError([RuleError(filename, line, f"not valid UTF-8: {e.reason}")]) from None
    else:
        decoded = text
    agencies, default, rules, tests = parser.document(decoded)
    if parser.errors:
        raise RulesError(sorted(parser.errors, key=lambda e: e.line))
    return RuleSet(
        agencies=agencies,
        default_agency=default,
        rules=rules,
        tests=tests,
        sha256=sha,
        source_name=filename,
    )


def load_rules_file(path: str | os.PathLike[str]) -> RuleSet:
    """Load a rules file from disk; an unreadable file is a RulesError on line 0."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            data = fh.read()
    except OSError as e:
        why = f"cannot read rules file: {e.strerror or e}"
        raise RulesError([RuleError(name, 0, why)]) from None
    return load_rules(data, filename=name)
