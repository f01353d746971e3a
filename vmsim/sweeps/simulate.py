"""One run of a sweep: a task in, its record out, wherever an executor runs it.

Every (point, replication) is one run of the usual pipeline, in memory (no result folder, plots or
trace); its summary is flattened to one row of metrics. A run that raises is recorded with its error
while the others go on.
"""

from __future__ import annotations

import time

from vmsim.pipeline import run as run_pipeline
from vmsim.summary import summarize
from vmsim.sweeps.records import one_line, run_record
from vmsim.sweeps.spec import LATENCY_STATISTICS, Task, offered_rps


def run_point(task: Task) -> dict:
    """Run one (point, replication) and return its record; a failing run returns its error instead.

    Top-level and free of open resources so process pools and Dask can ship it to a worker.
    """
    started = time.perf_counter()
    try:
        metrics, error = _simulate(task.scenario), None
    except Exception as exc:  # noqa: BLE001 - a point's failure is its result; the sweep goes on
        metrics, error = {}, one_line(exc)
    return run_record(task, metrics, error, time.perf_counter() - started)


def _simulate(scenario_data: dict) -> dict:
    """The `vmsim.run` pipeline in memory (no folder, plots or trace), flattened to metrics."""
    ran = run_pipeline(scenario_data)
    return flat_metrics(summarize(ran.output, wall_seconds=ran.wall_seconds), offered_rps(ran.checked.scenario))


def flat_metrics(summary: dict, offered: float) -> dict[str, float]:
    """A run summary as one flat row: run metrics, then `<component>.<counter>` for every numeric counter, and
    `<bus>.per_request.<cost>` for each bus's accounting (bytes, cache lines, doorbells, CPU per request)."""
    latency = summary["latency_ns"]
    metrics = {"offered_rps": offered, "throughput_rps": summary["throughput_rps"],
               "requests_total": summary["requests_total"], "requests_completed": summary["requests_completed"],
               **{f"latency_{statistic}_ns": latency[statistic] for statistic in LATENCY_STATISTICS}}
    counters = dict(summary["other_counters"])
    for bus, entry in summary["buses"].items():
        counters[bus] = {**entry["counters"], "frames": entry["frames"], "bytes": entry["bytes"],
                         "utilisation_max": entry["utilisation_max"]}
    for processor, report in summary.get("processors", {}).items():  # the cores: where capacity runs out
        counters[processor] = {key: value for key, value in report.items() if not isinstance(value, dict)}
        for group in ("queues", "doorbells", "devices"):
            counters.update(entry[group])
    counters["counts"] = summary.get("counts", {}).get("total", {})  # what became of every request
    for bus, entry in summary.get("accounting", {}).get("buses", {}).items():  # what one request costs
        counters[f"{bus}.per_request"] = entry.get("per_request", {})
    for component, counts in sorted(counters.items()):
        for counter, value in counts.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[f"{component}.{counter}"] = value
    return metrics
