"""The conformance monitor: each rule catches a frame log broken on purpose, every shipped scenario keeps every
rule, and `vmsim check` reads frame logs, Linux dynamic-debug captures (frames cut at 40 bytes) and results.

The broken logs start from one well-behaved exchange (`good_flow`: discovery, the virtio 1.x initialisation
with a reset first, feature negotiation, a queue, DRIVER_OK, notifications, a ring reset, a PING) and change
one thing, so each test reads as "this one step is wrong, and that rule (only that rule) says so".
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

import pytest
import yaml

from vmsim import pipeline
from vmsim.analysis.conformance import ConformanceMonitor, conformance_check, rules_markdown
from vmsim.analysis.conformance.capture import CaptureError, read_capture
from vmsim.analysis.conformance.command import check_source
from vmsim.analysis.conformance.frames import chunk_from_columns
from vmsim.analysis.conformance.rules import RULE_IDS
from vmsim.cli import main
from vmsim.wire import get_layout
from vmsim.wire.virtio import ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
INIT = ACKNOWLEDGE | DRIVER
RING_RESET = 1 << 8  # feature bit 40, in block 1


class Flow:
    """A frame log written frame by frame: `exchange` puts a request and its answer on the bus, `event` one
    notification; `text()` is the log in vmsim's frame-log format."""

    def __init__(self, layout: str = "v1"):
        self.layout = get_layout(layout)
        self.name = layout
        self.lines: list[str] = []
        self.time = 0
        self.token = 2

    def frame(self, to_device: bool, data: bytes) -> None:
        self.time += 1000
        way = "to-device" if to_device else "to-driver"
        self.lines.append(f"{self.time} {way} bus0 {self.name} {data.hex()}")

    def exchange(self, name: str, ask: dict, answer: dict | None, dev: int = 1, token: int | None = None,
                 answer_token: int | None = None) -> None:
        token = self.token if token is None else token
        self.token += 1
        self.frame(True, self.layout.encode(name, "request", ask, dev, token))
        if answer is not None:
            reply = token if answer_token is None else answer_token
            self.frame(False, self.layout.encode(name, "response", answer, dev, reply))

    def status(self, status: int, dev: int = 1, kept: int | None = None) -> None:
        self.exchange("SET_DEVICE_STATUS", {"status": status}, {"status": status if kept is None else kept}, dev)

    def event(self, name: str, fields: dict, dev: int = 1, token: int = 0) -> None:
        to_device = name == "EVENT_AVAIL"
        self.frame(to_device, self.layout.encode(name, "event", fields, dev, token))

    def bus_event(self, name: str, fields: dict) -> None:
        self.frame(False, self.layout.encode(name, "event", fields, 0, 0))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def discover(flow: Flow) -> None:
    flow.exchange("GET_DEVICES", {"offset": 0, "count": 8},
                  {"offset": 0, "count": 8, "next_offset": 0, "bitmap": b"\x02"}, dev=0)
    flow.exchange("GET_DEVICE_INFO", {}, {"device_id": 1, "vendor_id": 0x554D4551, "num_feature_bits": 64,
                                          "config_size": 8, "max_virtqueues": 1, "admin_vq_start": 0,
                                          "admin_vq_count": 0})


def negotiate(flow: Flow, accept: tuple[int, int] = (0x20, 1 | RING_RESET)) -> None:
    flow.exchange("GET_DEVICE_FEATURES", {"block_index": 0, "num_blocks": 2},
                  {"block_index": 0, "num_blocks": 2, "features": [0x30, 1 | RING_RESET]})
    flow.exchange("SET_DRIVER_FEATURES", {"block_index": 0, "num_blocks": 2, "features": list(accept)}, {})


def set_queue(flow: Flow) -> None:
    flow.exchange("GET_VQUEUE", {"index": 0}, {"index": 0, "max_size": 256, "cur_size": 0, "desc_addr": 0,
                                               "driver_addr": 0, "device_addr": 0})
    flow.exchange("SET_VQUEUE", {"index": 0, "size": 256, "desc_addr": 0x1000, "driver_addr": 0x2000,
                                 "device_addr": 0x3000}, {})


