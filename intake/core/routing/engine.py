"""The rule set: ordered rules, the keyword index and the decision procedure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import ahocorasick

from .conditions import Cond, Ctx, Trigger
from .model import Agency, Decision, Submission, TestResult, TraceStep
from .text import is_word_char

__all__ = ["Rule", "RuleSet", "RuleTest"]


@dataclass(eq=False)
class Rule:
    id: str
    line: int
    cond: Cond
    route_to: str | None
    cc: tuple[str, ...]
    tags: tuple[str, ...]
    stop: bool
    priority: int = 0
    description: str = ""


@dataclass(eq=False)
class RuleTest:
    name: str
    line: int
    submission: Submission
    expect: Mapping[str, Any]


@dataclass
class _Index:
    """Aho-Corasick automatons per field plus exact-value and presence maps."""

    automatons: dict[str, Any] = field(default_factory=dict)
    kw_rules: dict[tuple[str, str, bool], tuple[int, ...]] = field(default_factory=dict)
    eq_rules: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict)
    ex_rules: dict[str, tuple[int, ...]] = field(default_factory=dict)
    always: tuple[int, ...] = ()


def _build_index(rules: Sequence[Rule]) -> _Index:
    kw_rules: dict[tuple[str, str, bool], list[int]] = {}
    eq_rules: dict[str, dict[str, list[int]]] = {}
    ex_rules: dict[str, list[int]] = {}
    always: list[int] = []
    words: dict[str, set[str]] = {}
    # Selectivity estimate for choosing among the children of an `all`: an
    # exact value of a field that the rules compare with only a few values
    # (a topic drop-down) fires often; a keyword or a zip code rarely.
    distinct: dict[str, set[str]] = {}
    for rule in rules:
        for a in _all_triggers(rule.cond):
            if a[0] == "eq":
                distinct.setdefault(str(a[1]), set()).add(str(a[2]))

    def cost(t: Trigger) -> float:
        if t[0] == "kw":
            return 0.01
        if t[0] == "eq":
            return 1.0 / max(2, len(distinct.get(str(t[1]), ())))
        return 0.9

    for pos, rule in enumerate(rules):
        for fld, kw, _word in rule.cond.keywords():
            words.setdefault(fld, set()).add(kw)
        trig: frozenset[Trigger] | None = rule.cond.triggers(cost)
        if trig is None:
            always.append(pos)
            continue
        for t in trig:
            if t[0] == "kw":
                key = (str(t[1]), str(t[2]), bool(t[3]))
                kw_rules.setdefault(key, []).append(pos)
                words.setdefault(key[0], set()).add(key[1])
            elif t[0] == "eq":
                eq_rules.setdefault(str(t[1]), {}).setdefault(str(t[2]), []).append(pos)
            else:
                ex_rules.setdefault(str(t[1]), []).append(pos)
    automatons: dict[str, Any] = {}
    for fld, kws in words.items():
        auto = ahocorasick.Automaton()
        for kw in kws:
            # payload: keyword, length, needs boundary before, needs boundary after
            auto.add_word(kw, (kw, len(kw), is_word_char(kw[0]), is_word_char(kw[-1])))
        auto.make_automaton()
        automatons[fld] = auto
    return _Index(
        automatons=automatons,
        kw_rules={k: tuple(v) for k, v in kw_rules.items()},
        eq_rules={f: {v: tuple(p) for v, p in m.items()} for f, m in eq_rules.items()},
        ex_rules={f: tuple(p) for f, p in ex_rules.items()},
        always=tuple(always),
    )


def _all_triggers(cond: Cond) -> Iterable[Trigger]:
    """Every leaf trigger in a condition tree (used for the cost estimate)."""
    children = getattr(cond, "children", None)
    if children is not None:
        for c in children:
            yield from _all_triggers(c)
        return
    child = getattr(cond, "child", None)
    if child is not None:
        yield from _all_triggers(child)
        return
    yield from cond.triggers() or ()


class RuleSet:
    """A loaded, validated rules file.  Build it with ``load_rules``."""

    def __init__(
        self,
        *,
        agencies: Mapping[str, Agency],
        default_agency: str,
        rules: Sequence[Rule],
        tests: Sequence[RuleTest],
        sha256: str,
        source_name: str,
    ) -> None:
        self.agencies: Mapping[str, Agency] = MappingProxyType(dict(agencies))
        self.default_agency = default_agency
        # rules in evaluation order (priority desc, then file order)
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.tests: tuple[RuleTest, ...] = tuple(tests)
        self.sha256 = sha256
        self.source_name = source_name
        self.rule_ids: tuple[str, ...] = tuple(r.id for r in self.rules)
        self._index = _build_index(self.rules)

    def __repr__(self) -> str:
        return f"<RuleSet {self.source_name} rules={len(self.rules)} sha256={self.sha256[:12]}>"

    # ------------------------------------------------------------- deciding

    def decide(self, sub: Submission, *, explain: bool = False) -> Decision:
        """Route ``sub`` using the keyword index.

        With ``explain=True`` every rule is evaluated and the trace has one
        step per rule (including why it did not match); the decision is the
        same.  Otherwise the trace lists only the matched rules.
        """
        if explain:
            return self._run(Ctx(sub), range(len(self.rules)), True)
        ctx = Ctx(sub)
        return self._run(ctx, self._candidates(ctx), False)

    def decide_naive(self, sub: Submission, *, explain: bool = False) -> Decision:
        """Baseline: evaluate every rule's condition tree in turn, no index."""
        return self._run(Ctx(sub), range(len(self.rules)), explain)

    def _candidates(self, ctx: Ctx) -> list[int]:
        idx = self._index
        cand: set[int] = set(idx.always)
        hits: dict[str, tuple[set[str], set[str]]] = {}
        kw_rules = idx.kw_rules
        for fld, auto in idx.automatons.items():
            values = ctx.norm(fld)
            if not values:
                continue
            whole: set[str] = set()
            subs: set[str] = set()
            for text in values:
                n = len(text)
                for end, (kw, length, wb_start, wb_end) in auto.iter(text):
                    if kw not in subs:
                        subs.add(kw)
                        r = kw_rules.get((fld, kw, False))
                        if r:
                            cand.update(r)
                    if kw in whole:
                        continue
                    start = end - length + 1
                    if wb_start and start > 0:
                        ch = text[start - 1]
                        if ch.isalnum() or ch == "_":
                            continue
                    if wb_end and end + 1 < n:
                        ch = text[end + 1]
                        if ch.isalnum() or ch == "_":
                            continue
                    whole.add(kw)
                    r = kw_rules.get((fld, kw, True))
                    if r:
                        cand.update(r)
            hits[fld] = (whole, subs)
        ctx.hits = hits
        for fld, m in idx.eq_rules.items():
            for v in ctx.norm(fld):
                r = m.get(v)
                if r:
                    cand.update(r)
        for fld, r in idx.ex_rules.items():
            if ctx.norm(fld):
                cand.update(r)
        return sorted(cand)

    def _run(self, ctx: Ctx, order: Iterable[int], explain: bool) -> Decision:
        matched, steps, stop_rule = self._match(ctx, order, explain)
        decider, route_to, route_reason = self._route(matched, stop_rule)
        cc: list[str] = []
        tags: list[str] = []
        captures: dict[str, Mapping[str, str]] = {}
        reasons: dict[str, str] = {}
        ctx.hits = None  # explanations use the plain evaluator
        for rule in matched:
            for a in rule.cc:
                if a != route_to and a not in cc:
                    cc.append(a)
            for t in rule.tags:
                if t not in tags:
                    tags.append(t)
            caps: dict[str, str] = {}
            _ok, why = rule.cond.explain(ctx, caps)
            reasons[rule.id] = why
            if caps:
                captures[rule.id] = MappingProxyType(caps)
        if explain:
            steps = [
                TraceStep(s.rule_id, True, reasons[s.rule_id]) if s.matched else s for s in steps
            ]
        else:
            steps = [TraceStep(r.id, True, reasons[r.id]) for r in matched]
        return Decision(
            route_to=route_to,
            cc=tuple(cc),
            tags=tuple(tags),
            matched_rules=tuple(r.id for r in matched),
            decided_by=decider.id if decider is not None else None,
            captures=MappingProxyType(captures),
            trace=tuple(steps),
            rules_sha256=self.sha256,
            route_reason=route_reason,
        )

    def _match(
        self, ctx: Ctx, order: Iterable[int], explain: bool
    ) -> tuple[list[Rule], list[TraceStep], Rule | None]:
        """The rules of ``order`` that match, up to a stop rule (which is returned too).

        With ``explain`` every rule gets a trace step; a matched rule's reason is
        filled in by ``_run``.
        """
        matched: list[Rule] = []
        steps: list[TraceStep] = []
        stop_rule: Rule | None = None
        for pos in order:
            rule = self.rules[pos]
            if explain:
                if stop_rule is not None:
                    why = f"skipped: after stop rule '{stop_rule.id}'"
                    steps.append(TraceStep(rule.id, False, why))
                    continue
                ok, why = rule.cond.explain(ctx, {})
                if not ok:
                    steps.append(TraceStep(rule.id, False, f"no condition matched: {why}"))
                    continue
            elif not rule.cond.test(ctx):
                continue
            matched.append(rule)
            if explain:
                steps.append(TraceStep(rule.id, True, ""))
            if rule.stop:
                stop_rule = rule
                if not explain:
                    break
        return matched, steps, stop_rule

    def _route(
        self, matched: Sequence[Rule], stop_rule: Rule | None
    ) -> tuple[Rule | None, str, str]:
        """The deciding rule (None for the default agency), the agency, and why."""
        decider = stop_rule or next((r for r in matched if r.route_to), None)
        if decider is not None and decider.route_to:
            kind = "stop rule" if decider.stop else "first matching rule with route_to"
            return decider, decider.route_to, f"{kind} '{decider.id}' (line {decider.line})"
        reason = (
            "default agency: no rule matched" if not matched
            else "default agency: no matching rule has route_to"
        )
        return None, self.default_agency, reason

    # ---------------------------------------------------------------- tests

    def run_tests(self) -> list[TestResult]:
        """Run the ``tests:`` embedded in the rules file (indexed and naive)."""
        results: list[TestResult] = []
        for t in self.tests:
            got = self.decide(t.submission)
            naive = self.decide_naive(t.submission)
            problems: list[str] = []
            if got != naive:
                problems.append(
                    f"indexed and naive evaluation disagree: {got.to_dict()} vs {naive.to_dict()}"
                )
            actual: dict[str, object] = {
                "route_to": got.route_to,
                "cc": list(got.cc),
                "tags": list(got.tags),
                "matched_rules": list(got.matched_rules),
                "decided_by": got.decided_by,
            }
            for key, want in t.expect.items():
                have = actual[key]
                if have != want:
                    problems.append(f"expected {key} {want!r}, got {have!r}")
            if problems:
                message = "; ".join(problems) + "\n" + got.explain()
            else:
                message = "ok"
            results.append(TestResult(t.name, t.line, not problems, message))
        return results
