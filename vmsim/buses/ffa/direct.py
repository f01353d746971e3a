"""How an FF-A bus carries a frame by direct message: FFA_MSG_SEND_DIRECT_REQ2/RESP2, the frame in x4..x17,
synchronous under the driver endpoint's lock. The partition answers on one of its vCPUs while the call waits, or
answers busy (the all-zero image) when it has none free; the driver retries at once, `busy_retries` times in
all (L-26). The driver's legs of the call hold its core (`Side.work`)."""

from __future__ import annotations

from vmsim.buses.ffa.protocol import BUSY_IMAGE
from vmsim.wire.ffa import pack_direct_req2, unpack_direct_req2


class FfaDirect:
    """The direct-message half of `FfaBus` (a mixin over its state): one REQ2 call and the partition's RESP2."""

    def _direct(self, frame: bytes, dev_num: int):
        """FFA_MSG_SEND_DIRECT_REQ2 under the driver endpoint's lock; returns (taken, the RESP2 frame or None):
        an event's RESP2 carries no frame; `taken` is False when every attempt was answered busy."""
        lock = self.driver_side.lock.request()
        yield lock
        if self.withdrawn(frame, dev_num):
            answer = True, None
        else:
            answer = yield from self._direct_locked(frame, dev_num)
        self.driver_side.lock.release(lock)
        return answer

    def _direct_locked(self, frame: bytes, dev_num: int):
        partition, leg = self.partition, self.path.leg
        driver = self.driver_side
        request = pack_direct_req2(frame)  # x4..x17
        if self.driver_cpu_ns:
            yield from driver.work("frames", self.driver_cpu_ns)
        for attempt in range(1, self.spec.busy_retries + 1):
            self.counts["direct_calls"] += 1
            self.mark(driver.component, "ffa.msg_send_direct_req2", dev_num, len(frame))
            self._sent(driver, dev_num, frame)
            yield from driver.work("calls", leg)
            if self._busy_response and not partition.vcpus.free():
                partition.counts["busy_answers"] += 1
                reply = BUSY_IMAGE
            else:
                response = yield from self._direct_at_partition(request, dev_num)
                if not response:
                    yield from driver.work("calls", leg)
                    return True, None  # an event: its RESP2 carries no frame
                reply = pack_direct_req2(response)
            yield from driver.work("calls", leg)
            response = unpack_direct_req2(reply)
            if response is not None:
                if self.dropped(driver, response, dev_num):
                    return True, None  # the partition answered; the answer was lost on the way
                self._frame(driver.inbound, "rx", dev_num, response)
                return True, self.received(driver, response)
            self.counts["busy"] += 1  # the all-zero sentinel: retried at once (L-26)
            self.mark(driver.component, "ffa.busy", dev_num, attempt)
        self.counts["tx_failed"] += 1  # L-26 returns -EBUSY after its retry budget: the frame is lost
        return False, None

    def _direct_at_partition(self, request: bytes, dev_num: int):
        """The partition takes a vCPU (or yields it back first), reads the frame from x4..x17 and answers;
        returns the response frame, b"" for an event."""
        env, partition, device = self.env, self.partition, self.device_side
        vcpus = partition.vcpus
        yield from vcpus.enter()
        if self._rng is not None and self._rng.random() < self.spec.yield_probability:
            vcpus.leave()  # FFA_YIELD: the partition hands its CPU back
            partition.counts["yields"] += 1
            self.mark(device.component, "ffa.yield", dev_num)
            yield from self.driver_side.work("calls", self.path.leg)  # back to the driver, whose core it holds
            yield env.timeout(self._sleep())  # Linux sleeps 1-2 ms, then FFA_RUN (A.6 row 35)
            self.mark(self.driver_side.component, "ffa.run", dev_num)
            yield from self.driver_side.work("calls", self.path.leg)
            yield from vcpus.enter()
        received = unpack_direct_req2(request)
        if not self.dropped(device, received, dev_num):
            if self.device_cpu_ns:
                yield from device.work("frames", self.device_cpu_ns)
            self._frame(device.inbound, "rx", dev_num, received)
            received = self.received(device, received)
        if received is None:  # lost on the way, or a silent partition: RESP2 carries nothing back
            vcpus.leave()
            self.mark(device.component, "ffa.msg_send_direct_resp2", dev_num, 0)
            return b""
        answered = yield from self.at_partition(received)
        late = self.settle_late()
        if late:  # a late answer to a synchronous call: the call itself takes that much longer
            yield env.timeout(late)
        vcpus.leave()
        response = answered[0] if answered else b""
        self.mark(device.component, "ffa.msg_send_direct_resp2", dev_num, len(response))
        if response:
            self._sent(device, dev_num, response)
        return response
