"""trace.perfetto-trace: Perfetto's protobuf trace, read back, says what the JSON trace of one run says."""

import json
import struct
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import pytest

import vmsim
from vmsim.errors import VmsimError
from vmsim.trace import write_trace
from vmsim.trace.proto import bytes_field, fixed64_field, string_field, varint, varint_field

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "bench" / "amp-closed-loop.yaml"


# --- a decoder of the wire format, independent of the encoder -----------------------------------


def read_varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, offset


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """A message's fields in order, (number, value): varints as ints, fixed64 as unsigned ints, else bytes."""
    out, offset = [], 0
    while offset < len(data):
        tag, offset = read_varint(data, offset)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, offset = read_varint(data, offset)
        elif wire_type == 1:
            value, offset = struct.unpack_from("<Q", data, offset)[0], offset + 8
        elif wire_type == 2:
            length, offset = read_varint(data, offset)
            value, offset = data[offset:offset + length], offset + length
        else:
            raise AssertionError(f"wire type {wire_type} at byte {offset}")
        out.append((number, value))
    return out


def first(message: list, number: int, default=None):
    return next((value for field, value in message if field == number), default)


def signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


# --- the two traces of one run, reduced to what a reader sees ------------------------------------


def json_view(document: dict) -> dict:
    """Tracks, slices, spans, flows and arguments of a Chrome trace-event document."""
    events = document["traceEvents"]
    processes = {event["pid"]: event["args"]["name"] for event in events if event["name"] == "process_name"}
    threads = {event["tid"]: (processes[event["pid"]], event["args"]["name"]) for event in events
               if event["name"] == "thread_name"}
    slices, spans, flows, args, begun, busy = [], [], defaultdict(list), {}, {}, []
    for event in (event for event in events if event["ph"] != "M"):
        ns = round(event["ts"] * 1000)
        if event.get("dur"):
            busy.append((threads[event["tid"]], event["name"], ns, round((event["ts"] + event["dur"]) * 1000)))
        elif event["ph"] in ("X", "i"):
            slices.append((threads[event["tid"]], event["name"], ns))
            args[slices[-1]] = {name: value for name, value in event["args"].items() if value is not None}
            if "bind_id" in event:
                ends = event.get("flow_in", False) and not event.get("flow_out", False)
                flows[event["bind_id"]].append((event["name"], ns, ends))
        elif event["ph"] == "b":
            begun[event["id"]] = ns
        else:
            spans.append((processes[event["pid"]], event["name"], begun.pop(event["id"]), ns))
    return {"processes": set(processes.values()), "threads": set(threads.values()), "slices": slices,
            "spans": sorted(spans), "flows": sorted(flows.values()), "args": args, "busy": sorted(busy)}


def proto_view(data: bytes) -> dict:
    """The same reduction of a Perfetto protobuf trace, decoded field by field."""
    packets = [fields(packet) for number, packet in fields(data) if number == 1]
    tracks, processes, threads, lane_parent = {}, {}, {}, {}
    slices, spans, flows, args, open_spans, busy = [], [], defaultdict(list), {}, {}, []
    for packet in packets:
        assert first(packet, 10) == 1, "every packet on trusted sequence 1"
        descriptor = first(packet, 60)
        if descriptor is not None:
            descriptor = fields(descriptor)
            uuid = first(descriptor, 1)
            if first(descriptor, 3) is not None:
                process = fields(first(descriptor, 3))
                processes[first(process, 1)] = first(process, 6).decode()
                tracks[uuid] = ("process", first(process, 1))
            elif first(descriptor, 4) is not None:
                thread = fields(first(descriptor, 4))
                threads[uuid] = (processes[first(thread, 1)], first(thread, 5).decode())
            else:
                lane_parent[uuid] = tracks[first(descriptor, 5)][1]
            continue
        event = fields(first(packet, 11))
        ns, track, kind = first(packet, 8), first(event, 11), first(event, 9)
        name = first(event, 23, b"").decode()
        if kind == 3:  # TYPE_INSTANT
            slices.append((threads[track], name, ns))
            args[slices[-1]] = {first(annotation, 10).decode(): _annotation_value(annotation)
                                for annotation in (fields(value) for number, value in event if number == 4)}
            for number, flow in event:
                if number in (47, 48):  # flow_ids, terminating_flow_ids
                    flows[flow].append((name, ns, number == 48))
        elif kind == 1:  # TYPE_SLICE_BEGIN
            assert track not in open_spans, "a track holds one open slice at a time"
            open_spans[track] = (name, ns)
        else:
            assert kind == 2
            begun_name, begun = open_spans.pop(track)
            if track in threads:  # a core's busy period
                busy.append((threads[track], begun_name, begun, ns))
            else:
                spans.append((processes[lane_parent[track]], begun_name, begun, ns))
    return {"processes": set(processes.values()), "threads": set(threads.values()), "slices": slices,
            "spans": sorted(spans), "flows": sorted(flows.values()), "args": args, "busy": sorted(busy)}


