"""The smallest complete scenario file, for tests that go through files and the command line."""


def tiny_scenario(devices: int = 1, *, duration: str = "1 ms", warmup: str | None = "100 us",
                  numbered: bool = False) -> str:
    """A scenario file's text: `devices` block devices on one AMP bus, each with a 50 kHz Poisson workload
    named `io` (one device), or `io0`, `io1`, ... when `numbered`."""
    lines = ["name: tiny", "seed: 5", f"duration: {duration}", *([f"warmup: {warmup}"] if warmup else []),
             "platform:", "  name: bench", "  memory:", "    ddr: {read_fixed: 80 ns, write_fixed: 40 ns}",
             "  doorbells:", "    ipi: {kind: ipi, ring: 200 ns, latency: 1 us}",
             "drivers:", "  - name: drv0",
             "buses:", "  - {kind: amp, name: amp0, driver: drv0, memory: ddr, doorbell: ipi}", "devices:"]
    lines += [f"  - {{name: blk{n}, bus: amp0, dev_num: {n + 1}, kind: block, "
              "service: {dist: exponential, mean: 5 us}}" for n in range(devices)]
    lines.append("workloads:")
    lines += [f"  - {{name: {f'io{n}' if numbered else 'io'}, device: blk{n}, "
              "arrivals: {kind: poisson, rate: 50 kHz}}" for n in range(devices)]
    return "\n".join(lines) + "\n"


TINY = tiny_scenario()


def working_folder(folder, monkeypatch, files: dict[str, str]):
    """`folder` made the working directory for the test, holding `files` (name -> text): where a command line
    test writes its scenario and sweep files and finds what the command wrote."""
    for name, text in files.items():
        (folder / name).write_text(text)
    monkeypatch.chdir(folder)
    return folder
