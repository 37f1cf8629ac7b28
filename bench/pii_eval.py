"""Precision / recall / F1 of intake.core.pii.detect, a plain-regex baseline, and speed.

Usage: python bench/pii_eval.py [--set PATH]... [--rounds N] [--no-speed]

By default three labelled sets are scored: the issue-27 set
``tests/data/pii/labelled.yaml`` (EN + ES, hard negatives, built from templates by
``tests/data/pii/build_set.py``), the hand-written hold-out
``tests/data/pii/holdout.yaml`` (written after tuning, scored as written) and the
older, independent ``tests/data/pii_labelled.yaml``. For each: per kind and micro
precision, recall and F1 of ``detect``, beside a plain-regex baseline (one
regular expression per kind, no validation, no context) measured in the same run.

An item counts as a true positive for a kind when detect() reports at least
one finding of that kind and the item's ``expect`` lists it; a false positive
when it is reported but not expected; a false negative when expected but not
reported.

Speed: microseconds per KB of text for this tree's ``detect`` and for a baseline's
(``--baseline REF``, default ``8fd16aa``: the detector before issue 27; its
``intake/core/pii`` read with ``git show REF:...`` into a temporary package), in
alternating rounds over the texts of both sets; the median round is printed with the
ratio (the detector must not be more than 20 % slower than the baseline's). Time is this
process's CPU time (``time.process_time``): on a shared machine the other processes
weigh less on it than on wall-clock time. Both the snippets one by one and message
bodies of eight snippets each are timed.
"""

from __future__ import annotations

import argparse
import importlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from intake.core.pii import KINDS, detect  # noqa: E402

NEW_PATH = ROOT / "tests" / "data" / "pii" / "labelled.yaml"
HOLDOUT_PATH = ROOT / "tests" / "data" / "pii" / "holdout.yaml"
DEFAULT_PATH = ROOT / "tests" / "data" / "pii_labelled.yaml"
EVAL_KEY = b"pii-eval-key"
PII_FILES = ("__init__", "at_rest", "detectors", "lexicon", "model", "redact")


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True)
class Item:
    text: str
    expect: frozenset[str]
    lang: str = "en"
    group: str = ""


def load_items(path: Path = DEFAULT_PATH) -> list[Item]:
    data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw: list[dict[str, Any]] = []
    if isinstance(data, dict):
        for section in ("items", "positives", "negatives"):
            raw.extend(data.get(section) or [])
    else:
        raw.extend(data)
    return [Item(str(r["text"]), frozenset(r.get("expect") or []), str(r.get("lang", "en")),
                 str(r.get("group", ""))) for r in raw]


Detector = Callable[[str], Iterable[str]]


def detected_kinds(text: str) -> set[str]:
    return {f.kind for f in detect(text, key=EVAL_KEY)}


def evaluate(items: list[Item], kinds_of: Detector = detected_kinds
             ) -> tuple[dict[str, Counts], list[tuple[Item, set[str]]]]:
    """Per-kind counts and the list of items whose detected kinds differ."""
    counts = {k: Counts() for k in KINDS}
    mistakes: list[tuple[Item, set[str]]] = []
    for item in items:
        found = set(kinds_of(item.text))
        for kind in found | item.expect:
            c = counts.setdefault(kind, Counts())
            if kind in found and kind in item.expect:
                c.tp += 1
            elif kind in found:
                c.fp += 1
            else:
                c.fn += 1
        if found != set(item.expect):
            mistakes.append((item, found))
    return counts, mistakes


def micro(counts: dict[str, Counts]) -> Counts:
    total = Counts()
    for c in counts.values():
        total.tp += c.tp
        total.fp += c.fp
        total.fn += c.fn
    return total


# --- the plain-regex baseline: one expression per kind, no validation, no context ----

BASELINE: dict[str, re.Pattern[str]] = {
    "ssn": re.compile(r"\b[0-9]{3}[- .]?[0-9]{2}[- .]?[0-9]{4}\b"),
    "card": re.compile(r"\b(?:[0-9][ -]?){12,18}[0-9]\b"),
    "aba": re.compile(r"(?i:routing|aba|ruta)\D{0,20}[0-9]{9}\b"),
    "bank_account": re.compile(r"(?i:account|acct|cuenta|iban)\D{0,20}[0-9]{6,17}\b"),
    "email": re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    "phone": re.compile(r"(?:\+1[ -.]?)?\(?\b[0-9]{3}\)?[ -.]?[0-9]{3}[ -.]?[0-9]{4}\b"),
    "birth_date": re.compile(
        r"(?i:born|birth|dob|nacimiento|naci)\D{0,20}[0-9]{1,4}[/-][0-9]{1,2}"),
    "street_address": re.compile(
        r"\b[0-9]{1,6}\s+(?:[A-Z][a-z]+\s+){1,3}(?:St|Street|Ave|Avenue|Rd|Road|Blvd|Dr|Drive"
        r"|Ln|Lane|Ct|Pl|Way)\b|(?i:p\.?o\.?\s*box\s+[0-9]+)"),
    "password": re.compile(r"(?i:password|contraseña)\s*(?:is|es|:)\s*\S+"),
    "maiden_name": re.compile(
        r"(?i:maiden\s+name|apellido\s+de\s+soltera)\s*(?:is|es|:)?\s*[A-Z]\w+"),
    "medical": re.compile(r"(?i:\b(?:hiv|cancer|diabetes|dialysis|diagnosed|medication"
                          r"|pregnant|depression|cáncer|diálisis|embarazada)\b)"),
}


