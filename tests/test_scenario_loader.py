"""Scenario loading: every user mistake becomes one ScenarioError line naming file, line and key.

The base scenario below is valid; each test edits one line (keeping line numbers) or appends
lines, so the expected `file:line` in each message can be read straight off the text.
"""

import os
import pickle
from pathlib import Path

import pytest
import yaml

from vmsim import pipeline
from vmsim.errors import OverloadError, ScenarioError
from vmsim.scenario import load, load_dict, read_trace, resolved_dict
from vmsim.scenario.locations import MAX_YAML_BYTES

BASE = """\
name: demo
duration: 10 ms
platform: ideal
drivers:
  - name: linux
buses:
  - kind: amp
    name: amp0
    driver: linux
    memory: ideal
    doorbell: ideal
devices:
  - name: i2c0
    bus: amp0
    dev_num: 1
    kind: i2c
workloads:
  - name: load
    device: i2c0
    arrivals: {kind: poisson, rate: 10 kHz}
"""


def write(tmp_path, text, name="scenario.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path, overrides=()):
    with pytest.raises(ScenarioError) as caught:
        load(path, overrides)
    assert str(caught.value).splitlines() == caught.value.problems
    return caught.value.problems


def edited(old, new, text=BASE):
    assert old in text, old
    return text.replace(old, new, 1)


# --- good input -------------------------------------------------------------------------------


def test_a_valid_scenario_loads_with_integers_inside(tmp_path):
    """Unit strings become ns, bytes and Hz; the simulator never sees a unit string."""
    scenario = load(write(tmp_path, BASE))
    assert scenario.name == "demo"
    assert scenario.duration == 10_000_000
    assert scenario.workloads[0].arrivals.rate == 10_000.0
    assert scenario.buses[0].element_size == 64
    assert scenario.platform.name == "ideal"


def test_name_defaults_to_the_sanitised_file_stem(tmp_path):
    """Most scenario files need no `name:`; the stem is made into a valid component name."""
    path = write(tmp_path, BASE.replace("name: demo\n", ""), name="2 buses.v2.yaml")
    assert load(path).name == "_2_buses_v2"


def test_load_dict_takes_a_mapping_and_leaves_it_untouched():
    """Notebooks build scenarios in code; the caller's dict is not modified."""
    data = yaml.safe_load(BASE)
    before = yaml.safe_dump(data)
    scenario = load_dict(data, overrides=["seed=9"])
    assert scenario.seed == 9
    assert yaml.safe_dump(data) == before


# --- files that cannot be read --------------------------------------------------------------


def test_a_missing_file_is_named(tmp_path):
    """The first thing to check is that the path is right."""
    path = tmp_path / "nope.yaml"
    assert problems(path) == [f"{path}: file not found"]


def test_an_empty_file_is_an_error_not_an_empty_scenario(tmp_path):
    """An empty file is almost always a mistake (a wrong path or an unsaved editor buffer)."""
    path = write(tmp_path, "# nothing here\n")
    assert problems(path) == [f"{path}: file is empty"]


def test_broken_yaml_names_line_and_column(tmp_path):
    """YAML's own mark is passed on, so the editor can jump to the spot."""
    path = write(tmp_path, edited("    memory: ideal\n", "    memory: [ideal\n"))
    (line,) = problems(path)
    assert line.startswith(f"{path}:11:")
    assert "YAML syntax error" in line


def test_the_top_level_must_be_a_mapping(tmp_path):
    """A list at the top level is a scenario written in the wrong shape."""
    path = write(tmp_path, "- name: demo\n- seed: 1\n")
    assert problems(path) == [f"{path}:1: the top level must be a mapping of scenario keys, not a list"]


def test_a_key_given_twice_is_reported(tmp_path):
    """PyYAML would silently keep the last value; the second key is probably a paste error."""
    path = write(tmp_path, edited("    dev_num: 1\n", "    dev_num: 1\n    dev_num: 2\n"))
    assert problems(path) == [f"{path}:16: devices[0].dev_num: key given twice"]


# --- schema problems ------------------------------------------------------------------------


def test_an_unknown_key_suggests_the_closest_valid_one(tmp_path):
    """A typo must not be silently ignored: the default would be used without anyone noticing."""
    path = write(tmp_path, edited("    doorbell: ideal\n", "    doorbell: ideal\n    queue_elemnts: 16\n"))
    assert problems(path) == [
        f"{path}:12: buses[0].queue_elemnts: unknown key 'queue_elemnts' (did you mean 'queue_elements'?)"
    ]


def test_a_wrong_unit_names_the_unit_and_the_key(tmp_path):
    """A rate where a duration belongs is caught at the edge, with the allowed units listed."""
    path = write(tmp_path, edited("duration: 10 ms", "duration: 10 kHz"))
    assert problems(path) == [
        f"{path}:2: duration: unknown duration unit 'kHz' in '10 kHz' (use one of ns, us, µs, ms, s)"
    ]


def test_an_out_of_range_value_shows_the_limit_and_the_value(tmp_path):
    """Limits come from the schema; the message says both the bound and what was given."""
    path = write(tmp_path, edited("    doorbell: ideal\n", "    doorbell: ideal\n    queue_elements: 5000\n"))
    assert problems(path) == [
        f"{path}:12: buses[0].queue_elements: Input should be less than or equal to 4096 (got 5000)"
    ]


def test_union_tags_are_not_part_of_the_key_shown(tmp_path):
    """pydantic's loc says buses.0.amp.x and arrivals.poisson.rate; users wrote buses[0].x."""
    path = write(tmp_path, edited("rate: 10 kHz", "rate: 10 us"))
    (line,) = problems(path)
    assert line.startswith(f"{path}:20: workloads[0].arrivals.rate: unknown rate unit 'us'")


def test_an_unknown_kind_points_at_the_kind_line(tmp_path):
    """A wrong discriminator is reported once, at `kind:`, with the valid choices."""
    path = write(tmp_path, edited("{kind: poisson,", "{kind: poison,"))
    assert problems(path) == [
        (
            f"{path}:20: workloads[0].arrivals.kind: unknown value 'poison' "
            "(use one of 'poisson', 'constant', 'trace', 'closed')"
        )
    ]


def test_a_value_matching_no_union_branch_is_one_problem(tmp_path):
    """`memory` is a name or a {driver, device} mapping: a number fails both, said on one line."""
    path = write(tmp_path, edited("    memory: ideal", "    memory: 5"))
    (line,) = problems(path)
    assert line.startswith(f"{path}:10: buses[0].memory: Input should be a valid string; or ")


def test_every_problem_is_reported_at_once_in_file_order(tmp_path):
    """Fixing one error per run is slow: all schema problems come in one error, top to bottom."""
    text = edited("duration: 10 ms", "duration: 10 kHz")
    text = edited("    dev_num: 1", "    dev_num: -1", text)
    text = edited("  - kind: amp\n", "  - kind: amp\n    rx_budget: -2\n", text)
    lines = problems(write(tmp_path, text))
    assert [line.split(": ")[1] for line in lines] == ["duration", "buses[0].rx_budget", "devices[0].dev_num"]
    assert [line.split(":")[1] for line in lines] == ["2", "8", "16"]


# --- references and topology ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    bus: amp0", "    bus: amp9", "14: devices[0].bus: no bus named 'amp9' (did you mean 'amp0'?)"),
        (
            "    device: i2c0",
            "    device: i2c",
            "19: workloads[0].device: no device named 'i2c' (did you mean 'i2c0'?)",
        ),
        (
            "    driver: linux",
            "    driver: linx",
            "9: buses[0].driver: no driver named 'linx' (did you mean 'linux'?)",
        ),
        (
            "  - name: load",
            "  - name: i2c0",
            (
                "18: workloads[0].name: name 'i2c0' is already used by devices[0]; "
                "names must be unique across drivers, buses, devices and workloads"
            ),
        ),
        (
            "    memory: ideal",
            "    memory: ddr",
            ("10: buses[0].memory: platform 'ideal' has no memory kind 'ddr' (it has: ideal)"),
        ),
        (
            "    doorbell: ideal",
            "    doorbell: idea",
            (
                "11: buses[0].doorbell: platform 'ideal' has no doorbell kind "
                "'idea' (did you mean 'ideal'? it has: ideal)"
            ),
        ),
        (
            "  - name: linux",
            "  - name: linux\n    cpu: a53",
            ("6: drivers[0].cpu: platform 'ideal' has no cpu kind 'a53' (it has: ideal)"),
        ),
        (
            "    device: i2c0",
            "    device: i2c0\n    vq: 1",
            "20: workloads[0].vq: vq 1 does not exist: device 'i2c0' has 1 queue(s), vq 0..0",
        ),
        (
            "  - kind: amp",
            "  - kind: amp\n    element_size: 40",
            (
                "8: buses[0].element_size: 40 bytes is too small for SET_VQUEUE (48 bytes) of layout v1; "
                "use at least 48"
            ),
        ),
    ],
)
def test_broken_references_name_the_line_and_the_missing_thing(tmp_path, old, new, expected):
    """After the schema, cross-references are checked, each with a did-you-mean where one fits."""
    path = write(tmp_path, edited(old, new))
    assert problems(path) == [f"{path}:{expected}"]


