"""Safety checks over a run's event log: memory shared with a device is used and given back correctly.

They read only the lifecycle marks `vmsim.sim.sharing` logs (value: the region's id; component
`<bus>.<device>.share.driver` or `.share.device` says which side), so they judge any run, and any
`events.parquet`, without trusting the simulator's own bookkeeping. A region is followed per (bus, id)
in log order (ids may be reused once a region was reclaimed):

- `no-access-after-release`: every `share.access` falls between the device's `share.ack` and its
  `release.ack` (an access before the ack touches memory not yet shared; after it, memory given back);
- `no-reclaim-before-relinquish`: no `reclaim` while the device still holds the region (its last
  `share.ack` not followed by a `release.ack`);
- `share-acknowledged-or-timed-out`: every `share.request` is answered (`share.done`) or times out
  (`share.timeout`) before the next request for it, and before the end;
- `release-completes-after-ack`: a `reclaim` comes only after the release was acknowledged to the
  driver (`release.done`: the device's ack of the driver's request, or the device's own release), with
  no driver `release.request` left unanswered;
- `nothing-left-shared`: at the end every region that was asked to be shared has been reclaimed.

A violation names the rows involved: row numbers of `events.parquet` (the log's order).
"""

from __future__ import annotations

import numpy as np

from vmsim.sim.log import EventLog

LIFECYCLE = ("share.request", "share.done", "share.timeout", "share.ack", "share.access", "release.request",
             "release.done", "release.timeout", "release.ack", "reclaim")
CHECKS = ("no-access-after-release", "no-reclaim-before-relinquish", "share-acknowledged-or-timed-out",
          "release-completes-after-ack", "nothing-left-shared")
SHOWN = 20  # violations listed per check; `violations_total` counts them all


class _Region:
    """What the log said so far about one (bus, id)."""

    __slots__ = ("asked", "held", "held_row", "release_row", "released", "request_row", "share_row")

    def __init__(self):
        self.asked = False  # a share was requested and the region not reclaimed since
        self.share_row = -1  # the first share.request of this lifetime
        self.request_row = -1  # a share.request still waiting for its answer or timeout
        self.held = False  # the device acknowledged the share and has not acknowledged a release
        self.held_row = -1  # that share.ack, or the last release.ack
        self.release_row = -1  # a driver release.request not yet answered
        self.released = False  # the driver had the release acknowledged (release.done) this lifetime


def check_events(events) -> dict:
    """The `check` section of summary.json for an `EventLog`, an events DataFrame or a columns mapping:
    `{"status": "ok" | "failed", "checks": [{"name", "status", "violations", "violations_total"}]}`."""
    found: dict[str, list] = {name: [] for name in CHECKS}
    regions: dict[tuple, _Region] = {}
    for row, _time, component, event, bus, _dev_num, value in lifecycle_rows(events):
        key = (bus, value)
        region = regions.get(key)
        if region is None:
            region = regions[key] = _Region()
        _step(region, row, component.endswith(".device"), event, key, found)
    for key, region in regions.items():
        if region.request_row >= 0:
            _violation(found, "share-acknowledged-or-timed-out", key, [region.request_row],
                       "the share request was neither answered nor timed out by the end")
        if region.asked:
            rows = [region.share_row] + ([region.held_row] if region.held else [])
            why = "the device holds it" if region.held else "never reclaimed"
            _violation(found, "nothing-left-shared", key, rows, f"still shared at the end: {why}")
    checks = []
    for name in CHECKS:
        violations = found[name]
        checks.append({"name": name, "status": "failed" if violations else "ok",
                       "violations": violations[:SHOWN], "violations_total": len(violations)})
    return {"status": "failed" if any(found.values()) else "ok", "checks": checks}


def _step(region: _Region, row: int, device: bool, event: str, key: tuple, found: dict) -> None:
    if event == "share.request":
        if region.request_row >= 0:
            _violation(found, "share-acknowledged-or-timed-out", key, [region.request_row, row],
                       "asked again before the previous share request was answered or timed out")
        if not region.asked:
            region.asked, region.share_row, region.released = True, row, False
        region.request_row = row
    elif event in ("share.done", "share.timeout"):
        region.request_row = -1
    elif event == "share.ack":
        region.held, region.held_row = True, row
    elif event == "share.access":
        if not region.held:
            released = region.held_row >= 0
            why = "after the device acknowledged its release" if released else "before it was shared"
            _violation(found, "no-access-after-release", key, [row, region.held_row] if released else [row],
                       f"the device touched the region {why}")
    elif event == "release.ack":
        region.held, region.held_row = False, row
    elif event == "release.request":
        if not device:
            region.release_row = row
    elif event == "release.done":
        region.release_row, region.released = -1, True
    elif event == "release.timeout":
        region.release_row = -1
    elif event == "reclaim":
        if region.held:
            _violation(found, "no-reclaim-before-relinquish", key, [row, region.held_row],
                       "reclaimed while the device still held the region")
        if region.release_row >= 0 or not region.released:
            rows = [row, region.release_row if region.release_row >= 0 else region.share_row]
            _violation(found, "release-completes-after-ack", key, rows,
                       "reclaimed before the release was acknowledged")
        region.asked, region.released, region.release_row = False, False, -1


def _violation(found: dict, name: str, key: tuple, rows: list[int], message: str) -> None:
    bus, region_id = key
    found[name].append({"rows": [int(row) for row in rows], "bus": bus, "id": int(region_id),
                        "message": message})


def lifecycle_rows(events):
    """(row, time_ns, component, event, bus, dev_num, value) of every lifecycle mark, in log order, from an
    `EventLog`, an events DataFrame or a columns mapping."""
    if isinstance(events, EventLog):  # straight from the arrays: no table is built for a run without sharing
        ids = [events.events.ids[name] for name in LIFECYCLE if name in events.events.ids]
        if not ids:
            return
        codes = np.frombuffer(events.event, dtype=np.int32)
        names = events.events.names
        components, buses = events.components.names, events.buses.names
        for row in np.flatnonzero(np.isin(codes, ids)).tolist():
            yield (row, events.time[row], components[events.component[row]], names[codes[row]],
                   buses[events.bus[row]], events.dev_num[row], events.value[row])
        return
    event, component, bus = (np.asarray(events[name], dtype=object) for name in ("event", "component", "bus"))
    time, dev_num, value = (np.asarray(events[column]) for column in ("time_ns", "dev_num", "value"))
    for row in np.flatnonzero(np.isin(event, LIFECYCLE)).tolist():
        yield row, int(time[row]), component[row], event[row], bus[row], int(dev_num[row]), int(value[row])
