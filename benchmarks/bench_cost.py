"""The simulator's cost per request on the benchmark scenario, against an earlier commit, in two measures.

    python benchmarks/bench_cost.py --ref 2b20bb8^              # instructions a request, both trees
    python benchmarks/bench_cost.py --ref 2b20bb8^ --pairs 6    # and in-process wall rates, alternated

1. Instructions a request: callgrind's count for a run of `--small` and of `--large` requests, the
   difference over the difference in requests (start-up and imports cancel out). Deterministic to a few
   hundred instructions once numpy's OpenBLAS threads are held to one: idle, they spin under valgrind and
   add millions of instructions at random. Needs valgrind.
2. With `--pairs N`: N alternated in-process runs of each tree (`pipeline.run`, `--wall-requests`
   requests), simulated requests per wall second of the event loop, and the ratio of the medians. Wall
   time on a shared machine moves by tens of percent between runs; alternating and taking medians is
   what makes the ratio worth reading.

The earlier tree is checked out with `git worktree` into a temporary folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "scenarios/bench/amp-closed-loop.yaml"
RUN = ("import sys; from vmsim import pipeline; "
       f"pipeline.run({SCENARIO!r}, [f'workloads.closed.requests={{sys.argv[1]}}'])")
RATE = ("import sys; from vmsim import pipeline; "
        f"ran = pipeline.run({SCENARIO!r}, [f'workloads.closed.requests={{sys.argv[1]}}']); "
        "print(int(sys.argv[1]) / ran.wall_seconds)")


def _environment(tree: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")


def instructions(tree: Path, requests: int) -> int:
    """callgrind's instruction count of one run of `requests` requests in `tree`."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", RUN,
               str(requests)]
    if shutil.which("setarch"):  # the same addresses every run
        command = ["setarch", os.uname().machine, "-R", *command]
    done = subprocess.run(command, cwd=tree, env=_environment(tree), capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or found is None:
        raise SystemExit(f"callgrind run in {tree} failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_request(tree: Path, small: int, large: int) -> float:
    return (instructions(tree, large) - instructions(tree, small)) / (large - small)


def wall_rate(tree: Path, requests: int) -> float:
    done = subprocess.run([sys.executable, "-c", RATE, str(requests)], cwd=tree, env=_environment(tree),
                          capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="an earlier commit to compare with (e.g. 2b20bb8^)")
    parser.add_argument("--small", type=int, default=1_000, help="requests of the smaller callgrind run")
    parser.add_argument("--large", type=int, default=5_000, help="requests of the larger callgrind run")
    parser.add_argument("--pairs", type=int, default=0, help="alternated in-process wall-rate pairs (0: none)")
    parser.add_argument("--wall-requests", type=int, default=100_000, help="requests of each wall-rate run")
    args = parser.parse_args()
    if args.large <= args.small:
        parser.error("--large must be more requests than --small")
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (the instruction counts need it)")
    with tempfile.TemporaryDirectory() as scratch:
        trees = {"this tree": ROOT}
        if args.ref:
            earlier = Path(scratch, "ref")
            subprocess.run(["git", "worktree", "add", "--detach", "-f", str(earlier), args.ref], cwd=ROOT,
                           check=True, capture_output=True)
            trees[args.ref] = earlier
        try:
            counts = {name: per_request(tree, args.small, args.large) for name, tree in trees.items()}
            for name, count in counts.items():
                print(f"{name:>12}: {count:,.0f} instructions a request")
            if args.ref:
                print(f"speed against {args.ref}: {counts[args.ref] / counts['this tree']:.3f}x (instructions)")
            if args.pairs:
                rates: dict[str, list[float]] = {name: [] for name in trees}
                for _ in range(args.pairs):
                    for name, tree in trees.items():
                        rates[name].append(wall_rate(tree, args.wall_requests))
                for name, measured in rates.items():
                    print(f"{name:>12}: median {statistics.median(measured):,.0f} requests/s of "
                          f"{', '.join(f'{rate:,.0f}' for rate in measured)}")
                if args.ref:
                    ratio = statistics.median(rates["this tree"]) / statistics.median(rates[args.ref])
                    print(f"speed against {args.ref}: {ratio:.3f}x (wall, medians of {args.pairs} alternated runs)")
        finally:
            if args.ref:
                subprocess.run(["git", "worktree", "remove", "--force", str(trees[args.ref])], cwd=ROOT,
                               check=False, capture_output=True)


if __name__ == "__main__":
    main()
