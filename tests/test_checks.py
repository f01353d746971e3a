"""The safety checks read only the lifecycle marks of the event log. On logs written by hand each rule fails
alone and names its rows; on runs with deliberately broken policies (test-only) the checks catch the fault,
and `vmsim run` prints the violations and exits 1."""

import pytest
import yaml
from sharing_helpers import one, shared
from sim_helpers import run

from vmsim.analysis.checks import CHECKS, check_events
from vmsim.cli import main
from vmsim.scenario.models import Scenario
from vmsim.sim import build
from vmsim.sim.log import EventLog
from vmsim.sim.sharing import DeviceShares, ShareDriver
from vmsim.tables import events_table

DRIVER, DEVICE = "amp0.dev.share.driver", "amp0.dev.share.device"
CLEAN = [(DRIVER, "share.request"), (DEVICE, "share.ack"), (DRIVER, "share.done"), (DEVICE, "share.access"),
         (DRIVER, "release.request"), (DEVICE, "release.ack"), (DRIVER, "release.done"), (DRIVER, "reclaim")]


def log_of(rows, region=7) -> EventLog:
    """An event log holding `rows` ((component, event)) for one region, one row per microsecond."""
    log = EventLog()
    bus = log.add_bus("amp0", "vmsim-share")
    for time, (component, event) in enumerate(rows):
        log.mark(1000 * time, log.components(component), log.events(event), bus, 1, region)
    return log


def failed(check) -> dict:
    return {entry["name"]: [(v["rows"], v["message"]) for v in entry["violations"]]
            for entry in check["checks"] if entry["status"] == "failed"}


def test_a_clean_lifecycle_passes_every_check_and_a_run_without_sharing_has_nothing_to_fail():
    check = check_events(log_of(CLEAN * 2))  # the id may be shared again once reclaimed
    assert check["status"] == "ok"
    assert [entry["name"] for entry in check["checks"]] == list(CHECKS)
    assert all(entry["violations_total"] == 0 for entry in check["checks"])
    assert check_events(EventLog())["status"] == "ok"


def test_an_access_after_the_release_ack_names_both_rows():
    rows = CLEAN[:6] + [(DEVICE, "share.access")] + CLEAN[6:]
    assert failed(check_events(log_of(rows))) == {"no-access-after-release": [
        ([6, 5], "the device touched the region after the device acknowledged its release")]}


def test_an_access_before_the_share_ack_touches_memory_not_yet_shared():
    rows = [CLEAN[0], CLEAN[3], CLEAN[1], CLEAN[2], *CLEAN[4:]]
    assert failed(check_events(log_of(rows))) == {"no-access-after-release": [
        ([1], "the device touched the region before it was shared")]}


def test_a_reclaim_before_the_device_let_go_fails_both_release_rules():
    rows = CLEAN[:5] + [(DRIVER, "reclaim"), (DEVICE, "release.ack"), (DRIVER, "release.done")]
    assert failed(check_events(log_of(rows))) == {
        "no-reclaim-before-relinquish": [([5, 1], "reclaimed while the device still held the region")],
        "release-completes-after-ack": [([5, 4], "reclaimed before the release was acknowledged")],
    }


def test_a_share_left_unanswered_and_a_region_never_reclaimed_are_reported_at_the_end():
    rows = [CLEAN[0], CLEAN[0]]
    again = "asked again before the previous share request was answered or timed out"
    assert failed(check_events(log_of(rows))) == {
        "share-acknowledged-or-timed-out": [([0, 1], again),
                                            ([1], "the share request was neither answered nor timed out by the end")],
        "nothing-left-shared": [([0], "still shared at the end: never reclaimed")],
    }
    held = check_events(log_of(CLEAN[:4]))
    assert failed(held) == {"nothing-left-shared": [([0, 1], "still shared at the end: the device holds it")]}


def test_the_events_table_gives_the_same_verdict_as_the_log():
    """events.parquet is enough: the checks read its rows (their numbers are the table's)."""
    log = log_of(CLEAN[:5] + [(DRIVER, "reclaim")])
    from_table = check_events(events_table_of(log))
    assert from_table == check_events(log) and from_table["status"] == "failed"


