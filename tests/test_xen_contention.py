"""Xen backend contention: IPIs that land on the vCPUs they interrupt, the grant-table and flush locks every
bus to one backend shares, the host's memory that copies share, batched grant hypercalls, and the published
blkback figures they reproduce.

The bus stories reuse test_xen's one-DomU scenario and its round-number costs.
"""

from pathlib import Path

from test_xen import XEN, run, sequence, xen_dict

from vmsim.buses.xen.host import Domain
from vmsim.calibration import calibrate
from vmsim.sim.core import Simulation

PUBLISHED = Path(__file__).parents[1] / "scenarios" / "published"


def test_an_ipi_lands_on_each_running_vcpu_and_its_work_ends_that_much_later():
    """Two vCPUs run 1 us of work each; at 300 ns the first sends a 200 ns IPI: only the other one pays it,
    so its work ends at 1200 ns and the 200 ns are counted as TLB time, the sender's at 1000 ns."""
    sim = Simulation(1)
    env = sim.env
    dom0 = Domain(sim, "dom0", vcpus=3, upcall_extra=0)
    ended = {}

    def sender():
        yield from dom0.enter("grants_ns")
        yield env.timeout(300)
        assert dom0.interrupt(200, "tlb_ns") == 1
        yield from dom0.work(700, "grants_ns")
        ended["sender"] = env.now
        dom0.leave()

    def busy():
        yield from dom0.enter("service_ns")
        yield from dom0.work(1000, "service_ns")
        ended["busy"] = env.now
        dom0.leave()

    env.process(sender())
    env.process(busy())
    env.run()
    assert ended == {"sender": 1000, "busy": 1200}
    assert dom0.counts["tlb_ns"] == 200 and dom0.counts["busy_ns"] == 2200


def test_an_ipi_taken_while_spinning_on_a_lock_costs_no_extra_time():
    """A vCPU that spins 1 us for a lock takes a 200 ns IPI in the spin: it goes on when the lock frees."""
    sim = Simulation(1)
    env = sim.env
    dom0 = Domain(sim, "dom0", vcpus=2, upcall_extra=0)
    got_lock = []

    def holder():
        lock = dom0.grant_lock.request()
        yield lock
        yield env.timeout(1000)
        dom0.grant_lock.release(lock)

    def spinner():
        yield from dom0.enter("grants_ns")
        lock = dom0.grant_lock.request()

        def granted():
            yield lock

        yield from dom0.busy_wait(granted(), "lock_ns")
        got_lock.append(env.now)
        yield from dom0.work(100, "grants_ns")
        got_lock.append(env.now)
        dom0.grant_lock.release(lock)
        dom0.leave()

    def ipi():
        yield env.timeout(400)
        dom0.interrupt(200, "tlb_ns")

    env.process(holder())
    env.process(spinner())
    env.process(ipi())
    env.run()
    assert got_lock == [1000, 1100]
    assert dom0.counts["lock_ns"] == 1000


def two_guests_unmapping(**xen):
    """Two DomUs, one request each at the same instant, to a 4-vCPU Dom0: both unmap while the other runs."""
    data = xen_dict()
    data["platform"]["xen"].update(xen)
    data["domains"][1]["vcpus"] = 4
    data["domains"].append({"name": "domu2", "vcpus": 1})
    data["drivers"].append({"name": "linux2", "cpu": "big"})
    data["buses"].append(data["buses"][0] | {"name": "xen1", "driver": "linux2", "frontend": "domu2"})
    data["devices"].append(data["devices"][0] | {"name": "dev2", "bus": "xen1"})
    data["workloads"].append(data["workloads"][0] | {"name": "two", "device": "dev2"})
    return run(data)[1]


def test_on_x86_unmaps_of_different_guests_wait_for_the_one_global_flush_lock():
    """The two requests unmap at the same instant: with IPI flushes (x86) the second waits for the first's
    flush to be acknowledged (tlb_ack + tlb_ipi for its one target) spinning; with a broadcast
    invalidation (Arm) neither waits and each flush reaches the other, still running. On x86 the second
    flushes once the first's flush is acknowledged, while the first still writes its response on a vCPU: one
    IPI each either way, but only x86 spins for it."""
    x86 = two_guests_unmapping(tlb_ipis=True, tlb_ack=600)
    arm = two_guests_unmapping(tlb_ipis=False, tlb_ack=600)
    spun = x86.counters["domain.dom0"]["lock_ns"]
    assert spun == 600 + XEN["tlb_ipi"]
    assert arm.counters["domain.dom0"]["lock_ns"] == 0
    assert flush_targets(x86) == [1, 1] and flush_targets(arm) == [1, 1]


