"""Queueing oracles: with every transport cost zero, a device is a textbook single-server queue."""

import pytest
from sim_helpers import run

from vmsim.analysis.stats import batch_means, md1_response_ns, mm1_response_ns

RATE_HZ = 50_000
SERVICE_NS = 10_000  # rho = 0.5


def ideal_queue(service: dict, requests: int = 60_000) -> dict:
    zero = {"kind": "ideal"}
    return {
        "name": "oracle", "seed": 11,
        "platform": {"name": "ideal", "memory": {"free": {}}, "doorbells": {"free": zero}},
        "drivers": [{"name": "host", "discovery": "platform"}],
        "buses": [{"kind": "amp", "name": "ideal0", "driver": "host", "memory": "free", "doorbell": "free",
                   "handshake_retry": 1}],
        "devices": [{"name": "server", "bus": "ideal0", "dev_num": 1, "queue_size": 1024, "service": service}],
        "workloads": [{"name": "poisson", "device": "server", "requests": requests,
                       "arrivals": {"kind": "poisson", "rate": RATE_HZ}}],
    }


def sojourn_interval(data):
    _, output = run(data)
    latency = output.requests.columns()["latency_ns"]
    return batch_means(latency[len(latency) // 10:])  # drop the first 10 % as warm-up


@pytest.mark.parametrize(("service", "theory"), [
    ({"dist": "exponential", "mean": SERVICE_NS}, mm1_response_ns(RATE_HZ, SERVICE_NS)),
    ({"dist": "constant", "value": SERVICE_NS}, md1_response_ns(RATE_HZ, SERVICE_NS)),
], ids=["M/M/1", "M/D/1"])
def test_mean_sojourn_matches_theory_within_batch_means_confidence(service, theory):
    """M/M/1: W = 1/(mu - lambda) = 20 us; M/D/1 (Pollaczek-Khinchine): W = 15 us at rho = 0.5.

    The tolerance is the batch-means 95 % half-width (20 batches), widened to 3 half-widths so that
    a correct model fails this test far less than once in a thousand seeds, plus 1 % for bias.
    """
    interval = sojourn_interval(ideal_queue(service))
    assert abs(interval.mean - theory) <= 3 * interval.half_width + 0.01 * theory, interval
    assert interval.half_width < 0.06 * theory  # the interval itself is tight enough to mean something
