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
