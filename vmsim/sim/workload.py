"""Workloads: who submits I/O, when, and how big.

Open loop (Poisson, constant rate, a trace of times and sizes) and closed loop (N outstanding,
optional think time). Open-loop arrivals run in one long-lived process per workload; the closed
loop needs no process at all: each completion submits the next request from a callback.
"""

from __future__ import annotations

from vmsim.errors import OverloadError
from vmsim.sim.core import Component, Simulation
from vmsim.sim.costs import Sampler, whole_ns


class Request:
    """One I/O request on its way from a workload through a virtqueue and back."""

    __slots__ = ("request_id", "service_ns", "size", "start_ns", "submit_ns", "workload")

    def __init__(self, request_id: int, workload, size: int, submit_ns: int):
        self.request_id = request_id
        self.workload = workload
        self.size = size
        self.submit_ns = submit_ns
        self.start_ns = -1
        self.service_ns = -1


class Workload(Component):
    """Submits requests to one virtqueue of one device once the driver has initialised it."""

    def __init__(self, sim: Simulation, name: str, *, driver, bus, device, vq: int, arrivals, sizes: Sampler,
                 requests: int | None, start_ns: int, trace: tuple[list[int], list[int]] | None = None,
                 think: Sampler | None = None, max_backlog: int | None = None, payload: str = "to-device"):
        super().__init__(sim, name)
        self.driver = driver
        self.bus = bus
        self.device = device
        self.vq = vq
        self.arrivals = arrivals
        self.sizes = sizes
        self.limit = requests
        self.start_ns = start_ns
        self.trace = trace
        self.think = think
        self.submitted = 0
        self.completed = 0
        self.payload = payload  # which way the payload moves: to-device, from-device or both (an echo)
        self.max_backlog = max_backlog if max_backlog is not None else 2**63
        self.done = sim.env.event()
        self.queue = None
        self._rng = sim.rng(name)
        self._device_log = sim.requests.devices(device.name)
        self._driver_log = sim.requests.drivers(driver.name)

    def start(self) -> None:
        self.env.process(self._run())

    def _run(self):
        handle = self.driver.handle(self.bus, self.device.dev_num)
        if self.start_ns > self.env.now:
            yield self.env.timeout(self.start_ns - self.env.now)
        handle = yield handle.ready
        self.queue = handle.queues[self.vq]
        kind = self.arrivals.kind
        if kind == "closed":
            for _ in range(self.arrivals.outstanding):
                if not self._submit():
                    break
            return
        if kind == "trace":
            yield from self._replay()
            return
        yield from self._open_loop(kind)

    def _open_loop(self, kind: str):
        mean_gap = 1e9 / self.arrivals.rate
        if kind == "poisson":
            gaps = Sampler(lambda n: whole_ns(self._rng.exponential(mean_gap, n)))
        else:
            gaps = Sampler(None, constant=round(mean_gap))
        timeout = self.env.timeout
        while self._submit():
            yield timeout(gaps())

    def _replay(self):
        times, sizes = self.trace
        base = self.env.now
        for index, at in enumerate(times):
            if at + base > self.env.now:
                yield self.env.timeout(at + base - self.env.now)
            if not self._submit(sizes[index] if sizes else None):
                return

    def _submit(self, size: int | None = None) -> bool:
        """Submit one request; False once the workload has submitted all it was asked to."""
        if self.limit is not None and self.submitted >= self.limit:
            return False
        self.submitted += 1
        if self.submitted - self.completed > self.max_backlog:
            raise OverloadError(
                f"workload {self.name}: {self.submitted - self.completed:,} requests waiting at "
                f"{self.env.now / 1e6:.3f} ms of simulated time: offered faster than {self.device.name} completes "
                f"them (limits.backlog = {self.max_backlog:,}: lower the load, or raise the limit with "
                f"--set limits.backlog=N)")
        request = Request(self.sim.next_request_id(), self, self.sizes() if size is None else size, self.env.now)
        self.queue.submit(request)
        return True

    def waiting(self) -> dict:
        """The requests still waiting, read once at the end (nothing is tracked per request): how many the
        driver holds back (not yet on the ring), how many are on the ring, when the oldest was submitted, and
        how many completed by then (the teardown after the end may complete more)."""
        if self.queue is None:
            return {"completed_by_end": self.completed, "backlog": 0, "on_ring": 0, "oldest_waiting_ns": None}
        backlog = [request.submit_ns for request in self.queue.backlog if request.workload is self]
        on_ring = [token.submit_ns for token in self.queue.ring.outstanding()
                   if getattr(token, "workload", None) is self]
        return {"completed_by_end": self.completed, "backlog": len(backlog), "on_ring": len(on_ring),
                "oldest_waiting_ns": min(backlog + on_ring, default=None)}

    def complete(self, request: Request, now: int) -> None:
        """Called by the driver's queue when the request's buffer came back on the used ring."""
        self.completed += 1
        self.sim.requests.add(request.request_id, self._driver_log, self._device_log, self.device.dev_num,
                              self.vq, request.size, request.submit_ns, request.start_ns, request.service_ns, now)
        self.sim.completed_one()
        if self.arrivals.kind == "closed":
            think = self.think()
            if think:
                self.env.timeout(think).callbacks.append(lambda _event: self._submit())
            else:
                self._submit()
        if self.limit is not None and self.completed >= self.limit and not self.done.triggered:
            self.done.succeed()
