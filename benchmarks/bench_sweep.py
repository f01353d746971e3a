"""Sweep executor overhead per run, relative to a run of about one second, measured in one go.

    python benchmarks/bench_sweep.py                 # 8 runs of ~1 s, inline and on a 2-worker pool
    python benchmarks/bench_sweep.py --dask          # and on Dask: a cluster started by the sweep, and
                                                     # one already running (workers warm)

The run: `scenarios/bench/amp-closed-loop.yaml` with its request count scaled so one run takes about
`--seconds` of wall time here (calibrated first). A sweep of `--runs` replications of it is timed end to
end through `vmsim.sweep` (validation, executor, one fsync'd record per run, points.parquet and the
summary; plots off). Each record holds the run's own wall time, measured inside the worker. With W
workers the executor's share is what the W workers' wall time holds beyond the runs themselves:

    overhead per run = (sweep wall time x W - sum of run times) / runs

so idle workers, task shipping, result handling and the bookkeeping all count against the executor.
Target: below 5% of a run on the local process pool.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import vmsim
from vmsim.sweeps import run_point

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "scenarios" / "bench" / "amp-closed-loop.yaml"


def calibrated_requests(seconds: float) -> int:
    """The request count that makes one run of the bench scenario take about `seconds` here."""
    from vmsim.sweeps import load_sweep

    probe = 5_000
    for _ in range(2):
        task = load_sweep(sweep_spec(probe, runs=1)).tasks[0]
        record = run_point(task)
        probe = max(1_000, round(probe * seconds / record["wall_seconds"]))
    return probe


def sweep_spec(requests: int, runs: int) -> dict:
    return {"name": "bench-sweep", "scenario": str(BENCH), "replications": runs,
            "set": {"workloads.closed.requests": requests}, "metrics": ["throughput_rps"]}


def measure(requests: int, runs: int, executor: str, workers: int, scheduler: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        vmsim.sweep(sweep_spec(requests, runs), out=folder, executor=executor, workers=workers,
                    scheduler=scheduler, plots=False, progress=False)
        wall = time.perf_counter() - started
        run_seconds = [json.loads(path.read_text())["wall_seconds"] for path in Path(folder, "points").glob("*.json")]
    used = 1 if executor == "inline" else workers
    mean_run = sum(run_seconds) / len(run_seconds)
    overhead = (wall * used - sum(run_seconds)) / len(run_seconds)
    label = f"{executor} (running)" if scheduler else executor
    return {"executor": label, "workers": used, "wall": wall, "mean_run": mean_run, "overhead": overhead,
            "ratio": overhead / mean_run}


def measure_on_running_dask(requests: int, runs: int, workers: int) -> dict:
    """Dask without the cluster's start-up: workers started and vmsim imported before the clock runs."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.run(lambda: __import__("vmsim.sweeps"))
        return measure(requests, runs, "dask", workers, scheduler=cluster.scheduler_address)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="replications in the sweep (default 8)")
    parser.add_argument("--seconds", type=float, default=1.0, help="wall time of one run to aim for (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="pool and Dask cluster size (default 2)")
    parser.add_argument("--dask", action="store_true", help="also measure a local Dask cluster")
    arguments = parser.parse_args()
    requests = calibrated_requests(arguments.seconds)
    print(f"one run: amp-closed-loop with {requests:,} requests (calibrated to ~{arguments.seconds:g} s)")
    rows = [measure(requests, arguments.runs, executor, arguments.workers)
            for executor in ["inline", "process"] + (["dask"] if arguments.dask else [])]
    if arguments.dask:
        rows.append(measure_on_running_dask(requests, arguments.runs, arguments.workers))
    print(f"{'executor':<15}{'workers':>8}{'runs':>6}{'wall s':>9}{'run s':>8}{'overhead/run':>14}{'ratio':>8}")
    for row in rows:
        print(f"{row['executor']:<15}{row['workers']:>8}{arguments.runs:>6}{row['wall']:>9.2f}{row['mean_run']:>8.3f}"
              f"{row['overhead'] * 1e3:>11.1f} ms{row['ratio']:>8.1%}")


if __name__ == "__main__":
    main()
