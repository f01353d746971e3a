"""From a validated scenario to running SimPy components, and back to a `SimOutput`.

Elaboration in the desmod manner: build every component, connect drivers to buses and devices
to buses, then start processes. The scenario is read through its attributes only (this layer
does not import `vmsim.scenario`), so anything shaped like a scenario can be simulated.
"""

from __future__ import annotations

import gc
import importlib
import math
from contextlib import contextmanager
from functools import partial

from simpy.core import StopSimulation

from vmsim.errors import OverloadError, ScenarioError, StalledError
from vmsim.sim.core import Simulation
from vmsim.sim.costs import FREE_MEMORY, NO_SOFTWARE, MemoryCost, SoftwareCost, sampler
from vmsim.sim.device import Device
from vmsim.sim.driver import Driver
from vmsim.sim.faults import FaultPlan
from vmsim.sim.output import SimOutput
from vmsim.sim.processor import Processor
from vmsim.sim.sharing import ShareDriver, largest_size
from vmsim.sim.vcpus import VcpuPool
from vmsim.sim.workload import Workload
from vmsim.wire.virtio import DEVICE_IDS

TEARDOWN_LIMIT = 10_000_000_000
"""Simulated time the regions still shared when the run ends get to be given back (then they count as leaked)."""
CLOCK_LIMIT_NS = 2**62  # simulated time a run may reach: later times would not fit the int64 logs


def bus_plugin(spec) -> type:
    """The simulator plug-in of a `buses:` entry. Its spec names it (`plugin`: a class, or "module:Class" of
    a bus kind's folder, `vmsim.buses`), so that this layer reaches the plug-ins without importing them all
    and the schema names them without importing the simulator."""
    plugin = type(spec).plugin
    if isinstance(plugin, str):
        module, _, name = plugin.partition(":")
        plugin = getattr(importlib.import_module(module), name)
    return plugin


class BusContext:
    """What a bus plug-in may look up while it builds itself: platform costs and who is on the bus.

    `scenario` is the whole scenario (read by attribute); `shared` is one dict per model for state
    that the buses of a kind share (the vCPUs of a Xen domain that serves several buses).
    """

    def __init__(self, platform, driver, devices: list, scenario=None, shared: dict | None = None,
                 driver_processor=None, device_processor=None, adopt_processor=None):
        self.platform = platform
        self.driver = driver
        self.devices = devices
        self.scenario = scenario
        self.shared = {} if shared is None else shared
        self._driver_processor = driver_processor
        self._device_processor = device_processor
        self._adopt_processor = adopt_processor

    def driver_processor(self):
        """The driver's core, shared by every bus the driver runs (made on first use)."""
        return self._driver_processor()

    def device_processor(self):
        """The core the bus's device side runs on: one per bus (made on first use)."""
        return self._device_processor()

    def adopt_processor(self, name: str, processor) -> None:
        """Report a processor the bus kind made itself (a Xen domain's vCPU pool) with the model's own."""
        if self._adopt_processor is not None:
            self._adopt_processor(name, processor)

    def cpu_ns(self, name: str | None) -> int:
        """Software cost per frame on the named core (zero when no core is named)."""
        return self.platform.cpus[name].frame_handling if name else 0

    def memory(self, name: str | None) -> MemoryCost:
        return MemoryCost.of(self.platform.memory[name]) if name else FREE_MEMORY

    def side_memory(self, memory) -> tuple[MemoryCost, MemoryCost]:
        """(driver side, device side) from a memory kind name or a {driver, device} pair: two objects even for
        one kind, as each side counts its own traffic."""
        if isinstance(memory, str):
            return self.memory(memory), self.memory(memory)
        return self.memory(memory.driver), self.memory(memory.device)

    def doorbell(self, name: str):
        return self.platform.doorbells[name]

    @property
    def device_cpu_ns(self) -> int:
        """The device side's software cost per frame: the device side of a bus runs on one core."""
        return self.cpu_ns(self.devices[0].cpu if self.devices else None)


