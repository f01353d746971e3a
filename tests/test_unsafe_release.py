"""`unsafe_release`: the driver reclaims a region as soon as it asked for it back, without the device's
completion (the design the group moved away from). Nothing in the run breaks visibly; the checker finds
every such reclaim, on every bus kind, and finds nothing when the release waits."""

from pathlib import Path

import pytest
from sharing_helpers import counts, lifecycle, one, shared, verdict
from sim_helpers import run

import vmsim

UNSAFE = Path(__file__).resolve().parents[1] / "scenarios" / "sharing" / "amp-vsock-unsafe.yaml"


@pytest.mark.parametrize("kind", ["amp", "xen", "ffa"])
def test_the_driver_reclaims_right_after_asking_and_the_checker_says_so(kind):
    """One request: the driver's release.request is followed at once by its reclaim, with no release.done
    (the device's completion) in between; both reclaim checks name that region."""
    _, output = run(one(kind, {"unsafe_release": True}))
    story = [(side, event) for side, event, _region in lifecycle(output, kind)]
    assert story[-2:] == [("driver", "release.request"), ("driver", "reclaim")]
    assert verdict(output) == {"no-reclaim-before-relinquish": 1, "release-completes-after-ack": 1}
    assert counts(output, kind)["unsafe_releases"] == 1


@pytest.mark.parametrize("kind", ["amp", "xen", "ffa"])
def test_every_unsafe_release_is_a_violation_and_the_safe_release_none(kind):
    """40 requests, a region each: 40 unsafe reclaims, 40 violations of each reclaim check; the same run
    with the release waiting for the device is clean."""
    _, unsafe = run(shared(kind, {"unsafe_release": True}))
    _, safe = run(shared(kind))
    assert counts(unsafe, kind)["unsafe_releases"] == counts(unsafe, kind)["reclaims"] == 40
    assert verdict(unsafe) == {"no-reclaim-before-relinquish": 40, "release-completes-after-ack": 40}
    assert verdict(safe) == {}
    assert unsafe.workloads["stream"]["completed"] == safe.workloads["stream"]["completed"] == 40


def test_the_shipped_unsafe_scenario_fails_its_check_and_its_safe_twin_passes():
    """scenarios/sharing/amp-vsock-unsafe.yaml: summary.json's `check` fails on the two reclaim checks only,
    with a message per violation; switching `unsafe_release` off makes it pass."""
    unsafe = vmsim.run(UNSAFE, write=False).summary["check"]
    failed = {check["name"]: check for check in unsafe["checks"] if check["status"] == "failed"}
    assert unsafe["status"] == "failed"
    assert set(failed) == {"no-reclaim-before-relinquish", "release-completes-after-ack"}
    assert failed["no-reclaim-before-relinquish"]["violations"][0]["message"] == (
        "reclaimed while the device still held the region")
    safe = vmsim.run(UNSAFE, write=False, set=["devices[0].sharing.unsafe_release=false"]).summary["check"]
    assert safe["status"] == "ok"