def driven(*, discovered: bool = True) -> Flow:
    """A flow up to the driver's DRIVER bit in the virtio 1.x order: discovery (unless not `discovered`), a
    reset, ACKNOWLEDGE, then DRIVER, each its own write."""
    flow = Flow()
    if discovered:
        discover(flow)
    flow.status(0)
    flow.status(ACKNOWLEDGE)
    flow.status(INIT)
    return flow


def good_flow(*, driver_ok: bool = True) -> Flow:
    """Discovery, initialisation in the virtio 1.x order, I/O, a ring reset and a keepalive: every rule's
    subject appears once, and no rule is broken."""
    flow = driven()
    negotiate(flow)
    flow.status(INIT | FEATURES_OK)
    set_queue(flow)
    if driver_ok:
        flow.status(INIT | FEATURES_OK | DRIVER_OK)
        flow.event("EVENT_AVAIL", {"vq_index": 0, "next_offset": 0})
        flow.event("EVENT_USED", {"vq_index": 0})
        flow.exchange("RESET_VQUEUE", {"index": 0}, {})
        flow.exchange("PING", {"data": 7}, {"data": 7}, dev=0)
    return flow


def violated(flow: Flow, tmp_path: Path) -> dict[str, int]:
    path = tmp_path / "frames.log"
    path.write_text(flow.text())
    report = check_source(path)
    return {rule: entry["violations"] for rule, entry in report["rules"].items() if entry["violations"]}


def test_a_well_behaved_exchange_checks_every_rule_and_breaks_none(tmp_path):
    """The baseline every broken log below departs from: each rule judged something, none found fault."""
    path = tmp_path / "frames.log"
    path.write_text(good_flow().text())
    report = check_source(path)
    assert report["status"] == "ok", report["violations"]
    assert [rule for rule, entry in report["rules"].items() if not entry["checked"]] == []


# -- one broken log per rule -----------------------------------------------------------------------------


def test_frame_layout_catches_a_msg_size_that_is_not_the_messages_size(tmp_path):
    flow = good_flow()
    flow.frame(True, bytes.fromhex("0041010000000c000000000000000000"))  # EVENT_AVAIL claiming 12 bytes, 16 sent
    assert violated(flow, tmp_path) == {"frame-layout": 1}


def test_frame_layout_catches_reserved_type_bits_and_unknown_message_ids(tmp_path):
    flow = good_flow()
    flow.frame(True, bytes.fromhex("0442010000000c0000000000"))  # type bit 2 set
    flow.frame(True, bytes.fromhex("003f010009000800"))  # no transport request 0x3f
    assert violated(flow, tmp_path) == {"frame-layout": 2}


def test_bus_messages_must_carry_dev_num_zero(tmp_path):
    flow = good_flow()
    flow.exchange("PING", {"data": 1}, {"data": 1}, dev=3)
    assert violated(flow, tmp_path) == {"bus-message-dev-num": 2}


def test_a_request_from_the_device_side_is_caught(tmp_path):
    """GET_CONFIG is a driver's request; the device side sending it is out of place (its answer then
    answers nothing the driver asked: pairing says so too)."""
    flow = good_flow()
    flow.frame(False, get_layout("v1").encode("GET_CONFIG", "request", {"offset": 0, "length": 4}, 1, 40))
    assert violated(flow, tmp_path) == {"sender": 1}


def test_a_response_nobody_asked_for_and_one_that_overtakes_are_caught(tmp_path):
    flow = good_flow()
    v1 = get_layout("v1")
    flow.frame(False, v1.encode("GET_DEVICE_STATUS", "response", {"status": 15}, 1, 50))  # unsolicited
    flow.frame(True, v1.encode("GET_CONFIG", "request", {"offset": 0, "length": 4}, 1, 51))
    flow.frame(True, v1.encode("GET_DEVICE_STATUS", "request", {}, 1, 52))
    flow.frame(False, v1.encode("GET_DEVICE_STATUS", "response", {"status": 15}, 1, 52))  # overtakes GET_CONFIG
    assert violated(flow, tmp_path) == {"response-pairing": 2}