def test_a_dev_num_clash_on_one_bus(tmp_path):
    """Two devices answering to one dev_num would receive each other's frames."""
    path = write(tmp_path, edited("workloads:", "  - {name: i2c1, bus: amp0, dev_num: 1}\nworkloads:"))
    assert problems(path) == [
        f"{path}:17: devices[1].dev_num: dev_num 1 is already used on bus 'amp0' by device 'i2c0'"
    ]


def test_devices_on_one_bus_that_name_different_cpus(tmp_path):
    """The device side of a bus runs on one core, whose cost the bus charges per frame: a second
    device naming another core would silently run on the first one's, so it is refused at its key."""
    cores = "  cpus: {cortex-a7: {frame_handling: 2 us}, cortex-m4: {frame_handling: 5 us}}\n"
    text = edited("platform: ideal\n", "platform:\n  profile: ideal\n" + cores)
    text = edited("    kind: i2c\n", "    kind: i2c\n    cpu: cortex-m4\n", text)
    text = edited("workloads:", "  - {name: gpio0, bus: amp0, dev_num: 2, cpu: cortex-a7}\nworkloads:", text)
    path = write(tmp_path, text)
    assert problems(path) == [
        (
            f"{path}:20: devices[1].cpu: device 'gpio0' names cpu 'cortex-a7', device 'i2c0' names cpu "
            "'cortex-m4': the device side of bus 'amp0' runs on one core, so every device on it names the "
            "same cpu"
        )
    ]


