"""`vmsim compare`: one workload over several bus configurations at several loads, side by side.

A compare file is a sweep file whose `compare:` section takes the place of `parameters:` (see
docs/compare.md): named configurations (queue format, element size, masking, notification, polling: any
`--set` keys) and one load key with its values. Each (configuration, load) is a point of an ordinary sweep,
checked the same way and run on the same executors with the same progress bar. The result is one table, a
row per configuration and load (latency, throughput, the knee, and what one request costs on the compared
bus: bytes, cache lines, doorbells, interrupts, CPU), and one figure, written atomically to a result folder.

Per-request costs come from the run summary's accounting (`summary["accounting"]["buses"][bus]
["per_request"]`); a cost a run does not report is NaN, shown as "-".
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vmsim.analysis.plots import colour_of
from vmsim.errors import VmsimError
from vmsim.files import DEFAULT_RESULTS_ROOT
from vmsim.result_folder import check_destination, write_atomically
from vmsim.sweeps import Sweep, format_metric, load_sweep, sweep
from vmsim.sweeps.tables import summary_table
from vmsim.units import format_ns

COSTS = ("bytes_read", "bytes_written", "cache_lines", "doorbells", "interrupts", "polls", "frames", "cpu_ns")
"""What one request costs on the compared bus, as the run summary's accounting reports it."""
LATENCY = ("latency_p50_ns", "latency_p99_ns")
KEPT_UP = 0.9  # completing less than this share of the requests offered: past the knee
SERVED = ("counts.offered", "counts.completed")
P99_GROWTH = 3.0  # p99 above this multiple of the lowest load's p99: past the knee
TABLE_FILE, REPORT_FILE, FIGURE_FILE, POINTS_FILE = "compare.csv", "compare.md", "compare.png", "points.parquet"


def load_comparison(source: str | Path | Mapping, base_dir: str | Path | None = None) -> Sweep:
    """Read and check a compare file (or the same as a mapping, its scenario taken from `base_dir`)."""
    plan = load_sweep(source, base_dir)
    if plan.configurations is None:
        shown = "the mapping" if isinstance(source, Mapping) else str(source)
        raise VmsimError(f"{shown}: has no compare: section (configurations and loads); "
                         "run a parameter sweep with vmsim sweep")
    return plan


def compare(source: str | Path | Mapping | Sweep, *, base_dir: str | Path | None = None,
            out: str | Path | None = None, executor: str = "process", workers: int | None = None,
            scheduler: str | None = None, progress: bool | None = None, write: bool = True,
            plots: bool = True) -> Comparison:
    """Run every configuration at every load and return the `Comparison`; with `write`, also its result folder
    (default results/<name>/: compare.md, compare.csv, compare.png, points.parquet), replaced atomically.

    The executors and `progress` are those of `vmsim.sweep`. Every user error is raised as a `VmsimError`
    before anything runs.
    """
    plan = source if isinstance(source, Sweep) else load_comparison(source, base_dir)
    folder = Path(out) if out is not None else DEFAULT_RESULTS_ROOT / plan.name
    if write:
        check_destination(folder)
    points = sweep(plan, executor=executor, workers=workers, scheduler=scheduler, progress=progress,
                   plots=False, write=False)
    comparison = Comparison.of(plan, points)
    if write:
        write_atomically(folder, lambda temporary: comparison.fill(temporary, plots))
    return comparison


@dataclass
class Comparison:
    """The runs of a compare file (`points`, one row per run) and the side-by-side `table`."""

    plan: Sweep
    points: pd.DataFrame
    table: pd.DataFrame

    @classmethod
    def of(cls, plan: Sweep, points: pd.DataFrame) -> Comparison:
        return cls(plan, points, comparison_table(plan, points))

    @property
    def configurations(self) -> list[str]:
        return list(dict.fromkeys(self.plan.configurations))

    def markdown(self) -> str:
        return comparison_markdown(self)

    def figure(self, figure=None):
        """The figure of the comparison, drawn into `figure` (a new pyplot one by default, inline in Jupyter)."""
        if figure is None:
            import matplotlib.pyplot as plt

            figure = plt.figure(figsize=(12, 7), layout="constrained")
        return draw_comparison(self, figure)

    def fill(self, folder: Path, plots: bool = True) -> None:
        """Write the result files into `folder` (the temporary folder of an atomic write)."""
        self.points.to_parquet(folder / POINTS_FILE, index=False)
        self.table.to_csv(folder / TABLE_FILE, index=False)
        text = self.markdown()
        if plots and self.table["throughput_rps"].notna().any():
            from matplotlib.figure import Figure

            figure = Figure(figsize=(12, 7), layout="constrained")
            draw_comparison(self, figure)
            figure.savefig(folder / FIGURE_FILE, dpi=110)
            text += f"\n![comparison]({FIGURE_FILE})\n"
        (folder / REPORT_FILE).write_text(text)


