"""Scenario-mutation fuzzing at length: thousands of mutants of the shipped scenarios.

    python benchmarks/fuzz_scenarios.py                 # 2,000 mutants, seed 1
    python benchmarks/fuzz_scenarios.py 20000 --seed 7  # longer, another sample

Each mutant (tests/scenario_mutants.py says how they are made) is loaded and, when it loads, run for
5 ms of simulated time. Prints the counts: mutants, ok (ran), user errors (one-line `VmsimError`, exit
status 2), slow (still running after the wall-time cap) and tracebacks, then each traceback with the
mutant that caused it. Exits 1 when there was any traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from scenario_mutants import mutants, outcome  # found through the path set above


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=2000, help="mutants to try (default 2,000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the mutant generator (default 1)")
    arguments = parser.parse_args()
    counts: Counter[str] = Counter()
    failures: list[tuple[str, str]] = []
    slow: list[str] = []
    started = time.perf_counter()
    for index, mutant in enumerate(mutants(arguments.seed, arguments.count), 1):
        result = outcome(mutant)
        counts[result.kind] += 1
        if result.kind == "traceback":
            failures.append((str(mutant), result.detail))
        elif result.kind == "slow":
            slow.append(str(mutant))
        if index % 500 == 0:
            print(f"... {index:,} mutants, {counts['traceback']} tracebacks", file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(f"mutants {arguments.count:,}  ok {counts['ok']:,}  user errors {counts['user error']:,}  "
          f"slow {counts['slow']:,}  tracebacks {counts['traceback']:,}  ({elapsed:.0f} s, seed {arguments.seed})")
    for mutant in slow:
        print(f"\nslow: {mutant}")
    for mutant, detail in failures:
        print(f"\ntraceback: {mutant}\n{detail}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