def test_tokens_are_echoed_by_responses_and_zero_in_events(tmp_path):
    flow = good_flow()
    flow.exchange("GET_DEVICE_STATUS", {}, {"status": 15}, token=60, answer_token=61)
    flow.event("EVENT_USED", {"vq_index": 0}, token=9)
    assert violated(flow, tmp_path) == {"tokens": 2}


def test_acknowledge_without_a_reset_first_is_caught(tmp_path):
    """virtio 1.x §3.1.1 step 1: the driver resets the device before it sets ACKNOWLEDGE."""
    flow = Flow()
    discover(flow)
    flow.status(ACKNOWLEDGE)
    assert violated(flow, tmp_path) == {"reset-before-acknowledge": 1}


def test_acknowledge_and_driver_in_one_write_and_a_cleared_bit_are_caught(tmp_path):
    flow = Flow()
    discover(flow)
    flow.status(0)
    flow.status(INIT)  # DRIVER in the same write as ACKNOWLEDGE
    flow.status(ACKNOWLEDGE)  # clears DRIVER without a reset
    assert violated(flow, tmp_path) == {"status-order": 2}


def test_driver_ok_before_the_device_kept_features_ok_is_caught(tmp_path):
    flow = driven()
    negotiate(flow)
    flow.status(INIT | FEATURES_OK, kept=INIT)  # the device refuses the features
    flow.status(INIT | FEATURES_OK | DRIVER_OK)
    assert violated(flow, tmp_path) == {"status-order": 1}


def test_features_before_device_info_are_caught(tmp_path):
    flow = driven(discovered=False)
    negotiate(flow)
    assert violated(flow, tmp_path) == {"device-info-first": 2}


def test_features_set_after_features_ok_are_caught(tmp_path):
    flow = good_flow(driver_ok=False)
    flow.exchange("SET_DRIVER_FEATURES", {"block_index": 0, "num_blocks": 1, "features": [0x20]}, {})
    assert violated(flow, tmp_path) == {"features-before-features-ok": 1}


def test_features_the_device_did_not_offer_are_caught(tmp_path):
    flow = driven()
    negotiate(flow, accept=(0x20 | 0x4, 1))  # bit 2 was not offered (0x30)
    assert violated(flow, tmp_path) == {"features-subset": 1}


def test_a_queue_set_before_features_ok_is_caught(tmp_path):
    flow = driven()
    negotiate(flow)
    set_queue(flow)
    assert violated(flow, tmp_path) == {"queues-after-features-ok": 1}


def test_reset_vqueue_without_ring_reset_negotiated_is_caught(tmp_path):
    flow = driven()
    negotiate(flow, accept=(0x20, 1))  # VIRTIO_F_RING_RESET offered, not accepted
    flow.status(INIT | FEATURES_OK)
    set_queue(flow)
    flow.status(INIT | FEATURES_OK | DRIVER_OK)
    flow.exchange("RESET_VQUEUE", {"index": 0}, {})
    assert violated(flow, tmp_path) == {"ring-reset-negotiated": 1}


def test_an_inactive_device_gets_only_info_and_status_and_sends_no_config_event(tmp_path):
    """PR28: GET_DEVICE_INFO is the only message before the device leaves the inactive state (status 0);
    reading the status back after a reset is the other the spec asks for."""
    flow = Flow()
    discover(flow)
    flow.status(0)
    flow.exchange("GET_DEVICE_STATUS", {}, {"status": 0})
    flow.exchange("GET_CONFIG", {"offset": 0, "length": 4}, {"generation": 0, "offset": 0, "length": 4,
                                                             "data": b"abcd"})
    flow.event("EVENT_CONFIG", {"device_status": 0, "generation": 1, "offset": 0, "length": 0, "data": b""})
    assert violated(flow, tmp_path) == {"inactive-device": 2}


