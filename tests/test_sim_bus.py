"""Bus behaviour over real shared-memory bytes: tokens, order, doorbells, backpressure, formats."""

import gc

import pytest
from sim_helpers import frames, run, scenario, scenario_dict

from vmsim.errors import StalledError, VmsimError
from vmsim.sim import build
from vmsim.wire import get_layout


def test_same_seed_gives_identical_requests_and_another_seed_does_not():
    data = scenario_dict()
    data["devices"][0]["service"] = {"dist": "exponential", "mean": 3000}
    first = run(data)[1].requests.columns()
    second = run(data)[1].requests.columns()
    assert first["latency_ns"].tolist() == second["latency_ns"].tolist()
    data["seed"] = 8
    assert run(data)[1].requests.columns()["latency_ns"].tolist() != first["latency_ns"].tolist()


def test_bus_owns_tokens_and_responses_echo_them_in_request_order():
    """Requests carry bus-assigned tokens 2, 3, ...; each response echoes its request's token."""
    _, output = run(scenario_dict(workloads=[]) | {"duration": 1_000_000})
    columns = output.events.columns()
    sent = [t for c, e, t in zip(columns["component"], columns["event"], columns["token"])
            if c == "amp0.to_device" and e == "tx"]
    answered = [t for c, e, t in zip(columns["component"], columns["event"], columns["token"])
                if c == "amp0.to_driver" and e == "tx"]
    assert sent == list(range(2, 2 + len(sent)))
    assert answered == sent
    assert output.counters["amp0"]["token_mismatch"] == 0


def test_every_logged_frame_decodes_and_sits_at_the_start_of_its_queue_element():
    _, output = run(scenario_dict())
    layout = get_layout("v1")
    columns = output.events.columns()
    wires = [w for w in columns["wire"] if w is not None]
    assert wires and all(layout.decode(w).msg_size == len(w) for w in wires)


def test_doorbell_rung_while_pending_coalesces():
    """Without event-index suppression every used buffer notifies; with a 20 us doorbell and 8 requests
    outstanding, rings arrive while the previous one is still pending and fold into it."""
    data = scenario_dict()
    data["buses"][0]["event_idx"] = False
    data["platform"]["doorbells"]["mailbox"]["latency"] = 20_000
    data["devices"][0]["service"] = {"dist": "constant", "value": 500}
    data["workloads"][0]["arrivals"]["outstanding"] = 8
    _, output = run(data)
    bell = output.counters["amp0.to_driver.doorbell"]
    assert bell["coalesced"] > 0
    assert bell["rung"] == bell["delivered"]


def test_full_queue_makes_the_sender_retry_until_the_receiver_drains():
    """Two-slot queues (one usable), a fast device and a slow driver CPU: EVENT_USED frames find the
    queue full, the device retries as the reference driver does, and nothing is lost."""
    data = scenario_dict()
    data["buses"][0].update(queue_elements=2, tx_retry=2000, event_idx=False)
    data["platform"]["cpus"]["big"]["frame_handling"] = 5000
    data["devices"][0]["service"] = {"dist": "constant", "value": 200}
    data["workloads"][0]["arrivals"]["outstanding"] = 4
    _, output = run(data)
    assert output.counters["amp0.to_device"]["full"] + output.counters["amp0.to_driver"]["full"] > 0
    assert len(output.requests) == 50


def test_event_index_suppresses_most_notifications_under_load():
    """Buffers used while the driver has not yet seen the last notification need no new one (EVENT_IDX)."""
    def notifications(event_idx):
        data = scenario_dict()
        data["buses"][0]["event_idx"] = event_idx
        data["devices"][0]["service"] = {"dist": "constant", "value": 200}
        data["workloads"][0].update(requests=200, arrivals={"kind": "closed", "outstanding": 8})
        _, output = run(data)
        return sum(1 for _, name, _ in frames(output) if name in ("EVENT_AVAIL", "EVENT_USED"))

    assert notifications(True) < notifications(False)


def test_out_of_band_notifications_use_the_xor_words_and_send_no_event_frames():
    data = scenario_dict()
    data["buses"][0]["notify"] = "out-of-band"
    _, output = run(data)
    names = {name for _, name, _ in frames(output)}
    assert not names & {"EVENT_AVAIL", "EVENT_USED"}
    assert len(output.requests) == 50


@pytest.mark.parametrize("queue_format", ["spsc-2025", "spsc-2024"])
def test_older_queue_formats_carry_the_same_run(queue_format):
    data = scenario_dict()
    data["buses"][0]["queue_format"] = queue_format
    _, output = run(data)
    assert len(output.requests) == 50