def test_a_device_naming_no_cpu_beside_one_that_names_a_cpu(tmp_path):
    """No cpu means the device side costs nothing per frame; beside a device that names a core that is
    a mismatch too. A device without the key is placed at its own line in the list."""
    text = edited("    kind: i2c\n", "    kind: i2c\n    cpu: ideal\n")
    path = write(tmp_path, edited("workloads:", "  - {name: gpio0, bus: amp0, dev_num: 2}\nworkloads:", text))
    assert problems(path) == [
        (
            f"{path}:18: devices[1].cpu: device 'gpio0' names no cpu, device 'i2c0' names cpu 'ideal': "
            "the device side of bus 'amp0' runs on one core, so every device on it names the same cpu"
        )
    ]


def test_a_misspelt_device_cpu_is_reported_once(tmp_path):
    """A cpu the platform does not define is its own problem, not also a mismatch with the bus's core."""
    text = edited("    kind: i2c\n", "    kind: i2c\n    cpu: ideal\n")
    text = edited("workloads:", "  - {name: gpio0, bus: amp0, dev_num: 2, cpu: idael}\nworkloads:", text)
    path = write(tmp_path, text)
    assert problems(path) == [
        (
            f"{path}:18: devices[1].cpu: platform 'ideal' has no cpu kind 'idael' "
            "(did you mean 'ideal'? it has: ideal)"
        )
    ]


# --- traces ---------------------------------------------------------------------------------


def trace_scenario(file):
    return edited("{kind: poisson, rate: 10 kHz}", f"{{kind: trace, file: {file}}}")


