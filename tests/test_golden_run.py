"""One shipped scenario pinned to the byte: any change to what the model does shows up here.

Same scenario and seed already give identical results within a version (test_sim_bus); this pins them
across versions. When a change is meant to alter the model's behaviour, say so in the commit and replace
the digests with the ones the failure prints.
"""

import hashlib
from pathlib import Path

import numpy as np

import vmsim

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "stm32mp1-i2c.yaml"
REQUESTS_SHA256 = "88ab0981e16bafdc9c4ef7e16e1d9921c16f20de575c9947f28cf6199162a76d"
EVENTS_SHA256 = "5764e95517652aa7f7f8533705370d2382f1d9849817eb7ef1e18cdf44337402"


def digest(*chunks: bytes) -> str:
    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(chunk)
    return sha.hexdigest()


def test_the_stm32mp1_i2c_run_is_the_same_to_the_byte():
    """499 requests and 3,569 logged events of the shipped STM32MP1 virtio-i2c pair (seed 1): every request's
    times, and every event's time, kind, component and frame bytes."""
    output = vmsim.run(SCENARIO, write=False).output
    requests = output.requests.columns()
    request_bytes = [np.asarray(requests[name], dtype="<i8").tobytes()
                     for name in ("request_id", "submit_ns", "start_ns", "service_ns", "complete_ns")]
    log = output.events
    event_bytes = [np.frombuffer(log.time, dtype=np.int64).astype("<i8").tobytes(),
                   np.frombuffer(log.event, dtype=np.int32).astype("<i4").tobytes(),
                   np.frombuffer(log.component, dtype=np.int32).astype("<i4").tobytes(), bytes(log.blob)]
    assert (len(requests["request_id"]), len(log)) == (499, 3569)
    assert digest(*request_bytes) == REQUESTS_SHA256
    assert digest(*event_bytes) == EVENTS_SHA256
