"""Sharing in numbers, read back from a run: one row per region lifetime, and the bytes shared over time.

The lifecycle marks of the event log (`vmsim.sim.sharing`) give each region's story; these tables turn it
into the quantities a sharing policy is judged by: how long a share takes to be acknowledged, how long a
release takes until the memory is reclaimed, and how much memory the device holds at each moment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vmsim.analysis.checks import lifecycle_rows

LIFETIME_COLUMNS = ("bus", "device", "dev_num", "id", "share_requested_ns", "shared_ns", "share_latency_ns",
                    "share_requests", "accesses", "released_by", "release_requested_ns", "reclaimed_ns",
                    "reclaim_latency_ns")


def lifetimes(events) -> pd.DataFrame:
    """One row per region lifetime (from its first share request to its reclaim), from an `EventLog`, the
    events DataFrame or events.parquet: when the share was asked and acknowledged to the driver (share
    latency), how many times it was asked, how many accesses the device made, who started the release and
    when, when the memory was reclaimed (reclaim latency: from the release request). Times are -1 where
    the step did not happen (a region still shared at the end, a share never acknowledged)."""
    open_rows: dict[tuple, dict] = {}
    done = []
    for _row, time, component, event, bus, dev_num, value in lifecycle_rows(events):
        key = (bus, value)
        entry = open_rows.get(key)
        if entry is None:
            if event != "share.request":
                continue
            device = component.removeprefix(f"{bus}.").rsplit(".share.", 1)[0]
            entry = open_rows[key] = {"bus": bus, "device": device, "dev_num": dev_num, "id": value,
                                      "share_requested_ns": time, "shared_ns": -1, "share_requests": 0,
                                      "accesses": 0, "released_by": "", "release_requested_ns": -1,
                                      "reclaimed_ns": -1}
        if event == "share.request":
            entry["share_requests"] += 1
        elif event == "share.done":
            entry["shared_ns"] = time
        elif event == "share.access":
            entry["accesses"] += 1
        elif event == "release.request" and not entry["released_by"]:
            entry["released_by"] = component.rsplit(".", 1)[1]
            entry["release_requested_ns"] = time
        elif event == "reclaim":
            entry["reclaimed_ns"] = time
            done.append(open_rows.pop(key))
    columns = [column for column in LIFETIME_COLUMNS if "latency" not in column]
    table = pd.DataFrame(done + list(open_rows.values()), columns=columns)
    shared = table["shared_ns"] >= 0
    table["share_latency_ns"] = np.where(shared, table["shared_ns"] - table["share_requested_ns"], -1)
    reclaimed = (table["reclaimed_ns"] >= 0) & (table["release_requested_ns"] >= 0)
    table["reclaim_latency_ns"] = np.where(reclaimed, table["reclaimed_ns"] - table["release_requested_ns"], -1)
    return table[list(LIFETIME_COLUMNS)].sort_values(["bus", "share_requested_ns"], ignore_index=True)


def shared_bytes(output) -> pd.DataFrame:
    """Bytes each device held shared over time (whole pages, from acknowledgement to reclaim), as steps:
    one row per change, columns `device` (the sharing's dotted name), `time_ns`, `bytes`."""
    frames = [pd.DataFrame({"device": name.removesuffix(".share.driver.shared_bytes"),
                            "time_ns": np.frombuffer(steps.time, dtype=np.int64),
                            "bytes": np.frombuffer(steps.level, dtype=np.int64)})
              for name, steps in sorted(output.series.items()) if name.endswith(".shared_bytes")]
    if not frames:
        return pd.DataFrame({"device": [], "time_ns": [], "bytes": []})
    return pd.concat(frames, ignore_index=True)
