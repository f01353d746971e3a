"""Small scenarios built in code, so simulator tests do not depend on shipped files."""

from __future__ import annotations

import copy

from vmsim.scenario.models import Scenario
from vmsim.sim import build

# Round numbers so that hand sums stay readable: 4-byte lines, 10 ns per line read, 5 per line written.
SLOW_MEMORY = {"line_bytes": 4, "read_per_line": 10, "write_per_line": 5}
MAILBOX = {"kind": "mailbox", "ring": 100, "latency": 1000, "ack": 50}


def scenario_dict(**changes) -> dict:
    """One driver, one AMP bus, one device, one workload; `changes` replace top-level keys."""
    data = {
        "name": "story",
        "seed": 7,
        "platform": {
            "name": "story-platform",
            "memory": {"shared": dict(SLOW_MEMORY)},
            "doorbells": {"mailbox": dict(MAILBOX)},
            "cpus": {"big": {"frame_handling": 300}, "little": {"frame_handling": 700}},
        },
        "drivers": [{"name": "linux", "cpu": "big"}],
        "buses": [{"kind": "amp", "name": "amp0", "driver": "linux", "memory": "shared", "doorbell": "mailbox",
                   "queue_elements": 8, "handshake_retry": 1000}],
        "devices": [{"name": "dev", "bus": "amp0", "dev_num": 1, "cpu": "little", "queue_size": 16,
                     "service": {"dist": "constant", "value": 2000}}],
        "workloads": [{"name": "load", "device": "dev", "arrivals": {"kind": "closed", "outstanding": 2},
                       "requests": 50}],
    }
    data.update(copy.deepcopy(changes))
    return data


def scenario(**changes) -> Scenario:
    return Scenario.model_validate(scenario_dict(**changes))


def run(data: dict | Scenario):
    """Build and run; returns (model, output)."""
    model = build(data if isinstance(data, Scenario) else Scenario.model_validate(data))
    return model, model.run()


def frames(output, event: str = "tx") -> list[tuple]:
    """(component, msg_name, dev_num) of every frame row with the given event, in log order."""
    columns = output.events.columns()
    return [(c, n, d) for c, e, n, d in zip(columns["component"], columns["event"], columns["msg_name"],
                                             columns["dev_num"]) if e == event and n is not None]
