"""Where the time went: every ns a processor worked is put down to an activity, per run and per request."""

from __future__ import annotations

from pathlib import Path

import pytest

import vmsim

ECHO = Path(__file__).resolve().parents[1] / "scenarios" / "published" / "ti-am64x-linux-m4f.yaml"


@pytest.fixture(scope="module")
def echo():
    """The AM64x Linux user space <-> M4F echo, 300 round trips of 490 bytes."""
    return vmsim.run(ECHO, write=False, set={"workloads.ping.requests": 300, "workloads.ping.size.value": "490 B"})


def test_the_activities_of_each_processor_add_up_to_its_busy_time(echo):
    """Nothing is held unaccounted and nothing accounted unheld: the run ends with no work pending."""
    for name, report in echo.summary["processors"].items():
        assert sum(report["by_activity_ns"].values()) == report["busy_ns"], name


def test_the_table_gives_each_activity_per_request(echo):
    table = echo.cpu_time
    assert list(table.columns) == ["processor", "activity", "ns", "ns_per_request"]
    linux = table[table["processor"] == "a53-app.cpu"].set_index("activity")
    requests = echo.summary["requests_total"]
    assert linux.loc["software", "ns_per_request"] == pytest.approx(linux.loc["software", "ns"] / requests)
    # Linux user space pays its own submit and complete per request, and its own copies at copy_rate
    assert linux.loc["software", "ns_per_request"] == pytest.approx(7_750 + 15_500 + 2 * 490, rel=0.01)


def test_the_byte_wise_copies_of_the_m4f_are_what_its_payload_costs(echo):
    """490 bytes copied out of and back into DDR by the M4F, one 237 ns access per byte each way."""
    m4f = echo.cpu_time.set_index(["processor", "activity"]).loc[("ipc.device_cpu", "copies")]
    assert m4f["ns_per_request"] == pytest.approx(2 * 490 * 237, rel=0.001)


def test_a_result_folder_draws_where_the_time_went(echo, tmp_path):
    echo.write(tmp_path / "out", trace=False)
    assert (tmp_path / "out" / "cpu_time.png").stat().st_size > 10_000


def test_per_request_work_is_the_measured_window_s_so_start_up_does_not_inflate_it():
    """With a warm-up, each processor's work per request is what it did after the warm-up divided by the
    requests completed after it: a short run's bring-up (the handshake, device initialisation) is left out,
    so the per-request figure is the same whether the run completes 20 requests after its warm-up or 200."""
    def run(requests: int):  # the device is initialised by 1.3 ms, so a 2 ms warm-up leaves its bring-up out
        return vmsim.run(ECHO, write=False, set={"workloads.ping.requests": requests, "warmup": "2 ms"}).summary

    short, long = run(70), run(270)
    for name in short["processors"]:
        short_cpu, long_cpu = short["processors"][name], long["processors"][name]
        for activity, ns in long_cpu["per_request_ns"].items():
            assert short_cpu["per_request_ns"][activity] == pytest.approx(ns, rel=0.02, abs=1), (name, activity)
    linux = short["processors"]["a53-app.cpu"]
    assert linux["by_activity_ns"]["setup"] > 0 and linux["per_request_ns"]["setup"] == 0  # bring-up: not per request