def test_a_trace_is_read_relative_to_the_scenario_and_stored_absolute(tmp_path):
    """The simulator can run from any folder, and config.resolved.yaml still finds the trace."""
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "t.csv").write_text("time,size\n0,64\n1.5 us,1 KiB\n2000,128\n")
    scenario = load(write(tmp_path, trace_scenario("traces/t.csv")))
    file = scenario.workloads[0].arrivals.file
    assert file == str((tmp_path / "traces" / "t.csv").resolve())
    assert read_trace(file) == ((0, 1500, 2000), (64, 1024, 128))


def test_a_trace_without_sizes_has_none(tmp_path):
    """Without a size column the workload's size distribution applies."""
    (tmp_path / "t.csv").write_text("time\n0\n5 us\n")
    assert read_trace(tmp_path / "t.csv").sizes is None


def test_a_missing_trace_file_is_reported_at_its_key(tmp_path):
    """The path is resolved against the scenario's folder, and the message shows where it looked."""
    path = write(tmp_path, trace_scenario("gone.csv"))
    assert problems(path) == [
        (
            f"{path}:20: workloads[0].arrivals.file: trace file 'gone.csv' not found "
            f"(looked for {(tmp_path / 'gone.csv').resolve()})"
        )
    ]


def test_bad_trace_rows_are_reported_by_row(tmp_path):
    """Each bad cell names its line in the CSV, like a scenario key names its line in the YAML."""
    csv = tmp_path / "t.csv"
    csv.write_text("time,size\n0,64\n2 us,1.5 B\n1 us,64\n3 kHz,64\n")
    lines = problems(write(tmp_path, trace_scenario("t.csv")))
    shown = csv.resolve()
    assert lines == [
        f"{shown}:3: size: size '1.5 B' is not a whole number of bytes",
        f"{shown}:4: time: 1 us is before the previous row's time (times must not decrease)",
        f"{shown}:5: time: unknown duration unit 'kHz' in '3 kHz' (use one of ns, us, µs, ms, s)",
    ]


def test_a_trace_column_typo_is_caught(tmp_path):
    """An unknown column would otherwise silently drop the sizes."""
    (tmp_path / "t.csv").write_text("time,sise\n0,64\n")
    (line,) = problems(write(tmp_path, trace_scenario("t.csv")))
    assert line.endswith(
        "t.csv:1: unknown column 'sise' (did you mean 'size'?); columns are time and optional size"
    )


# --- overrides ------------------------------------------------------------------------------


def test_overrides_address_keys_list_items_by_name_or_index_and_the_platform(tmp_path):
    """`--set` reaches any key; values are YAML, so numbers, bools and unit strings work."""
    scenario = load(
        write(tmp_path, BASE),
        [
            "seed=3",
            "duration=20ms",
            "buses.amp0.queue_elements=16",
            "buses[0].event_idx=false",
            "platform.doorbells.ideal.latency=2us",
            "workloads.load.arrivals.rate=20kHz",
            "devices.0.queues=2",
        ],
    )
    assert (scenario.seed, scenario.duration) == (3, 20_000_000)
    assert (scenario.buses[0].queue_elements, scenario.buses[0].event_idx) == (16, False)
    assert scenario.platform.doorbells["ideal"].latency == 2000
    assert (
        scenario.platform.provenance["doorbells.ideal.latency"]
        == "override: --set platform.doorbells.ideal.latency=2us"
    )
    assert scenario.workloads[0].arrivals.rate == 20_000.0
    assert scenario.devices[0].queues == 2


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        (
            "buses.amp9.queue_elements=16",
            ("--set buses.amp9.queue_elements=16: no item named 'amp9' in buses (did you mean 'amp0'?)"),
        ),
        ("sed=3", "--set sed=3: sed: unknown key 'sed' (did you mean 'seed'?)"),
        (
            "buses.amp0.queue_elemnts=16",
            (
                "--set buses.amp0.queue_elemnts=16: buses[0].queue_elemnts: unknown key "
                "'queue_elemnts' (did you mean 'queue_elements'?)"
            ),
        ),
        ("duration.x=1", "--set duration.x=1: duration is a single value, it has no key 'x'"),
        ("buses[4].doorbell=x", "--set buses[4].doorbell=x: buses has 1 items, no index 4"),
        ("duration", "--set duration: expected KEY=VALUE, e.g. buses.amp0.queue_elements=16"),
        (
            "duration=5 kHz",
            (
                "--set duration=5 kHz: duration: unknown duration unit 'kHz' in '5 kHz' "
                "(use one of ns, us, µs, ms, s)"
            ),
        ),
        (
            "platform.doorbells.nope.latency=1us",
            ("--set platform.doorbells.nope.latency=1us: no key 'nope' under platform.doorbells"),
        ),
    ],
)
def test_bad_overrides_name_the_set_argument(tmp_path, argument, expected):
    """An override's problem is placed at the `--set` argument, not at a line of the file."""
    assert problems(write(tmp_path, BASE), [argument]) == [expected]