def test_notifications_before_driver_ok_are_caught(tmp_path):
    flow = good_flow(driver_ok=False)
    flow.event("EVENT_AVAIL", {"vq_index": 0, "next_offset": 0})
    flow.event("EVENT_USED", {"vq_index": 0})
    assert violated(flow, tmp_path) == {"events-after-driver-ok": 2}


def test_an_avail_after_the_driver_reset_the_device_is_caught(tmp_path):
    """Writing 0 stops the device: the driver has nothing to notify until it initialised it again."""
    flow = good_flow()
    flow.status(0)
    flow.event("EVENT_AVAIL", {"vq_index": 0, "next_offset": 0})
    assert violated(flow, tmp_path) == {"events-after-driver-ok": 1}


def test_traffic_to_a_removed_device_is_caught_until_it_is_added_again(tmp_path):
    """The race of issue 15: the driver notified a device 500 ns after EVENT_DEVICE(REMOVED) reached it."""
    flow = good_flow()
    flow.bus_event("EVENT_DEVICE", {"device_number": 1, "device_bus_state": 2})
    flow.event("EVENT_AVAIL", {"vq_index": 0, "next_offset": 0})
    flow.bus_event("EVENT_DEVICE", {"device_number": 1, "device_bus_state": 1})
    discover(flow)
    flow.status(0)
    assert violated(flow, tmp_path) == {"no-traffic-after-removal": 1, "events-after-driver-ok": 1}


def test_a_ping_answer_must_echo_its_data(tmp_path):
    flow = good_flow()
    flow.exchange("PING", {"data": 5}, {"data": 6}, dev=0)
    assert violated(flow, tmp_path) == {"ping-echo": 1}


# -- runs ------------------------------------------------------------------------------------------------

def is_scenario(path: str) -> bool:
    """A scenario file (scenarios/ also holds comparison files, which name a scenario instead)."""
    return "devices" in (yaml.safe_load(Path(path).read_text()) or {})


SHIPPED = sorted(path for path in glob.glob(str(ROOT / "scenarios" / "**" / "*.yaml"), recursive=True)
                 if "/bench/" not in path and is_scenario(path))

@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: str(Path(path).relative_to(ROOT / "scenarios")))
def test_every_shipped_scenario_keeps_every_rule(path):
    """A short run of each scenario (init, I/O and whatever it exercises in 5 ms: the lifecycle scenarios'
    hot-plug, removal, resets, keepalive and injected faults) breaks no rule."""
    ran = pipeline.run(path, ["duration=5ms"])
    report = conformance_check(ran.output.events)
    assert report["violations"] == []
    assert report["frames"] > 0


def test_the_removal_race_of_issue_15_stays_gone():
    """ffa-optee-vsock with its device hot-plugged at 1 ms and removed at 3 ms (the issue's settings, shorter):
    both EVENT_DEVICEs cross the bus, and nothing reaches the device after the driver heard of its removal."""
    ran = pipeline.run(ROOT / "scenarios" / "ffa-optee-vsock.yaml",
                       ["devices[0].added_at=1ms", "devices[0].removed_at=3ms", "duration=5ms"])
    report = conformance_check(ran.output.events)
    assert list(ran.output.events.columns()["msg_name"]).count("EVENT_DEVICE") == 4  # READY, REMOVED: tx and rx
    assert report["violations"] == []
    assert report["rules"]["no-traffic-after-removal"]["checked"] > 0


@pytest.fixture(scope="module")
def ffa_run():
    return pipeline.run(ROOT / "scenarios" / "ffa-optee-vsock.yaml", ["duration=3ms"])