def events_table_of(log):
    class Output:
        events = log

    return events_table(Output).to_pandas()


# --- broken policies, test-only: the checks catch them in a real run ---------------------------------------


def run_with(data, **patches):
    """Run `data` with methods of the model's ShareDriver / DeviceShares replaced (test-only breakage)."""
    model = build(Scenario.model_validate(data))
    bus = next(iter(model.buses.values()))
    sharer = next(iter(bus.sharers.values()))
    for name, make in patches.items():
        owner = bus.shares if name.startswith("device_") else sharer
        setattr(owner, name.removeprefix("device_"), make(owner))
    return model.run()


def reclaim_without_waiting(sharer: ShareDriver):
    """A driver that asks the device to let go and reclaims at once, before the relinquish is acknowledged."""

    def give_back(region):
        region.state = "releasing"
        sharer._mark("release.request", region)
        sharer.env.process(sharer.bus.call(sharer.bus.mechanism.unshare_frame(region), sharer.spec.ack_timeout))
        yield from sharer._reclaim(region, sharer.env.now)

    return give_back


def touch_after_release(shares: DeviceShares):
    """A device that touches the buffer once more after it gave the region back (a late write-back)."""
    release = shares._release

    def late_write(region):
        yield from release(region)
        region.owner.device_mark("share.access", region)

    return late_write


@pytest.mark.parametrize("kind", ["amp", "xen", "ffa"])
def test_a_driver_that_reclaims_before_the_relinquish_ack_is_caught(kind):
    """The reclaim never waited for the acknowledgement, and on every bus the device still held the region
    when it was reclaimed. On FF-A the AREA_UNSHARE is a synchronous call, but it is sent from another of the
    driver's threads, which waits for the driver's core while the reclaim holds it."""
    output = run_with(one(kind), _give_back=reclaim_without_waiting)
    assert set(failed(check_events(output.events))) == {"release-completes-after-ack", "no-reclaim-before-relinquish"}


def test_a_device_that_touches_a_buffer_after_its_release_is_caught():
    output = run_with(shared("amp", {"release": "device"}, requests=5), device__release=touch_after_release)
    violations = failed(check_events(output.events))
    assert list(violations) == ["no-access-after-release"] and len(violations["no-access-after-release"]) == 5


def test_a_driver_that_never_gives_back_what_it_shared_is_caught_as_a_leak():
    def keep_everything(sharer):
        def teardown():
            return
            yield

        return teardown

    output = run_with(shared("xen", {"policy": "pool", "pool": 3}), teardown=keep_everything)
    assert failed(check_events(output.events)).keys() == {"nothing-left-shared"}
    assert check_events(output.events)["checks"][-1]["violations_total"] == 3


def test_vmsim_run_prints_the_violations_and_exits_1(tmp_path, monkeypatch, capsys):
    """The result folder is still written (to look at the rows named), the one-screen summary ends with the
    failed checks, and the exit status is 1."""
    data = shared("amp", {"policy": "pool", "pool": 2})
    data["platform"] = {key: value for key, value in data["platform"].items()}
    (tmp_path / "leaky.yaml").write_text(yaml.safe_dump(data))

    def teardown(self):
        return
        yield

    monkeypatch.setattr(ShareDriver, "teardown", teardown)
    with pytest.raises(SystemExit) as exited:
        main(["run", str(tmp_path / "leaky.yaml"), "--out", str(tmp_path / "out"), "--no-plots", "--no-trace"])
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert "CHECK FAILED (rows are events.parquet row numbers)" in out
    assert "  nothing-left-shared: 2 violation(s)" in out
    assert "    bus amp0 region 1: still shared at the end: the device holds it (rows " in out
    assert (tmp_path / "out" / "summary.json").is_file()


def test_a_clean_run_with_sharing_reports_every_check_ok():
    _, output = run(shared("ffa", {"release": "lazy", "batch": 2}))
    check = check_events(output.events)
    assert check["status"] == "ok" and len(check["checks"]) == 5