def test_polling_receiver_needs_no_doorbell():
    data = scenario_dict()
    data["buses"][0]["polling"] = 5000
    _, output = run(data)
    assert len(output.requests) == 50
    assert "amp0.to_device.doorbell" not in output.counters


def test_draft_6b_layout_runs_without_tokens():
    data = scenario_dict()
    data["buses"][0]["layout"] = "draft-6b"
    _, output = run(data)
    assert len(output.requests) == 50
    assert set(output.events.columns()["token"].tolist()) == {-1}


def test_masked_notification_words_spare_interrupts_while_the_handler_runs():
    """With FEAT_MASKED_NOTIF the receiver masks its words while it drains: bits raised meanwhile stay
    pending without a doorbell, and it looks again after unmasking, so nothing is lost."""
    def doorbells(masked):
        data = scenario_dict()
        data["buses"][0].update(notify="out-of-band", masked_notifications=masked, event_idx=False)
        data["devices"][0]["service"] = {"dist": "constant", "value": 300}
        data["workloads"][0].update(requests=300, arrivals={"kind": "closed", "outstanding": 8})
        _, output = run(data)
        assert len(output.requests) == 300
        return output.counters["amp0.to_driver.doorbell"]["rung"]

    assert doorbells(masked=True) < doorbells(masked=False)


def test_a_run_leaves_the_garbage_collector_as_it_found_it():
    """The model is frozen out of the collector's way while it runs, and put back afterwards; a caller who
    froze objects of their own keeps them frozen."""
    seen = []
    model = build(scenario())
    model.sim.env.process(_note_freeze_count(model.sim.env, seen))
    model.run()
    assert seen[0] > 0 and gc.get_freeze_count() == 0

    gc.freeze()
    try:
        run(scenario_dict())
        assert gc.get_freeze_count() > 0  # not unfrozen under the caller's feet
    finally:
        gc.unfreeze()


def _note_freeze_count(env, seen):
    yield env.timeout(1)
    seen.append(gc.get_freeze_count())


def test_the_bus_answers_ping_with_its_data_and_token():
    """PING is the bus's own liveness check: the answer echoes the data and carries the request's token."""
    model, _ = run(scenario_dict(workloads=[]) | {"duration": 1_000_000})
    layout = get_layout("v1")
    answer, dev_num = model.buses["amp0"].answer(layout.encode("PING", "request", {"data": 0x11223344}, token=9))
    pong = layout.decode(answer)
    assert (pong.name, pong.kind, pong.fields["data"], pong.token, dev_num) == ("PING", "response", 0x11223344, 9, 0)


@pytest.mark.parametrize(("side", "data"), [
    ("device", b"\x00\x07\x09"),                             # cut short inside the header
    ("device", bytes.fromhex("0007090000000800")),          # GET_DEVICE_STATUS for dev_num 9: no such device
    ("driver", b"\x01\x07"),                                 # cut short inside the header
    ("driver", bytes.fromhex("0107010005000c0000000000")),  # a response no request is waiting for
], ids=["short-to-device", "unknown-device", "short-to-driver", "unsolicited-response"])
def test_frames_that_cannot_be_used_are_discarded_and_counted(side, data):
    """Malformed frames, frames for no device and responses to nothing are dropped without an answer (S-pr28);
    the bus counts them, and nothing else changes."""
    model, output = run(scenario_dict(workloads=[]) | {"duration": 1_000_000})
    bus, env = model.buses["amp0"], model.sim.env
    before, rows = dict(bus.counts), len(output.events)
    work = bus.deliver_to_device(data) if side == "device" else bus.deliver_to_driver(data)
    env.run(until=env.now + 1_000_000)  # time for an answer, were one sent
    assert work is None
    assert bus.counts == before | {"discarded": before["discarded"] + 1}
    assert len(output.events) == rows


def test_a_model_left_with_nothing_to_do_before_its_end_says_it_stalled():
    """A device unplugged before the workload's last request leaves the run waiting for completions that
    cannot come; the run says where it stopped, and why, instead of ending as if it had finished. The user
    caused it, so it is a one-line user error (exit 2), not a traceback."""
    stalled = scenario_dict()
    stalled["devices"][0]["removed_at"] = "1 us"
    with pytest.raises(StalledError, match="the model stalled with 0 requests completed and nothing left") as raised:
        run(stalled)
    assert "devices removed: dev" in str(raised.value) and isinstance(raised.value, VmsimError)
