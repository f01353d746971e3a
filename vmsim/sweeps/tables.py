"""Reading a sweep: the points table, per-point means with confidence intervals, and along each series
the throughput knee and the capacity at a target.

`Axes` decides what a sweep is read along (offered load, else the first parameter that varies) and which
parameters make separate series; the report and the plots both read a sweep through it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import yaml

from vmsim.analysis.stats import t_quantile
from vmsim.errors import VmsimError
from vmsim.sweeps.spec import RUN_METRICS, Sweep, Target

KEPT_UP = 0.98  # throughput / offered load at or above which the system keeps up (see `knee`)


def points_frame(sweep: Sweep, records: Iterable[dict]) -> pd.DataFrame:
    """One row per (point, replication): its configuration (a compare file's), parameters, status, error and
    every metric (NaN for a failed run, except the offered load, which the point itself sets)."""
    records = sorted(records, key=lambda record: (record["point"], record["replication"]))
    numeric = {key: all(isinstance(point.get(key), (int, float)) and not isinstance(point.get(key), bool)
                        for point in sweep.points) for key in sweep.parameters}
    rows = []
    for record in records:
        point = sweep.points[record["point"]]
        row = {"point": record["point"], "replication": record["replication"], "seed": record["seed"]}
        if sweep.configurations is not None:
            row["configuration"] = sweep.configurations[record["point"]]
        row.update({key: point.get(key) if numeric[key] else yaml_text(point.get(key)) for key in sweep.parameters})
        row.update(status=record["status"], error=record["error"])
        rows.append((row, {**record["metrics"], "offered_rps": sweep.offered_rps[record["point"]]}))
    names = set().union(*(metrics for _, metrics in rows))
    metric_columns = [m for m in RUN_METRICS if m in names] + sorted(names - set(RUN_METRICS))
    frame = pd.DataFrame([{**row, **{m: metrics.get(m) for m in metric_columns}} for row, metrics in rows],
                         columns=["point", "replication", "seed",
                                  *(["configuration"] if sweep.configurations is not None else []),
                                  *sweep.parameters, "status", "error", *metric_columns])
    frame[metric_columns] = frame[metric_columns].astype(float)
    return frame


def summary_table(points: pd.DataFrame, metrics: Iterable[str], parameters: Iterable[str] = ()) -> pd.DataFrame:
    """Per point: its parameters, offered load, runs that succeeded and failed, and for each metric the
    mean over the replications with a 95% confidence interval (Student t, n - 1 degrees of freedom;
    NaN for n < 2) as `<metric>_mean`, `<metric>_low`, `<metric>_high`."""
    metrics = list(dict.fromkeys(metrics))
    parameters = list(parameters)
    missing = [metric for metric in metrics if metric not in points.columns]
    if missing and (points["status"] == "ok").any():
        known = [c for c in points.columns if c not in ("point", "replication", "seed", "status", "error",
                                                         *parameters)]
        raise VmsimError(f"no metric {', '.join(map(repr, missing))} in the results (they have "
                         f"{', '.join(known[:30])}{', ...' if len(known) > 30 else ''})")
    rows = []
    for point, runs in points.groupby("point", sort=True):
        ok = runs[runs["status"] == "ok"]
        row = {"point": point, **{key: runs[key].iloc[0] for key in parameters},
               "offered_rps": runs["offered_rps"].iloc[0], "replications": len(ok), "failed": len(runs) - len(ok)}
        for metric in metrics:
            values = ok[metric].dropna().to_numpy(dtype=float) if metric in ok else np.empty(0)
            row.update(_mean_interval(metric, values))
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_interval(metric: str, values: np.ndarray) -> dict[str, float]:
    mean = float(values.mean()) if values.size else math.nan
    half = t_quantile(0.975, values.size - 1) * float(values.std(ddof=1)) / math.sqrt(values.size) \
        if values.size >= 2 else math.nan
    return {f"{metric}_mean": mean, f"{metric}_low": mean - half, f"{metric}_high": mean + half}


def yaml_text(value: object) -> str:
    """A parameter value as its sweep file spelled it: '64 B', 'null', '[1, 2]'."""
    return yaml.safe_dump(value, default_flow_style=True, width=2**31).strip().removesuffix("...").strip()


@dataclass(frozen=True)
class Axes:
    """What the plots put along x (offered load, else the first parameter that varies) and which
    parameters draw separate lines: those whose every value covers the same x values."""

    x: str
    series: list[str]

    @classmethod
    def of(cls, summary: pd.DataFrame, parameters: list[str]) -> Axes:
        varying = [key for key in parameters if summary[key].astype(str).nunique() > 1]
        offered = summary["offered_rps"]
        if offered.notna().all() and offered.nunique() > 1:
            return cls("offered_rps", [key for key in varying if _independent_of(summary, key, offered)])
        if not varying:
            return cls("point", [])
        return cls(varying[0], varying[1:])

    @property
    def x_label(self) -> str:
        return "offered load (requests/s)" if self.x == "offered_rps" else self.x

    def groups(self, summary: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
        """(label, rows sorted by x) per series; one unlabelled group when nothing but x varies."""
        if not self.series:
            yield "", summary.sort_values(self.x, kind="stable")
            return
        for values, rows in summary.groupby([summary[key].astype(str) for key in self.series], sort=False):
            values = values if isinstance(values, tuple) else (values,)
            label = ", ".join(f"{key.split('.')[-1]}={value}" for key, value in zip(self.series, values))
            yield label, rows.sort_values(self.x, kind="stable")


def _independent_of(summary: pd.DataFrame, key: str, offered: pd.Series) -> bool:
    loads = [frozenset(offered[rows.index]) for _, rows in summary.groupby(summary[key].astype(str))]
    return all(load == loads[0] for load in loads)


def knee(rows: pd.DataFrame) -> float | None:
    """The highest offered load up to which the system keeps up; past it, it saturates.

    Falling behind takes both: mean throughput more than 2% below the offered load (requests still in
    flight when a run ends are not counted, so a system that keeps up still measures a little short)
    and the 95% interval of throughput below the offered load (so it is not sampling noise).
    """
    kept = None
    for offered, mean, high in zip(rows["offered_rps"], rows["throughput_rps_mean"], rows["throughput_rps_high"]):
        if mean < KEPT_UP * offered and not high >= offered:
            break
        kept = offered
    return kept


def capacity(rows: pd.DataFrame, x: str, target: Target, bound: str = "mean") -> float | None:
    """The highest x up to which the target metric (its mean, or its 95% upper bound) meets the target."""
    met = None
    for value, measured in zip(rows[x], rows[f"{target.metric}_{bound}"]):
        if not measured <= target.at_most:
            break
        met = value
    return met
