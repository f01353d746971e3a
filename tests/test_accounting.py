"""Accounting: the bytes, cache lines, doorbells and frames one request costs, counted by hand and compared
with what a run reports (summary.json's `accounting`, `vmsim.accounting`).

Each story runs a closed loop with one request outstanding, 256-byte requests and shared memory of 64-byte
lines, once with four requests and once with five: the difference is what one request costs in the steady
state, without the start-up (discovery, handshake) that the run's totals also hold. (The fifth request's
frames take the second element of each 8-element queue; the fourth's reply took the first, which on amp-2026
shares a line with the queue heads.) Ring and queue bytes are charged as the model charges them: a ring
step's bytes in one place as one access of as many lines as they start; a queue operation's bytes place by
place as its format lays them out, the reads (and the writes) that share a line being one access
(docs/queue-formats.md).
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from ffa_helpers import ffa_dict
from sim_helpers import run, scenario_dict
from test_xen import xen_dict

import vmsim
from vmsim.accounting import QUANTITIES, accounting, accounting_table, keys_table
from vmsim.sim.costs import MemoryCost
from vmsim.summary import summarize

LINES_OF_64 = {"line_bytes": 64, "read_per_line": 10, "write_per_line": 5}

# What every split-virtqueue request costs with event-index suppression (VIRTIO_F_RING_EVENT_IDX), in bytes
# read, bytes written and lines, by side:
# - the driver publishes: one 16-byte descriptor, the 2-byte avail entry and the 2-byte avail.idx written
#   (20 B, one line); it reads the device's avail_event to decide on a kick (2 B, one line). Reclaiming, it
#   reads used.idx (2), the 8-byte used element and used.idx again to find nothing more (2): 12 B, one line;
#   it writes used_event (2 B, one line); once the request is complete its handler looks at used.idx a last
#   time (2 B, one line). 16 read, 22 written, 5 lines.
# - the device pops: avail.idx (2), the avail entry (2) and the descriptor (16): 20 B read, one line (it does
#   not write avail_event: notifications are off while it drains). It returns the buffer: the 8-byte used
#   element and used.idx (10 B written, one line), and reads used_event to decide on an interrupt (2 B, one
#   line). Its drain ends on an empty pop (avail.idx, 2 B), turns kicks back on (avail_event, 2 B written)
#   and looks again (avail.idx, 2 B): 4 B read, one line, 2 B written, one line. 26 read, 12 written, 5 lines.
VIRTQUEUE = {"driver": (16, 22, 5), "device": (26, 12, 5)}

# In-band notification: each request is one EVENT_AVAIL to the device (the 8-byte v1 header, vq_index and
# next_offset: 16 B) and one EVENT_USED back (header and vq_index: 12 B). Each side pushes one frame, pops
# one and looks once more to find its queue empty. What that touches is the format's:
# - amp-2026: 16-bit indices, a peer's producer index (tail) and consumer index (head) in its 8-byte queue
#   head, both heads in one 64-byte line; elements from offset 80, so a 64-byte element covers two lines. A
#   push reads both indices (4 B, one line) and writes its frame (one line) and its tail (2 B, another
#   line); a pop reads both indices (one line) and the element (64 B, two lines) and writes its head (2 B);
#   the last look reads both indices (4 B). Driver: reads 4 + 4 + 64 + 4 = 76, writes 16 + 2 + 2 = 20,
#   3 + 4 + 1 = 8 lines; device: the same with its 12-byte frame.
# - spsc-2025 and spsc-2024: 32-bit indices, each on its own line; 64-byte slots on line boundaries. A push
#   reads its own index (4 B) and writes its frame and its index (4 B): three lines (its cached copy of the
#   consumer's index says there is room: no reload). A pop reads its own index, reloads the producer's (the
#   queue looked empty last time: 4 B on another line) and the slot (64 B), and writes its index (4 B): four
#   lines. The last look reads both indices again: two lines. Driver: reads 4 + 72 + 8 = 84, writes 20 + 4
#   = 24, 3 + 4 + 2 = 9 lines; device: the same with its 12-byte frame.
QUEUE_BY_FORMAT = {"amp-2026": {"driver": (76, 20, 8), "device": (76, 16, 8)},
                   "spsc-2025": {"driver": (84, 24, 9), "device": (84, 20, 9)},
                   "spsc-2024": {"driver": (84, 24, 9), "device": (84, 20, 9)}}
QUEUE = QUEUE_BY_FORMAT["amp-2026"]


def amp(queue_format: str = "amp-2026", memory: dict = LINES_OF_64, **bus) -> dict:
    data = scenario_dict()
    data["platform"]["memory"]["shared"] = dict(memory)
    data["buses"][0].update(queue_format=queue_format, **bus)
    return data


def one_request(make, bus: str) -> dict:
    """What the request after the fourth adds to `bus`'s accounting: {(region, side): (read, written, lines)}
    for every region it touched, and its doorbells, interrupts, polls and frames."""
    counts = []
    for requests in (4, 5):
        data = make()
        data["workloads"] = [{"name": "one", "device": data["devices"][0]["name"], "requests": requests,
                              "arrivals": {"kind": "closed", "outstanding": 1},
                              "size": {"dist": "constant", "value": 256}}]
        counts.append(_flat(accounting(run(data)[1])["buses"][bus]))
    added = {key: _minus(counts[1][key], counts[0][key]) for key in counts[0]}
    return {key: value for key, value in added.items() if value not in ((0, 0, 0), 0)}


def _minus(after, before):
    if isinstance(after, tuple):
        return tuple(a - b for a, b in zip(after, before))
    return after - before


def _flat(entry: dict) -> dict:
    flat = {(region, side): (traffic["bytes_read"], traffic["bytes_written"], traffic["cache_lines"])
            for region, sides in entry["regions"].items() for side, traffic in sides.items()}
    return flat | {name: entry["totals"][name] for name in ("doorbells", "interrupts", "polls", "frames")}


def regions(**by_region) -> dict:
    return {(region, side): counts for region, sides in by_region.items() for side, counts in sides.items()}


@pytest.mark.parametrize("queue_format", ["amp-2026", "spsc-2025", "spsc-2024"])
def test_one_in_band_request_touches_the_hand_counted_bytes_on_each_queue_format(queue_format):
    """One request rings each side once (two doorbells, two interrupts) for its two frames. The queues cost what
    each format touches: amp-2026 reads its two narrow indices in one line, the spsc formats read 32-bit
    indices on lines of their own and reload the producer's on each pop, 8 B and a line more a side; the
    spsc formats touch the same bytes (docs/queue-formats.md)."""
    queue = QUEUE_BY_FORMAT[queue_format]
    assert one_request(lambda: amp(queue_format), "amp0") == regions(virtqueue=VIRTQUEUE, queue=queue) | {
        "doorbells": 2, "interrupts": 2, "frames": 2}


def test_out_of_band_notification_touches_notification_words_and_no_queue_element():
    """With out-of-band notification (amp-2026 only) no frame crosses the queues for a request. Each side
    toggles its bit in its tx word (reads and writes 8 B: one line each) and the peer's handler reads the
    word pair it compares (its rx word and the peer's tx word, 16 B, one line): 24 read, 8 written, 3 lines
    a side; the doorbells are the same two."""
    notification = {"driver": (24, 8, 3), "device": (24, 8, 3)}
    assert one_request(lambda: amp(notify="out-of-band"), "amp0") == regions(
        virtqueue=VIRTQUEUE, notification=notification) | {"doorbells": 2, "interrupts": 2}


def test_a_polling_receiver_reads_the_producer_index_each_poll_and_rings_nothing():
    """Polling every 5 us, each side polls once while one request (2 us of service, under a polling period)
    goes round: a poll is a look at the queue (amp-2026: both indices, 4 B, one line) on top of the in-band
    count; no doorbell is rung."""
    polled = {side: (read + 4, written, lines + 1) for side, (read, written, lines) in QUEUE.items()}
    assert one_request(lambda: amp(polling=5000), "amp0") == regions(virtqueue=VIRTQUEUE, queue=polled) | {
        "polls": 2, "frames": 2}


def test_on_uncached_memory_a_line_is_one_access_of_the_memory_width():
    """On memory with 4-byte accesses (non-cacheable SRAM) `cache_lines` counts accesses, and amp-2026's two
    indices, in different words, are two: the driver's push reads them (2), writes EVENT_AVAIL (16 B = 4) and
    its tail (1); its pop reads the indices (2) and the 64-byte element (16) and writes its head (1); its last
    look reads the indices (2): 28. The device's EVENT_USED is 12 B = 3, so 27. The bytes are the in-band
    count's."""
    four_bytes = {"line_bytes": 4, "read_per_line": 10, "write_per_line": 5}
    counted = one_request(lambda: amp(memory=four_bytes), "amp0")
    assert counted[("queue", "driver")] == (76, 20, 28)
    assert counted[("queue", "device")] == (76, 16, 27)


def test_payload_copies_count_in_the_payload_region_of_the_side_that_copies():
    """With `data: copy` on both ends and the payload going to the device, the driver copies the 256 bytes
    into the shared buffer (4 lines written) and the device copies them out (4 lines read); the rings and
    queues are untouched by it."""
    def copying():
        data = amp()
        data["drivers"][0]["data"] = "copy"
        data["devices"][0]["data"] = "copy"
        return data

    assert one_request(copying, "amp0") == regions(
        virtqueue=VIRTQUEUE, queue=QUEUE, payload={"driver": (0, 256, 4), "device": (256, 0, 4)}) | {
        "doorbells": 2, "interrupts": 2, "frames": 2}


def test_the_xen_shared_page_counts_rings_and_queues_in_one_region():
    """The Xen bus carries the same two frames through spsc-2024 queues in its shared page and the same split
    ring: its one `shared` region holds the virtqueue and queue counts added together, per side; event
    channels are the doorbells."""
    def xen():
        data = xen_dict()
        data["platform"]["memory"]["ram"] = dict(LINES_OF_64)
        return data

    queue = QUEUE_BY_FORMAT["spsc-2024"]
    both = {side: tuple(a + b for a, b in zip(VIRTQUEUE[side], queue[side])) for side in ("driver", "device")}
    assert one_request(xen, "xen0") == regions(shared=both) | {"doorbells": 2, "interrupts": 2, "frames": 2}


def test_ffa_fifo_rings_touch_both_indices_and_whole_entries():
    """FF-A FIFO rings (2026): entries are 104 bytes (the largest FF-A frame), each index on its own line. A
    push reads both 2-byte indices (4 B, one line) and writes the zero-filled entry and the write index
    (106 B, two lines); a pop reads both indices and the entry (108 B, two lines) and writes the read index
    (2 B, one line). Each side pushes one frame and pops one: 112 read and 108 written, 6 lines, on top of
    its virtqueue count; an FF-A notification each way."""
    def fifo():
        data = ffa_dict(method="fifo")
        data["platform"]["memory"]["shared"] = dict(LINES_OF_64)
        return data

    model, _ = run(fifo())
    assert model.buses["ffa0"].driver_side.fifo_tx.element_size == 104
    rings = {side: tuple(a + b for a, b in zip(VIRTQUEUE[side], (112, 108, 6))) for side in ("driver", "device")}
    assert one_request(fifo, "ffa0") == regions(shared=rings) | {"doorbells": 2, "interrupts": 2, "frames": 2}


def test_ffa_indirect_messages_go_through_the_tx_and_rx_buffers():
    """FFA_MSG_SEND2: the sender writes the 24-byte partition message header and its frame into its TX
    buffer; the framework, in the call, reads them there (on the sender's side) and writes them into the
    receiver's RX buffer (on the receiver's side); the receiver reads them. The driver's EVENT_AVAIL makes
    40 B, the device's EVENT_USED 36 B, each one line:
    - driver: reads 40 (its TX, by the framework) + 36 (its RX) = 76, writes 40 (TX) + 36 (RX, by the
      framework) = 76, 4 lines;
    - device: reads 40 (its RX) + 36 (its TX, by the framework) = 76, writes 40 + 36 = 76, 4 lines."""
    def indirect():
        data = ffa_dict(method="indirect")
        data["platform"]["memory"]["shared"] = dict(LINES_OF_64)
        return data

    buffers = (76, 76, 4)
    counted = {side: tuple(a + b for a, b in zip(VIRTQUEUE[side], buffers)) for side in ("driver", "device")}
    assert one_request(indirect, "ffa0") == regions(shared=counted) | {"doorbells": 2, "interrupts": 2,
                                                                       "frames": 2}


def test_the_summary_divides_each_total_by_the_bus_s_completed_requests():
    """`per_request` is `totals` over the requests completed by the end, for the bus and for its one device;
    the bus's CPU time is the work on its device side's core and its driver's core (the only bus there)."""
    _, output = run(amp())
    entry = summarize(output, wall_seconds=0.0)["accounting"]["buses"]["amp0"]
    completed = output.workloads["load"]["completed"]
    assert set(entry) == {"totals", "window", "requests_in_window", "per_request", "regions", "regions_in_window",
                          "devices"}
    assert set(entry["totals"]) == set(QUANTITIES)
    assert entry["per_request"] == {key: value / completed for key, value in entry["totals"].items()}
    assert entry["totals"]["cpu_ns"] == sum(report["busy_ns"] for report in output.processors.values())
    assert entry["devices"]["amp0.dev"]["per_request"] == pytest.approx(entry["per_request"])
    assert set(entry["regions"]) == {"virtqueue", "queue", "notification", "handshake", "payload"}


def test_a_bus_that_completed_nothing_has_no_per_request_figures():
    """Nothing completed, nothing to divide by: `per_request` is None rather than a division by zero."""
    data = amp()
    data["workloads"] = []
    data["duration"] = 100_000
    _, output = run(data)
    entry = accounting(output)["buses"]["amp0"]
    assert entry["totals"]["frames"] > 0  # discovery still ran
    assert set(entry["per_request"].values()) == {None}


def test_a_core_shared_by_two_buses_is_split_by_their_completed_requests():
    """The driver's core serves both buses; each bus gets its own device core's work and the driver core's
    work in proportion to the requests it completed."""
    data = amp()
    second_bus = dict(data["buses"][0], name="amp1")
    data["buses"].append(second_bus)
    data["devices"].append(dict(data["devices"][0], name="dev2", bus="amp1"))
    data["workloads"].append(dict(data["workloads"][0], name="load2", device="dev2", requests=150))
    _, output = run(data)
    buses = accounting(output)["buses"]
    driver_core = output.processors["linux.cpu"]["busy_ns"]
    for bus, share in (("amp0", 50 / 200), ("amp1", 150 / 200)):
        own = output.processors[f"{bus}.device_cpu"]["busy_ns"]
        assert buses[bus]["totals"]["cpu_ns"] == pytest.approx(own + share * driver_core)


def test_the_accounting_table_has_a_row_per_quantity_of_each_bus_device_and_region(tmp_path):
    """The loadable table: bus and device rows for every quantity, region rows for bytes and lines, each
    with its total and per-request figure; `RunResult.accounting` gives the same table."""
    result = vmsim.run(amp_file(tmp_path), write=False)
    table = result.accounting
    assert table.equals(accounting_table(result.summary))
    bus_rows = table[table.device.isna() & table.region.isna()]
    assert list(bus_rows.quantity) == list(QUANTITIES)
    queue = table[(table.region == "queue") & (table.side == "driver") & (table.quantity == "bytes_read")]
    assert queue.total.item() == result.summary["accounting"]["buses"]["amp0"]["regions"]["queue"]["driver"][
        "bytes_read"]
    assert queue.per_request.item() == pytest.approx(queue.total.item() / 50)


def amp_file(folder) -> str:
    import yaml

    path = folder / "story.yaml"
    path.write_text(yaml.safe_dump(amp()))
    return str(path)


def test_a_memory_no_bus_counts_keeps_its_counts_to_itself():
    """A cost made outside a bus (a test's, or `FREE_MEMORY`) counts in a dict of its own, so that no run's
    counters see it; `counted` gives the same costs counting where it is told."""
    loose = MemoryCost(line_bytes=64, read_per_line=10)
    counts: dict = {}
    counted = loose.counted(counts, "queue", "driver")
    assert (loose.read(100), counted.read(100)) == (20, 20)
    assert counts["memory.queue.driver.bytes_read"] == 100
    assert counts["memory.queue.driver.cache_lines"] == 2
    assert loose.counts is not counts


def test_results_readme_documents_every_accounting_key():
    """results/README.md's accounting table is derived from the declarations: paste `keys_table()` after a
    change."""
    readme = Path(__file__).resolve().parents[1] / "results" / "README.md"
    assert keys_table() in readme.read_text(), "results/README.md should hold:\n" + keys_table()


def test_the_spsc_formats_run_to_the_same_nanosecond_and_amp_2026_apart():
    """spsc-2024 and spsc-2025 touch the same bytes, so they give the same run to the nanosecond; amp-2026
    touches fewer lines a frame (both indices in one line, no reload), so its requests take less time."""
    def requests(queue_format):
        _, output = run(amp(queue_format))
        columns = output.requests.columns()
        return list(columns["submit_ns"]), list(columns["latency_ns"])

    spsc_2025 = requests("spsc-2025")
    assert requests("spsc-2024") == spsc_2025
    _, latencies = requests("amp-2026")
    assert sum(latencies) < sum(spsc_2025[1])


@pytest.mark.parametrize("queue_format", ["amp-2026", "spsc-2025", "spsc-2024"])
def test_what_a_format_says_it_touches_is_what_its_queue_records(queue_format):
    """The accesses a queue describes for its next push and pop (what the channel charges) add up to the bytes
    the queue itself records doing them, reloads included, round after round through the slots."""
    from vmsim.wire.spsc import create_queue_pair

    queue = create_queue_pair(queue_format, bytearray(8192)).to_device

    def described(accesses):
        return (sum(a.nbytes for a in accesses if not a.write), sum(a.nbytes for a in accesses if a.write))

    for frame in range(2 * queue.slots):
        recorded = (queue.bytes_read, queue.bytes_written)
        element, reload = queue.next_push()
        expected = described(queue.push_accesses(element, 12 + frame % 5, reload))
        queue.try_push(bytes(12 + frame % 5))
        assert (queue.bytes_read - recorded[0], queue.bytes_written - recorded[1]) == expected
        recorded = (queue.bytes_read, queue.bytes_written)
        expected = described(queue.pop_accesses(*queue.next_pop()))
        queue.try_pop()
        assert (queue.bytes_read - recorded[0], queue.bytes_written - recorded[1]) == expected
    recorded = queue.bytes_read
    assert queue.try_pop() is None
    assert queue.bytes_read - recorded == described(queue.look_accesses())[0]


@pytest.mark.parametrize(("queue_format", "push", "pop"), [
    ("amp-2026", (4, 18), (68, 2)),  # both 16-bit indices read each time; 16-bit index written
    ("spsc-2025", (4, 20), (72, 4)),  # own 32-bit index read; the pop reloads the producer's; 32-bit written
    ("spsc-2024", (4, 20), (72, 4)),
])
def test_the_formats_themselves_differ_in_index_width_and_reloads(queue_format, push, pop):
    """What each format's own queue records for one 16-byte frame pushed and popped (bytes read, written):
    spsc-2024 and spsc-2025 the same, amp-2026 narrower indices but both read on every push and pop."""
    from vmsim.wire.spsc import create_queue_pair

    queue = create_queue_pair(queue_format, bytearray(8192)).to_device
    queue.try_push(bytes(16))
    queue.try_pop()  # a first round, so that neither end starts from a fresh cached index
    marks = [(queue.bytes_read, queue.bytes_written)]
    queue.try_push(bytes(16))
    marks.append((queue.bytes_read, queue.bytes_written))
    queue.try_pop()
    marks.append((queue.bytes_read, queue.bytes_written))
    steps = [tuple(after - before for after, before in zip(b, a)) for a, b in pairwise(marks)]
    assert steps == [push, pop]