class Model:
    """The elaborated model of one scenario; `run()` once."""

    def __init__(self, scenario, traces: dict | None = None):
        self.scenario = scenario
        self.sim = sim = Simulation(scenario.seed, keep_wire=scenario.keep_wire)
        if scenario.faults:  # before any component is built: each asks for the faults aimed at it
            sim.faults = FaultPlan(sim, scenario.faults)
        platform = scenario.platform
        self.processors: dict[str, Processor | VcpuPool] = {}
        self.drivers = {d.name: Driver(sim, d.name, discovery=d.discovery, copies_payload=d.data == "copy",
                                       software=self._software(d.software), timeouts=d.timeouts,
                                       keepalive=d.keepalive) for d in scenario.drivers}
        driver_specs = {d.name: d for d in scenario.drivers}
        on_bus: dict[str, list] = {}
        for device in scenario.devices:
            on_bus.setdefault(device.bus, []).append(device)

        self.buses = {}
        shared: dict = {}
        for spec in scenario.buses:
            context = BusContext(platform, driver_specs[spec.driver], on_bus.get(spec.name, []), scenario, shared,
                                 driver_processor=partial(self._processor, f"{spec.driver}.cpu"),
                                 device_processor=partial(self._processor, f"{spec.name}.device_cpu"),
                                 adopt_processor=self.processors.__setitem__)
            bus = bus_plugin(spec).build(sim, spec, context)
            self.buses[spec.name] = bus
            self.drivers[spec.driver].attach_bus(bus)
        self.devices = {}
        for spec in scenario.devices:
            bus = self.buses[spec.bus]
            name = f"{spec.bus}.{spec.name}"
            self.devices[spec.name] = Device(
                sim, name, bus=bus, dev_num=spec.dev_num, device_id=DEVICE_IDS[spec.kind], queues=spec.queues,
                queue_size=spec.queue_size, config_size=spec.config_size, feature_bits=spec.feature_bits,
                service=sampler(spec.service, sim.rng(f"{name}.service")), copy_payload=spec.data == "copy",
                added_at=spec.added_at, event_idx=getattr(bus.spec, "event_idx", True), removed_at=spec.removed_at,
                software=self._software(spec.software), hardware_engine=spec.engine == "hardware",
                ring_reset=spec.ring_reset, shm=spec.shm)
        if scenario.faults:
            sim.faults.arm(self.devices)
        device_specs = {d.name: d for d in scenario.devices}
        bus_specs = {b.name: b for b in scenario.buses}
        self.workloads = []
        for spec in scenario.workloads:
            bus_spec = bus_specs[device_specs[spec.device].bus]
            arrivals = spec.arrivals
            self.workloads.append(Workload(
                sim, spec.name, driver=self.drivers[bus_spec.driver], bus=self.buses[bus_spec.name],
                device=self.devices[spec.device], vq=spec.vq, arrivals=arrivals,
                sizes=sampler(spec.size, sim.rng(f"{spec.name}.size")), requests=spec.requests,
                start_ns=spec.start, trace=(traces or {}).get(spec.name), max_backlog=scenario.limits.backlog,
                payload=spec.payload,
                think=sampler(arrivals.think, sim.rng(f"{spec.name}.think")) if arrivals.kind == "closed" else None))
        self._sharing(scenario)

    def _processor(self, name: str) -> Processor:
        found = self.processors.get(name)
        if found is None:
            found = self.processors[name] = Processor(self.sim, name)
        return found

    def _software(self, name: str | None) -> SoftwareCost:
        return SoftwareCost.of(self.scenario.platform.software[name]) if name else NO_SOFTWARE

    def _sharing(self, scenario) -> None:
        """A driver-side ShareDriver for each device with `sharing:`, fed by its workloads' buffer lives; a
        driver-side reset for each device with `reset_at`, its config writes and virtqueue resets; its device-side
        `config_changes` and `needs_reset_at`."""
        for spec in scenario.devices:
            device = self.devices[spec.name]
            if spec.reset_at is not None:
                driver = device.bus.driver
                self.sim.env.process(driver.reset_device(device.bus, spec.dev_num, spec.reset_at))
            for at in spec.config_changes:
                self.sim.env.process(device.change_config_at(at))
            for at in spec.needs_reset_at:
                self.sim.env.process(device.needs_reset_at(at))
            for at in spec.config_writes:
                self.sim.env.process(device.bus.driver.write_config_at(device.bus, spec.dev_num, at))
            for entry in spec.vqueue_resets:
                self.sim.env.process(device.bus.driver.reset_vqueue(device.bus, spec.dev_num, entry.vq, entry.at))
            if spec.sharing is None:
                continue
            mine = [(workload, w) for workload, w in zip(self.workloads, scenario.workloads) if w.device == spec.name]
            lives = {workload: (w.buffers.uses, w.buffers.lifetime) if w.buffers else (1, None)
                     for workload, w in mine}
            pool_slot = max((largest_size(w.size) for _, w in mine), default=4096)
            ShareDriver(self.sim, device.bus, device=spec.name, dev_num=spec.dev_num, spec=spec.sharing,
                        lives=lives, pool_slot=pool_slot)
            device.shares = device.bus.shares

    def expected_requests(self) -> int | None:
        limits = [w.limit for w in self.workloads]
        if not limits or any(limit is None for limit in limits):
            return None
        return sum(limits)

    def run(self, progress=None) -> SimOutput:
        """Run to the end (all requests done, or `duration`); `progress(fraction)` is called as it goes."""
        sim, env, scenario = self.sim, self.sim.env, self.scenario
        at_warmup: dict = {}  # scheduled first: taken before anything else that happens at warmup_ns
        if scenario.warmup:
            env.timeout(scenario.warmup).callbacks.append(lambda _event: at_warmup.update(self._state(env.now)))
        for bus in self.buses.values():
            bus.start()
        for driver in self.drivers.values():
            driver.start()
        for workload in self.workloads:
            workload.start()
        expected = self.expected_requests()
        if progress is not None and expected:
            sim.report_progress(progress, expected)
        elif progress is not None and scenario.duration:
            env.process(_report_time(env, progress, scenario.duration))
        stop = env.event()
        if scenario.duration is not None:
            env.timeout(scenario.duration).callbacks.append(lambda _event: stop.succeed() if not stop.triggered else None)
        if expected is not None:
            env.all_of([w.done for w in self.workloads]).callbacks.append(
                lambda _event: stop.succeed() if not stop.triggered else None)
        elif not self.workloads and scenario.duration is None:
            raise ScenarioError(f"{scenario.name}: no workloads and no duration: nothing says when to stop")
        env.timeout(CLOCK_LIMIT_NS).callbacks.append(self._clock_limit)
        stop.callbacks.append(StopSimulation.callback)
        with _model_frozen():
            env.run()  # returns once `stop` is processed, or when the clock limit found nothing else to do
        if not stop.triggered:
            raise StalledError(self._stall_message())
        stopped = env.now
        if scenario.warmup and not at_warmup:  # the run ended within its warm-up: the window is empty
            at_warmup = self._state(stopped)
        processors = {name: processor.report(stopped) for name, processor in sorted(self.processors.items())}
        busy_periods = {name: processor.busy_periods(stopped) for name, processor in sorted(self.processors.items())}
        waiting = {w.name: w.waiting() for w in self.workloads}  # at the end, before the teardown runs time on
        self._teardown()
        if progress is not None:
            progress(1.0)
        self._utilisation(stopped)
        return SimOutput(scenario=scenario.name, seed=scenario.seed, sim_time_ns=stopped, warmup_ns=scenario.warmup,
                         events=sim.log, requests=sim.requests, counters=sim.counters, series=sim.series,
                         init_done_ns=dict(sim.init_done),
                         workloads={w.name: {"arrivals": w.arrivals.kind, "device": w.device.name, "submitted": w.submitted,
                                             "completed": w.completed, **waiting[w.name]} for w in self.workloads},
                         processors=processors, busy_periods=busy_periods, at_warmup=at_warmup)

    def _state(self, now: int) -> dict:
        """The cumulative figures at `now` (`SimOutput.at_warmup`), so that costs can be told per window."""
        return {"counters": {name: dict(counts) for name, counts in self.sim.counters.items()},
                "processors": {name: processor.report(now) for name, processor in self.processors.items()},
                "completed": {workload.name: workload.completed for workload in self.workloads}}

    def _stall_message(self) -> str:
        """What stopped a run that can go no further, with what the counters say may have caused it."""
        sim, scenario = self.sim, self.scenario
        dropped = sum(int(counts.get("tx_failed", 0)) for counts in sim.counters.values())
        removed = [spec.name for spec in scenario.devices if spec.removed_at is not None]
        causes = [f"{dropped:,} frames dropped after every retry"] if dropped else []
        causes += [f"devices removed: {', '.join(removed)}"] if removed else []
        failed = sum(int(sim.counters[name].get("devices_failed", 0)) for name in self.drivers)
        causes += [f"devices given up on with FAILED (the driver's timeouts ran out): {failed}"] if failed else []
        because = f"; {'; '.join(causes)}" if causes else ""
        return (f"{scenario.name}: the model stalled with {sim.completed} requests completed and nothing left to "
                f"happen (devices ready: {len(sim.init_done)} of {len(self.devices)}{because}); give `duration` to "
                "end the run at a time instead of on its requests")

    def _clock_limit(self, _event) -> None:
        """The int64 guard: reached with nothing else scheduled, the model has stalled (the run ends and
        `run` says so); reached while events remain, the run has outgrown the logs' nanoseconds."""
        if self.sim.env.peek() == math.inf:
            raise StopSimulation(None)
        raise OverloadError(
            f"{self.scenario.name}: simulated time reached 2**62 ns (about 146 years) with {self.sim.completed:,} "
            "requests completed: the run would outgrow int64 nanoseconds; give `duration`, or shorter times")

    def _teardown(self) -> None:
        """Once the run is over, every device's shared regions are given back and reclaimed (in simulated time
        after the end, so the measured run is unchanged); what is not back by `TEARDOWN_LIMIT` stays leaked."""
        env = self.sim.env
        sharers = [sharer for bus in self.buses.values() for sharer in bus.sharers.values()]
        if sharers:
            done = env.all_of([env.process(sharer.teardown()) for sharer in sharers])
            env.run(until=done | env.timeout(TEARDOWN_LIMIT))

    def _utilisation(self, now: int) -> None:
        for counts in self.sim.counters.values():
            if "busy_ns" in counts:  # a component with several servers (vCPUs) counts each one's time
                counts["utilisation"] = counts["busy_ns"] / (now * counts.get("servers", 1)) if now else 0.0
            if "rx_busy_ns" in counts:  # a queue: its sender and its receiver are busy apart; the busier counts
                counts["tx_utilisation"] = counts.get("utilisation", 0.0)
                counts["rx_utilisation"] = counts["rx_busy_ns"] / now if now else 0.0
                counts["utilisation"] = max(counts["tx_utilisation"], counts["rx_utilisation"])


@contextmanager
def _model_frozen():
    """Keep the cyclic garbage collector off the model while it runs: the model is built once and lives
    through the run, yet each full collection would walk all of it again (tens of milliseconds, and a
    cache flushed, at a thousand devices). Frozen objects are still freed normally; unfreezing puts them
    back under the collector. A caller that froze objects of its own keeps the collector as it set it."""
    if gc.get_freeze_count():  # someone else manages the permanent generation: unfreezing would undo theirs
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _report_time(env, progress, duration: int, steps: int = 100):
    """Progress of a run that ends at `duration`: the share of simulated time done, `steps` times."""
    step = max(1, duration // steps)
    while env.now + step < duration:
        yield env.timeout(step)
        progress(env.now / duration)


def build(scenario, traces: dict | None = None) -> Model:
    """Elaborate `scenario` into a model ready to `run()`."""
    return Model(scenario, traces)