def baseline_kinds(text: str) -> set[str]:
    return {kind for kind, pattern in BASELINE.items() if pattern.search(text)}


def format_table(counts: dict[str, Counts], baseline: dict[str, Counts] | None = None) -> str:
    head = f"{'kind':<16}{'precision':>10}{'recall':>8}{'F1':>7}{'TP':>5}{'FP':>5}{'FN':>5}"
    if baseline is not None:
        head += f"   {'regex P':>8}{'R':>7}{'F1':>7}"
    lines = [head]
    rows = [(k, c) for k, c in counts.items() if c.tp + c.fp + c.fn]
    rows.append(("ALL (micro)", micro(counts)))
    for kind, c in rows:
        line = (f"{kind:<16}{c.precision:>10.3f}{c.recall:>8.3f}{c.f1:>7.3f}"
                f"{c.tp:>5}{c.fp:>5}{c.fn:>5}")
        if baseline is not None:
            b = micro(baseline) if kind == "ALL (micro)" else baseline.get(kind, Counts())
            line += f"   {b.precision:>8.3f}{b.recall:>7.3f}{b.f1:>7.3f}"
        lines.append(line)
    return "\n".join(lines)


# --- speed ----------------------------------------------------------------------------


def load_main_detect(tmp: Path, ref: str) -> Callable[..., Any]:
    """``detect`` of the commit ``ref``, imported from a temporary package."""
    package = tmp / "_pii_main"
    package.mkdir()
    for name in PII_FILES:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{ref}:intake/core/pii/{name}.py"],
            check=True, capture_output=True, text=True).stdout
        (package / f"{name}.py").write_text(source, encoding="utf-8")
    sys.path.insert(0, str(tmp))
    try:
        module = importlib.import_module("_pii_main")
    finally:
        sys.path.remove(str(tmp))
    return module.detect  # type: ignore[no-any-return]


def time_per_kb(fn: Callable[..., Any], texts: list[str]) -> float:
    size_kb = sum(len(t.encode("utf-8")) for t in texts) / 1024
    start = time.process_time()
    for t in texts:
        fn(t, key=EVAL_KEY)
    return (time.process_time() - start) * 1e6 / size_kb


def speed(texts: list[str], rounds: int, ref: str) -> tuple[float, float, float, float]:
    """Median and fastest µs/KB of this tree and of main over alternating rounds:
    (median new, median main, fastest new, fastest main)."""
    with tempfile.TemporaryDirectory() as tmp:
        main_detect = load_main_detect(Path(tmp), ref)
        for fn in (detect, main_detect):  # warm caches and compiled patterns
            time_per_kb(fn, texts)
        new: list[float] = []
        old: list[float] = []
        for i in range(rounds):
            order = ((detect, new), (main_detect, old))
            for fn, out in order if i % 2 == 0 else order[::-1]:
                out.append(time_per_kb(fn, texts))
    return statistics.median(new), statistics.median(old), min(new), min(old)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--set", action="append", type=Path, dest="sets")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--baseline", default="8fd16aa",
                        help="the commit whose detector the speed is compared with")
    parser.add_argument("--mistakes", action="store_true", help="list the items that differ")
    args = parser.parse_args(argv[1:])
    paths = args.sets or [NEW_PATH, HOLDOUT_PATH, DEFAULT_PATH]
    texts: list[str] = []
    for path in paths:
        items = load_items(path)
        texts.extend(i.text for i in items)
        counts, mistakes = evaluate(items)
        base, _ = evaluate(items, baseline_kinds)
        n_pos = sum(1 for i in items if i.expect)
        n_es = sum(1 for i in items if i.lang == "es")
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"\n{len(items)} items ({n_pos} positive, {len(items) - n_pos} negative, "
              f"{n_es} Spanish) from {shown}")
        print(format_table(counts, base))
        if mistakes and args.mistakes:
            print(f"\n{len(mistakes)} item(s) with differences:")
            for item, found in mistakes:
                print(f"  missed={sorted(item.expect - found)} extra={sorted(found - item.expect)}:"
                      f" {item.text!r}")
    if not args.no_speed:
        # The snippets one by one, and as message bodies of eight snippets each (~0.6 KB).
        bodies = ["\n\n".join(texts[i:i + 8]) for i in range(0, len(texts), 8)]
        for label, corpus in (("snippets", texts), ("bodies", bodies)):
            new, old, new_min, old_min = speed(corpus, args.rounds, args.baseline)
            print(f"\nspeed over {len(corpus)} {label}, {args.rounds} alternating rounds"
                  f" (median / fastest):")
            print(f"  this tree {new:9.1f} / {new_min:9.1f} µs/KB\n"
                  f"  {args.baseline[:9]:<9} {old:9.1f} / {old_min:9.1f} µs/KB\n"
                  f"  ratio     {new / old:9.3f} / {new_min / old_min:9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
