"""What a finished sweep leaves behind: points.parquet, summary.csv, the plots and summary.md (the table of
means and intervals, the knee and capacity per series, which series is lowest at each load, the failed
runs), and the report `vmsim sweep` prints.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from vmsim._version import __version__
from vmsim.files import write_file_atomically
from vmsim.sweeps.plots import save_sweep_plots
from vmsim.sweeps.records import SweepFolder
from vmsim.sweeps.spec import Sweep
from vmsim.sweeps.tables import KEPT_UP, Axes, capacity, knee, summary_table
from vmsim.units import format_ns


def format_metric(metric: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if metric.endswith("_ns"):
        return format_ns(value)
    if metric.endswith("_rps"):
        return f"{value / 1e3:,.1f} k/s"
    if "utilisation" in metric:
        return f"{value:.1%}"
    return f"{value:.4g}"


def _with_interval(row, metric: str) -> str:
    mean, high = row[f"{metric}_mean"], row[f"{metric}_high"]
    text = format_metric(metric, mean)
    if isinstance(high, float) and not math.isnan(high):
        text += f" ± {format_metric(metric, high - mean)}"
    return text


def summary_markdown(sweep: Sweep, summary: pd.DataFrame, points: pd.DataFrame, plots: list[str]) -> str:
    """summary.md: the table of means and intervals, the knee and capacity per series, failures, plots."""
    axes = Axes.of(summary, sweep.parameters)
    ok = int((points["status"] == "ok").sum())
    lines = [f"# Sweep `{sweep.name}`", ""]
    if sweep.description:
        lines += [sweep.description, ""]
    crn = ", common random numbers" if sweep.common_random_numbers else ""
    excluded = f" ({sweep.excluded} excluded)" if sweep.excluded else ""
    lines += [(f"Base scenario `{os.path.normpath(sweep.scenario_path)}`; {len(sweep.points)} points{excluded} x "
               f"{sweep.replications} replications = {len(points)} runs, {ok} ok, {len(points) - ok} failed; "
               f"base seed {sweep.base_seed}{crn}; vmsim {__version__}."),
              ("Each cell is the mean over the replications ± the half-width of its 95% confidence interval "
               "(Student t with replications - 1 degrees of freedom)."), ""]
    columns = ["point", *sweep.parameters, "offered", *sweep.metrics, "runs"]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in summary.iterrows():
        cells = [str(row["point"]), *(str(row[key]) for key in sweep.parameters),
                 format_metric("offered_rps", row["offered_rps"]),
                 *(_with_interval(row, metric) for metric in sweep.metrics),
                 f"{row['replications']}" + (f" ({row['failed']} failed)" if row["failed"] else "")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += _per_series(sweep, summary, axes) + _lowest_per_load(sweep, summary, axes)
    failed = points[points["status"] != "ok"]
    if len(failed):
        lines += ["", "## Failed runs", "", "| point | replication | seed | error |", "|---|---|---|---|"]
        lines += [f"| {row.point} | {row.replication} | {row.seed} | {row.error} |" for row in failed.itertuples()]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(name).stem}]({name})" for name in plots]
    return "\n".join(lines) + "\n"


def _per_series(sweep: Sweep, summary: pd.DataFrame, axes: Axes) -> list[str]:
    """Per series: the throughput knee and the capacity at the target, each with the parameters that
    set the load there (a device count reads better than a request rate)."""
    by_load = axes.x == "offered_rps"
    if not by_load and sweep.target is None:
        return []
    load_parameters = [key for key in sweep.parameters
                       if key not in axes.series and summary[key].astype(str).nunique() > 1]
    header = ["series"] + (["throughput knee"] if by_load else [])
    if sweep.target is not None:
        limit = format_metric(sweep.target.metric, sweep.target.at_most)
        header += [f"max {axes.x_label} with mean {sweep.target.metric} <= {limit}", "... with its 95% upper bound"]
    lines = ["", "## Per series", ""]
    if by_load:
        lines += [("Throughput knee: the highest offered load up to which mean throughput stays within "
                   f"{1 - KEPT_UP:.0%} of it or its 95% interval reaches it."), ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, rows in axes.groups(summary):
        cells = [label or "all"]
        if by_load:
            cells.append(_x_text(axes, knee(rows), rows, load_parameters))
        if sweep.target is not None:
            cells += [_x_text(axes, capacity(rows, axes.x, sweep.target, bound), rows, load_parameters)
                      for bound in ("mean", "high")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _x_text(axes: Axes, value, rows: pd.DataFrame | None = None, load_parameters: list[str] = ()) -> str:
    if value is None:
        return "-"
    if axes.x != "offered_rps":
        return str(value)
    text = format_metric("offered_rps", value)
    if rows is not None and load_parameters:
        row = rows[rows[axes.x] == value].iloc[0]
        text += " (" + ", ".join(f"{key}={row[key]}" for key in load_parameters) + ")"
    return text


def _lowest_per_load(sweep: Sweep, summary: pd.DataFrame, axes: Axes) -> list[str]:
    """Where series cross: the target metric of every series at each x, the lowest one named."""
    groups = list(axes.groups(summary))
    if sweep.target is None or len(groups) < 2:
        return []
    metric = sweep.target.metric
    by_x: dict = {}
    for label, rows in groups:
        for _, row in rows.iterrows():
            by_x.setdefault(row[axes.x], {})[label] = row
    labels = [label for label, _ in groups]
    lines = ["", f"## Lowest {metric} at each load", "",
             "| " + " | ".join([axes.x_label, *labels, "lowest"]) + " |", "|" + "---|" * (len(labels) + 2)]
    for x in sorted(by_x, key=lambda value: (isinstance(value, str), value)):
        present = by_x[x]
        best = min(present, key=lambda label: present[label][f"{metric}_mean"])
        cells = [_x_text(axes, x), *(_with_interval(present[label], metric) if label in present else "-"
                                     for label in labels), best]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_outputs(folder: SweepFolder, sweep: Sweep, points: pd.DataFrame, plots: bool) -> None:
    """points.parquet, summary.csv, summary.md and the plots, each replaced atomically."""
    write_file_atomically(folder.folder / "points.parquet", lambda path: points.to_parquet(path, index=False))
    summary = summary_table(points, sweep.metrics, sweep.parameters)
    write_file_atomically(folder.folder / "summary.csv", lambda path: summary.to_csv(path, index=False))
    plotted = []
    if plots and (points["status"] == "ok").any():
        plotted = save_sweep_plots(sweep, points, folder.folder)
    text = summary_markdown(sweep, _for_report(sweep, points), points, plotted)
    write_file_atomically(folder.folder / "summary.md", lambda path: path.write_text(text))


def _for_report(sweep: Sweep, points: pd.DataFrame) -> pd.DataFrame:
    """The summary with the throughput the knee needs besides the chosen metrics."""
    return summary_table(points, [*sweep.metrics, "throughput_rps"], sweep.parameters)


def format_report(sweep: Sweep, points: pd.DataFrame, folder: Path | None) -> str:
    """What `vmsim sweep` prints when done: summary.md without its plots, and where the results are."""
    text = summary_markdown(sweep, _for_report(sweep, points), points, [])
    return text + (f"\nresults    {folder}\n" if folder is not None else "")
