"""The one vCPU pool that Xen domains and FF-A partitions both are."""

from vmsim.sim.core import Simulation
from vmsim.sim.vcpus import URGENT, VcpuPool


def test_urgent_work_goes_ahead_of_waiting_work_and_the_rest_is_first_come_first_served():
    """One vCPU held for 100 ns; two normal requests then an urgent one queue behind it: the urgent one
    (a TLB-flush IPI handler) runs first, then the normal ones in arrival order."""
    sim = Simulation(1)
    env = sim.env
    counts = {"busy_ns": 0}
    pool = VcpuPool(env, 1, counts)
    order = []

    def holder():
        yield from pool.enter()
        yield env.timeout(100)
        pool.leave()

    def waiter(name, priority):
        yield env.timeout(1)
        yield from pool.enter(priority=priority)
        order.append((name, env.now))
        yield env.timeout(10)
        pool.leave()

    env.process(holder())
    for name, priority in (("first", 1), ("second", 1), ("urgent", URGENT)):
        env.process(waiter(name, priority))
    env.run()
    assert order == [("urgent", 100), ("first", 110), ("second", 120)]
    assert counts["busy_ns"] == 130


def test_a_partition_answers_busy_only_when_every_vcpu_is_taken():
    """`free` is what an FF-A partition that answers BUSY instead of queueing asks."""
    sim = Simulation(1)
    env = sim.env
    pool = VcpuPool(env, 2, {"busy_ns": 0})
    seen = []

    def hold(at):
        yield env.timeout(at)
        yield from pool.enter()
        seen.append(pool.free())
        yield env.timeout(5)
        pool.leave()

    env.process(hold(0))
    env.process(hold(1))
    env.run()
    assert seen == [True, False]
    assert pool.free()
