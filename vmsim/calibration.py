"""The calibration suite: published measurements, each reproduced by a scenario, and how far off vmsim is.

A scenario with a `published:` section names a measurement (its source, conditions, the summary metric
that reproduces it and a tolerance) and one point per published value, each with the overrides that put
the scenario in that value's conditions (a message size, a guest count). `calibrate` runs every point and
compares; figures that a parameter was fitted to are told apart from those nothing was fitted to, because
only the second kind tests the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from vmsim.errors import ScenarioError
from vmsim.pipeline import load, simulate
from vmsim.result_folder import check_destination, write_atomically
from vmsim.scenario.overrides import override_arguments
from vmsim.summary import summarize
from vmsim.units import format_ns

DEFAULT_SUITE = Path("scenarios/published")
TABLE_FILE = "calibration.csv"
PARITY_FILE = "parity.png"
COLUMNS = ["scenario", "figure", "point", "metric", "published", "simulated", "error", "tolerance", "within",
           "fitted", "source"]


def suite_files(paths: Iterable[str | Path]) -> list[Path]:
    """The scenario files under `paths` (files or folders, searched recursively), in name order."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(path.rglob("*.yaml"))
        elif path.is_file():
            found.append(path)
        else:
            raise ScenarioError(f"{path}: no such file or folder")
    return found


def calibrate(paths: Iterable[str | Path] = (DEFAULT_SUITE,),
              progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Run every published point of the scenarios under `paths`; one row per point (see `COLUMNS`).

    `error` is simulated / published - 1; `within` says whether its size is inside the figure's tolerance.
    Every file is loaded (and its errors reported) before the first point runs.
    """
    files = suite_files(paths)
    figures = []
    for path in files:
        published = load(path).scenario.published
        if published is None:
            raise ScenarioError(f"{path}: no `published:` section: not a calibration scenario")
        figures.append((path, published, [load(path, override_arguments(point.set)) for point in published.points]))
    rows = []
    for path, published, checked_points in figures:
        for point, checked in zip(published.points, checked_points):
            if progress is not None:
                progress(f"{path.stem} {point.label}")
            ran = simulate(checked)
            summary = summarize(ran.output, wall_seconds=ran.wall_seconds)
            simulated = _metric(summary, published.metric, path) * published.scale
            error = simulated / point.value - 1
            rows.append({
                "scenario": path.stem, "figure": published.figure, "point": point.label, "metric": published.metric,
                "published": point.value, "simulated": simulated, "error": error, "tolerance": published.tolerance,
                "within": bool(abs(error) <= published.tolerance), "fitted": published.fitted,
                "source": published.source,
            })
    return pd.DataFrame(rows, columns=COLUMNS)


def _metric(summary: dict, metric: str, path: Path) -> float:
    value = summary
    for key in metric.split("."):
        if not isinstance(value, dict) or key not in value:
            raise ScenarioError(f"{path}: published.metric: summary.json has no {metric!r}")
        value = value[key]
    if not isinstance(value, int | float) or value is None or not math.isfinite(value):
        raise ScenarioError(f"{path}: published.metric: {metric!r} is {value!r} in this run, not a number")
    return float(value)


def _shown(metric: str, value: float) -> str:
    return format_ns(value) if metric.startswith("latency") else f"{value:,.0f}"


def format_table(table: pd.DataFrame) -> str:
    """The suite as printed: one line per point, figures nothing was fitted to first, then a verdict each."""
    lines = []
    for fitted, title in ((False, "not fitted to (these test the model)"), (True, "fitted to")):
        rows = table[(table["fitted"] != "") == fitted]
        if rows.empty:
            continue
        lines.append(f"{title}:")
        for row in rows.itertuples():
            mark = "ok  " if row.within else "MISS"
            lines.append(f"  {mark} {row.scenario} {row.point}: published {_shown(row.metric, row.published)}, "
                         f"simulated {_shown(row.metric, row.simulated)} ({row.error:+.1%}, "
                         f"tolerance {row.tolerance:.0%})")
        errors = rows["error"].abs()
        lines.append(f"  {int(rows['within'].sum())} of {len(rows)} within tolerance; "
                     f"median |error| {errors.median():.1%}, worst {errors.max():.1%}")
    return "\n".join(lines)


def write(table: pd.DataFrame, folder: str | Path, *, plots: bool = True) -> Path:
    """The table (CSV) and the parity plot, written atomically as a vmsim result folder."""
    folder = Path(folder)
    check_destination(folder)

    def fill(temporary: Path) -> None:
        table.to_csv(temporary / TABLE_FILE, index=False)
        if plots:
            parity_plot(table).savefig(temporary / PARITY_FILE, dpi=120)

    return write_atomically(folder, fill)


def parity_plot(table: pd.DataFrame):
    """Simulated against published on log axes, the diagonal and a band of the widest tolerance; hollow
    markers for the figures something was fitted to."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 6.0), layout="constrained")
    ax = figure.subplots()
    values = pd.concat([table["published"], table["simulated"]])
    low, high = values.min() / 1.5, values.max() * 1.5
    tolerance = table["tolerance"].max() if len(table) else 0.15
    ax.plot([low, high], [low, high], color="0.3", linewidth=1)
    ax.fill_between([low, high], [low * (1 - tolerance), high * (1 - tolerance)],
                    [low * (1 + tolerance), high * (1 + tolerance)], color="0.9", label=f"±{tolerance:.0%}")
    for index, (scenario, rows) in enumerate(table.groupby("scenario", sort=True)):
        fitted = rows["fitted"].iloc[0] != ""
        colour = f"C{index % 10}"
        ax.scatter(rows["published"], rows["simulated"], s=36, label=scenario + (" (fitted)" if fitted else ""),
                   facecolors="none" if fitted else colour, edgecolors=colour)
    unit = " (ns)" if table["metric"].str.startswith("latency").all() else " (each in its metric's unit)"
    ax.set(xscale="log", yscale="log", xlim=(low, high), ylim=(low, high), xlabel="published" + unit,
           ylabel="simulated" + unit, title="vmsim against published measurements")
    ax.legend(fontsize="small", loc="upper left")
    return figure