def test_an_override_can_switch_the_profile(tmp_path):
    """`--set platform=NAME` swaps the whole profile; the scenario's kind names must then exist there."""
    path = write(tmp_path, BASE)
    lines = problems(path, ["platform=linux-linux-coherent"])
    assert lines[0] == (
        f"{path}:10: buses[0].memory: platform 'linux-linux-coherent' has no memory kind "
        "'ideal' (it has: coherent)"
    )


# --- platform profiles ----------------------------------------------------------------------


PROFILE = """\
name: lab
memory:
  sram:
    read_per_line: {value: 15 ns, estimate: three bus cycles}
doorbells:
  bell:
    kind: mailbox
    latency: {value: 1.43 us, source: TI AM64x datasheet}
cpus:
  core:
    frame_handling: {value: 1 us, estimate: a guess}
"""


def lab_scenario(platform_yaml):
    text = edited("platform: ideal\n", platform_yaml)
    text = edited("    memory: ideal", "    memory: sram", text)
    return edited("    doorbell: ideal", "    doorbell: bell", text)


def test_a_profile_path_is_relative_to_the_scenario_and_citations_become_provenance(tmp_path):
    """Each number's citation is kept under its dotted key; defaults are marked as such."""
    (tmp_path / "profiles").mkdir()
    write(tmp_path / "profiles", PROFILE, name="lab.yaml")
    scenario = load(write(tmp_path, lab_scenario("platform: profiles/lab.yaml\n")))
    platform = scenario.platform
    assert platform.doorbells["bell"].latency == 1430
    assert platform.provenance["doorbells.bell.latency"] == "source: TI AM64x datasheet"
    assert platform.provenance["memory.sram.read_per_line"] == "estimate: three bus cycles"
    assert platform.provenance["doorbells.bell.ring"] == "default: schema default, no source"


def test_a_scenario_may_override_profile_values_with_bare_numbers(tmp_path):
    """Overrides in the scenario need no citation: they are recorded as coming from the scenario file."""
    write(tmp_path, PROFILE, name="lab.yaml")
    path = write(
        tmp_path, lab_scenario("platform:\n  profile: lab.yaml\n  doorbells: {bell: {latency: 2 us}}\n")
    )
    platform = load(path).platform
    assert platform.doorbells["bell"].latency == 2000
    assert platform.doorbells["bell"].kind == "mailbox"
    assert platform.provenance["doorbells.bell.latency"] == f"override: {path}"


def test_a_bare_number_in_a_profile_is_refused_at_its_line(tmp_path):
    """Every profile number must say where it comes from; an uncited number is an error."""
    profile = write(
        tmp_path, edited("{value: 1.43 us, source: TI AM64x datasheet}", "1.43 us", PROFILE), name="lab.yaml"
    )
    lines = problems(write(tmp_path, lab_scenario("platform: lab.yaml\n")))
    assert lines == [
        (
            f"{profile}:8: doorbells.bell.latency: bare number '1.43 us': every profile number needs a "
            "citation, write {value: ..., source: ...} or {value: ..., estimate: ...}"
        )
    ]


def test_a_citation_needs_exactly_one_of_source_or_estimate(tmp_path):
    """A value that is both measured and guessed is ambiguous: pick one, explain in the text."""
    profile = write(
        tmp_path, edited("source: TI AM64x datasheet}", "source: TI, estimate: x}", PROFILE), name="lab.yaml"
    )
    lines = problems(write(tmp_path, lab_scenario("platform: lab.yaml\n")))
    assert lines == [
        f"{profile}:8: doorbells.bell.latency: give exactly one of source or estimate beside value"
    ]


