"""Precision / recall of intake.core.pii.detect over the labelled set.

Usage: python bench/pii_eval.py [path/to/pii_labelled.yaml]

An item counts as a true positive for a kind when detect() reports at least
one finding of that kind and the item's ``expect`` lists it; a false positive
when it is reported but not expected; a false negative when expected but not
reported.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from intake.core.pii import KINDS, detect  # noqa: E402

DEFAULT_PATH = ROOT / "tests" / "data" / "pii_labelled.yaml"
EVAL_KEY = b"pii-eval-key"


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


@dataclass(frozen=True)
class Item:
    text: str
    expect: frozenset[str]


def load_items(path: Path = DEFAULT_PATH) -> list[Item]:
    data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw: list[dict[str, Any]] = []
    if isinstance(data, dict):
        for section in ("positives", "negatives"):
            raw.extend(data.get(section) or [])
    else:
        raw.extend(data)
    return [Item(str(r["text"]), frozenset(r.get("expect") or [])) for r in raw]


def evaluate(items: list[Item]) -> tuple[dict[str, Counts], list[tuple[Item, set[str]]]]:
    """Per-kind counts and the list of items whose detected kinds differ."""
    counts = {k: Counts() for k in KINDS}
    mistakes: list[tuple[Item, set[str]]] = []
    for item in items:
        found = {f.kind for f in detect(item.text, key=EVAL_KEY)}
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


def format_table(counts: dict[str, Counts]) -> str:
    lines = [f"{'kind':<16}{'precision':>10}{'recall':>8}{'TP':>5}{'FP':>5}{'FN':>5}"]
    total = Counts()
    for kind, c in counts.items():
        total.tp += c.tp
        total.fp += c.fp
        total.fn += c.fn
        lines.append(f"{kind:<16}{c.precision:>10.3f}{c.recall:>8.3f}{c.tp:>5}{c.fp:>5}{c.fn:>5}")
    lines.append(
        f"{'ALL':<16}{total.precision:>10.3f}{total.recall:>8.3f}"
        f"{total.tp:>5}{total.fp:>5}{total.fn:>5}"
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT_PATH
    items = load_items(path)
    counts, mistakes = evaluate(items)
    n_pos = sum(1 for i in items if i.expect)
    print(f"{len(items)} items ({n_pos} positive, {len(items) - n_pos} negative) from {path.name}")
    print(format_table(counts))
    if mistakes:
        print(f"\n{len(mistakes)} item(s) with differences:")
        for item, found in mistakes:
            missed = sorted(item.expect - found)
            extra = sorted(found - item.expect)
            print(f"  missed={missed} extra={extra}: {item.text!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
