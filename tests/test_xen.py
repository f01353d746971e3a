"""The Xen bus: the same driver and device as AMP over a shared page, event channels and grants.

Costs are round numbers so that hand sums stay readable: 4-byte lines at 10 ns per line read and 5 per
line written, an event channel whose send hypercall costs 100 ns and whose upcall comes 1 us later
(acknowledged in 50 ns), 300 ns per frame in the DomU kernel and 700 ns in the device model.
"""

import copy

import pytest

from vmsim.buses.xen.host import ACCOUNTS, Domain, EvtchnCost
from vmsim.scenario.models import Scenario
from vmsim.sim import build
from vmsim.sim.core import Simulation
from vmsim.sim.doorbell import Doorbell
from vmsim.wire import get_layout

EVTCHN = {"kind": "evtchn", "ring": 100, "latency": 1000, "ack": 50}
XEN = {"hypercall": 160, "evtchn_unmask": 200, "vm_switch": 3000, "sched_wakeup": 1000, "grant_entry": 20,
       "grant_map": 3000, "grant_unmap": 2000, "tlb_shootdown": 500, "tlb_ipi": 1000, "tlb_flush": 400,
       "grant_copy": 1000, "memcpy_per_kib": 128, "gfn2mfn": 300}
BIG, LITTLE, SERVICE, START = 300, 700, 2000, 1_000_000
INIT = ["GET_DEVICES", "GET_DEVICE_INFO", "SET_DEVICE_STATUS", "SET_DEVICE_STATUS", "SET_DEVICE_STATUS",
        "GET_DEVICE_FEATURES", "SET_DRIVER_FEATURES", "SET_DEVICE_STATUS", "GET_DEVICE_STATUS", "GET_CONFIG",
        "GET_VQUEUE", "SET_VQUEUE", "SET_DEVICE_STATUS"]


