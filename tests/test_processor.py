"""A processor is a server: work waits its turn, interrupts go first, and a core is never over 100 % busy.

Stories pin the schedule to the nanosecond; queueing theory (M/D/1, M/M/2, pre-emptive priority)
checks that the one-timeout-per-item shortcut is the server it claims to be.
"""

from __future__ import annotations

import numpy as np
import pytest

from vmsim.sim.core import Simulation
from vmsim.sim.processor import Processor


def schedule(cores: int, work: list[tuple[int, str, int, bool]]) -> list[tuple[int, str]]:
    """Submit (at, name, cost, irq) items to one processor; return (done_at, name) in completion order."""
    sim = Simulation(seed=1)
    processor = Processor(sim, "cpu", cores=cores)
    log = []

    def item(at, name, cost, irq):
        yield sim.env.timeout(at)
        yield from processor.hold(cost, irq=irq)
        log.append((sim.env.now, name))

    for at, name, cost, irq in work:
        sim.env.process(item(at, name, cost, irq))
    sim.env.run()
    return log


def test_work_on_one_core_waits_for_the_work_submitted_before_it():
    assert schedule(1, [(0, "a", 10, False), (0, "b", 20, False), (5, "c", 1, False)]) == [
        (10, "a"), (30, "b"), (31, "c")]


def test_an_interrupt_runs_at_once_and_pushes_the_thread_work_back_by_its_cost():
    """Thread work of 100 ns from 0, an interrupt of 20 ns at 50: the interrupt ends at 70, the work at 120,
    and work queued behind it moves back too."""
    assert schedule(1, [(0, "thread", 100, False), (10, "next", 5, False), (50, "irq", 20, True)]) == [
        (70, "irq"), (120, "thread"), (125, "next")]


def test_interrupts_queue_behind_each_other_and_each_pushes_the_thread_back():
    assert schedule(1, [(0, "thread", 100, False), (50, "irq1", 20, True), (60, "irq2", 5, True)]) == [
        (70, "irq1"), (75, "irq2"), (125, "thread")]


def test_thread_work_submitted_during_an_interrupt_starts_after_it():
    assert schedule(1, [(0, "irq", 30, True), (10, "thread", 5, False)]) == [(30, "irq"), (35, "thread")]


def test_an_interrupt_arriving_as_thread_work_ends_does_not_delay_it():
    assert schedule(1, [(0, "thread", 50, False), (0, "next", 50, False), (50, "irq", 20, True)]) == [
        (50, "thread"), (70, "irq"), (120, "next")]


def test_a_pool_hands_each_item_to_the_core_that_frees_first():
    """Two vCPUs, three items of 10 ns at once: two run together, the third waits for either."""
    assert schedule(2, [(0, "a", 10, False), (0, "b", 10, False), (0, "c", 10, False), (3, "d", 4, False)]) == [
        (10, "a"), (10, "b"), (14, "d"), (20, "c")]


def test_busy_time_counts_only_work_done_so_far():
    sim = Simulation(seed=1)
    processor = Processor(sim, "cpu")

    def work():
        yield from processor.hold(100)

    sim.env.process(work())
    sim.env.process(work())
    sim.env.run(until=150)
    assert processor.busy_ns(150) == 150 and processor.utilisation(150) == 1.0
    sim.env.run(until=400)
    assert processor.busy_ns(400) == 200 and processor.utilisation(400) == 0.5


