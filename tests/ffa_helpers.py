"""A small FF-A scenario built in code, with round costs so that hand sums stay readable."""

from __future__ import annotations

import copy

from sim_helpers import SLOW_MEMORY

NOTIFICATION = {"kind": "ffa-notification", "ring": 100, "latency": 1000, "ack": 50}
FFA = {
    "el3_switch": 200, "spmd_context": 100, "spmc_dispatch": 50, "sel2_switch": 400,
    "mem_share": {"fixed": 10_000, "per_page": 200}, "mem_retrieve": {"fixed": 8000, "per_page": 100},
    "mem_relinquish": {"fixed": 5000, "per_page": 50}, "mem_reclaim": {"fixed": 6000, "per_page": 50},
    "tlb_maintenance": 2000,
    "hypervisors": {"xen": {"trap": 300, "forward": 500, "vm_switch": 3000}},
    "partitions": {
        "optee": {"kind": "optee"},
        "sp": {"kind": "hafnium", "vcpus": 2},
        "vm": {"kind": "vm"},
        "direct-only": {"kind": "optee", "features": ["direct"]},
        "no-direct": {"kind": "hafnium", "features": ["indirect", "notif"]},
    },
}
BIG, LITTLE = 300, 700  # frame handling on the driver's and the partition's cores
LEG = 200 + 100 + 50  # el3_switch + spmd_context + spmc_dispatch: one way to OP-TEE


def ffa_dict(devices: int = 1, **bus) -> dict:
    """One driver, one FF-A bus to OP-TEE (direct + NOTIF unless `bus` says otherwise), `devices` devices
    (dev_num 1, 2, ...) each with a closed-loop workload of 50 requests; `bus` replaces bus keys."""
    return copy.deepcopy({
        "name": "ffa-story",
        "seed": 7,
        "platform": {
            "name": "ffa-story-platform",
            "memory": {"shared": dict(SLOW_MEMORY)},
            "doorbells": {"notif": dict(NOTIFICATION)},
            "cpus": {"big": {"frame_handling": BIG}, "little": {"frame_handling": LITTLE}},
            "ffa": FFA,
        },
        "drivers": [{"name": "linux", "cpu": "big"}],
        "buses": [{"kind": "ffa", "name": "ffa0", "driver": "linux", "partition": "optee", "memory": "shared",
                   "notification": "notif", **bus}],
        "devices": [{"name": f"dev{n}", "bus": "ffa0", "dev_num": n, "cpu": "little", "queue_size": 16,
                     "service": {"dist": "constant", "value": 2000}} for n in range(1, devices + 1)],
        "workloads": [{"name": f"load{n}", "device": f"dev{n}", "arrivals": {"kind": "closed", "outstanding": 2},
                       "requests": 50} for n in range(1, devices + 1)],
    })


def one_request(data: dict, size: int = 512, start: int = 1_000_000) -> dict:
    """`data` with a single request of `size` bytes submitted at `start` to the first device."""
    data["workloads"] = [{"name": "one", "device": "dev1", "requests": 1, "start": start,
                          "arrivals": {"kind": "constant", "rate": "1 kHz"}, "size": {"dist": "constant", "value": size}}]
    return data


def rows(output, since: int = 0, events=("tx",)) -> list[tuple]:
    """(component, event, msg_name or None, value) of each row from `since` on whose event is in `events`
    or starts with "ffa.", in log order: the frame and ABI-call story of a run."""
    c = output.events.columns()
    return [(comp, event, name, value) for t, comp, event, name, value
            in zip(c["time_ns"], c["component"], c["event"], c["msg_name"], c["value"])
            if t >= since and (event in events or event.startswith("ffa."))]
