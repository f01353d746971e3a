"""`sweep`, the entry point: plan the runs, skip those already recorded, run the rest on an executor with a
progress bar, record each as it finishes, and write the outputs from all the records.

Killing a sweep loses at most the runs in flight; the same call again resumes it (see `vmsim.sweeps.records`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from vmsim.files import DEFAULT_RESULTS_ROOT
from vmsim.sweeps.executors import choose_executor
from vmsim.sweeps.records import SweepFolder
from vmsim.sweeps.report import write_outputs
from vmsim.sweeps.spec import Sweep, load_sweep
from vmsim.sweeps.tables import points_frame


def sweep(source: str | Path | Mapping | Sweep, *, out: str | Path | None = None, executor: str = "process",
          workers: int | None = None, scheduler: str | None = None, progress: bool | None = None,
          plots: bool = True, write: bool = True, fresh: bool = False) -> pd.DataFrame:
    """Run a sweep and return `points.parquet` as a DataFrame (one row per point and replication).

    source:    a sweep file, the same as a mapping (its scenario path taken from the working directory),
               or a `Sweep` from `load_sweep`.
    out:       the sweep folder (default results/<sweep name>/); finished runs found there are not redone.
    executor:  "inline" (this process), "process" (local pool, the default) or "dask".
    workers:   pool or local Dask cluster size (default: one per core).
    scheduler: address of a running Dask scheduler (tcp://host:port) instead of a local cluster.
    progress:  show a progress bar with ETA on stderr (default: when stderr is a terminal).
    plots:     draw latency, throughput and utilisation against offered load.
    write:     False keeps everything in memory: nothing written, nothing resumed.
    fresh:     redo every run, even those already in the folder (after changing the simulator itself).

    Every user error (sweep file, base scenario, an override of any point, executor) raises a
    `VmsimError` before anything runs. `summary_table(points, metrics)` gives means and intervals.
    """
    from tqdm import tqdm

    plan = source if isinstance(source, Sweep) else load_sweep(source)
    run_all = choose_executor(executor, workers, scheduler)
    folder = SweepFolder(Path(out) if out is not None else DEFAULT_RESULTS_ROOT / plan.name) if write else None
    records = folder.finished(plan.tasks) if folder and not fresh else {}
    todo = [task for task in plan.tasks if (task.point, task.replication) not in records]
    failed = 0
    results = run_all(todo) if todo else iter(())
    if folder is not None:
        folder.open(plan)
    with tqdm(total=len(plan.tasks), initial=len(records), desc=plan.name, unit="run", file=sys.stderr,
              disable=None if progress is None else not progress, smoothing=0.1) as bar:
        for record in results:
            if folder is not None:
                folder.save(record)
            records[record["point"], record["replication"]] = record
            failed += record["status"] != "ok"
            bar.update(1)
            if failed:
                bar.set_postfix(failed=failed)
    points = points_frame(plan, records.values())
    if folder is not None:
        write_outputs(folder, plan, points, plots)
    return points