def _annotation_value(annotation: list):
    for number, value in annotation:
        if number == 4:
            return signed(value)
        if number == 2:
            return bool(value)
        if number == 6:
            return value.decode()
    raise AssertionError(f"no value in {annotation}")


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    """A small run of a shipped scenario written both ways."""
    result = vmsim.run(SCENARIO, set=["workloads.closed.requests=40"], write=False)
    folder = tmp_path_factory.mktemp("traces")
    notes = {trace_format: write_trace(result.output, folder, events=result.events_table, limit=200_000,
                                       requests=result.requests_table, trace_format=trace_format)
             for trace_format in ("json", "perfetto")}
    return (json_view(json.loads((folder / "trace.json").read_text())),
            proto_view((folder / "trace.perfetto-trace").read_bytes()), notes)


def test_the_protobuf_trace_has_the_same_tracks_as_the_json_one(traces):
    """A process per bus and one for requests, a thread per logging component: the same names either way."""
    from_json, from_proto, _ = traces
    assert from_proto["processes"] == from_json["processes"]
    assert from_proto["threads"] == from_json["threads"]
    assert "requests" in from_proto["processes"] and len(from_proto["threads"]) > 3


def test_the_protobuf_trace_has_the_same_slices_at_the_same_nanoseconds(traces):
    """Every frame and mark, on the same track, with the same name, time and arguments (the frame's bytes
    in hex among them), in the same order; and each request's span from submit to completion."""
    from_json, from_proto, _ = traces
    assert from_proto["slices"] == from_json["slices"]
    assert from_proto["args"] == from_json["args"]
    assert from_proto["spans"] == from_json["spans"] and len(from_proto["spans"]) >= 40
    assert any("wire" in arguments for arguments in from_proto["args"].values())


def test_each_core_s_busy_periods_are_slices_on_its_own_track(traces):
    """The `cores` process holds a track per core, its slices the periods the core was busy without a gap:
    the same either way, never overlapping on one core."""
    from_json, from_proto, _ = traces
    assert from_proto["busy"] == from_json["busy"] and from_json["busy"]
    assert {thread for thread, *_ in from_json["busy"]} <= from_json["threads"]
    by_core = defaultdict(list)
    for (process, core), name, start, end in from_json["busy"]:
        assert process == "cores" and name == "busy" and start < end
        by_core[core].append((start, end))
    for periods in by_core.values():
        assert all(earlier[1] < later[0] for earlier, later in pairwise(periods))


def test_the_protobuf_trace_has_the_same_flows(traces):
    """Each request frame's chain tx -> rx -> response tx -> rx and each request's submit -> completion:
    the same hops in the same order, ended by a terminating flow id."""
    from_json, from_proto, _ = traces
    assert from_proto["flows"] == from_json["flows"]
    assert any(len(chain) == 4 for chain in from_proto["flows"])


def test_the_summary_note_gives_each_file_its_size_and_write_time(traces, tmp_path):
    """The summary's trace entry says which file, how many events and how big; protobuf is the smaller."""
    _, _, notes = traces
    assert notes["json"]["file"] == "trace.json" and notes["perfetto"]["file"] == "trace.perfetto-trace"
    for note in notes.values():
        assert set(note) == {"file", "events", "limit", "truncated", "bytes", "write_seconds"}
        assert note["write_seconds"] >= 0 and note["truncated"] is False
    assert notes["json"]["events"] == notes["perfetto"]["events"]
    assert notes["perfetto"]["bytes"] < notes["json"]["bytes"]


def test_an_unknown_trace_format_is_a_user_error_before_simulating(monkeypatch):
    monkeypatch.setattr("vmsim.pipeline.simulate", lambda *args: pytest.fail("simulated before checking"))
    with pytest.raises(VmsimError, match="--trace-format: unknown format 'yaml' \\(one of perfetto, json\\)"):
        vmsim.run(SCENARIO, trace_format="yaml", write=False)


# --- the encoder against bytes worked out by hand ------------------------------------------------


def test_varints_carry_seven_bits_per_byte_least_significant_first():
    """300 = 0b10_0101100: 0xAC (low 7 bits, continuation set) then 0x02; a negative int64 is ten bytes."""
    assert varint(0) == b"\x00" and varint(127) == b"\x7f" and varint(128) == b"\x80\x01"
    assert varint(300) == b"\xac\x02"
    assert varint(16_384) == b"\x80\x80\x01"
    assert varint(-1) == b"\xff" * 9 + b"\x01"


def test_fields_are_a_key_then_a_value():
    """Key = number << 3 | wire type. TrackEvent.type = TYPE_INSTANT is field 9 varint: 0x48 0x03;
    TrackEvent.name (23, length-delimited) is key 0xBA 0x01 and a length; flow_ids (47, fixed64) is key
    0xF9 0x02 and eight little-endian bytes; a packet nesting a message is key, length, body."""
    assert varint_field(9, 3) == b"\x48\x03"
    assert string_field(23, "rx") == b"\xba\x01\x02rx"
    assert fixed64_field(47, 258) == b"\xf9\x02\x02\x01\x00\x00\x00\x00\x00\x00"
    assert bytes_field(11, varint_field(9, 3)) == b"\x5a\x02\x48\x03"
