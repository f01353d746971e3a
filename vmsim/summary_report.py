"""The one-screen report `vmsim run` prints of a summary, and the lines that list failed checks."""

from __future__ import annotations

from pathlib import Path

from vmsim.units import format_ns


def format_summary(summary: dict, folder: Path | None = None) -> str:
    """The one-screen report printed after `vmsim run`."""
    latency = summary["latency_ns"]
    interval = summary["latency_ci95_ns"]

    def ns(value):
        return "-" if value is None else format_ns(value)

    throughput = summary["throughput_rps"]
    rate = "-" if throughput is None else f"{throughput:,.0f}"
    mean = f"mean {ns(latency['mean'])}"
    if interval["half_width"] is not None:
        mean += f" ± {ns(interval['half_width'])} (95%, {interval['batches']} batch means)"
    lines = [
        f"scenario   {summary['scenario']}  (seed {summary['seed']})",
        (f"simulated  {ns(summary['sim_time_ns'])} (warm-up {ns(summary['warmup_ns'])}) "
         f"in {summary['wall_seconds']:.2f} s wall, {summary['events_logged']} events"),
        (f"requests   {summary['requests_completed']:,} measured (submitted after the warm-up), "
         f"{summary.get('requests_in_window', summary['requests_completed']):,} completed after it: {rate} req/s"),
        *_count_lines(summary),
        f"latency    {mean}",
        (f"           p50 {ns(latency['p50'])}  p90 {ns(latency['p90'])}  p99 {ns(latency['p99'])}  "
         f"p99.9 {ns(latency['p999'])}  max {ns(latency['max'])}"),
    ]
    lines += _bus_latency_lines(summary["buses"])
    lines += _bus_lines(summary["buses"])
    lines += _processor_lines(summary.get("processors", {}))
    lines += format_check(summary["check"])
    lines += [f"warning    {warning}" for warning in summary.get("warnings", [])]
    trace = summary.get("trace")
    if trace and trace.get("truncated"):
        lines.append(f"trace      truncated to the first {trace['limit']} events")
    if folder is not None:
        lines.append(f"results    {folder}")
    return "\n".join(lines)


SHOWN_BUSES = 4
SHOWN_WORKLOADS = 4


def _count_lines(summary: dict) -> list[str]:
    """What became of the requests offered, in total and per workload (the most offered first): a load the
    model did not carry shows as requests in flight, held back or dropped, not as a better latency."""
    counts = summary.get("counts")
    if not counts:
        return []

    def line(entry: dict) -> str:
        text = (f"offered {entry['offered']:,}, submitted {entry['submitted']:,}, completed {entry['completed']:,}, "
                f"in flight at the end {entry['in_flight']:,}")
        for key, label in (("backlog", "held back by the driver"), ("completed_after_end", "completed after the end")):
            if entry[key]:
                text += f", {label} {entry[key]:,}"
        return text

    total = counts["total"]
    lines = [f"{'':<11}{line(total)}"]
    if total["frames_retried"] or total["frames_dropped"]:
        lines.append(f"{'':<11}frames retried after a full queue {total['frames_retried']:,}, "
                     f"dropped after every retry {total['frames_dropped']:,}")
    if len(counts["workloads"]) > 1:
        listed, more = _busiest(counts["workloads"], lambda entry: entry["offered"], SHOWN_WORKLOADS)
        lines += [f"  {name}: {line(entry)}" for name, entry in listed]
        if more:
            lines.append(f"  ... and {more} more workloads")
    return lines
SHOWN_DEVICES = 4


def _busiest(items: dict, key, shown: int) -> tuple[list, int]:
    """All of `items` in their order when they are few, else the `shown` busiest first; and how many are left out."""
    if len(items) <= shown:
        return list(items.items()), 0
    return sorted(items.items(), key=lambda item: -key(item[1]))[:shown], len(items) - shown


