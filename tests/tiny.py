"""The smallest complete scenario file, for tests that go through files and the command line."""

TINY = """\
name: tiny
seed: 5
duration: 1 ms
warmup: 100 us
platform:
  name: bench
  memory:
    ddr: {read_fixed: 80 ns, write_fixed: 40 ns}
  doorbells:
    ipi: {kind: ipi, ring: 200 ns, latency: 1 us}
drivers:
  - name: drv0
buses:
  - {kind: amp, name: amp0, driver: drv0, memory: ddr, doorbell: ipi}
devices:
  - {name: blk0, bus: amp0, dev_num: 1, kind: block, service: {dist: exponential, mean: 5 us}}
workloads:
  - {name: io, device: blk0, arrivals: {kind: poisson, rate: 50 kHz}}
"""
