"""A small SimOutput written by hand, so results and trace tests do not need the simulator.

The story: driver `drv0` asks device 1 on bus `amp0` for its status (request on
`amp0.to_device`, response on `amp0.to_driver`), then kicks the device with an EVENT_AVAIL;
its doorbell rings once. Five I/O requests complete, the first two during the 1 us warm-up.
"""

from vmsim.buses.amp.spec import AmpBusSpec
from vmsim.scenario.models import DeviceSpec, DoorbellKind, DriverSpec, MemoryKind, Platform, Scenario
from vmsim.sim.log import EventLog, RequestLog
from vmsim.sim.output import Series, SimOutput
from vmsim.wire import get_layout

V1 = get_layout("v1")
STATUS_REQUEST = V1.encode("GET_DEVICE_STATUS", "request", {}, dev_num=1, token=7)
STATUS_RESPONSE = V1.encode("GET_DEVICE_STATUS", "response", {"status": 15}, dev_num=1, token=7)
AVAIL_EVENT = V1.encode("EVENT_AVAIL", "event", {"vq_index": 0, "next_offset": 0}, dev_num=1)

WARMUP_NS = 1_000
SIM_TIME_NS = 11_000
# (submit_ns, start_ns, complete_ns): latencies 100, 300 (warm-up), then 200, 400, 600, 800.
REQUESTS = [(0, 10, 100), (500, 550, 800), (1_000, 1_050, 1_200), (2_000, 2_100, 2_400),
            (3_000, 3_100, 3_600), (4_000, 4_200, 4_800)]


def scenario() -> Scenario:
    return Scenario(
        name="handmade",
        platform=Platform(name="bench", memory={"ddr": MemoryKind()}, doorbells={"ipi": DoorbellKind(kind="ipi")}),
        drivers=[DriverSpec(name="drv0")],
        buses=[AmpBusSpec(kind="amp", name="amp0", driver="drv0", memory="ddr", doorbell="ipi")],
        devices=[DeviceSpec(name="dev1", bus="amp0", dev_num=1)],
    )


def output(requests=REQUESTS, warmup_ns: int = WARMUP_NS) -> SimOutput:
    events = EventLog()
    bus = events.add_bus("amp0", "v1")
    to_device, to_driver = events.components("amp0.to_device"), events.components("amp0.to_driver")
    doorbell = events.components("amp0.to_device.doorbell")
    tx, rx, ring = events.events("tx"), events.events("rx"), events.events("doorbell.ring")
    events.frame(100, to_device, tx, bus, 1, STATUS_REQUEST)
    events.mark(150, doorbell, ring, bus, 1)
    events.frame(300, to_device, rx, bus, -1, STATUS_REQUEST)
    events.frame(400, to_driver, tx, bus, 1, STATUS_RESPONSE)
    events.frame(600, to_driver, rx, bus, -1, STATUS_RESPONSE)
    events.frame(1_000, to_device, tx, bus, 1, AVAIL_EVENT)
    events.frame(1_200, to_device, rx, bus, -1, AVAIL_EVENT)

    log = RequestLog()
    driver, device = log.drivers("drv0"), log.devices("dev1")
    for request_id, (submit, start, complete) in enumerate(requests, start=1):
        log.add(request_id, driver, device, 1, 0, 512, submit, start, complete - start, complete)

    occupancy = Series()
    occupancy.record(100, 1)
    occupancy.record(300, 0)
    return SimOutput(
        scenario="handmade", seed=3, sim_time_ns=SIM_TIME_NS, warmup_ns=warmup_ns, events=events, requests=log,
        counters={
            "amp0.to_device": {"frames": 2, "bytes": 24, "full": 0, "busy_ns": 550},
            "amp0.to_driver": {"frames": 1, "bytes": 12, "full": 0, "utilisation": 0.25},
            "amp0.to_device.doorbell": {"kind": "ipi", "rung": 1, "coalesced": 0, "delivered": 1},
            "amp0": {"requests": 1, "responses": 1, "events": 1},
            "amp0.dev1": {"served": 6, "busy_ns": 1_900, "utilisation": 0.17},
            "drv0": {"devices_ready": 1},
        },
        series={"amp0.to_device.occupancy": occupancy},
        init_done_ns={"amp0.dev1": 700},
    )