def _bus_lines(buses: dict) -> list[str]:
    """Per bus: frames and its busiest queue, its devices' utilisation and its doorbells. A large topology
    shows its busiest buses and devices only, so the report stays on one screen (summary.json has all)."""
    shown, hidden = _busiest(buses, lambda entry: entry["utilisation_max"], SHOWN_BUSES)
    lines = [f"buses      {len(buses)}, the {SHOWN_BUSES} busiest below (all in summary.json)"] if hidden else []
    for bus, entry in shown:
        lines.append(f"bus {bus:<7}{entry['frames']} frames, {entry['bytes']} B, "
                     f"busiest queue {entry['utilisation_max']:.1%} busy")
        devices = {name: counts for name, counts in entry["devices"].items() if "utilisation" in counts}
        listed, more = _busiest(devices, lambda counts: counts["utilisation"], SHOWN_DEVICES)
        lines += [f"  {name}: {counts['utilisation']:.1%} busy" for name, counts in listed]
        if more:
            lines.append(f"  ... and {more} more devices")
        for name, counts in entry["doorbells"].items():
            if "rung" in counts:
                lines.append(f"  {name}: {counts['rung']} rung, {counts.get('coalesced', 0)} coalesced, "
                             f"{counts.get('delivered', 0)} delivered")
    return lines


def _bus_latency_lines(buses: dict) -> list[str]:
    """Each bus's own latency when there are several, and each device's when a bus has several, busiest first
    (the `SHOWN_BUSES` and `SHOWN_DEVICES` busiest): the pooled line can hide a slow bus or device behind
    fast ones."""
    with_latency = {bus: entry for bus, entry in buses.items() if "latency_ns" in entry}
    devices_of = {bus: {name: counts for name, counts in entry["devices"].items() if "latency_ns" in counts}
                  for bus, entry in with_latency.items()}
    if len(with_latency) < 2 and all(len(devices) < 2 for devices in devices_of.values()):
        return []
    shown = sorted(with_latency.items(), key=lambda item: -item[1]["utilisation_max"])[:SHOWN_BUSES]
    lines = []
    for bus, entry in shown:
        label = "by bus" if not lines else ""
        lines.append(f"{label:<11}{bus}: {_latency_figures(entry['latency_ns'])}")
        devices = devices_of[bus]
        if len(devices) < 2:
            continue
        busiest = sorted(devices.items(), key=lambda item: -item[1].get("utilisation", 0.0))
        lines += [f"{'':<13}{name}: {_latency_figures(counts['latency_ns'])}"
                  for name, counts in busiest[:SHOWN_DEVICES]]
        if len(busiest) > SHOWN_DEVICES:
            lines.append(f"{'':<13}... and {len(busiest) - SHOWN_DEVICES} more devices (all in summary.json)")
    return lines


def _latency_figures(latency: dict) -> str:
    if latency["p50"] is None:
        return "no request measured"
    return f"p50 {format_ns(latency['p50'])}  p99 {format_ns(latency['p99'])}  max {format_ns(latency['max'])}"


def _processor_lines(processors: dict) -> list[str]:
    """The busiest cores: where a capacity answer runs out first."""
    listed, more = _busiest(processors, lambda entry: entry["utilisation"], SHOWN_BUSES)
    lines = [f"cpu {name}: {entry['utilisation']:.1%} busy ({entry['work_items']:,} thread and "
             f"{entry['irq_items']:,} interrupt work items)" for name, entry in listed]
    if more:
        lines.append(f"  ... and {more} more processors")
    return lines


def format_check(check: dict, shown: int = 5) -> list[str]:
    """The safety checks in the one-screen report: nothing when they pass, else each failed check with its
    first violations and the events.parquet rows they name."""
    if check["status"] == "ok":
        return []
    lines = ["CHECK FAILED (rows are events.parquet row numbers)"]
    for entry in check["checks"]:
        if entry["status"] == "ok":
            continue
        lines.append(f"  {entry['name']}: {entry['violations_total']} violation(s)")
        for violation in entry["violations"][:shown]:
            if "rows" not in violation:  # liveness: the message names the device or queue and the time
                lines.append(f"    {violation['message']}")
                continue
            rows = ", ".join(map(str, violation["rows"]))
            lines.append(f"    bus {violation['bus']} region {violation['id']}: {violation['message']} (rows {rows})")
    return lines
