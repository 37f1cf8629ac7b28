"""Compiled condition trees, the evaluation context and trigger sets."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .model import Submission
from .text import fold, is_word_char, norm, original_span

__all__ = [
    "Ctx",
    "Cond",
    "Always",
    "AllOf",
    "AnyOf",
    "Not",
    "Equals",
    "Contains",
    "Affix",
    "Matches",
    "Exists",
    "Trigger",
    "TriggerCost",
    "regex_literals",
]

# A trigger is something that must be present in the submission for a
# condition to possibly hold:
#   ("kw", field, keyword, word)  keyword occurs in field (word: whole word)
#   ("eq", field, value)          field has exactly this (normed) value
#   ("ex", field)                 field is present and non-blank
Trigger = tuple[str, ...] | tuple[str, str, str, bool]
#: Estimated chance that a trigger fires; ``all`` keeps its cheapest child set.
TriggerCost = Callable[[Trigger], float]


def _q(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Ctx:
    """Per-submission lazily folded field values.

    ``word_hits``/``sub_hits`` are filled by the index (Aho-Corasick scan);
    when they are ``None`` for a field, ``contains`` falls back to regular
    expressions (the naive evaluator).
    """

    __slots__ = ("sub", "_norm", "_fold", "hits")

    def __init__(self, sub: Submission) -> None:
        self.sub = sub
        self._norm: dict[str, tuple[str, ...]] = {}
        self._fold: dict[str, tuple[str, ...]] = {}
        # field -> (whole-word hits, substring hits)
        self.hits: dict[str, tuple[set[str], set[str]]] | None = None

    def raw(self, field: str) -> tuple[str, ...]:
        return self.sub.values(field)

    def norm(self, field: str) -> tuple[str, ...]:
        v = self._norm.get(field)
        if v is None:
            v = tuple(x for x in (norm(r) for r in self.sub.values(field)) if x)
            self._norm[field] = v
        return v

    def fold(self, field: str) -> tuple[str, ...]:
        v = self._fold.get(field)
        if v is None:
            v = tuple(fold(r) for r in self.sub.values(field))
            self._fold[field] = v
        return v


def _occurs(text: str, kw: str, before: bool, after: bool) -> bool:
    """Does ``kw`` occur in ``text`` with a non-word character (or the edge)
    before it when ``before`` and after it when ``after``?"""
    start = text.find(kw)
    if start < 0:
        return False
    if not before and not after:
        return True
    n = len(kw)
    last = len(text)
    while start >= 0:
        end = start + n
        if not (before and start > 0 and is_word_char(text[start - 1])) and not (
            after and end < last and is_word_char(text[end])
        ):
            return True
        start = text.find(kw, start + 1)
    return False


class Cond:
    line: int = 0

    def test(self, ctx: Ctx) -> bool:
        raise NotImplementedError

    def explain(self, ctx: Ctx, caps: dict[str, str]) -> tuple[bool, str]:
        """Evaluate with a human-readable reason; fills ``caps`` from regexes."""
        raise NotImplementedError

    def triggers(self, cost: TriggerCost | None = None) -> frozenset[Trigger] | None:
        """A set of triggers at least one of which is present whenever this holds."""
        return None

    def keywords(self) -> Iterable[tuple[str, str, bool]]:
        """(field, keyword, word) pairs the index must scan for."""
        return ()

    def unconditional(self) -> bool:
        return False


class Always(Cond):
    def test(self, ctx: Ctx) -> bool:
        return True

    def explain(self, ctx: Ctx, caps: dict[str, str]) -> tuple[bool, str]:
        return True, "unconditional"

    def unconditional(self) -> bool:
        return True


@dataclass(eq=False)
class AllOf(Cond):
    children: tuple[Cond, ...]
    line: int = 0

    def test(self, ctx: Ctx) -> bool:
        for c in self.children:
            if not c.test(ctx):
                return False
        return True

    def explain(self, ctx: Ctx, caps: dict[str, str]) -> tuple[bool, str]:
        reasons = []
        local: dict[str, str] = {}
        for c in self.children:
            ok, why = c.explain(ctx, local)
            if not ok:
                return False, why
            reasons.append(why)
        for k, v in local.items():
            caps.setdefault(k, v)
        joined = " and ".join(reasons)
        return True, joined if len(reasons) < 2 else f"({joined})"

    def triggers(self, cost: TriggerCost | None = None) -> frozenset[Trigger] | None:
        best: frozenset[Trigger] | None = None
        best_score = 0.0
        for c in self.children:
            t = c.triggers(cost)
            if t is None:
                continue
            score = float(len(t)) if cost is None else sum(cost(x) for x in t)
            if best is None or score < best_score:
                best, best_score = t, score
        return best

    def keywords(self) -> Iterable[tuple[str, str, bool]]:
        for c in self.children:
            yield from c.keywords()


@dataclass(eq=False)
class AnyOf(Cond):
    children: tuple[Cond, ...]
    line: int = 0

    def test(self, ctx: Ctx) -> bool:
        for c in self.children:
            if c.test(ctx):
                return True
        return False

    def explain(self, ctx: Ctx, caps: dict[str, str]) -> tuple[bool, str]:
        reasons = []
        for c in self.children:
            ok, why = c.explain(ctx, caps)
            if ok:
                return True, why
            reasons.append(why)
        return False, "none of: " + "; ".join(reasons)

    def triggers(self, cost: TriggerCost | None = None) -> frozenset[Trigger] | None:
        out: set[Trigger] = set()
        for c in self.children:
            t = c.triggers(cost)
            if t is None:
                return None
            out |= t
        return frozenset(out)

    def keywords(self) -> Iterable[tuple[str, str, bool]]:
        for c in self.children:
            yield from c.keywords()


@dataclass(eq=False)
class Not(Cond):
    child: Cond
    line: int = 0

    def test(self, ctx: Ctx) -> bool:
        return not self.child.test(ctx)

    def explain(self, ctx: Ctx, caps: dict[str, str]) -> tuple[bool, str]:
        ok, why = self.child.explain(ctx, {})  # captures under `not` are dropped
        return (not ok), (why if not ok else f"not ({why})")

    def keywords(self) -> Iterable[tuple[str, str, bool]]:
        return self.child.keywords()


# ---------------------------------------------------------------- leaves


@dataclass(eq=False)
class Equals(Cond):
    """``equals`` / ``in``: some value of the field equals one of ``values``."""

    field: str
    values: frozenset[str]
    shown: tuple[str, ...]
    op: str = "equals"
    line: int = 0

    def test(self, ctx: Ctx) -> bool:
        for v in ctx.norm(self.field):
            if v in self.values:
                return True
        return False

    def explain(self, ctx: Ctx, caps: dict[str, str]) -> tuple[bool, str]:
        vals = ctx.norm(self.field)
        for v in vals:
            if v in self.values:
                if self.op == "in":
                    return True, f"{self.field} is '{v}' (in [{_q(self.shown)}])"
                return True, f"{self.field} equals '{self.shown[0]}'"
        if not vals:
            return False, f"{self.field} is absent"
        if self.op == "in":
            return False, f"{self.field} is not in [{_q(self.shown)}]"
        return False, f"{self.field} does not equal '{self.shown[0]}'"

    def triggers(self, cost: TriggerCost | None = None) -> frozenset[Trigger] | None:
        return frozenset(("eq", self.field, v) for v in self.values)


@dataclass(eq=False)
class Contains(Cond):
    """Any value of the field contains any keyword (whole word unless ``word`` is false)."""

    field: str
    words: tuple[str, ...]  # normed keywords
    shown: dict[str, str]  # normed -> as written
    word: bool = True
    line: int = 0

    def __post_init__(self) -> None:
        # (keyword, needs a boundary before, needs a boundary after)
        self._plan = tuple(
            (kw, self.word and is_word_char(kw[0]), self.word and is_word_char(kw[-1]))
            for kw in self.words
        )

    def _first(self, text: str) -> str | None:
        """The first keyword (in rule order) that occurs in ``text``."""
        for kw, before, after in self._plan:
            if _occurs(text, kw, before, after):
                return kw
        return None

    def test(self, ctx: Ctx) -> bool:
        hits = ctx.hits
        if hits is not None:
            found = hits.get(self.field)
            if found is None:
                return False
            s = found[0] if self.word else found[1]
            if not s:
                return False
            for kw in self.words:
                if kw in s:
                    return True
            return False
        for v in ctx.norm(self.field):
            if self._first(v) is not None:
                return True
        return False

    def explain(self, ctx: Ctx, caps: dict[str, str]) -> tuple[bool, str]:
        for v in ctx.norm(self.field):
            kw = self._first(v)
            if kw is not None:
                return True, f"{self.field} contains '{self.shown.get(kw, kw)}'"
        what = "the word" if self.word else "the text"
        if len(self.words) > 1:
            what = "any of the words" if self.word else "any of"
        listed = _q(self.shown[k] for k in self.words)
        return False, f"{self.field} does not contain {what} {listed}"

    def triggers(self, cost: TriggerCost | None = None) -> frozenset[Trigger] | None:
        return frozenset(("kw", self.field, kw, self.word) for kw in self.words)

    def keywords(self) -> Iterable[tuple[str, str, bool]]:
        return ((self.field, kw, self.word) for kw in self.words)


@dataclass(eq=False)
class Affix(Cond):
    """``starts_with`` (``at_end`` False) or ``ends_with`` (``at_end`` True), any of a list."""

    field: str
    affixes: tuple[str, ...]
    shown: tuple[str, ...]
    at_end: bool = False
    line: int = 0

    def _has(self, value: str, affix: str | tuple[str, ...]) -> bool:
        return value.endswith(affix) if self.at_end else value.startswith(affix)

    def test(self, ctx: Ctx) -> bool:
        return any(self._has(v, self.affixes) for v in ctx.norm(self.field))

    def explain(self, ctx: Ctx, caps: dict[str, str]) -> tuple[bool, str]:
        verb = "ends with" if self.at_end else "starts with"
        for v in ctx.norm(self.field):
            for a, s in zip(self.affixes, self.shown, strict=True):
                if self._has(v, a):
                    return True, f"{self.field} {verb} '{s}'"
        negated = "does not end with" if self.at_end else "does not start with"
        return False, f"{self.field} {negated} {_q(self.shown)}"

    def triggers(self, cost: TriggerCost | None = None) -> frozenset[Trigger] | None:
        return frozenset(("kw", self.field, a, False) for a in self.affixes)

    def keywords(self) -> Iterable[tuple[str, str, bool]]:
        return ((self.field, a, False) for a in self.affixes)


@dataclass(eq=False)
class Matches(Cond):
    """Python regex searched in the folded field value (re.IGNORECASE)."""

    field: str
    source: str
    regex: re.Pattern[str]
    literals: frozenset[str] | None
    line: int = 0

    def test(self, ctx: Ctx) -> bool:
        search = self.regex.search
        for v in ctx.fold(self.field):
            if search(v):
                return True
        return False

    def explain(self, ctx: Ctx, caps: dict[str, str]) -> tuple[bool, str]:
        raws = ctx.raw(self.field)
        for raw, v in zip(raws, ctx.fold(self.field), strict=True):
            m = self.regex.search(v)
            if m:
                for name in self.regex.groupindex:
                    start, end = m.span(name)
                    if start >= 0 and name not in caps:
                        caps[name] = original_span(raw, v, start, end)
                text = original_span(raw, v, m.start(), m.end())
                return True, f"{self.field} matches '{self.source}' ('{text}')"
        if not raws:
            return False, f"{self.field} is absent"
        return False, f"{self.field} does not match '{self.source}'"

    def triggers(self, cost: TriggerCost | None = None) -> frozenset[Trigger] | None:
        if self.literals is None:
            return None
        return frozenset(("kw", self.field, lit, False) for lit in self.literals)

    def keywords(self) -> Iterable[tuple[str, str, bool]]:
        return ((self.field, lit, False) for lit in self.literals or ())


@dataclass(eq=False)
class Exists(Cond):
    field: str
    want: bool
    line: int = 0

    def test(self, ctx: Ctx) -> bool:
        return bool(ctx.norm(self.field)) is self.want

    def explain(self, ctx: Ctx, caps: dict[str, str]) -> tuple[bool, str]:
        present = bool(ctx.norm(self.field))
        desc = f"{self.field} is present" if present else f"{self.field} is absent"
        return present is self.want, desc

    def triggers(self, cost: TriggerCost | None = None) -> frozenset[Trigger] | None:
        return frozenset({("ex", self.field)}) if self.want else None


# --------------------------------------------------- regex literal extraction

_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")
_ATOMIC: Any = getattr(_c, "ATOMIC_GROUP", object())
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def regex_literals(pattern: str, flags: int = re.IGNORECASE) -> frozenset[str] | None:
    """Literal strings one of which occurs in every text the pattern matches.

    Only runs of ASCII letters/digits outside optional parts are used, and
    they are lower-cased (the pattern runs with IGNORECASE on folded text, in
    which the only characters that match an ASCII letter case-insensitively
    are that letter itself).  None if no such literal can be found.
    """
    try:
        parsed = _parser.parse(pattern, flags)
    except Exception:  # noqa: BLE001 - private parser; no literal is a safe answer
        return None
    return _required(parsed)


def _required(seq: Any) -> frozenset[str] | None:
    options: list[frozenset[str]] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            options.append(frozenset({"".join(run)}))
            run.clear()

    for op, av in seq:
        if op is _c.LITERAL:
            ch = chr(av).lower() if av < 128 else ""
            if ch in _ALNUM and ch:
                run.append(ch)
            else:
                flush()
            continue
        flush()
        if op is _c.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            if not add_flags and not del_flags:
                got = _required(sub)
                if got is not None:
                    options.append(got)
        elif op is _c.BRANCH:
            alts: set[str] = set()
            for alt in av[1]:
                got = _required(alt)
                if got is None:
                    break
                alts |= got
            else:
                if alts:
                    options.append(frozenset(alts))
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
            lo, _hi, sub = av
            if lo >= 1:
                got = _required(sub)
                if got is not None:
                    options.append(got)
        elif op is _ATOMIC:
            got = _required(av)
            if got is not None:
                options.append(got)
    flush()
    if not options:
        return None
    # prefer the most selective option: longest shortest literal, then fewest
    return max(options, key=lambda o: (min(len(x) for x in o), -len(o)))
