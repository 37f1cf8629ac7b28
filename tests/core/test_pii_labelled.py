"""The labelled detection set: precision/recall floors and no raw values."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from intake.core.pii import detect

ROOT = Path(__file__).resolve().parents[2]
KEY = b"labelled-test-key"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pii_eval", ROOT / "bench" / "pii_eval.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["pii_eval"] = module
    spec.loader.exec_module(module)
    return module


bench = load_bench()
ITEMS = bench.load_items()
COUNTS, MISTAKES = bench.evaluate(ITEMS)


def test_set_size() -> None:
    positives = [i for i in ITEMS if i.expect]
    negatives = [i for i in ITEMS if not i.expect]
    assert len(positives) >= 60
    assert len(negatives) >= 60


@pytest.mark.parametrize("kind", ["ssn", "card"])
def test_precision(kind: str) -> None:
    assert COUNTS[kind].precision >= 0.95, bench.format_table(COUNTS)


@pytest.mark.parametrize("kind", ["ssn", "card", "email", "phone"])
def test_recall(kind: str) -> None:
    assert COUNTS[kind].tp >= 5
    assert COUNTS[kind].recall >= 0.9, bench.format_table(COUNTS)


def test_every_kind_is_exercised() -> None:
    for kind, c in COUNTS.items():
        assert c.tp + c.fn >= 2, kind


def test_no_finding_carries_the_raw_value() -> None:
    checked = 0
    for item in ITEMS:
        for f in detect(item.text, key=KEY):
            raw = item.text[f.start : f.end]
            compact = re.sub(r"[\s.-]", "", raw)
            shown = repr(f) + repr(f.to_dict()) + str(f.to_dict())
            for v in {raw, compact, raw.lower()}:
                if len(v) >= 3:
                    assert v not in shown, (f, raw)
            assert set(f.to_dict()) == {
                "kind", "start", "end", "detector", "severity", "value_hash",
                "confidence", "evidence",
            }  # fmt: skip
            assert 0 < f.confidence <= 1 and f.evidence
            checked += 1
    assert checked >= 60


def test_bench_prints_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["pii_eval.py", "--no-speed", "--set", str(bench.DEFAULT_PATH)]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "recall" in out and "ssn" in out
