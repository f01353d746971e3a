"""One direction of a shared-memory bus: a queue in real bytes, a doorbell, and a receive loop.

AMP queue pairs and the Xen shared page are both "the sender copies a frame into the next queue
element, publishes its index and rings; the receiver's handler drains the queue". The queue itself
is a `vmsim.wire` view over a bytearray, so the format is exercised, not imitated; costs come from
the bytes each step touches, as the format describes them place by place (`vmsim.wire.accesses`): its index
width, which indices share a line, when it reloads the peer's index, where its elements lie. `faults:` aimed at a direction (`vmsim.sim.faults`) drop frames as they are
sent, damage them as they are read (the log keeps what was sent) or have the receiver ignore them in a
window; a damaged frame is the decoder's to reject.
"""

from __future__ import annotations

from vmsim.sim.bus import Bus
from vmsim.sim.core import Component, Simulation
from vmsim.sim.costs import MemoryCost, RepeatedAccess
from vmsim.sim.doorbell import Doorbell
from vmsim.sim.faults import FRAME_KINDS, faults_on
from vmsim.sim.processor import Unshared
from vmsim.sim.receive import Receiver, Waker


class Channel(Receiver, Component):
    """Sender side: `yield from channel.send(frame, dev_num)`. Receiver side (`vmsim.sim.receive`): `deliver(frame)`
    per frame, after `frame_in` cut the frame out of the whole queue element it read; when `deliver` returns a
    generator (the driver's used-buffer handler), the receive loop runs it before the next frame.

    Backpressure: when the queue is full the sender retries every `retry_ns`, up to `retries`
    times (the reference Linux AMP driver retries 1000 x 10 ms), then the frame is dropped and
    counted as `tx_failed`.

    `doorbell` replaces the `Doorbell` of `doorbell_kind` with a ready-made one (a Xen event-channel port,
    which the handler masks and unmasks).

    `sender_cpu` and `receiver_cpu` are the processors each side's work holds (`vmsim.sim.processor`): the
    sender's copy, index update and ring as thread work, the receiver's handler as interrupt work, a poll as
    thread work. Without them the work takes its time on no shared processor.
    """

    def __init__(self, sim: Simulation, name: str, *, queue, bus_id: int, doorbell_kind,
                 sender_memory: MemoryCost, receiver_memory: MemoryCost,
                 sender_cpu_ns: int, receiver_cpu_ns: int, deliver, frame_in,
                 polling_ns: int | None = None, budget: int = 0,
                 retry_ns: int = 10_000_000, retries: int = 1000, doorbell=None, sender_cpu=None, receiver_cpu=None):
        super().__init__(sim, name)
        self.sender_cpu = sender_cpu or Unshared(sim.env)
        self.cpu = self.receiver_cpu = receiver_cpu or Unshared(sim.env)
        self.queue = queue
        self.bus_id = bus_id
        self.sender_memory = sender_memory
        self.receiver_memory = receiver_memory
        self.sender_cpu_ns = sender_cpu_ns
        self.receiver_cpu_ns = receiver_cpu_ns
        self.deliver = deliver
        self.frame_in = frame_in
        self.polling_ns = polling_ns
        self.budget = budget
        self.retry_ns = retry_ns
        self.retries = retries
        self.waker = Waker(sim.env)
        self.doorbell = None if polling_ns else doorbell or Doorbell(
            sim, f"{name}.doorbell", doorbell_kind, bus_id, self.wake)
        # Pushes and pops alike in where their element lies (`_key_of`), frame length and reload cost the same:
        # each cost is worked out once, and its traffic counted each time.
        self._push_costs: dict[tuple, RepeatedAccess] = {}
        self._pop_costs: dict[tuple, RepeatedAccess] = {}
        self._push_keys = self._key_of(sender_memory)
        self._pop_keys = self._key_of(receiver_memory)
        self.look_access = receiver_memory.placed(queue.look_accesses())
        self.looked = 0  # the last drain's last look, its time paid with the next drain's first frame
        self.ack_cost = self.doorbell.ack_cost if self.doorbell is not None else 0
        self.extra_pending = None  # an out-of-band notification source drained with the queue
        self.counts = sim.counter(name)
        self.counts.update(frames=0, bytes=0, full=0, tx_failed=0, rx_frames=0, busy_ns=0, rx_busy_ns=0, polls=0)
        self.occupancy = sim.new_series(f"{name}.occupancy")
        self.faults = faults_on(sim, name, FRAME_KINDS)  # `faults:` aimed at this direction, or None
        log = sim.log
        self._log = log
        self._ev_tx = log.events("tx")
        self._ev_rx = log.events("rx")
        self._ev_full = log.events("queue.full")
        sim.env.process(self.receive_loop())

    # --- sender ---------------------------------------------------------------------------------

    withdraws = None  # the bus's `withdrawn`, asked once the sender may write: a frame to a removed device stays

    def send(self, frame: bytes, dev_num: int):
        """Copy `frame` into the queue, publish it and ring (a generator: the sender's time passes)."""
        env = self.env
        element, reload = self.queue.next_push()
        size = len(frame)
        line, near = self._push_keys
        key = (element % line, element < near, size, reload)
        access = self._push_costs.get(key)
        if access is None:
            access = self._push_costs[key] = self.sender_memory.placed(self.queue.push_accesses(element, size, reload))
        access.count()
        cost = self.sender_cpu_ns + access.cost
        if cost:
            self.sender_cpu.by_activity["frames"] += cost
            yield from self.sender_cpu.hold(cost)
            self.counts["busy_ns"] += cost
        if self.withdraws is not None and self.withdraws(frame, dev_num):
            return
        if self.faults is not None and self.faults.dropped(frame, dev_num):
            return
        attempts = 0
        while not self.queue.try_push(frame):
            attempts += 1
            self.counts["full"] += 1
            self._log.mark(env.now, self.log_id, self._ev_full, self.bus_id, dev_num, attempts)
            if attempts > self.retries:
                self.counts["tx_failed"] += 1
                return
            yield from self.back_off()
        now = env.now
        self.counts["frames"] += 1
        self.counts["bytes"] += size
        self._log.frame(now, self.log_id, self._ev_tx, self.bus_id, dev_num, frame)
        self.occupancy.record(now, len(self.queue))
        yield from self.ring(dev_num)

    def back_off(self):
        """Wait before retrying a full queue (a plug-in may free the sender's CPU meanwhile)."""
        yield self.env.timeout(self.retry_ns)

    def ring(self, dev_num: int = -1):
        """Ring the receiver (nothing to do when it polls)."""
        if self.doorbell is not None:
            cost = self.doorbell.ring(dev_num)
            if cost:
                self.sender_cpu.by_activity["notify"] += cost
                yield from self.sender_cpu.hold(cost)

    # --- receiver -------------------------------------------------------------------------------

    def _key_of(self, memory: MemoryCost) -> tuple[int, int]:
        """What an operation's cost depends on besides its frame length and reload: where its element lies in
        a line of `memory`, and whether that line may hold an index too (elements that start before the end of
        the indices' last line). Operations alike in both cost the same, so their cost is worked out once."""
        line = memory.line
        indices_end = max(offset + nbytes for offset, nbytes, _ in self.queue.look_accesses())
        return line, -(-indices_end // line) * line

    def poll(self) -> int:
        """Each poll is a look at the queue: an empty pop's reads."""
        look = self.look_access
        look.count()
        cost = look.cost
        self.counts["rx_busy_ns"] += cost
        self.counts["polls"] += 1
        return cost

    def enter(self):
        if self.extra_pending is not None:
            yield from self.extra_pending()

    def leave(self):
        """Run again at once when the budget ran out with frames left, as a re-raised interrupt would."""
        return bool(self.budget and len(self.queue))
        yield

    def drain(self):
        """Read and deliver frames until the queue is empty or the receive budget is spent; the doorbell's
        acknowledgement is handler time paid before the first frame. Each frame costs the receiver's software
        and what its pop touches. The last look (the pop that finds the queue empty) is counted as it is made
        and its time paid with the next drain's first frame, as no step waits on it: one hold fewer."""
        env = self.env
        queue = self.queue
        budget = self.budget
        counts = self.counts
        log = self._log
        software = self.receiver_cpu_ns
        owed = self.ack_cost
        looked = self.looked
        pop_costs = self._pop_costs
        line, near = self._pop_keys
        handled = 0
        while len(queue) and (not budget or handled < budget):
            element, reload = queue.next_pop()
            key = (element % line, element < near, reload)
            access = pop_costs.get(key)
            if access is None:
                access = pop_costs[key] = self.receiver_memory.placed(queue.pop_accesses(element, reload))
            per_frame = software + access.cost
            if per_frame + owed + looked:
                counts["rx_busy_ns"] += per_frame + owed + looked
                self.receiver_cpu.by_activity["frames"] += per_frame + looked
                if owed:
                    self.receiver_cpu.by_activity["notify"] += owed
                yield from self.receiver_cpu.hold(per_frame + owed + looked, irq=True)
                owed = looked = 0
            frame = self.frame_in(queue.try_pop())
            now = env.now
            counts["rx_frames"] += 1
            access.count()
            log.frame(now, self.log_id, self._ev_rx, self.bus_id, -1, frame)
            self.occupancy.record(now, len(queue))
            handled += 1
            if self.faults is not None:
                frame = self.faults.received(frame)
                if frame is None:
                    continue  # a silent peer took it off the queue and did nothing
            work = self.deliver(frame)
            if work is not None:
                yield from work  # the handler's own work (the driver's used-buffer handler) runs here
        if handled and (not budget or handled < budget):  # the loop ended on a look that found nothing
            look = self.look_access
            look.count()
            looked += look.cost
        self.looked = looked


class QueuePairBus(Bus):
    """A bus carried by two channels over shared memory (AMP window, Xen shared page): frames wait
    for `ready` (the queues' set-up or handshake), then go through the channel of their direction."""

    to_device: Channel
    to_driver: Channel
    ready = None  # an event a plug-in sets up and succeeds once the queues may carry frames

    def start(self) -> None:
        super().start()
        self.to_device.withdraws = self.withdrawn

    def carry_to_device(self, frame: bytes, dev_num: int):
        if not self.ready.triggered:
            yield self.ready
        yield from self.to_device.send(frame, dev_num)

    def carry_to_driver(self, frame: bytes, dev_num: int):
        if not self.ready.triggered:
            yield self.ready
        yield from self.to_driver.send(frame, dev_num)
