"""One request in a region shared on first use, then given back: the frame sequence of a release the driver
starts and of one the device starts, on each bus. The lifecycle marks sit where each transition happens:
the device acknowledges (share.ack, release.ack) before its answer leaves, the driver completes on receipt."""

from sharing_helpers import lifecycle, one, story, verdict
from sim_helpers import run

from vmsim.sim.share_mechanism import CARVE_OUT
from vmsim.wire import get_layout
from vmsim.wire.ffa import SHARE_RW_XN_INNER_WB_NORMAL_NS, bus_address
from vmsim.wire.share import MemType, Op

SHARE = [("dev.share.driver", "share.request"), ("to_device", "tx:SHM_SHARE"), ("to_device", "rx:SHM_SHARE"),
         ("dev.share.device", "share.ack"), ("to_driver", "tx:SHM_SHARE"), ("to_driver", "rx:SHM_SHARE"),
         ("dev.share.driver", "share.done")]
USE = [("to_device", "tx:EVENT_AVAIL"), ("to_device", "rx:EVENT_AVAIL"), ("dev.share.device", "share.access")]
UNSHARE = [("to_device", "tx:SHM_UNSHARE"), ("to_device", "rx:SHM_UNSHARE")]
ACK_BACK = [("to_driver", "tx:SHM_UNSHARE"), ("to_driver", "rx:SHM_UNSHARE"), ("dev.share.driver", "release.done")]


def frames_and_marks(output, kind):
    """The story without FF-A's EVENT_POLL traffic (how a direct bus fetches events, not sharing)."""
    return [row for row in story(output, kind) if "EVENT_POLL" not in row[1]]


def test_amp_a_driver_release_is_unshare_then_ack_then_reclaim():
    """The carve-out needs no mapping: SHM_SHARE is bookkeeping the device acknowledges; after the request
    the driver asks SHM_UNSHARE, the device lets go (release.ack) and answers, the driver reclaims."""
    _, output = run(one("amp"))
    assert frames_and_marks(output, "amp") == [
        *SHARE, *USE, ("to_driver", "tx:EVENT_USED"), ("to_driver", "rx:EVENT_USED"),
        ("dev.share.driver", "release.request"), *UNSHARE, ("dev.share.device", "release.ack"), *ACK_BACK,
        ("dev.share.driver", "reclaim")]
    assert verdict(output) == {}


def test_amp_a_device_release_is_announced_by_shm_release_before_the_used_buffer():
    """`release: device`: once it consumed the buffer the device lets go and says so with the SHM_RELEASE
    event, sent before EVENT_USED; the driver reclaims once the request is back."""
    _, output = run(one("amp", {"release": "device"}))
    assert frames_and_marks(output, "amp") == [
        *SHARE, *USE, ("dev.share.device", "release.request"), ("dev.share.device", "release.ack"),
        ("to_driver", "tx:SHM_RELEASE"), ("to_driver", "tx:EVENT_USED"), ("to_driver", "rx:SHM_RELEASE"),
        ("dev.share.driver", "release.done"), ("to_driver", "rx:EVENT_USED"), ("dev.share.driver", "reclaim")]
    assert verdict(output) == {}


def test_the_share_frames_carry_the_region_descriptor_and_the_acks_answer_them():
    """SHM_SHARE says where the device finds the region (the carve-out at dev_num << 32 + its heap offset),
    how big it is (whole pages), its memory type and buffer count; the answers carry SHARE_ACK / UNSHARE_ACK."""
    _, output = run(one("amp", {"memory_type": "non-cacheable"}))
    columns = output.events.columns()
    layout = get_layout("vmsim-share")
    sent = [layout.decode(wire) for event, wire in zip(columns["event"], columns["wire"])
            if event == "tx" and wire is not None and wire[1] in (0xA0, 0xA1)]
    request, ack, unshare, unshare_ack = sent
    assert (request.name, request.kind, request.dev_num) == ("SHM_SHARE", "request", 1)
    assert request.fields == {"share_id": 1, "op": Op.SHARE, "mem_type": MemType.NON_CACHEABLE, "count": 1,
                              "bus_address": CARVE_OUT + (1 << 32), "offset": 0, "size": 512}
    assert (ack.kind, ack["op"], ack["result"], ack.token) == ("response", Op.SHARE_ACK, 0, request.token)
    assert (unshare.name, unshare["op"], unshare_ack["op"]) == ("SHM_UNSHARE", Op.UNSHARE, Op.UNSHARE_ACK)
    assert {value for _, _, value in lifecycle(output, "amp")} == {1}  # every mark names the region


