"""The plots of a sweep: latency percentiles, throughput with its saturation knee, and per-resource
utilisation, each against offered load (or the first parameter that varies when no open-loop
workload sets a load), one line per series, error bars the 95% confidence intervals.

Like `vmsim.analysis.plots.save_plots`, files are drawn on bare `Figure` objects so writing them never
touches the user's pyplot backend; the functions also draw into any given `Axes` for notebooks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vmsim.analysis.plots import axes_or_new, time_unit
from vmsim.files import write_file_atomically
from vmsim.sweeps.tables import Axes, knee, summary_table

LATENCY_LINES = {"latency_p50_ns": ("p50", ":"), "latency_p99_ns": ("p99", "-"), "latency_p999_ns": ("p99.9", "--")}
RESOURCE_LIMIT = 6  # the busiest resources only: a legend of 40 queues helps nobody
SERIES_STYLES = ["-", "--", ":", "-."]


def _load_scale(values) -> tuple[float, str]:
    top = np.nanmax(np.asarray(values, dtype=float)) if len(values) else 0.0
    return (1e6, "M") if top >= 1e6 else (1e3, "k") if top >= 1e3 else (1.0, "")


def _x(rows, axes, scale: float):
    return rows[axes.x].to_numpy(dtype=float) / scale if axes.x == "offered_rps" else rows[axes.x].astype(str)


def _x_label(axes, prefix: str) -> str:
    return f"offered load ({prefix}requests/s)" if axes.x == "offered_rps" else axes.x_label


def _bars(rows, metric: str, scale: float):
    mean = rows[f"{metric}_mean"].to_numpy(dtype=float)
    low = np.nan_to_num(mean - rows[f"{metric}_low"].to_numpy(dtype=float))
    high = np.nan_to_num(rows[f"{metric}_high"].to_numpy(dtype=float) - mean)
    return mean / scale, [low / scale, high / scale]


def latency_vs_load(summary, axes, ax=None, target=None):
    """p50, p99 and p99.9 latency against load, per series; the target drawn when it is a latency."""
    ax = axes_or_new(ax)
    x_scale, prefix = _load_scale(summary["offered_rps"]) if axes.x == "offered_rps" else (1.0, "")
    top = np.nanmax(summary[[f"{m}_mean" for m in LATENCY_LINES]].to_numpy(dtype=float), initial=0.0)
    scale, unit = time_unit(top)
    for index, (label, rows) in enumerate(axes.groups(summary)):
        colour = f"C{index}"
        for metric, (name, style) in LATENCY_LINES.items():
            mean, error = _bars(rows, metric, scale)
            ax.errorbar(_x(rows, axes, x_scale), mean, yerr=error, color=colour, linestyle=style, marker=".",
                        capsize=2, label=f"{name} {label}".strip())
    if target is not None and target.metric.startswith("latency_"):
        ax.axhline(target.at_most / scale, color="red", linewidth=1, alpha=0.6,
                   label=f"target {target.metric.removeprefix('latency_').removesuffix('_ns')}")
    ax.set_yscale("log")
    ax.set_title("Latency percentiles")
    ax.set_xlabel(_x_label(axes, prefix))
    ax.set_ylabel(f"latency ({unit})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return ax


def throughput_vs_load(summary, axes, ax=None):
    """Throughput against offered load with the line where they are equal and each series' knee."""
    ax = axes_or_new(ax)
    x_scale, prefix = _load_scale(summary["offered_rps"]) if axes.x == "offered_rps" else (1.0, "")
    by_load = axes.x == "offered_rps"
    if by_load:
        loads = np.array([0.0, np.nanmax(summary["offered_rps"].to_numpy(dtype=float))]) / x_scale
        ax.plot(loads, loads, color="grey", linewidth=1, linestyle=":", label="throughput = offered")
    for index, (label, rows) in enumerate(axes.groups(summary)):
        mean, error = _bars(rows, "throughput_rps", x_scale)
        ax.errorbar(_x(rows, axes, x_scale), mean, yerr=error, color=f"C{index}", marker=".", capsize=2,
                    label=label or "throughput")
        at = knee(rows) if by_load else None
        if at is not None:
            ax.axvline(at / x_scale, color=f"C{index}", linewidth=1, linestyle="--", alpha=0.7)
            ax.annotate(f"knee {at / x_scale:,.0f}{prefix}", (at / x_scale, 0.02), xycoords=("data", "axes fraction"),
                        rotation=90, fontsize=7, color=f"C{index}")
    ax.set_title("Throughput")
    ax.set_xlabel(_x_label(axes, prefix))
    ax.set_ylabel(f"throughput ({prefix}requests/s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def busiest_resources(points, limit: int = RESOURCE_LIMIT) -> list[str]:
    """The `<component>.utilisation` columns with the highest utilisation anywhere in the sweep."""
    columns = [column for column in points.columns if column.endswith(".utilisation")]
    peaks = points[columns].max().sort_values(ascending=False, kind="stable")
    return list(peaks.index[:limit])


def utilisation_vs_load(summary, axes, resources: list[str], ax=None):
    """Utilisation of the busiest queues and devices against load: the first to reach 100% is the bottleneck."""
    ax = axes_or_new(ax)
    x_scale, prefix = _load_scale(summary["offered_rps"]) if axes.x == "offered_rps" else (1.0, "")
    for series, (label, rows) in enumerate(axes.groups(summary)):
        for index, resource in enumerate(resources):
            mean, error = _bars(rows, resource, 0.01)
            ax.errorbar(_x(rows, axes, x_scale), mean, yerr=error, color=f"C{index}", marker=".", capsize=2,
                        linestyle=SERIES_STYLES[series % len(SERIES_STYLES)],
                        label=f"{resource.removesuffix('.utilisation')} {label}".strip())
    ax.set_title("Utilisation of the busiest resources")
    ax.set_xlabel(_x_label(axes, prefix))
    ax.set_ylabel("utilisation (%)")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def save_sweep_plots(sweep, points, folder: Path) -> list[str]:
    """Write the three plots as PNG into `folder` (each replaced atomically); returns their file names."""
    from matplotlib.figure import Figure

    resources = busiest_resources(points)
    metrics = [*LATENCY_LINES, "throughput_rps", *resources]
    summary = summary_table(points, metrics, sweep.parameters)
    axes = Axes.of(summary, sweep.parameters)
    drawings = {
        "latency_vs_load.png": lambda ax: latency_vs_load(summary, axes, ax, target=sweep.target),
        "throughput_vs_load.png": lambda ax: throughput_vs_load(summary, axes, ax),
        "utilisation_vs_load.png": lambda ax: utilisation_vs_load(summary, axes, resources, ax),
    }
    for file_name, draw in drawings.items():
        figure = Figure(figsize=(7, 4.5), layout="constrained")
        draw(figure.add_subplot())
        write_file_atomically(Path(folder) / file_name, lambda path, figure=figure: figure.savefig(path, dpi=110))
    return list(drawings)
