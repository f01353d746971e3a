"""Time is charged where it is spent: every cost of an AMP bus holds a core, so work on one core waits its turn.

The driver's work holds `<driver>.cpu`, the device side's `<bus>.device_cpu` (one core per bus); receive
handlers run there as interrupt work, device service as thread work unless the device has a hardware
engine. Payload copies and an endpoint's own software are charged on the side that does them. The stories
use the round-number costs of `sim_helpers` and sum what a change adds by hand, to the nanosecond.
"""

from __future__ import annotations

from sim_helpers import SLOW_MEMORY, run, scenario_dict

from vmsim.summary import summarize

SIZE = 512  # bytes of payload per request
SERVICE = 2000  # ns, the story device's constant service
HANDLER = 50 + 700 + 10 * 16 + 2 * 10 + 5 + 2 * 10
"""The device side's receive handler on amp-2026: doorbell ack, 700 ns of frame handling, the element (16
lines), the two heads' indices (a line each), its own index written, and the last look of the drain before
(the two indices again), which nothing waited on and so is paid with this drain."""


def read(nbytes: int) -> int:  # SLOW_MEMORY: 4-byte lines, 10 ns per line read (a copy reads the same lines)
    return -(-nbytes // SLOW_MEMORY["line_bytes"]) * SLOW_MEMORY["read_per_line"]


def write(nbytes: int) -> int:  # 5 ns per line written
    return -(-nbytes // SLOW_MEMORY["line_bytes"]) * SLOW_MEMORY["write_per_line"]


def one_request(payload: str = "to-device", *, driver: dict | None = None, device: dict | None = None,
                platform: dict | None = None, requests: int = 1) -> dict:
    """`requests` 512-byte requests 1 ms apart on the idle story bus (each alone on it), from 1 ms on."""
    data = scenario_dict()
    data["drivers"][0].update(driver or {})
    data["devices"][0].update(device or {})
    data["platform"].update(platform or {})
    data["workloads"] = [{"name": "one", "device": "dev", "requests": requests, "start": 1_000_000,
                          "payload": payload, "arrivals": {"kind": "constant", "rate": "1 kHz"},
                          "size": {"dist": "constant", "value": SIZE}}]
    return data


def phases(data: dict) -> tuple[int, int]:
    """(submit to service start, service end to completion) of the first request."""
    _, output = run(data)
    row = output.requests.columns()
    start, service = int(row["start_ns"][0]), int(row["service_ns"][0])
    return start - int(row["submit_ns"][0]), int(row["complete_ns"][0]) - start - service


def added(data: dict, baseline: dict) -> tuple[int, int]:
    """What a change adds before the service starts and after it ends."""
    (before, after), (before0, after0) = phases(data), phases(baseline)
    return before - before0, after - after0


def two_devices(engine: str) -> dict:
    """Two devices on one AMP bus, one 50 us request each, submitted together."""
    data = scenario_dict()
    device = {"bus": "amp0", "cpu": "little", "queue_size": 16, "engine": engine,
              "service": {"dist": "constant", "value": 50_000}}
    data["devices"] = [{"name": "first", "dev_num": 1, **device}, {"name": "second", "dev_num": 2, **device}]
    data["workloads"] = [{"name": f"to-{name}", "device": name, "requests": 1, "start": 1_000_000,
                          "arrivals": {"kind": "constant", "rate": "1 kHz"}} for name in ("first", "second")]
    return data


def service_windows(data: dict) -> dict[str, tuple[int, int]]:
    _, output = run(data)
    rows = output.requests.columns()
    return {device.split(".")[-1]: (int(start), int(start + service))
            for device, start, service in zip(rows["device"], rows["start_ns"], rows["service_ns"])}


def test_two_devices_on_one_bus_share_its_device_core_unless_they_serve_in_hardware():
    """The bus's device side is one core: the second device serves only once the first has finished.
    With `engine: hardware` the core only reads the buffers and the two services overlap."""
    on_core = service_windows(two_devices("cpu"))
    assert on_core["second"][0] >= on_core["first"][1]
    in_hardware = service_windows(two_devices("hardware"))
    assert in_hardware["second"][0] < in_hardware["first"][1]
    assert in_hardware["second"][1] < on_core["second"][1] - 40_000


def test_payload_copies_are_charged_on_each_side_in_the_direction_the_payload_moves():
    """With `data: copy` on both sides, to-device: the driver writes the payload into shared memory and the
    device reads it, before the service; from-device: the device writes it and the driver reads it, after;
    both: all four. Each copy is charged on its own side's memory, line by line."""
    copying = {"data": "copy"}
    driver_writes = device_writes = write(SIZE)
    device_reads = driver_reads = read(SIZE)
    for payload, expected in [("to-device", (driver_writes + device_reads, 0)),
                              ("from-device", (0, device_writes + driver_reads)),
                              ("both", (driver_writes + device_reads, device_writes + driver_reads))]:
        assert added(one_request(payload, driver=copying, device=copying), one_request(payload)) == expected
    assert added(one_request("to-device", driver=copying), one_request()) == (driver_writes, 0)
    assert added(one_request("from-device", device=copying), one_request("from-device")) == (0, device_writes)


def test_a_software_path_is_charged_once_per_request_on_its_own_side():
    """The driver's path hands each request over (submit, and its own copy of outbound payload at
    `copy_rate`) and back (complete, and its copy of inbound payload); the device's task is woken for each
    buffer (complete) and replies (submit). Three requests alone on the bus add exactly three times that to
    each side's core, and nothing to the other side's."""
    software = {"software": {"app": {"submit": 1000, "complete": 2000, "copy_rate": "1 GB/s"},
                             "task": {"submit": 300, "complete": 400}}}
    copy = SIZE  # 512 bytes at 1 GB/s
    assert added(one_request(driver={"software": "app"}, platform=software), one_request()) == (1000 + copy, 2000)
    assert added(one_request("from-device", driver={"software": "app"}, platform=software),
                 one_request("from-device")) == (1000, 2000 + copy)
    assert added(one_request(device={"software": "task"}, platform=software), one_request()) == (400, 300)

    def busy(data):
        model, _ = run(data)
        return {name: processor.busy_ns(model.sim.env.now) for name, processor in model.processors.items()}

    baseline = busy(one_request(requests=3))
    with_app = busy(one_request("both", driver={"software": "app"}, platform=software, requests=3))
    with_task = busy(one_request(device={"software": "task"}, platform=software, requests=3))
    baseline_both = busy(one_request("both", requests=3))
    assert with_app["linux.cpu"] - baseline_both["linux.cpu"] == 3 * (1000 + 2000 + 2 * copy)
    assert with_app["amp0.device_cpu"] == baseline_both["amp0.device_cpu"]
    assert with_task["amp0.device_cpu"] - baseline["amp0.device_cpu"] == 3 * (400 + 300)
    assert with_task["linux.cpu"] == baseline["linux.cpu"]


def test_a_receive_handler_pre_empts_the_device_s_service_on_its_core():
    """A second device's request arrives while the first device serves for 100 us: the bus's device core
    takes its EVENT_AVAIL at once, as interrupt work, and the first service resumes one handler later. The
    second device (a hardware engine: no service time on the core) pops its buffer and pushes its used entry
    as thread work, each queued just before a step of the first device's reply: so the first request
    completes exactly one handler, one pop and one used push later than it would alone. When the first
    device serves in hardware, its service holds no core and it is not delayed at all."""
    pop = read(2 + 2 + 16)  # avail idx, avail slot, descriptor
    push = write(8 + 2) + read(2)  # used element and idx, used_event

    def first_complete(with_second: bool, engine: str) -> int:
        data = one_request(device={"engine": engine, "service": {"dist": "constant", "value": 100_000}})
        if with_second:
            data["devices"].append({"name": "second", "bus": "amp0", "dev_num": 2, "cpu": "little",
                                    "engine": "hardware", "service": {"dist": "constant", "value": 0}})
            data["workloads"].append({"name": "two", "device": "second", "requests": 1, "start": 1_050_000,
                                      "arrivals": {"kind": "constant", "rate": "1 kHz"}})
        _, output = run(data)
        rows = output.requests.columns()
        return int(rows["complete_ns"][list(rows["device"]).index("amp0.dev")])

    assert first_complete(True, "cpu") - first_complete(False, "cpu") == HANDLER + pop + push
    assert first_complete(True, "hardware") == first_complete(False, "hardware")


def test_the_summary_lists_each_core_with_its_utilisation_never_above_one():
    """A closed loop keeps the little device core busy most of the time; the summary names both cores,
    each at most 100 % busy, and counts the interrupt work the receive handlers did."""
    _, output = run(scenario_dict())
    processors = summarize(output, wall_seconds=0.0, version="test")["processors"]
    assert set(processors) == {"linux.cpu", "amp0.device_cpu"}
    for entry in processors.values():
        assert entry["cores"] == 1
        assert 0 < entry["utilisation"] <= 1
        assert entry["busy_ns"] <= output.sim_time_ns
        assert entry["irq_items"] > 0 and entry["work_items"] > 0
    assert processors["amp0.device_cpu"]["utilisation"] > 0.5


def test_a_device_s_software_copies_its_payload_at_its_copy_rate():
    """An echo of 1,000 bytes through a device whose software copies at 1 GB/s (1 ns a byte) in and out:
    2,000 ns more on the device's core than without the copy rate."""
    def device_busy(copy_rate):
        data = scenario_dict(workloads=[{"name": "load", "device": "dev", "payload": "both",
                                         "arrivals": {"kind": "closed", "outstanding": 1},
                                         "size": {"dist": "constant", "value": "1000 B"}, "requests": 1}])
        data["platform"]["software"] = {"app": {"copy_rate": copy_rate} if copy_rate else {}}
        data["devices"][0]["software"] = "app"
        _, output = run(data)
        return output.processors["amp0.device_cpu"]["by_activity_ns"].get("software", 0)

    assert device_busy("1 GB/s") - device_busy(None) == 2_000