def read(nbytes):
    return -(-nbytes // 4) * 10


def write(nbytes):
    return -(-nbytes // 4) * 5


def xen_dict(bus=None, **changes) -> dict:
    """One DomU (1 vCPU) driving one device in Dom0 (2 vCPUs) over bus xen0; `bus` updates the bus entry."""
    data = {
        "name": "xen-story",
        "seed": 7,
        "platform": {
            "name": "xen-story-platform",
            "memory": {"ram": {"line_bytes": 4, "read_per_line": 10, "write_per_line": 5}},
            "doorbells": {"evtchn": dict(EVTCHN)},
            "cpus": {"big": {"frame_handling": BIG}, "little": {"frame_handling": LITTLE}},
            "xen": dict(XEN),
        },
        "drivers": [{"name": "linux", "cpu": "big"}],
        "domains": [{"name": "domu1", "vcpus": 1}, {"name": "dom0", "kind": "dom0", "vcpus": 2}],
        "buses": [{"kind": "xen", "name": "xen0", "driver": "linux", "frontend": "domu1", "backend": "dom0",
                   "memory": "ram", "doorbell": "evtchn"} | (bus or {})],
        "devices": [{"name": "dev", "bus": "xen0", "dev_num": 1, "cpu": "little", "queue_size": 16,
                     "service": {"dist": "constant", "value": SERVICE}}],
        "workloads": [{"name": "one", "device": "dev", "requests": 1, "start": START,
                       "arrivals": {"kind": "constant", "rate": "1 kHz"},
                       "size": {"dist": "constant", "value": 512}}],
    }
    data.update(copy.deepcopy(changes))
    return data


def run(data):
    model = build(Scenario.model_validate(data))
    return model, model.run()


def sequence(output, since=START, bus="xen0"):
    """What happened from `since` on: (component without the bus prefix, event[:frame name]) in log order."""
    columns = output.events.columns()
    rows = zip(columns["time_ns"], columns["component"], columns["event"], columns["msg_name"])
    return [(component.removeprefix(f"{bus}."), f"{event}:{name}" if name else event)
            for time, component, event, name in rows if time >= since]


def requests(output):
    return output.requests.columns()


# --- the same driver and device -------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["draft-6b", "v1"])
def test_initialisation_and_io_run_over_xen_with_the_amp_driver_and_device(layout):
    """The driver finds the device with GET_DEVICES and initialises it in spec order, in the Xen codec's
    6-byte-header layout or in v1; every frame decodes and fits its 64-byte spsc slot."""
    data = xen_dict({"layout": layout})
    data["workloads"][0].update(requests=20, arrivals={"kind": "closed", "outstanding": 2})
    _, output = run(data)
    columns = output.events.columns()
    sent = [name for component, event, name in zip(columns["component"], columns["event"], columns["msg_name"])
            if component == "xen0.to_device" and event == "tx"]
    assert sent[:len(INIT)] == INIT
    assert len(output.requests) == 20
    decoder = get_layout(layout)
    wires = [w for w in columns["wire"] if w is not None]
    assert all(decoder.decode(w).msg_size == len(w) <= 64 for w in wires)


def test_set_up_grants_the_page_and_binds_the_event_channel_before_the_first_frame():
    """QEMU's order: the frontend grants the page and allocates its port; the backend maps the page by
    grant reference and binds; only then does GET_DEVICES go out."""
    _, output = run(xen_dict(workloads=[], duration=200_000))
    assert sequence(output, since=0)[:5] == [
        ("frontend", "grant.grant"), ("frontend", "evtchn.bind"), ("backend", "grant.map"),
        ("backend", "evtchn.bind"), ("to_device", "tx:GET_DEVICES")]


# --- one request under each buffer scheme ---------------------------------------------------------

EVENT_AVAIL = [("to_device", "tx:EVENT_AVAIL"), ("to_device.doorbell", "evtchn.send"),
               ("to_device.doorbell", "evtchn.upcall"), ("to_device.doorbell", "evtchn.mask"),
               ("to_device", "rx:EVENT_AVAIL")]
EVENT_USED = [("to_driver", "tx:EVENT_USED"), ("to_driver.doorbell", "evtchn.send"),
              ("to_driver.doorbell", "evtchn.upcall"), ("to_driver.doorbell", "evtchn.mask"),
              ("to_driver", "rx:EVENT_USED")]
UNMASK_DEVICE = [("to_device.doorbell", "evtchn.unmask")]


@pytest.mark.parametrize("scheme, expected", [
    ("map-unmap", [("frontend", "grant.grant"), *EVENT_AVAIL, ("backend", "grant.map"), *UNMASK_DEVICE,
                   ("backend", "grant.unmap"), ("backend", "tlb.shootdown"), *EVENT_USED,
                   ("frontend", "grant.end_access")]),
    ("persistent", [("frontend", "grant.grant"), *EVENT_AVAIL, ("backend", "grant.map"), *UNMASK_DEVICE,
                    *EVENT_USED]),
    ("copy", [("frontend", "grant.grant"), *EVENT_AVAIL, ("backend", "grant.copy"), *UNMASK_DEVICE, *EVENT_USED,
              ("frontend", "grant.end_access")]),
    ("directory", [*EVENT_AVAIL, *UNMASK_DEVICE, *EVENT_USED]),
])
def test_event_channel_and_grant_sequence_of_one_request(scheme, expected):
    """Grant, EVENT_AVAIL through the event channel (send, upcall, mask, receive, unmask), the backend
    reaches the buffer, serves it, lets it go, EVENT_USED back the same way, the frontend ends access.
    Persistent grants are granted and mapped on first use only; grant copy maps nothing; the grant
    directory was mapped at connect time, so a request makes no grant operation at all. (The run ends as
    the request completes, before the driver's handler unmasks its port.)"""
    _, output = run(xen_dict({"grants": scheme}))
    assert sequence(output) == expected


def test_a_persistent_grant_is_reused_without_grant_operations():
    """The second request's buffer comes back from the pool: no grant, no map, only the copy into it."""
    data = xen_dict({"grants": "persistent"})
    data["workloads"][0]["requests"] = 2
    _, output = run(data)
    second = requests(output)["submit_ns"][1]
    assert [event for component, event in sequence(output, since=second) if "grant" in event] == []


# Hand sums: the parts every scheme shares, then what each scheme adds.
SUBMIT = write(20) + read(2)  # descriptor, avail slot and idx; avail_event
# spsc-2024, 32-bit indices: a push reads its own index, writes the frame and the index; the request's frames
# take the last of the 14 slots, where the producer's cached consumer index says full: it reloads that one
# too. A pop reads its own index, reloads the producer's, reads the whole slot and writes its own. Each
# receiver also pays, with its first frame, its last look at the queue after the start-up (both indices).
LAST_LOOK = read(4) + read(4)
AVAIL = BIG + read(4) + read(4) + write(16) + write(4) + EVTCHN["ring"] + EVTCHN["latency"]  # EVENT_AVAIL, 16 B
DEVICE_RX = EVTCHN["ack"] + LITTLE + LAST_LOOK + read(4) + read(4) + read(64) + write(4)
POP = read(20)
USED = write(10) + read(2)
USED_FRAME = LITTLE + read(4) + read(4) + write(12) + write(4) + EVTCHN["ring"] + EVTCHN["latency"]  # EVENT_USED, 12 bytes
DRIVER_RX = EVTCHN["ack"] + BIG + LAST_LOOK + read(4) + read(4) + read(64) + write(4)
RECLAIM = read(12) + write(2)
MEMCPY_512 = 512 * XEN["memcpy_per_kib"] // 1024
COMMON = SUBMIT + AVAIL + DEVICE_RX + POP + SERVICE + USED + USED_FRAME + DRIVER_RX + RECLAIM
SCHEMES = {  # (frontend share, backend map, backend unmap, frontend release)
    "map-unmap": (XEN["grant_entry"], XEN["grant_map"], XEN["grant_unmap"] + XEN["tlb_shootdown"],
                  XEN["grant_entry"]),
    "persistent": (XEN["grant_entry"] + MEMCPY_512, XEN["grant_map"], 0, 0),
    "copy": (XEN["grant_entry"], XEN["grant_copy"] + MEMCPY_512, 0, XEN["grant_entry"]),
    "directory": (0, read(8), 0, 0),
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_single_request_latency_equals_the_hand_sum(scheme):
    """One 512-byte request on an idle bus: the AMP path's costs (ring bytes, frames copied into 64-byte
    slots, per-frame software) with event channels as doorbells, plus what the scheme adds: a grant entry
    written and cleared, a map and an unmap with its TLB flush (no other backend vCPU is running, so no
    IPI), a copy into a persistent grant (8 GB/s) and its first map, a grant copy, or the read of one
    8-byte directory entry. The unmask of each handler overlaps the next step and costs nothing here."""
    share, mapping, unmap, release = SCHEMES[scheme]
    _, output = run(xen_dict({"grants": scheme}))
    done = requests(output)
    assert done["latency_ns"].tolist() == [COMMON + share + mapping + unmap + release]
    assert done["start_ns"].tolist() == [START + share + SUBMIT + AVAIL + DEVICE_RX + POP + mapping]


def test_gfn2mfn_translates_every_page_before_it_is_mapped():
    """With `gfn2mfn` the backend calls XENMEM_gfn2mfn before each map: 300 ns more per request."""
    _, plain = run(xen_dict())
    _, translated = run(xen_dict({"gfn2mfn": True}))
    assert ("backend", "gfn2mfn") in sequence(translated)
    assert (requests(translated)["latency_ns"] - requests(plain)["latency_ns"]).tolist() == [XEN["gfn2mfn"]]


def test_a_shared_pcpu_adds_a_scheduler_wake_up_and_a_vm_switch_to_each_upcall():
    """Dom0's vCPUs share pCPUs: the one upcall into Dom0 per request waits for its vCPU to be woken and
    switched in; the DomU's pinned vCPU does not."""
    pinned = run(xen_dict())[1]
    data = xen_dict()
    data["domains"][1]["pcpu"] = "shared"
    shared = run(data)[1]
    extra = requests(shared)["latency_ns"] - requests(pinned)["latency_ns"]
    assert extra.tolist() == [XEN["vm_switch"] + XEN["sched_wakeup"]]


def test_xen_as_the_frontend_needs_no_hypercall_out_and_no_upcall_back():
    """The vmp proxy: Xen raises the backend's event itself (the upcall comes `latency` after the send,
    no hypercall before it) and handles the backend's send as its hypercall ends (no upcall latency,
    no masking)."""
    _, output = run(xen_dict(drivers=[{"name": "vmp", "cpu": "big"}], domains=[{"name": "dom0", "kind": "dom0"}],
                             buses=[{"kind": "xen", "name": "xen0", "driver": "vmp", "frontend": "xen",
                                     "backend": "dom0", "memory": "ram", "doorbell": "evtchn"}]))
    columns = output.events.columns()
    times = {}
    for time, component, event in zip(columns["time_ns"], columns["component"], columns["event"]):
        if time >= START:
            times.setdefault((component, event), time)
    down, up = "xen0.to_device.doorbell", "xen0.to_driver.doorbell"
    assert times[(down, "evtchn.upcall")] - times[(down, "evtchn.send")] == EVTCHN["latency"]
    assert times[(up, "evtchn.upcall")] - times[(up, "evtchn.send")] == EVTCHN["ring"]
    assert (up, "evtchn.mask") not in times
    assert len(output.requests) == 1


# --- event channels -------------------------------------------------------------------------------


def test_a_send_to_a_masked_port_only_marks_it_pending_and_the_unmask_reports_it():
    """Sends fold into an upcall already on its way; while the handler keeps the port masked a send
    sets it pending and raises nothing; unmasking reports it so the handler runs again at once."""
    sim = Simulation(1)
    upcalls = []
    port = Doorbell(sim, "p.doorbell", EvtchnCost("evtchn", 100, 1000, 50), 0, lambda: upcalls.append(sim.env.now),
                    port=3, maskable=True)
    assert port.ring() == 100
    port.ring()
    sim.env.run(until=2000)
    assert upcalls == [1100]
    port.mask()
    port.ring()
    sim.env.run(until=4000)
    assert upcalls == [1100]
    assert port.unmask() is True
    assert port.unmask() is False
    assert {key: port.counts[key] for key in ("rung", "coalesced", "delivered")} == \
        {"rung": 1, "coalesced": 2, "delivered": 1}


def test_the_receive_budget_bounds_the_frames_handled_per_event():
    """With rx_budget 1 the handler takes one frame, unmasks and comes back for the next; without a
    budget one handler run drains several frames that queued up while it worked (a grant directory
    keeps the device fast enough to queue them)."""
    def most_frames_per_run(budget):
        data = xen_dict({"rx_budget": budget, "event_idx": False, "grants": "directory"})
        data["devices"][0]["service"] = {"dist": "constant", "value": 100}
        data["workloads"][0].update(requests=40, arrivals={"kind": "closed", "outstanding": 8})
        _, output = run(data)
        most, current = 0, 0
        for component, event in sequence(output, since=0):
            if component == "to_driver.doorbell" and event == "evtchn.mask":
                current = 0
            elif component == "to_driver" and event.startswith("rx:"):
                current += 1
                most = max(most, current)
        assert len(output.requests) == 40
        return most

    assert most_frames_per_run(1) == 1
    assert most_frames_per_run(0) > 1


# --- the backend domain's vCPUs -------------------------------------------------------------------


def two_guests(vcpus, scheme="map-unmap"):
    """Two DomUs, each with its own bus to one Dom0; their single requests arrive 10 us apart and are
    served for 50 us each, so they overlap in Dom0."""
    data = xen_dict()
    data["devices"][0]["service"] = {"dist": "constant", "value": 50_000}
    data["drivers"].append({"name": "linux2", "cpu": "big"})
    data["domains"][1]["vcpus"] = vcpus
    data["domains"].append({"name": "domu2"})
    data["buses"][0]["grants"] = scheme
    data["buses"].append(data["buses"][0] | {"name": "xen1", "driver": "linux2", "frontend": "domu2"})
    data["devices"].append(data["devices"][0] | {"name": "dev2", "bus": "xen1"})
    data["workloads"].append(data["workloads"][0] | {"name": "two", "device": "dev2", "start": START + 10_000})
    return run(data)[1]


def test_an_unmap_flushes_the_tlb_of_every_other_running_backend_vcpu():
    """The first guest's unmap finds the second guest's request running on another Dom0 vCPU: it sends
    one IPI (1 us) and that vCPU spends 400 ns flushing. The second unmap runs alone: no IPI."""
    output = two_guests(vcpus=3)
    columns = output.events.columns()
    flushed = [value for event, value in zip(columns["event"], columns["value"]) if event == "tlb.shootdown"]
    assert flushed == [1, 0]
    assert output.counters["domain.dom0"]["tlb_ns"] == 2 * XEN["tlb_shootdown"] + XEN["tlb_ipi"] + XEN["tlb_flush"]


def test_buses_to_one_backend_share_its_vcpus():
    """With one Dom0 vCPU the second guest's request waits for the first to be served; with three
    (one per request and one for the event handler) they are served side by side."""
    def second_waits(vcpus):
        done = requests(two_guests(vcpus, scheme="persistent"))
        return int(done["start_ns"][1] - done["submit_ns"][1] - (done["start_ns"][0] - done["submit_ns"][0]))

    assert second_waits(3) == 0
    assert second_waits(1) > 40_000


def test_the_same_seed_gives_the_same_run_and_another_seed_does_not():
    """Contention for Dom0's vCPUs and the grant pool resolve in a fixed order: runs repeat request by request."""
    data = xen_dict({"grants": "persistent"})
    data["devices"][0]["service"] = {"dist": "exponential", "mean": 3000}
    data["workloads"][0].update(requests=100, arrivals={"kind": "closed", "outstanding": 4})
    first, second = (requests(run(data)[1])["latency_ns"].tolist() for _ in range(2))
    assert first == second
    data["seed"] = 8
    assert requests(run(data)[1])["latency_ns"].tolist() != first


def test_backend_vcpu_time_is_accounted_by_what_it_was_spent_on():
    """frames (handlers and sends), grants, lock spins, TLB flushes, copies and virtqueue work add up to the busy
    time; the device's service runs on Dom0's vCPUs and is reported as such in the processor table."""
    output = two_guests(vcpus=3)
    counts = output.counters["domain.dom0"]
    assert counts["vcpus"] == 3
    assert counts["busy_ns"] == sum(counts[key] for key in ACCOUNTS)
    dom0 = output.processors["domain.dom0"]
    assert dom0["cores"] == 3 and dom0["busy_ns"] == counts["busy_ns"]
    assert dom0["by_activity_ns"]["service"] == 2 * 50_000
    assert sum(dom0["by_activity_ns"].values()) <= dom0["busy_ns"]


def test_a_sender_backing_off_from_a_full_queue_gives_up_its_vcpu():
    """A slow DomU (20 us per frame) lets stale EVENT_USED frames fill its 14-slot queue; Dom0 retries
    every 10 ms as the reference driver does, asleep: its vCPUs stay nearly idle, nothing is lost."""
    data = xen_dict({"event_idx": False})
    data["platform"]["cpus"]["big"]["frame_handling"] = 20_000
    data["devices"][0]["service"] = {"dist": "constant", "value": 100}
    data["workloads"][0].update(requests=200, arrivals={"kind": "closed", "outstanding": 4})
    _, output = run(data)
    assert output.counters["xen0.to_driver"]["full"] > 0 and len(output.requests) == 200
    assert output.counters["domain.dom0"]["busy_ns"] < 0.05 * output.sim_time_ns


def test_work_nested_in_a_handler_runs_on_its_vcpu_and_is_counted_once():
    """A handler holds a vCPU for 200 ns; the work it runs inside (a 30 ns grant operation, a 50 ns send
    that enters again) uses the same vCPU and is split out of, not added to, its time. A second process
    waits for the only vCPU until the handler leaves."""
    sim = Simulation(1)
    env = sim.env
    domu = Domain(sim, "domu", vcpus=1, upcall_extra=0)
    started = []

    def handler():
        yield from domu.enter("frames_ns")
        yield from domu.work(30, "grants_ns")
        yield from domu.enter("frames_ns")
        yield env.timeout(50)
        domu.leave()
        yield env.timeout(120)
        domu.leave()

    def other():
        yield from domu.enter("grants_ns")
        started.append(env.now)
        domu.leave()

    env.process(handler())
    env.process(other())
    env.run()
    assert started == [200]
    assert {key: domu.counts[key] for key in ("busy_ns", "frames_ns", "grants_ns")} == \
        {"busy_ns": 200, "frames_ns": 170, "grants_ns": 30}