def poisson_customers(cores: int, classes: list[tuple[float, object, bool]], duration: int, seed: int = 3):
    """Open Poisson streams, one per (rate per ns, service draw, irq) class, arriving for `duration` ns;
    mean time in system per class, the first tenth of the arrivals left out as warm-up."""
    sim = Simulation(seed=seed)
    processor = Processor(sim, "cpu", cores=cores)
    rng = np.random.default_rng(seed)
    sojourn: list[list[int]] = [[] for _ in classes]

    def customer(index, cost, irq):
        arrived = sim.env.now
        yield from processor.hold(cost, irq=irq)
        sojourn[index].append(sim.env.now - arrived)

    def source(index, rate, service, irq):
        while sim.env.now < duration:
            yield sim.env.timeout(int(rng.exponential(1 / rate)))
            sim.env.process(customer(index, service(rng), irq))

    for index, (rate, service, irq) in enumerate(classes):
        sim.env.process(source(index, rate, service, irq))
    sim.env.run()
    assert processor.utilisation(sim.env.now) <= 1.0
    return [np.mean(times[len(times) // 10:]) for times in sojourn]


def test_one_core_under_poisson_load_is_an_m_d_1_queue():
    """Arrivals every 1,250 ns on average, 1,000 ns of work each (rho 0.8): W = D + rho D / (2 (1 - rho)) = 3,000 ns."""
    (mean,) = poisson_customers(1, [(1 / 1250, lambda rng: 1000, False)], duration=75_000_000)
    assert mean == pytest.approx(3000, rel=0.06)


def test_a_pool_of_two_cores_under_poisson_load_is_an_m_m_2_queue():
    """lambda 1.6, mu 1 per 1,000 ns: Erlang C 0.7111, Wq = 1,778 ns, W = 2,778 ns."""
    (mean,) = poisson_customers(2, [(1.6 / 1000, lambda rng: int(rng.exponential(1000)), False)],
                               duration=37_500_000)
    assert mean == pytest.approx(2778, rel=0.07)


def test_interrupt_work_pre_empts_thread_work_as_priority_queueing_says():
    """Pre-emptive resume priority, deterministic work: interrupts 300 ns at rho 0.3, threads 1,000 ns at
    rho 0.4. With R = (lambda1 S1^2 + lambda2 S2^2) / 2 = 245 ns: interrupts T1 = S1 + lambda1 S1^2 / 2 /
    (1 - rho1) = 364 ns; threads T2 = S2 / (1 - rho1) + R / ((1 - rho1)(1 - rho1 - rho2)) = 2,595 ns."""
    irq, thread = poisson_customers(1, [(0.3 / 300, lambda rng: 300, True), (0.4 / 1000, lambda rng: 1000, False)],
                                    duration=100_000_000)
    assert irq == pytest.approx(364.3, rel=0.04)
    assert thread == pytest.approx(2595, rel=0.07)


def busy_periods(cores: int, work: list[tuple[int, str, int, bool]], stop: int) -> list[list[tuple[int, int]]]:
    """Each core's busy periods as of `stop` after the items of `schedule` ran."""
    sim = Simulation(seed=1)
    processor = Processor(sim, "cpu", cores=cores)

    def item(at, cost, irq):
        yield sim.env.timeout(at)
        yield from processor.hold(cost, irq=irq)

    for at, _name, cost, irq in work:
        sim.env.process(item(at, cost, irq))
    sim.env.run(until=stop)
    return [list(zip(periods.starts, periods.ends)) for periods in processor.busy_periods(stop)]


def test_a_core_s_busy_periods_merge_back_to_back_work_and_end_at_idle_gaps():
    """Work 0-10 and 10-30 is one period; an interrupt at 50 on an idle core is another, and thread work
    arriving during it extends that period; work still running at the stop is cut there. The periods add up
    to the busy time."""
    work = [(0, "a", 10, False), (0, "b", 20, False), (50, "irq", 5, True), (52, "c", 10, False),
            (100, "d", 50, False)]
    assert busy_periods(1, work, stop=120) == [[(0, 30), (50, 65), (100, 120)]]


def test_each_core_of_a_pool_has_its_own_busy_periods():
    assert busy_periods(2, [(0, "a", 10, False), (0, "b", 30, False), (20, "c", 5, False)], stop=100) == [
        [(0, 10), (20, 25)], [(0, 30)]]
