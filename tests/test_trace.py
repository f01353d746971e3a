"""trace.json: a Chrome/Perfetto trace whose tracks, flows and bytes match the event log."""

import json

import handmade

from vmsim.sim.log import EventLog, RequestLog
from vmsim.sim.output import SimOutput
from vmsim.tables import events_table, requests_table
from vmsim.trace import build_trace, write_trace
from vmsim.wire import get_layout


def trace_of(output, limit=200_000):
    return build_trace(output, events_table(output), requests_table(output), limit)


def timeline(document):
    return [event for event in document["traceEvents"] if event["ph"] != "M"]


def test_trace_is_valid_json_with_named_processes_and_threads(tmp_path):
    """Every event sits on a pid/tid that a metadata event names: a process per bus and one for
    requests, a thread per logging component, so the Perfetto UI shows readable tracks."""
    output = handmade.output()
    note = write_trace(output, tmp_path, events=events_table(output), requests=requests_table(output),
                       limit=1_000, trace_format="json")
    document = json.loads((tmp_path / "trace.json").read_text())
    assert {key: note[key] for key in ("file", "events", "limit", "truncated", "bytes")} == {
        "file": "trace.json", "events": 31, "limit": 1_000, "truncated": False,
        "bytes": (tmp_path / "trace.json").stat().st_size}
    processes = {event["pid"]: event["args"]["name"] for event in document["traceEvents"]
                 if event["name"] == "process_name"}
    threads = {event["tid"]: event["args"]["name"] for event in document["traceEvents"]
               if event["name"] == "thread_name"}
    assert sorted(processes.values()) == ["bus amp0", "requests"]
    assert sorted(threads.values()) == ["amp0.to_device", "amp0.to_device.doorbell", "amp0.to_driver",
                                        "drv0 -> dev1"]
    for event in timeline(document):
        assert event["pid"] in processes and event["tid"] in threads


def test_frames_carry_their_bytes_and_microsecond_timestamps():
    """A frame is a zero-length slice named after its message, at ts = ns / 1000 (the format's
    unit is microseconds), with its exact bytes in hex; a doorbell is an instant event."""
    events = timeline(trace_of(handmade.output())[0])
    first = next(event for event in events if event.get("cat") == "frame")
    assert (first["name"], first["ph"], first["ts"], first["dur"]) == ("GET_DEVICE_STATUS", "X", 0.1, 0)
    assert bytes.fromhex(first["args"]["wire"]) == handmade.STATUS_REQUEST
    ring = next(event for event in events if event["name"] == "doorbell.ring")
    assert (ring["ph"], ring["ts"]) == ("i", 0.15)


def test_a_request_frame_flows_through_the_device_to_its_response():
    """One flow follows GET_DEVICE_STATUS: request tx -> request rx -> response tx -> response rx;
    the ends are flow_out / flow_in only, the middle hops both. EVENT_AVAIL has no response, so
    its flow is just tx -> rx."""
    frames = [event for event in timeline(trace_of(handmade.output())[0]) if event.get("cat") == "frame"]
    hops = [(event["name"], event["args"]["event"], event["bind_id"], event.get("flow_in", False),
             event.get("flow_out", False)) for event in frames]
    status = hops[0][2]
    avail = hops[4][2]
    assert status != avail
    assert hops == [
        ("GET_DEVICE_STATUS", "tx", status, False, True),
        ("GET_DEVICE_STATUS", "rx", status, True, True),
        ("GET_DEVICE_STATUS", "tx", status, True, True),
        ("GET_DEVICE_STATUS", "rx", status, True, False),
        ("EVENT_AVAIL", "tx", avail, False, True),
        ("EVENT_AVAIL", "rx", avail, True, False),
    ]


def test_responses_pair_with_requests_in_request_order():
    """Two outstanding GET_DEVICE_STATUS requests to the same device: the first response answers
    the first request (FIFO per bus, dev_num and message), whatever their tokens."""
    layout = get_layout("v1")
    log = EventLog()
    bus = log.add_bus("amp0", "v1")
    queue, tx = log.components("amp0.q"), log.events("tx")
    for time, kind, token in ((0, "request", 1), (10, "request", 2), (20, "response", 1), (30, "response", 2)):
        fields = {"status": 0} if kind == "response" else {}
        log.frame(time, queue, tx, bus, 1, layout.encode("GET_DEVICE_STATUS", kind, fields, dev_num=1,
                                                         token=token))
    output = SimOutput(scenario="pairs", seed=1, sim_time_ns=40, warmup_ns=0, events=log, requests=RequestLog())
    frames = timeline(trace_of(output)[0])
    by_token = {}
    for event in frames:
        by_token.setdefault(event["args"]["token"], set()).add(event["bind_id"])
    assert all(len(ids) == 1 for ids in by_token.values())
    assert by_token[1] != by_token[2]


def test_each_io_request_flows_from_submit_to_completion():
    """On the requests track every I/O request has a submit and a completion slice joined by one
    flow, plus an async span covering its whole latency."""
    events = [event for event in timeline(trace_of(handmade.output())[0]) if event.get("cat") == "request"]
    first = [event for event in events if event.get("args", {}).get("request_id") == 1 or event.get("id") == 1]
    by_name = {event["name"]: event for event in first}
    assert by_name["submit"]["bind_id"] == by_name["complete"]["bind_id"]
    assert by_name["submit"]["flow_out"] and by_name["complete"]["flow_in"]
    assert (by_name["submit"]["ts"], by_name["complete"]["ts"]) == (0.0, 0.1)
    assert [event["ph"] for event in first if event["name"] == "request 1"] == ["b", "e"]
    bind_ids = [event["bind_id"] for event in events if event["name"] == "submit"]
    frame_ids = {event["bind_id"] for event in timeline(trace_of(handmade.output())[0]) if "bind_id" in event
                 and event.get("cat") == "frame"}
    assert len(set(bind_ids)) == 6 and not frame_ids & set(bind_ids)


def test_a_long_run_is_truncated_to_its_first_events_and_says_so():
    """Above the limit the trace keeps the earliest events (where bring-up happens), never more
    than the limit, and reports the truncation for summary.json."""
    document, note = trace_of(handmade.output(), limit=10)
    events = timeline(document)
    assert note == {"events": len(events), "limit": 10, "truncated": True}
    assert 0 < len(events) <= 10
    assert max(event["ts"] for event in events) < 1.0
    assert document["otherData"]["truncated"] is True