def test_a_run_read_back_from_its_table_in_pieces_gives_the_same_report(ffa_run):
    """A streamed log is judged a row group at a time: the state carried between pieces (outstanding
    requests, statuses) gives the report of the whole log, layouts inferred from the table's names."""
    whole = conformance_check(ffa_run.output.events)
    columns = ffa_run.output.events.columns()
    monitor = ConformanceMonitor()
    known: dict[str, str] = {}
    size = 97
    for first in range(0, len(columns["time_ns"]), size):
        piece = {name: values[first:first + size] for name, values in columns.items()}
        monitor.feed(chunk_from_columns(piece, first, None, known))
    assert known == {"ffa0": "ffa-2026"}
    assert monitor.report() == whole
    assert whole["rules"]["response-pairing"]["checked"] > 50


def test_a_run_dumped_as_a_frame_log_checks_the_same(ffa_run, tmp_path):
    """`vmsim check --dump` writes what it read in the documented format; checking that file again gives
    the same counts, and the same rows (now line numbers, one header line above)."""
    import pyarrow.parquet as pq

    from vmsim.tables import events_table

    pq.write_table(events_table(ffa_run.output), tmp_path / "events.parquet")
    first = check_source(tmp_path, dump=tmp_path / "frames.log")
    again = check_source(tmp_path / "frames.log")
    assert again["rules"] == first["rules"] == conformance_check(ffa_run.output.events)["rules"]
    assert (tmp_path / "frames.log").read_text().startswith("# vmsim frame log")


# -- captures --------------------------------------------------------------------------------------------


def test_a_dyndbg_capture_is_read_and_frames_cut_at_40_bytes_are_not_checkable():
    """Linux prints `%40ph`: a GET_VQUEUE answer or SET_VQUEUE request (48 bytes) loses its last 8, so their
    layout cannot be judged whole; their header still is (sizes, pairing, tokens), and the rest of the flow is."""
    chunk = read_capture(DATA / "conformance-dyndbg.log")
    assert chunk.buses == ["virtio-msg-amp_0000:00:03.0"]
    assert (chunk.length == 40).sum() == 2
    monitor = ConformanceMonitor()
    monitor.feed(chunk)
    report = monitor.report()
    assert report["status"] == "ok", report["violations"]
    assert report["rules"]["frame-layout"]["not_checkable"] == 2
    assert report["rules"]["status-order"]["checked"] == 4
    assert report["rules"]["events-after-driver-ok"]["checked"] == 2
    assert chunk.time[0] == 12_345_678_000


def test_a_cut_frame_whose_header_gives_the_wrong_size_still_fails(tmp_path):
    """What a cut frame shows is judged: a SET_VQUEUE whose header says 52 bytes is wrong whatever was cut."""
    text = (DATA / "conformance-dyndbg.log").read_text()
    path = tmp_path / "dmesg.log"
    path.write_text(text.replace("TX MSG: 00 0a 01 00 0b 00 30 00", "TX MSG: 00 0a 01 00 0b 00 34 00"))
    monitor = ConformanceMonitor()
    monitor.feed(read_capture(path))
    assert monitor.report()["rules"]["frame-layout"]["violations"] == 1


@pytest.mark.parametrize(("line", "problem"), [
    ("1000 to-device bus0 v1", "expected 'time direction bus layout frame'"),
    ("soon to-device bus0 v1 00020000", "time"),
    ("1000 sideways bus0 v1 00020000", "direction 'sideways'"),
    ("1000 to-device bus0 v9 00020000", "unknown layout 'v9'"),
    ("1000 to-device bus0 v1 00zz", "frame is not hex"),
])
def test_a_bad_frame_log_line_is_named_by_file_and_line(tmp_path, line, problem):
    path = tmp_path / "bad.log"
    path.write_text("# a capture\n" + line + "\n")
    with pytest.raises(CaptureError, match=re.escape(f"{path}:2: ") + ".*" + re.escape(problem)):
        read_capture(path)


def test_a_bad_dyndbg_line_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "dmesg.log"
    path.write_text("[    1.000000] virtio-msg-amp 0000:00:03.0: TX MSG: 00 02 00 00\n"
                    "[    1.000100] virtio-msg-amp 0000:00:03.0: RX MSG: 01 0g\n")
    with pytest.raises(CaptureError, match=re.escape(f"{path}:2: RX MSG is not followed by hex bytes")):
        read_capture(path)


