"""How an FF-A bus moves frames besides direct messages: FFA_MSG_SEND2 through the RX/TX buffers, the 2026
FIFO rings, and the FF-A notifications that kick their receivers. Each cost is held on the paying side's core
(`Side.work`): a sender's as thread work, a receive handler's as interrupt work; the partition's side holds a
vCPU around these steps instead."""

from __future__ import annotations

from vmsim.buses.ffa.partition import Side
from vmsim.buses.ffa.protocol import FIFO_DEVICE_NOTIF_ID, FIFO_DRIVER_NOTIF_ID, MSG_SEND2_HEADER


class FfaMessages:
    """The indirect and FIFO half of `FfaBus` (a mixin over its state): sending and reading one frame."""

    def _notification_set(self, sender: Side, receiver: Side, notif_id: int, dev_num: int, irq: bool = False):
        """FFA_NOTIFICATION_SET: a call to the framework, which then signals the receiver."""
        self.mark(sender.component, "ffa.notification_set", dev_num, notif_id)
        if sender.call:
            yield from sender.work("calls", sender.call, irq)
        cost = receiver.bell.ring(dev_num)
        if cost:
            yield from sender.work("notify", cost, irq)

    # --- indirect messages ------------------------------------------------------------------------------

    def _msg_send2(self, sender: Side, receiver: Side, frame: bytes, dev_num: int):
        """FFA_MSG_SEND2: header and frame into the sender's TX buffer; the framework copies them into
        the receiver's RX buffer and raises "RX buffer full". A full RX buffer answers BUSY: L-26 sleeps
        1-2 ms and retries, `tx_busy_retries` times in all, then the frame is lost."""
        env = self.env
        lock = sender.lock.request()
        yield lock
        size = MSG_SEND2_HEADER.size + len(frame)
        MSG_SEND2_HEADER.pack_into(sender.tx, 0, 0, 0, MSG_SEND2_HEADER.size,
                                   sender.endpoint << 16 | receiver.endpoint, len(frame), 0)
        sender.tx[MSG_SEND2_HEADER.size:size] = frame
        cost = sender.cpu_ns + sender.memory.write(size)
        if cost:
            yield from sender.work("frames", cost)
        for attempt in range(1, self.spec.tx_busy_retries + 1):
            self.mark(sender.component, "ffa.msg_send2", dev_num, len(frame))
            if not receiver.rx.full:
                receiver.rx.full = True
                receiver.rx.buffer[:size] = sender.tx[:size]
                copied = sender.memory.read(size) + receiver.memory.write(size)  # the framework's, in the call
                sender.cpu.by_activity["calls"] += sender.call
                sender.cpu.by_activity["frames"] += copied
                yield from sender.cpu.hold(sender.call + copied)
                self._sent(sender, dev_num, frame)
                cost = receiver.bell.ring(dev_num)
                if cost:
                    yield from sender.work("notify", cost)
                break
            yield from sender.work("calls", sender.call)
            self.counts["busy"] += 1
            self.mark(sender.component, "ffa.busy", dev_num, attempt)
            if attempt == self.spec.tx_busy_retries:
                self.counts["tx_failed"] += 1
                break
            yield env.timeout(self._sleep())
        sender.lock.release(lock)

    def _read_mailbox(self, side: Side):
        """Read the message in `side`'s RX buffer, then give the buffer back with FFA_RX_RELEASE."""
        _flags, _, offset, _ids, size, _ = MSG_SEND2_HEADER.unpack_from(side.rx.buffer)
        frame = bytes(side.rx.buffer[offset:offset + size])
        cost = side.cpu_ns + side.memory.read(offset + size)
        if cost:
            yield from side.work("frames", cost, irq=True)
        self.mark(side.component, "ffa.rx_release")
        if side.call:
            yield from side.work("calls", side.call, irq=True)
        side.rx.full = False
        self._frame(side.inbound, "rx", -1, frame)
        return frame

    # --- FIFO rings ---------------------------------------------------------------------------------------

    def _fifo_send(self, sender: Side, receiver: Side, frame: bytes, dev_num: int):
        """Push into the sender's ring and kick the peer with an FF-A notification (L-26 notifies per
        message). A full ring waits, without the lock, for the consumer's notify-after-full."""
        ring = sender.fifo_tx
        lock = sender.lock.request()
        yield lock
        while True:
            read, written = ring.bytes_read, ring.bytes_written
            pushed = ring.try_push(frame)
            cost = sender.memory.access(ring.bytes_read - read, ring.bytes_written - written)
            if pushed:
                break
            sender.sent["full"] += 1
            self.mark(sender.outbound, "queue.full", dev_num)
            sender.lock.release(lock)
            yield sender.space
            lock = sender.lock.request()
            yield lock
        yield from sender.work("frames", sender.cpu_ns + cost)
        self._sent(sender, dev_num, frame)
        yield from self._notification_set(sender, receiver, self._notif_id(receiver), dev_num)
        sender.lock.release(lock)

    def _fifo_pop(self, side: Side):
        """Take one entry from `side`'s ring; after taking from a full ring, notify the producer."""
        ring = side.fifo_rx
        read, written = ring.bytes_read, ring.bytes_written
        frame = self.frame_in(ring.try_pop())
        cost = side.cpu_ns + side.memory.access(ring.bytes_read - read, ring.bytes_written - written)
        if cost:
            yield from side.work("frames", cost, irq=True)
        self._frame(side.inbound, "rx", -1, frame)
        if ring.was_full:
            peer = self.device_side if side is self.driver_side else self.driver_side
            yield from self._notification_set(side, peer, self._notif_id(peer), -1, irq=True)
        return frame

    def _notif_id(self, receiver: Side) -> int:
        return FIFO_DEVICE_NOTIF_ID if receiver is self.device_side else FIFO_DRIVER_NOTIF_ID

    # --- what a receive handler reads ---------------------------------------------------------------------

    def pending_in(self, side: Side) -> bool:
        """Whether `side` has a frame waiting: a full RX buffer or an entry in its FIFO ring."""
        return side.rx.full or side.fifo_rx is not None and len(side.fifo_rx) > 0

    def read_one(self, side: Side):
        """Read the next frame waiting for `side` (its RX buffer first), paying what reading costs."""
        if side.rx.full:
            return (yield from self._read_mailbox(side))
        return (yield from self._fifo_pop(side))