def test_a_bad_profile_value_is_placed_in_the_profile_file(tmp_path):
    """The scenario is fine; the profile is wrong, so the message points into the profile."""
    profile = write(tmp_path, edited("value: 1.43 us", "value: 1.43 kHz", PROFILE), name="lab.yaml")
    (line,) = problems(write(tmp_path, lab_scenario("platform: lab.yaml\n")))
    assert line.startswith(f"{profile}:8: platform.doorbells.bell.latency: unknown duration unit 'kHz'")


def test_an_unknown_profile_name_lists_the_shipped_ones(tmp_path):
    """A misspelt profile name gets a suggestion and the full list."""
    (line,) = problems(write(tmp_path, edited("platform: ideal", "platform: stm32mp")))
    assert line.startswith(
        f"{tmp_path / 'scenario.yaml'}:3: platform.profile: unknown platform profile 'stm32mp' "
        "(did you mean 'stm32mp1'?)"
    )
    assert "ideal, linux-linux-coherent, pcie-x86-arm, qemu-ivshmem, stm32mp1" in line


# --- resolved config ------------------------------------------------------------------------


def test_the_resolved_dict_loads_back_to_an_equal_scenario(tmp_path):
    """config.resolved.yaml is the exact scenario that ran: profile, overrides and provenance included,
    readable from any folder."""
    (tmp_path / "t.csv").write_text("time\n0\n1 us\n")
    text = edited("workloads:", "  - {name: gpio0, bus: amp0, dev_num: 2, kind: gpio}\nworkloads:")
    text += "  - name: replay\n    device: gpio0\n    arrivals: {kind: trace, file: t.csv}\n"
    scenario = load(write(tmp_path, text), ["platform.doorbells.ideal.latency=2us", "seed=7"])
    resolved = resolved_dict(scenario)
    elsewhere = tmp_path / "results"
    elsewhere.mkdir()
    copy = write(elsewhere, yaml.safe_dump(resolved, sort_keys=False), name="config.resolved.yaml")
    again = load(copy)
    assert again == scenario
    assert again.platform.provenance == scenario.platform.provenance


def test_scenario_errors_pickle_with_all_their_problems():
    """Sweeps run in process pools; a worker's ScenarioError must arrive whole."""
    error = pickle.loads(pickle.dumps(ScenarioError("a.yaml:1: x: bad", "a.yaml:2: y: bad")))
    assert error.problems == ["a.yaml:1: x: bad", "a.yaml:2: y: bad"]


def test_load_dict_names_its_source_in_messages():
    """Without a file there are no lines; the source label still says where the data came from."""
    data = yaml.safe_load(BASE)
    data["buses"][0]["queue_elements"] = 1
    with pytest.raises(ScenarioError) as caught:
        load_dict(data, source="notebook")
    assert caught.value.problems == [
        "notebook: buses[0].queue_elements: Input should be greater than or equal to 2 (got 1)"
    ]


def test_the_reference_example_is_a_valid_scenario(tmp_path):
    """docs/scenario-reference.md ends with a complete example; it must keep loading as the schema grows."""
    from pathlib import Path

    reference = Path(__file__).parents[1] / "docs" / "scenario-reference.md"
    example = reference.read_text().split("## Complete example")[1].split("```yaml\n")[1].split("```")[0]
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "gpio.csv").write_text("time\n0\n10 us\n")
    scenario = load(write(tmp_path, example))
    assert [w.arrivals.kind for w in scenario.workloads] == ["poisson", "closed", "trace"]


def test_replacing_a_whole_platform_entry_drops_its_old_citations(tmp_path):
    """A citation must describe the value in use: after `--set` replaces a doorbell, the profile's
    sources for it no longer apply, and fields left out fall back to marked defaults."""
    scenario = load(write(tmp_path, BASE), ["platform.doorbells.ideal={kind: ipi, latency: 1us}"])
    provenance = scenario.platform.provenance
    assert provenance["doorbells.ideal.latency"] == (
        "override: --set platform.doorbells.ideal={kind: ipi, latency: 1us}"
    )
    assert provenance["doorbells.ideal.ring"] == "default: schema default, no source"