def test_xen_grants_the_region_maps_it_when_shared_and_ends_access_after_the_ack():
    """Asked to share, the frontend grants the region's page, then SHM_SHARE; the backend maps it while answering; the
    unshare unmaps (with a TLB shootdown) before release.ack and the grant is ended only after the ack."""
    _, output = run(one("xen"))
    assert frames_and_marks(output, "xen") == [
        SHARE[0], ("frontend", "grant.grant"), *SHARE[1:3], ("backend", "grant.map"), *SHARE[3:], *USE,
        ("to_driver", "tx:EVENT_USED"), ("to_driver", "rx:EVENT_USED"), ("dev.share.driver", "release.request"),
        *UNSHARE, ("backend", "grant.unmap"), ("backend", "tlb.shootdown"), ("dev.share.device", "release.ack"),
        *ACK_BACK, ("frontend", "grant.end_access"), ("dev.share.driver", "reclaim")]
    assert verdict(output) == {}


def test_xen_a_device_release_unmaps_before_it_tells_the_driver():
    _, output = run(one("xen", {"release": "device"}))
    assert frames_and_marks(output, "xen")[11:] == [
        ("dev.share.device", "share.access"), ("dev.share.device", "release.request"), ("backend", "grant.unmap"),
        ("backend", "tlb.shootdown"), ("dev.share.device", "release.ack"), ("to_driver", "tx:SHM_RELEASE"),
        ("to_driver", "tx:EVENT_USED"), ("to_driver", "rx:SHM_RELEASE"), ("dev.share.driver", "release.done"),
        ("to_driver", "rx:EVENT_USED"), ("frontend", "grant.end_access"), ("dev.share.driver", "reclaim")]
    assert verdict(output) == {}


def ffa_share(area):
    return [("dev1.share.driver", "share.request"), ("driver", "ffa.mem_share"), ("to_device", "tx:AREA_SHARE"),
            ("to_device", "rx:AREA_SHARE"), ("device", "ffa.mem_retrieve_req"), ("dev1.share.device", "share.ack"),
            ("to_driver", "tx:AREA_SHARE"), ("to_driver", "rx:AREA_SHARE"), ("dev1.share.driver", "share.done"),
            ("to_device", "tx:EVENT_AVAIL"), ("to_device", "rx:EVENT_AVAIL"), ("dev1.share.device", "share.access")]


def test_ffa_a_driver_release_is_area_unshare_relinquish_ack_reclaim():
    """FF-A speaks its published forms: a free area id, FFA_MEM_SHARE + AREA_SHARE (the partition retrieves), then
    AREA_UNSHARE (the partition relinquishes, then acknowledges) and FFA_MEM_RECLAIM after the ack. The
    region is FF-A area 2 (area 1 is the bus's pool shared at probe) at bus address 2 << 48."""
    _, output = run(one("ffa"))
    assert frames_and_marks(output, "ffa") == [
        *ffa_share(2), ("to_driver", "tx:EVENT_USED"), ("to_driver", "rx:EVENT_USED"),
        ("dev1.share.driver", "release.request"), ("to_device", "tx:AREA_UNSHARE"), ("to_device", "rx:AREA_UNSHARE"),
        ("device", "ffa.mem_relinquish"), ("dev1.share.device", "release.ack"), ("to_driver", "tx:AREA_UNSHARE"),
        ("to_driver", "rx:AREA_UNSHARE"), ("dev1.share.driver", "release.done"), ("driver", "ffa.mem_reclaim"),
        ("dev1.share.driver", "reclaim")]
    assert {value for _, _, value in lifecycle(output, "ffa")} == {2}
    columns = output.events.columns()
    layout = get_layout("ffa-2026")
    share = next(layout.decode(w) for e, n, w in zip(columns["event"], columns["msg_name"], columns["wire"])
                 if e == "tx" and n == "AREA_SHARE" and w[0] == 0x02 and w[8] == 2)
    assert (share["page_count"], share["sharing_attrs"]) == (1, SHARE_RW_XN_INNER_WB_NORMAL_NS)
    assert bus_address(2, 0) == 2 << 48
    assert verdict(output) == {}


def test_ffa_a_device_release_is_relinquish_then_area_release_then_reclaim():
    _, output = run(one("ffa", {"release": "device"}))
    assert frames_and_marks(output, "ffa") == [
        *ffa_share(2), ("dev1.share.device", "release.request"), ("device", "ffa.mem_relinquish"),
        ("dev1.share.device", "release.ack"), ("to_driver", "tx:AREA_RELEASE"), ("to_driver", "rx:AREA_RELEASE"),
        ("dev1.share.driver", "release.done"), ("to_driver", "tx:EVENT_USED"), ("to_driver", "rx:EVENT_USED"),
        ("driver", "ffa.mem_reclaim"), ("dev1.share.driver", "reclaim")]
    assert verdict(output) == {}