def test_vmsim_check_exits_0_when_clean_1_on_violations_2_on_bad_input(tmp_path, capsys):
    good, bad, broken = tmp_path / "good.log", tmp_path / "bad.log", tmp_path / "broken.log"
    good.write_text(good_flow().text())
    flow = good_flow()
    flow.exchange("PING", {"data": 5}, {"data": 6}, dev=0)
    bad.write_text(flow.text())
    broken.write_text("1000 to-device bus0 v1\n")
    assert [exit_status(["check", str(path)]) for path in (good, bad, broken)] == [0, 1, 2]
    out, err = capsys.readouterr()
    assert "ping-echo" in out and "PING data 0x6, asked 0x5" in out
    expected = f"vmsim: error: {broken}:1: expected 'time direction bus layout frame', got 4 field(s)"
    assert err.strip().splitlines() == [expected]


def exit_status(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code
    return 0


def test_the_docs_show_the_rules_table():
    docs = (ROOT / "docs" / "conformance.md").read_text()
    assert rules_markdown() in docs
    assert all(f"`{rule}`" in docs for rule in RULE_IDS)


def test_a_broken_rule_fails_the_runs_check_and_the_report_names_it():
    """summary.json's `check` gets the conformance report beside the other checks, and one entry in
    `checks` so that the one-screen report of `vmsim run` lists the violation as it lists the others'."""
    from vmsim.analysis.conformance import with_conformance
    from vmsim.summary_report import format_check

    flow = good_flow()
    flow.exchange("PING", {"data": 5}, {"data": 6}, dev=0)
    rows = [line.split() for line in flow.lines]
    columns = {  # each frame as a run logs it: sent (tx), then delivered (rx)
        "time_ns": [int(time) + step for time, *_ in rows for step in (0, 10)],
        "component": [f"bus0.{way.replace('-', '_')}" for _, way, *_ in rows for _ in (0, 1)],
        "event": ["tx", "rx"] * len(rows),
        "bus": ["bus0"] * 2 * len(rows),
        "wire": [bytes.fromhex(data) for *_, data in rows for _ in (0, 1)],
    }
    check = with_conformance({"status": "ok", "checks": []}, columns)
    assert check["status"] == "failed"
    assert check["conformance"]["rules"]["ping-echo"]["violations"] == 1
    assert format_check(check) == [
        "CHECK FAILED (rows are events.parquet row numbers)",
        "  conformance: 1 violation(s)",
        f"    row {2 * len(rows) - 2} ({int(rows[-1][0])} ns) bus bus0 dev 0: ping-echo: PING data 0x6, asked 0x5",
    ]


def test_a_streamed_runs_monitor_fed_a_row_group_at_a_time_reports_as_the_whole_log(tmp_path):
    """A written run's monitor is fed each events row group by the spill's writer thread as it is written: its
    report, the row numbers of its violations included, is the one the whole log gives."""
    from vmsim.sim.log import EventLog, RequestLog
    from vmsim.spill import LogSpill

    flow = good_flow()
    flow.exchange("PING", {"data": 5}, {"data": 6}, dev=0)

    def logged(log: EventLog) -> EventLog:
        bus = log.add_bus("bus0", "v1")
        for line in flow.lines:
            time_ns, way, _bus, _layout, data = line.split()
            component = log.components(f"bus0.{way.replace('-', '_')}")
            for step, event in ((0, "tx"), (10, "rx")):
                log.frame(int(time_ns) + step, component, log.events(event), bus, -1, bytes.fromhex(data))
        return log

    whole = conformance_check(logged(EventLog()))
    spill = LogSpill(tmp_path, rows=7)
    events, requests = EventLog(), RequestLog()
    spill.attach(events, requests)
    logged(events)
    spill.finish(events, requests)
    streamed = spill.conformance.report()
    assert streamed == whole
    assert streamed["rules"]["ping-echo"]["violations"] == 1
    assert streamed["violations"][0]["row"] == 2 * len(flow.lines) - 2
