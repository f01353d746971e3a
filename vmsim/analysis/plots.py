"""The standard plots of a run: latency CDF, throughput over time, queue occupancy, topology, CPU time.

Each function draws into a given matplotlib `Axes` and returns it; without one it opens a pyplot
figure (inline in Jupyter; matplotlib itself falls back to Agg where there is no display).
`save_plots` draws on bare `Figure` objects, which render through Agg without selecting a
pyplot backend, so writing a result folder never touches the user's backend or opens a window.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vmsim.analysis.stats import LogHistogram, log_bin, time_average, windowed_levels

PLOT_FILES = {
    "latency_cdf.png": "plot_latency_cdf",
    "throughput.png": "plot_throughput",
    "occupancy.png": "plot_occupancy",
    "topology.png": "plot_topology",
    "cpu_time.png": "plot_cpu_time",
}
ACTIVITY_COLOURS = {  # fixed, so an activity keeps its colour in every figure
    "service": "C0", "software": "C1", "copies": "C2", "rings": "C3", "frames": "C4", "notify": "C5", "calls": "C6",
    "setup": "C7",
}
_MAX_LEGEND_ENTRIES = 12

# One colour per method or format in every figure of a notebook: the names a study compares get fixed
# colours (colour-blind-safe Okabe-Ito first), any other name a colour from its text, never its position.
NAMED_COLOURS = {
    "amp-2026": "#0072B2", "spsc-2025": "#E69F00", "spsc-2024": "#009E73",
    "amp": "#0072B2", "ffa": "#D55E00", "xen": "#CC79A7", "ideal": "#56B4E9",
    "doorbell": "#0072B2", "polling": "#D55E00", "in-band": "#009E73", "out-of-band": "#E69F00",
    "masked": "#CC79A7", "unmasked": "#56B4E9",
}
HASHED_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                  "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")


def colour_of(name: str) -> str:
    """The colour of a method, format or series `name`, the same in every figure and every process.

    Known names (queue formats, bus kinds, notification modes) have fixed colours; any other name takes one
    from a checksum of its text (not Python's salted `hash`), so a label keeps its colour whatever else a
    figure draws or in what order."""
    key = str(name).strip().lower()
    if key in NAMED_COLOURS:
        return NAMED_COLOURS[key]
    return HASHED_COLOURS[zlib.crc32(key.encode()) % len(HASHED_COLOURS)]


def axes_or_new(ax):
    """The `Axes` to draw into: the one given, else a new pyplot figure's (inline in Jupyter)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4.5), layout="constrained")[1]


def time_unit(span_ns: float) -> tuple[float, str]:
    """A (divisor, label) that keeps an axis of this span in readable numbers."""
    for label, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if span_ns >= 10 * scale:
            return scale, label
    return 1.0, "ns"


@dataclass
class RequestAggregates:
    """What the request plots draw, a few kilobytes however many requests: per latency group ("all", then each
    bus when there are several) a `LogHistogram` of the requests submitted after warm-up and completed by the
    end; and the completions in each of the throughput plot's time bins (`edges`, None without a run end)."""

    latency: dict[str, LogHistogram]
    completions: np.ndarray | None
    edges: np.ndarray | None


def throughput_bins(rows: int) -> int:
    """The throughput plot's slices for a table of `rows` requests: about 20 completions each, 10 to 100."""
    return int(np.clip(rows // 20, 10, 100))


def request_aggregates(batches, *, rows: int, sim_time_ns: int | None = None, warmup_ns: int = 0,
                       bins: int | None = None) -> RequestAggregates:
    """The `RequestAggregates` of a requests table read a batch at a time (Arrow record batches, DataFrames or
    dicts of arrays with `submit_ns`, `complete_ns`, `latency_ns` and, for a curve per bus, `device`): memory
    bounded by a batch. `rows` is the table's size (it sets the throughput bins when `bins` is None)."""
    pooled, by_bus = LogHistogram(), {}
    end = max(sim_time_ns or 0, 1)
    edges = None if sim_time_ns is None else np.histogram_bin_edges([], bins=bins or throughput_bins(rows),
                                                                      range=(0, end))
    completions = None if edges is None else np.zeros(len(edges) - 1, dtype=np.int64)
    for batch in batches:
        submit, complete, latency = (_numbers(batch, name) for name in ("submit_ns", "complete_ns", "latency_ns"))
        if completions is not None:
            completions += np.histogram(complete, bins=len(completions), range=(0, end))[0]
        keep = submit >= warmup_ns
        if sim_time_ns is not None:
            keep &= complete <= sim_time_ns
        kept = latency[keep]
        kept_bins = log_bin(kept)
        pooled.add(kept, kept_bins)
        if "device" in _names(batch):
            buses, codes = _bus_codes(batch["device"] if not isinstance(batch, pa.RecordBatch)
                                      else batch.column("device"))
            codes = codes[keep]
            for code, bus in enumerate(buses):
                mine = codes == code
                if mine.any():
                    by_bus.setdefault(bus, LogHistogram()).add(kept[mine], kept_bins[mine])
    groups = {bus: by_bus[bus] for bus in sorted(by_bus)} if len(by_bus) > 1 else {}
    return RequestAggregates({"all": pooled, **groups}, completions, edges)


def _names(batch) -> list[str]:
    return batch.schema.names if isinstance(batch, pa.RecordBatch) else list(batch.keys())


def _numbers(batch, name: str) -> np.ndarray:
    column = batch.column(name) if isinstance(batch, pa.RecordBatch) else batch[name]
    if isinstance(column, pa.Array | pa.ChunkedArray):
        return column.to_numpy()
    return np.asarray(column)


def _bus_codes(devices) -> tuple[list[str], np.ndarray]:
    """Each row's bus (the device name up to its first dot) as an index into the returned names, from the
    column's dictionary: a bus name per distinct device, not per row."""
    if isinstance(devices, pa.ChunkedArray):
        devices = devices.combine_chunks()
    if not isinstance(devices, pa.Array):
        devices = pa.array(devices)
    if not pa.types.is_dictionary(devices.type):
        devices = pc.dictionary_encode(devices)
    buses = [str(name).split(".", 1)[0] for name in devices.dictionary.to_pylist()]
    names = sorted(set(buses))
    lookup = np.array([names.index(bus) for bus in buses], dtype=np.int64)
    return names, lookup[devices.indices.to_numpy(zero_copy_only=False)]


def cdf_points(latency) -> tuple[np.ndarray, np.ndarray]:
    """(latency, fraction) pairs of a sample's CDF, one per filled log-spaced bin (`LogHistogram.cdf`): a curve
    from an aggregate, not from every row (a run may hold millions). `latency` is a `LogHistogram` or an array."""
    return (latency if isinstance(latency, LogHistogram) else LogHistogram.of(latency)).cdf()


def latency_cdf(requests, ax=None, warmup_ns: int = 0, sim_time_ns: int | None = None):
    """Empirical CDF of request latency (requests submitted after warm-up, completed by the end), pooled,
    and per bus when there are several (a slow bus hides behind fast ones in the pooled curve).

    `requests` is a `RequestAggregates` (what a `RunResult` gives, read in batches) or a requests table
    (DataFrame), aggregated here the same way."""
    if not isinstance(requests, RequestAggregates):
        requests = request_aggregates([requests], rows=len(requests), sim_time_ns=sim_time_ns, warmup_ns=warmup_ns)
    return latency_cdfs(requests.latency, ax=ax)


def latency_cdfs(samples: dict, ax=None):
    """CDFs of named latency samples on one axis, each in its `colour_of` colour; p50 and p99 of the first
    marked. A sample is a `LogHistogram` or an array of ns (from any table: the logs, a parquet file, a
    sweep), drawn through its histogram either way, so every curve is within a bin's width (1/32) of exact."""
    ax = axes_or_new(ax)
    ax.set_title("Request latency CDF")
    ax.set_ylabel("fraction of requests")
    histograms = {name: sample if isinstance(sample, LogHistogram) else LogHistogram.of(sample)
                  for name, sample in samples.items()}
    filled = {name: histogram for name, histogram in histograms.items() if histogram.total}
    if not filled:
        ax.text(0.5, 0.5, "no requests completed after warm-up", ha="center", transform=ax.transAxes)
        return ax
    low = min(histogram.low for histogram in filled.values())
    high = max(histogram.high for histogram in filled.values())
    scale, unit = time_unit(high)
    for index, (name, histogram) in enumerate(filled.items()):
        values, fractions = histogram.cdf()
        pooled = index == 0 and len(filled) > 1
        ax.step(values / scale, fractions, where="post", label=name, linewidth=2 if pooled else 1.2,
                color="black" if pooled else colour_of(name))
    if low > 0 and high / low > 100:
        ax.set_xscale("log")
    for name, value in next(iter(filled.values())).percentiles({"p50": 50.0, "p99": 99.0}).items():
        ax.axvline(value / scale, color="grey", linestyle=":", linewidth=1)
        ax.annotate(name, (value / scale, 0.02), rotation=90, color="grey", fontsize=8)
    if len(filled) > 1:
        outside_legend(ax, len(filled))
    ax.set_xlabel(f"latency ({unit})")
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    return ax


def throughput(requests, ax=None, *, sim_time_ns: int, warmup_ns: int = 0, bins: int | None = None):
    """Completions per second in `bins` equal slices of the run; the warm-up is shaded.

    By default about 20 completions per slice (10 to 100 slices), so a short run is not all noise.
    `requests` is a `RequestAggregates` (its slices drawn as counted) or a requests table (DataFrame).
    """
    ax = axes_or_new(ax)
    if not isinstance(requests, RequestAggregates):
        requests = request_aggregates([requests], rows=len(requests), sim_time_ns=sim_time_ns, warmup_ns=warmup_ns,
                                      bins=bins)
    ax.set_title("Throughput over time")
    ax.set_ylabel("completed requests / s")
    scale, unit = time_unit(max(sim_time_ns, 1))
    counts, edges = requests.completions, requests.edges
    width_s = (edges[1] - edges[0]) / 1e9
    ax.stairs(counts / width_s, edges / scale)
    if warmup_ns:
        ax.axvspan(0, warmup_ns / scale, color="grey", alpha=0.15, label="warm-up")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel(f"simulated time ({unit})")
    ax.grid(alpha=0.3)
    return ax


def occupancy(series: dict, ax=None, *, sim_time_ns: int, windows: int = 50):
    """Queue occupancy (frames waiting) as the time-weighted mean per window (a line) and the maximum per window
    (a tick mark per window, same colour), one colour per queue as in every figure (`colour_of`).

    Only the `*.occupancy` series: a run also records others (the bytes a device has shared). Drawn step by
    step a busy queue is a 0/1 barcode; per window it shows load and peaks. With more queues than a legend
    holds, only the busiest (highest mean) are drawn, and the title says so; the legend sits outside the data."""
    ax = axes_or_new(ax)
    ax.set_title("Queue occupancy (mean and maximum per window)")
    ax.set_ylabel("elements in queue")
    steps_of = {name: (np.frombuffer(steps.time, dtype=np.int64), np.frombuffer(steps.level, dtype=np.int64))
                for name, steps in series.items() if name.endswith(".occupancy") and len(steps.level)}
    if not steps_of:
        ax.text(0.5, 0.5, "no queue series recorded", ha="center", transform=ax.transAxes)
        return ax
    means = {name: time_average(times, levels, end_ns=sim_time_ns) for name, (times, levels) in steps_of.items()}
    drawn = sorted(steps_of)
    if len(drawn) > _MAX_LEGEND_ENTRIES:
        drawn = sorted(sorted(steps_of), key=lambda name: -means[name])[:_MAX_LEGEND_ENTRIES]
        ax.set_title(f"Queue occupancy: the {len(drawn)} busiest of {len(steps_of)} queues (mean, max per window)")
    scale, unit = time_unit(max(sim_time_ns, 1))
    for name in drawn:
        edges, window_means, peaks = windowed_levels(*steps_of[name], max(sim_time_ns, 1), windows)
        label = name.removesuffix(".occupancy")
        colour = colour_of(label)
        ax.stairs(window_means, edges / scale, color=colour, linewidth=1.5,
                  label=f"{label} (mean {means[name]:.2f}, max {int(peaks.max())})")
        centres = (edges[:-1] + edges[1:]) / 2 / scale
        ax.plot(centres, peaks, linestyle="none", marker="_", markersize=7, color=colour, alpha=0.7)
    outside_legend(ax, len(drawn))
    ax.set_xlabel(f"simulated time ({unit})")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    return ax


def outside_legend(ax, entries: int) -> None:
    """A legend that never covers the data: inside only for a few series, else beside the axes."""
    if entries <= 3:
        ax.legend(loc="best", fontsize=8)
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)


def cpu_time(table, ax=None):
    """Where the time went: each processor's work per completed request, stacked by activity."""
    ax = axes_or_new(ax)
    if table.empty or table["ns_per_request"].isna().all():
        ax.text(0.5, 0.5, "no modelled processor, or no completed request", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return ax
    per_request = table.pivot_table(index="processor", columns="activity", values="ns_per_request",
                                    aggfunc="sum", fill_value=0)
    scale, unit = (1e3, "us") if per_request.to_numpy().sum(axis=1).max() >= 1e3 else (1, "ns")
    left = np.zeros(len(per_request))
    for activity in [name for name in ACTIVITY_COLOURS if name in per_request.columns] + \
            [name for name in per_request.columns if name not in ACTIVITY_COLOURS]:
        widths = per_request[activity].to_numpy() / scale
        ax.barh(per_request.index, widths, left=left, label=activity, color=ACTIVITY_COLOURS.get(activity))
        left += widths
    ax.set(xlabel=f"work per completed request ({unit})", title="Where the time went")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never over them
    return ax


def topology(graph, ax=None):
    """The topology graph, drawn by `vmsim.topology.draw` with buses in their backend's `colour_of`."""
    from vmsim.topology import draw

    ax = axes_or_new(ax)
    draw(graph, ax, colour_of=colour_of)
    return ax


def save_plots(result, folder: Path, *, drawn: Iterable[str] = ()) -> list[Path]:
    """Render every standard plot of a `RunResult` as PNG into `folder`, but those of `drawn` (file names
    drawn there already); returns the paths."""
    return [_save(getattr(result, method), Path(folder) / file_name)
            for file_name, method in PLOT_FILES.items() if file_name not in drawn]


def save_topology(graph, folder: Path) -> Path:
    """The topology plot alone, as `save_plots` draws it: it needs the scenario's graph only, so it can be
    drawn while the run simulates."""
    return _save(lambda ax: topology(graph, ax=ax), Path(folder) / "topology.png")


def _save(plot, path: Path) -> Path:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    plot(ax=figure.add_subplot())
    figure.savefig(path, dpi=110)
    return path