def comparison_table(plan: Sweep, points: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration and load: means over the replications of throughput, p50 and p99, the
    configuration's knee, and every per-request cost of the compared bus (`bytes` is read plus written)."""
    costs = [f"{plan.compared_bus}.per_request.{cost}" for cost in COSTS]
    missing = {column: math.nan for column in costs if column not in points}  # not reported: shown as "-"
    missing.update({column: math.nan for column in SERVED if column not in points})
    if missing:
        points = points.copy().assign(**missing)
    summary = summary_table(points, ["throughput_rps", *LATENCY, *SERVED, *costs])
    table = pd.DataFrame({
        "configuration": [plan.configurations[point] for point in summary["point"]],
        "offered_rps": summary["offered_rps"],
        "throughput_rps": summary["throughput_rps_mean"],
        "served": summary["counts.completed_mean"] / summary["counts.offered_mean"],
        **{metric: summary[f"{metric}_mean"] for metric in LATENCY},
        **{cost: summary[f"{column}_mean"] for cost, column in zip(COSTS, costs)},
        "runs": summary["replications"], "failed": summary["failed"]})
    table.insert(table.columns.get_loc("bytes_read"), "bytes", table["bytes_read"] + table["bytes_written"])
    knees = {name: knee(rows) for name, rows in table.groupby("configuration", sort=False)}
    table.insert(table.columns.get_loc("bytes"), "knee_rps", table["configuration"].map(knees))
    order = {name: index for index, name in enumerate(dict.fromkeys(plan.configurations))}
    return table.sort_values(["configuration", "offered_rps"], key=lambda column: column.map(order)
                             if column.name == "configuration" else column, kind="stable").reset_index(drop=True)


def knee(rows: pd.DataFrame) -> float:
    """The first offered load at which a configuration departs: it completes less than `KEPT_UP` (90 %) of
    the requests its workloads offered (`served`, counted over the whole run), or p99 exceeds
    `P99_GROWTH` (3x) the p99 at the lowest load. NaN when it keeps up at every load given (or the loads are
    not open-loop rates). Completions against arrivals, not throughput against the nominal rate: a short
    run at a low rate draws a Poisson count several per cent off its rate while keeping up perfectly. Rows
    without those counts (`served` NaN) fall back to throughput against the offered load."""
    rows = rows.sort_values("offered_rps")
    baseline = rows["latency_p99_ns"].iloc[0] if len(rows) else math.nan
    served = rows["served"] if "served" in rows else pd.Series(math.nan, index=rows.index)
    for offered, throughput, share, p99 in zip(rows["offered_rps"], rows["throughput_rps"], served,
                                               rows["latency_p99_ns"]):
        if math.isnan(offered):
            return math.nan
        kept_up = share >= KEPT_UP if not math.isnan(share) else throughput >= KEPT_UP * offered
        if not kept_up or not p99 <= P99_GROWTH * baseline:
            return float(offered)
    return math.nan


def _count(value: float, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}g}"