# --- values that fit, distributions that can be drawn (issue 11) --------------------------------


@pytest.mark.parametrize(
    ("weights", "says"),
    [
        ("[0.5, 0.5]", "2 weights for 3 values: give one per value"),
        ("[1, -1, 1]", "weights must be finite, non-negative and not all zero"),
        ("[0, 0, 0]", "weights must be finite, non-negative and not all zero"),
        ("[.nan, 1, 1]", "weights must be finite, non-negative and not all zero"),
        ("[1e308, 1e308, 1]", "weights must be finite, non-negative and not all zero"),
    ],
)
def test_empirical_size_weights_are_checked_like_time_weights(tmp_path, weights, says):
    """A request size drawn from measured values: weights that numpy cannot draw from are refused at
    load time, at their `--set`, rather than crashing the run."""
    path = write(tmp_path, edited("    device: i2c0\n", "    device: i2c0\n"
                                  "    size: {dist: empirical, values: [64 B, 576 B, 1500 B]}\n"))
    override = f"workloads[0].size.weights={weights}"
    assert problems(path, [override]) == [f"--set {override}: workloads[0].size.weights: {says}"]


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("duration=1e300 s", "duration: duration '1e300 s' is out of range"),
        ("duration=1e12 s", "duration: duration '1e12 s' is longer than the limit of 2**60 ns (about 36 years)"),
        ("workloads.load.arrivals.rate=1e-30 Hz", "rate '1e-30 Hz' is below the limit of 8.67e-10 Hz"),
        ("workloads.load.size={dist: empirical, values: [1180591620717411303424]}",
         "workloads[0].size.values[0]: size 1180591620717411303424 is larger than the limit of 2**40 bytes"),
        ("devices.i2c0.service={dist: exponential, mean: ５ us}", "cannot read '５ us' as a duration"),
    ],
)
def test_values_beyond_int64_time_and_size_are_refused_after_their_unit(tmp_path, override, says):
    """Limits apply to the converted value ("1e300 s" is finite until it becomes ns), so that every
    draw fits int64 nanoseconds and bytes; only ASCII digits make a number."""
    found = problems(write(tmp_path, BASE), [override])
    assert len(found) == 1 and found[0].startswith(f"--set {override}: ") and says in found[0]


def test_a_run_that_would_outgrow_int64_nanoseconds_stops_with_one_line(tmp_path):
    """The slowest rate allowed, with requests but no duration: each gap fits, their sum would not.
    The run stops when simulated time reaches 2**62 ns instead of overflowing the int64 logs."""
    text = edited("duration: 10 ms\n", "", edited("rate: 10 kHz}", "rate: 1e-9 Hz}\n    requests: 20"))
    with pytest.raises(OverloadError, match=r"simulated time reached 2\*\*62 ns .* with 5 requests completed"):
        pipeline.run(write(tmp_path, text))


def test_a_scenario_without_a_platform_is_told_so(tmp_path):
    """Without `platform:` the error once printed nothing after `vmsim: error:`."""
    path = write(tmp_path, edited("platform: ideal\n", "\n"))
    assert problems(path) == [f"{path}:1: platform: missing required key"]


# --- inputs that are not small regular files --------------------------------------------------


@pytest.mark.parametrize(("name", "kind"), [("/dev/zero", "a character device"), (".", "a directory")])
def test_only_regular_files_are_read(tmp_path, name, kind):
    """`/dev/zero` once filled memory; a directory is no scenario either."""
    path = tmp_path if name == "." else name
    assert problems(path) == [f"{path}: cannot read: {kind}, not a regular file"]


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    """Opening a FIFO for reading blocks until someone writes: the file is opened without blocking
    and refused, so `vmsim validate` of a pipe returns at once."""
    fifo = tmp_path / "scenario.yaml"
    os.mkfifo(fifo)
    assert problems(fifo) == [f"{fifo}: cannot read: a FIFO, not a regular file"]


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = write(tmp_path, BASE + "#" * MAX_YAML_BYTES)
    assert problems(path) == [f"{path}: file is larger than the limit of 4 MiB"]


