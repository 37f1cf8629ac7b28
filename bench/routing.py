"""Benchmark of the routing engine: indexed ``decide`` vs the naive baseline.

    python bench/routing.py [--sizes 100,1000,10000] [--subs 300] [--seed 7]

Generates rule sets with a realistic mix (keyword ``contains`` lists drawn
from a vocabulary of a few thousand words, regex ``matches``, ``equals``/``in``
on form fields, nested any/all/not, cc/tag-only rules) and a few hundred
submissions whose text is mostly ordinary words with some vocabulary words,
then prints median and p99 time per decision for both evaluators.
Goal: 1,000 rules <= 200 us median; 10,000 rules <= 3x 1,000 rules.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intake.core.routing import RuleSet, Submission, load_rules  # noqa: E402

TOPICS = ["transportation", "health", "taxes", "environment", "motor-vehicles",
          "employment", "education", "consumer", "parks", "other"]
AGENCIES = ["governor", "dot", "health", "revenue", "dep", "dmv", "labor", "education",
            "consumer", "parks"]
FILLER = (
    "the a an and or but if then i my we our you your it is was were be been have has had "
    "do did not no yes this that there here what when where why how please thank thanks "
    "help need want would could should can will about after before again all also am any "
    "because day days week month year time people person family home house street city "
    "town county state office call called phone number email letter today yesterday still "
    "since last next new old good bad very much many more most some other one two three "
    "four five hello dear sir madam regards sincerely problem issue question information "
    "tried times told said nobody anyone someone wait waiting weeks months response"
).split()
SPANISH = ["licencia", "impuestos", "desempleo", "señal", "carretera", "baches", "escuela",
           "estafa", "contaminación", "reembolso", "semáforo", "acampar"]


def vocabulary(rnd: random.Random, size: int = 4000) -> list[str]:
    syll = ["ka", "lo", "mi", "ter", "van", "dor", "pel", "sun", "rig", "bel", "tox", "gra",
            "fen", "qua", "zul", "mar", "nis", "pod", "ret", "sol", "ush", "vin", "wel", "yor"]
    words: set[str] = set(SPANISH)
    while len(words) < size:
        words.add("".join(rnd.choice(syll) for _ in range(rnd.randint(2, 4))))
    return sorted(words)


def gen_rules(n: int, vocab: list[str], rnd: random.Random) -> str:
    def kws(k: int) -> list[str]:
        out = rnd.sample(vocab, k)
        if rnd.random() < 0.2:  # a two-word phrase
            out[0] = f"{out[0]} {rnd.choice(vocab)}"
        return out

    def contains(field: str = "body") -> dict[str, Any]:
        return {"field": field, "contains": kws(rnd.randint(2, 6))}

    rules: list[dict[str, Any]] = []
    for i in range(n):
        kind = rnd.random()
        when: dict[str, Any]
        if kind < 0.45:
            when = contains()
        elif kind < 0.55:
            when = {"any": [contains(), contains("subject")]}
        elif kind < 0.65:
            when = {"all": [contains(), {"field": "topic", "in": rnd.sample(TOPICS, 2)}]}
        elif kind < 0.72:
            w = rnd.choice(vocab)
            when = {"field": "body",
                    "matches": rf"\b{w}\s*(?:no\.?|number|#)\s*(?P<ref>[a-z]{{2}}-?\d{{4,}})"}
        elif kind < 0.76:
            when = {"all": [{"field": "topic", "equals": rnd.choice(TOPICS)},
                            {"field": "zip", "in": [f"{rnd.randint(10000, 99999)}"
                                                    for _ in range(3)]}]}
        elif kind < 0.90:
            when = {"any": [
                {"all": [contains(), {"not": {"field": "sender_domain",
                                              "in": ["spam.example", "test.example"]}}]},
                {"all": [{"channel": "email"}, contains("subject")]},
            ]}
        elif kind < 0.99:
            when = {"all": [contains(), {"not": contains()}]}
        else:  # no trigger set: evaluated for every submission
            when = {"field": "zip", "matches": rf"^{rnd.randint(1, 9)}\d{{4}}$"}
        rule: dict[str, Any] = {"id": f"r{i}", "when": when}
        if rnd.random() < 0.15:  # tag / cc only
            rule["tags"] = [f"tag{rnd.randint(0, 50)}"]
            rule["cc"] = [rnd.choice(AGENCIES)]
        else:
            rule["route_to"] = rnd.choice(AGENCIES)
            rule["stop"] = True
            if rnd.random() < 0.3:
                rule["tags"] = [f"tag{rnd.randint(0, 50)}"]
        rules.append(rule)
    doc = {
        "version": 1,
        "agencies": [{"id": a, "name": a.title(), "email": f"intake@{a}.examplia.gov"}
                     for a in AGENCIES],
        "default_agency": "governor",
        "rules": rules,
    }
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def gen_submissions(k: int, vocab: list[str], rnd: random.Random) -> list[Submission]:
    subs = []
    for _ in range(k):
        words = [rnd.choice(FILLER) for _ in range(rnd.randint(20, 150))]
        for _ in range(rnd.randint(0, 6)):  # a few domain words
            words.insert(rnd.randrange(len(words) + 1), rnd.choice(vocab).capitalize())
        if rnd.random() < 0.1:
            words.append(f"{rnd.choice(vocab)} number ab-{rnd.randint(1000, 99999)}")
        body = " ".join(words) + "."
        subject = " ".join(rnd.choice(FILLER + vocab[:50]) for _ in range(rnd.randint(2, 8)))
        email = rnd.random() < 0.4
        subs.append(Submission(
            channel="email" if email else "web",
            form=None if email else "contact",
            subject=subject,
            body=body,
            sender=f"someone@{rnd.choice(['mail.example', 'spam.example', 'aol.example'])}",
            fields={} if email else {"topic": rnd.choice(TOPICS),
                                     "zip": f"{rnd.randint(10000, 99999)}"},
        ))
    return subs


def measure(fn: Any, subs: list[Submission], rounds: int) -> list[float]:
    for s in subs[:20]:
        fn(s)  # warm up
    samples = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for s in subs:
            t0 = clock()
            fn(s)
            samples.append((clock() - t0) / 1000.0)
    return samples


def p(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--subs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    vocab = vocabulary(rnd)
    subs = gen_submissions(args.subs, vocab, rnd)
    results: dict[int, tuple[float, float, float, float]] = {}
    print(f"{'rules':>6} | {'decide median':>13} {'p99':>9} | {'naive median':>12} {'p99':>9}"
          f" | {'speed-up':>8} | load_rules")
    for n in (int(x) for x in args.sizes.split(",")):
        text = gen_rules(n, vocab, random.Random(args.seed + n))
        t0 = time.perf_counter()
        rs: RuleSet = load_rules(text)
        load_s = time.perf_counter() - t0
        print(f"[{n} rules] loaded in {load_s:.2f}s; measuring decide and decide_naive...",
              file=sys.stderr, flush=True)
        mismatches = sum(rs.decide(s) != rs.decide_naive(s) for s in subs)
        if mismatches:
            print(f"ERROR: {mismatches} decisions differ between decide and decide_naive",
                  file=sys.stderr)
            sys.exit(1)
        fast = measure(rs.decide, subs, 5)
        slow = measure(rs.decide_naive, subs, 1 if n >= 10000 else 3)
        res = (statistics.median(fast), p(fast, 0.99), statistics.median(slow), p(slow, 0.99))
        results[n] = res
        print(f"{n:>6} | {res[0]:>10.1f} us {res[1]:>6.1f} us | {res[2]:>9.1f} us"
              f" {res[3]:>6.1f} us | {res[2] / res[0]:>7.1f}x | {load_s:.2f}s", flush=True)
    if 1000 in results and 10000 in results:
        r = results[10000][0] / results[1000][0]
        rn = results[10000][2] / results[1000][2]
        print(f"ratio 10k/1k median: decide {r:.2f}x (goal <= 3x), decide_naive {rn:.2f}x")
    if 1000 in results:
        ok = "met" if results[1000][0] <= 200 else "NOT met"
        print(f"1k rules decide median {results[1000][0]:.1f} us (goal <= 200 us: {ok})")


if __name__ == "__main__":
    main()