def flush_targets(output):
    columns = output.events.columns()
    return [value for event, value in zip(columns["event"], columns["value"]) if event == "tlb.shootdown"]


def test_map_and_unmap_ops_of_all_guests_share_the_backend_grant_table_lock():
    """Both requests map at the same instant: the second waits the first's 250 ns under Dom0's grant-table
    lock; each unmap holds it again (they no longer coincide)."""
    locked = two_guests_unmapping(grant_lock=250)
    assert locked.counters["domain.dom0"]["lock_ns"] == 250
    free = two_guests_unmapping()
    assert free.counters["domain.dom0"]["lock_ns"] == 0


def test_copies_beyond_the_host_copy_streams_wait_for_the_memory():
    """Two grant copies at the same instant with one copy stream: the second waits for the first's memcpy
    (4 KiB at 128 ns per KiB) with its vCPU busy; with two streams neither waits."""
    def copy_wait(streams):
        data = xen_dict({"grants": "copy"})
        data["platform"]["xen"]["copy_streams"] = streams
        data["domains"][1]["vcpus"] = 4
        data["devices"][0]["queue_size"] = 16
        data["workloads"][0].update(requests=2, arrivals={"kind": "closed", "outstanding": 2},
                                    size={"dist": "constant", "value": 4096})
        data["buses"].append(data["buses"][0] | {"name": "xen1", "driver": "linux2", "frontend": "domu2"})
        data["drivers"].append({"name": "linux2", "cpu": "big"})
        data["domains"].append({"name": "domu2", "vcpus": 1})
        data["devices"].append(data["devices"][0] | {"name": "dev2", "bus": "xen1"})
        data["workloads"].append(data["workloads"][0] | {"name": "two", "device": "dev2"})
        counts = run(data)[1].counters["domain.dom0"]
        return counts["copy_ns"]

    one_copy = 4 * XEN["memcpy_per_kib"]
    assert copy_wait(2) == 4 * one_copy
    assert copy_wait(1) > 4 * one_copy


def test_maps_of_requests_already_on_the_ring_share_one_hypercall():
    """Four requests published together: with grant_batch 4 the first map pays the hypercall and the next
    three join its batch, each saving one hypercall entry (160 ns) of backend time."""
    def grant_time(batch):
        data = xen_dict({"grant_batch": batch})
        data["workloads"][0].update(requests=4, arrivals={"kind": "closed", "outstanding": 4})
        return run(data)[1].counters["domain.dom0"]["grants_ns"]

    assert grant_time(1) - grant_time(4) == 3 * XEN["hypercall"]


def test_one_notification_answers_a_batch_of_responses():
    """Eight requests in flight and a frontend slow to take its upcall: the backend pushes responses while
    the frontend has not yet caught up, so fewer EVENT_USED notifications go out than responses."""
    data = xen_dict()
    data["platform"]["cpus"]["big"]["frame_handling"] = 5000
    data["devices"][0]["service"] = {"dist": "constant", "value": 100}
    data["workloads"][0].update(requests=64, arrivals={"kind": "closed", "outstanding": 8})
    _, output = run(data)
    sent = [event for component, event in sequence(output) if component == "to_driver.doorbell"]
    assert len(output.requests) == 64
    assert 0 < sent.count("evtchn.send") < 64


def test_blkback_without_persistent_grants_reproduces_the_published_peak_and_fall():
    """Latency-anchors A.5 row 30: 650k IOPS at 5 guests falling to 400k at 10, each within 15 %; the
    simulated fall comes from the global flush lock, whose hold grows with the vCPUs it must reach."""
    table = calibrate([PUBLISHED / "xen-blkback-5.yaml", PUBLISHED / "xen-blkback-10.yaml"])
    assert table["within"].all(), table[["point", "published", "simulated", "error"]]
    five, ten = table["simulated"].tolist()
    assert ten < 0.8 * five
