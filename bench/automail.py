"""Cost of classifying mail as automatic, beside the parsing it follows, in the same run.

    python bench/automail.py [--rounds 30]

Over the corpus in tests/data/mail/auto/ (automatic and people's messages), alternating
rounds time ``parse_message`` and ``header_map`` + ``classify`` (what ``store_message``
adds per message) and print the median per message of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intake.core.mail import parse_message  # noqa: E402
from intake.core.mail.automatic import AutoConfig, classify, header_map  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "mail" / "auto"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    raws = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))
            + sorted((CORPUS / "human").glob("*.eml"))]
    parsed = [parse_message(r) for r in raws]
    config = AutoConfig()
    names = config.header_names()
    parse_times: list[float] = []
    classify_times: list[float] = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for raw in raws:
            parse_message(raw)
        parse_times.append((time.perf_counter() - start) / len(raws))
        start = time.perf_counter()
        for raw, message in zip(raws, parsed, strict=True):
            classify(message, header_map(raw, names), config)
        classify_times.append((time.perf_counter() - start) / len(raws))
    p, c = statistics.median(parse_times), statistics.median(classify_times)
    print(f"{len(raws)} messages, {args.rounds} rounds; per message: parse_message "
          f"{p * 1e6:.0f} us, header_map + classify {c * 1e6:.0f} us ({c / p * 100:.1f} %)")


if __name__ == "__main__":
    main()
