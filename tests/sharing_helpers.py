"""The same small device with `sharing:` over AMP, Xen and FF-A, built in code with the round costs of the
other story tests (sim_helpers, test_xen, ffa_helpers), and a reader for the lifecycle story of a run."""

from __future__ import annotations

from ffa_helpers import ffa_dict
from sim_helpers import scenario_dict
from test_xen import xen_dict

from vmsim.analysis.checks import check_events

BUS = {"amp": "amp0", "xen": "xen0", "ffa": "ffa0"}
DEVICE = {"amp": "dev", "xen": "dev", "ffa": "dev1"}
START = 1_000_000
QUIET = ("doorbell.", "evtchn.", "ffa.notification_set", "ffa.msg_send_direct", "queue.full")


def shared(kind: str, sharing: dict | None = None, *, requests: int | None = 40, outstanding: int = 2,
           size: int = 512, buffers: dict | None = None, bus: dict | None = None, **device) -> dict:
    """One device with `sharing` (default: on first use, eager) on a bus of `kind`, fed by a closed loop of
    `outstanding` requests of `size` bytes from START; `bus` and `device` update those entries."""
    if kind == "amp":
        data = scenario_dict()
        data["buses"][0].update({"layout": "vmsim-share", **(bus or {})})
    elif kind == "xen":
        data = xen_dict(bus={"layout": "vmsim-share", **(bus or {})})
    else:
        data = ffa_dict(**(bus or {}))
    data["devices"][0].update({"sharing": sharing or {}, **device})
    workload = {"name": "stream", "device": DEVICE[kind], "start": START, "requests": requests,
                "arrivals": {"kind": "closed", "outstanding": outstanding},
                "size": {"dist": "constant", "value": size}}
    if buffers is not None:
        workload["buffers"] = buffers
    data["workloads"] = [workload]
    return data


def one(kind: str, sharing: dict | None = None, **options) -> dict:
    """`shared` with a single request of 512 bytes at START."""
    data = shared(kind, sharing, requests=1, outstanding=1, **options)
    data["workloads"][0]["arrivals"] = {"kind": "constant", "rate": "1 kHz"}
    return data


def story(output, kind: str, since: int = START) -> list[tuple[str, str]]:
    """(component without the bus, event or `tx:`/`rx:` frame) from `since` on, in log order, leaving out
    doorbells, event-channel and notification rows and the direct calls' carrier rows."""
    columns = output.events.columns()
    prefix = BUS[kind] + "."
    rows = zip(columns["time_ns"], columns["component"], columns["event"], columns["msg_name"])
    return [(component.removeprefix(prefix), f"{event}:{name}" if name else event)
            for time, component, event, name in rows if time >= since and not event.startswith(QUIET)]


def lifecycle(output, kind: str) -> list[tuple[str, str, int]]:
    """(side, event, region id) of every lifecycle mark: the story the safety checks read."""
    columns = output.events.columns()
    return [(component.rsplit(".", 1)[1], event, value)
            for component, event, value in zip(columns["component"], columns["event"], columns["value"])
            if ".share." in component]


def counts(output, kind: str) -> dict:
    return output.counters[f"{BUS[kind]}.{DEVICE[kind]}.share.driver"]


def verdict(output) -> dict:
    """{check name: violations} of the failed checks (empty when the run is clean)."""
    return {check["name"]: check["violations_total"] for check in check_events(output.events)["checks"]
            if check["status"] != "ok"}
