"""The receive loop every bus kind runs: one side's handler, woken by its notifier, taking what is pending.

An AMP or Xen channel draining its queue, an FF-A endpoint reading its RX buffer or FIFO ring, a partition
answering on one of its vCPUs: each is "wait for a wake-up (or a poll tick), enter the handler, take what
is pending, leave, and run again at once if a wake-up was left over". The loop is here once; what differs
is in the hooks a receiver supplies.
"""

from __future__ import annotations


class Waker:
    """A reusable wake-up for one long-lived process: `kick()` never loses a wake-up."""

    __slots__ = ("env", "event")

    def __init__(self, env):
        self.env = env
        self.event = env.event()

    def kick(self) -> None:
        if not self.event.triggered:
            self.event.succeed()

    def wait(self):
        return self.event

    def rearm(self) -> None:
        """After waking: kicks from now on wake the next wait (earlier ones are covered by this drain)."""
        self.event = self.env.event()


class Receiver:
    """One side's receive handler. A subclass sets `env` and `waker` (kicked by its notifier: `wake`) and
    supplies the hooks:

    - `drain()`: take and deliver what is pending (a generator); required;
    - `enter()`: the handler's entry before draining (acknowledge, mask its port, take a vCPU, read
      out-of-band notification words), a generator; nothing by default;
    - `leave()`: its exit after draining (unmask, give the vCPU back), a generator whose value says whether
      to run again at once (a send arrived while masked, the budget ran out with frames left);
    - `polling_ns`: poll every that often instead of waiting for a wake-up, each look costing `poll()`,
      held on `cpu` (a processor) when the receiver has one.
    """

    waker: Waker
    polling_ns: int | None = None
    cpu = None

    def wake(self) -> None:
        """The handler is to run (the notifier delivered)."""
        self.waker.kick()

    def receive_loop(self):
        env = self.env
        waker = self.waker
        polling = self.polling_ns
        while True:
            if polling:
                cost = self.poll()
                if self.cpu is None:
                    yield env.timeout(polling + cost)
                else:
                    yield env.timeout(polling)
                    self.cpu.by_activity["notify"] += cost
                    yield from self.cpu.hold(cost)
            else:
                yield waker.event
                waker.event = env.event()
            yield from self.enter()
            yield from self.drain()
            if (yield from self.leave()):
                waker.kick()

    def poll(self) -> int:
        """One poll's look at what is pending: its cost."""
        return 0

    def enter(self):
        return
        yield

    def drain(self):
        raise NotImplementedError

    def leave(self):
        return False
        yield