def comparison_markdown(comparison: Comparison) -> str:
    """compare.md: what was compared, the knee's definition, the table and the failed runs."""
    plan, table = comparison.plan, comparison.table
    lines = [f"# Compare `{plan.name}`", ""]
    if plan.description:
        lines += [plan.description, ""]
    lines += [(f"Base scenario `{os.path.normpath(plan.scenario_path)}`; {len(comparison.configurations)} configurations x "
               f"{table['offered_rps'].nunique()} loads x {plan.replications} replications; per-request costs "
               f"on bus `{plan.compared_bus}`."),
              (f"Knee: the first load at which a run completes less than {KEPT_UP:.0%} of the requests offered "
               f"or p99 exceeds {P99_GROWTH:g}x its value at the lowest load (`-`: none of the loads). "
               "Served: the share of the requests offered that completed. B/req is bytes read plus written on the "
               "compared bus; CPU/req is processor time on both sides, device service included."), ""]
    header = ["configuration", "offered", "throughput", "served", "p50", "p99", "knee", "B/req", "lines/req", "doorbells/req",
              "interrupts/req", "CPU/req"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples(index=False):
        cells = [row.configuration, format_metric("offered_rps", row.offered_rps),
                 format_metric("throughput_rps", row.throughput_rps),
                 "-" if math.isnan(row.served) else f"{row.served:.1%}", format_metric("latency_p50_ns", row.latency_p50_ns),
                 format_metric("latency_p99_ns", row.latency_p99_ns), format_metric("offered_rps", row.knee_rps),
                 _count(row.bytes, 4), _count(row.cache_lines), _count(row.doorbells), _count(row.interrupts),
                 "-" if math.isnan(row.cpu_ns) else format_ns(row.cpu_ns)]
        lines.append("| " + " | ".join(cells) + (" (failed runs)" if row.failed else "") + " |")
    failed = comparison.points[comparison.points["status"] != "ok"]
    if len(failed):
        lines += ["", "## Failed runs", "", "| configuration | offered | replication | error |", "|---|---|---|---|"]
        lines += [f"| {row.configuration} | {format_metric('offered_rps', plan.offered_rps[row.point])} | "
                  f"{row.replication} | {row.error} |" for row in failed.itertuples()]
    return "\n".join(lines) + "\n"


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
PANELS = (("latency_p99_ns", "p99 latency"), ("throughput_rps", "throughput"), ("bytes", "bytes per request"),
          ("cache_lines", "cache lines per request"), ("doorbells", "doorbells and interrupts per request"),
          ("cpu_ns", "CPU per request"))


def draw_comparison(comparison: Comparison, figure):
    """Six panels: p99 and throughput against load (a line per configuration, the knee marked), and at the
    lowest load the bytes, cache lines, doorbells (solid) and interrupts (hatched), and CPU of one request.
    Each configuration keeps its colour (`vmsim.analysis.plots.colour_of`) here and in any other figure."""
    table = comparison.table
    names = comparison.configurations
    axes = figure.subplots(2, 3).ravel()
    loads = table["offered_rps"].to_numpy(dtype=float)
    scale, prefix = (1e3, "k") if np.nanmax(loads, initial=0) >= 1e3 else (1.0, "")
    for index, name in enumerate(names):
        rows = table[table["configuration"] == name]
        style = {"color": colour_of(name), "marker": MARKERS[index % len(MARKERS)], "label": name,
                 "markerfacecolor": "none"}  # hollow markers: configurations that coincide stay visible
        axes[0].plot(rows["offered_rps"] / scale, rows["latency_p99_ns"] / 1e3, **style)
        axes[1].plot(rows["offered_rps"] / scale, rows["throughput_rps"] / scale, **style)
        colour = style["color"]
        at = rows["knee_rps"].iloc[0]
        if not math.isnan(at):
            for ax in axes[:2]:
                ax.axvline(at / scale, color=colour, linestyle="--", linewidth=1, alpha=0.7)
    top = np.nanmax(loads, initial=0) / scale
    axes[1].plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1, label="throughput = offered")
    axes[0].set_yscale("log")
    for ax, unit in ((axes[0], "p99 latency (us)"), (axes[1], f"throughput ({prefix}requests/s)")):
        ax.set_xlabel(f"offered load ({prefix}requests/s)")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3, which="both")
    lowest = table.sort_values("offered_rps", kind="stable").groupby("configuration", sort=False).first()
    lowest = lowest.reindex(names)
    positions = np.arange(len(names))
    colours = [colour_of(name) for name in names]
    for ax, (column, title) in zip(axes[2:], PANELS[2:]):
        values = lowest[column].to_numpy(dtype=float) / (1e3 if column == "cpu_ns" else 1.0)
        ax.bar(positions, np.nan_to_num(values), color=colours, width=0.7 if column != "doorbells" else 0.35,
               align="center" if column != "doorbells" else "edge")
        if column == "doorbells":
            ax.bar(positions, np.nan_to_num(lowest["interrupts"].to_numpy(dtype=float)), width=-0.35,
                   align="edge", color=colours, hatch="//", alpha=0.6)
        for position, value in zip(positions, values):
            if math.isnan(value):
                ax.annotate("not reported", (position, 0), ha="center", va="bottom", rotation=90, fontsize=7)
        ax.set_xticks(positions, names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("us" if column == "cpu_ns" else "per request")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_title("p99 latency (dashed: knee)", fontsize=9)
    axes[1].set_title("throughput", fontsize=9)
    first = lowest["offered_rps"].dropna()
    if len(first):
        figure.suptitle(f"{comparison.plan.name}: costs at the lowest load ({format_metric('offered_rps', first.min())})",
                        fontsize=10)
    handles, labels = axes[1].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", fontsize=8)
    return figure