def test_deep_nesting_and_alias_bombs_are_refused_before_they_are_built(tmp_path):
    """A small file can describe a huge or deep document: a 100,000-deep list overflowed the parser's
    stack, and nested aliases expand to billions of values. Both are counted from the parser's events."""
    deep = write(tmp_path, BASE + "description: " + "[" * 100_000 + "]" * 100_000 + "\n", "deep.yaml")
    assert problems(deep) == [f"{deep}:21: nested more than 64 levels deep"]
    bomb = "".join(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]\n" for level in range(1, 9))
    bombed = write(tmp_path, BASE + "l0: &l0 [1, 2]\n" + bomb, "bomb.yaml")
    assert problems(bombed) == [f"{bombed}:27: more than 1,000,000 values once aliases are expanded"]


def test_a_trace_must_be_a_regular_file_too(tmp_path):
    fifo = tmp_path / "trace.csv"
    os.mkfifo(fifo)
    with pytest.raises(ScenarioError, match="a FIFO, not a regular file"):
        read_trace(fifo)


def test_thousands_of_unknown_keys_give_fifty_lines_and_a_count(tmp_path):
    """Each unknown key gets a suggestion (a fuzzy match); 200,000 of them once took 30 s to say so.
    Only the first 50 in file order are described, the rest counted."""
    path = write(tmp_path, BASE + "".join(f"k{index}: 1\n" for index in range(20_000)))
    found = problems(path)
    assert len(found) == 51
    assert found[0] == f"{path}:21: k0: unknown key 'k0'"
    assert found[-1] == f"{path}: ... and 19,950 more problems (the first 50 are shown)"


def test_a_structure_that_contains_itself_is_refused_in_a_file_and_in_a_set(tmp_path):
    """`&p {memory: {x: *p}}` is legal YAML for a cycle; every walk over the platform recursed forever."""
    path = write(tmp_path, edited("platform: ideal\n", "platform: &p {profile: ideal, memory: {x: *p}}\n"))
    assert problems(path) == [f"{path}:3: alias *p is inside its own anchor: a structure cannot contain itself"]
    assert problems(write(tmp_path, BASE, "other.yaml"), ["platform.memory=&a {x: *a}"]) == [
        ("--set platform.memory=&a {x: *a}: the value: alias *a is inside its own anchor: "
         "a structure cannot contain itself")]


def test_a_deep_set_value_is_refused_and_quoted_short(tmp_path):
    """A 5,000-deep `--set` value overflowed the YAML reader; the message quotes the argument cut short."""
    override = "description=" + "[" * 5000 + "]" * 5000
    (found,) = problems(write(tmp_path, BASE), [override])
    assert found == f"--set {override[:97]}...: the value: nested more than 64 levels deep"


def test_a_missing_kind_lists_the_kinds_and_nothing_else(tmp_path):
    """The hint once listed every literal of every bus field (`busy-response`, `copy`, ...)."""
    assert problems(write(tmp_path, BASE), ["buses[0]={name: amp0}"]) == [
        "--set buses[0]={name: amp0}: buses[0].kind: missing required key (one of amp, ffa, xen)"]


def test_a_lognormal_needs_a_positive_mean(tmp_path):
    """Its mean set the draws' scale; at 0 the draws once fell back to a unit lognormal (mean e^(sigma²/2)
    ns, 268 us at sigma 5) instead of the zero asked for."""
    override = "devices.i2c0.service={dist: lognormal, mean: 0 ns, sigma: 5}"
    assert problems(write(tmp_path, BASE), [override]) == [
        f"--set {override}: devices[0].service.mean: Input should be greater than 0 (got 0)"]


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "scenarios").rglob("*.yaml")),
                         ids=lambda path: path.stem)
def test_every_shipped_scenario_s_resolved_config_loads_back_equal(path, tmp_path):
    """Every key survives the round trip, bandwidths included (their unit is required on input, so they are
    written with one)."""
    scenario = load(path)
    copy = tmp_path / "config.resolved.yaml"
    copy.write_text(yaml.safe_dump(resolved_dict(scenario), sort_keys=False))
    assert load(copy) == scenario
