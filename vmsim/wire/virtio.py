"""The virtio numbers a virtio-msg transport carries: device status bits, feature bits, device ids.

Protocol constants, not simulator settings: the scenario schema checks device kinds against
`DEVICE_IDS`, and the simulator's driver and device negotiate with the bits, both from here.
Status bits are Linux's ``VIRTIO_CONFIG_S_*`` without the prefix; feature bits are ``F_`` and the
name, `F_RING_EVENT_IDX` being Linux's ``VIRTIO_RING_F_EVENT_IDX`` (the spec's ``VIRTIO_F_EVENT_IDX``).
"""

ACKNOWLEDGE = 1
DRIVER = 2
DRIVER_OK = 4
FEATURES_OK = 8
"""Device status bits the driver sets in order during initialisation (virtio 1.2 §2.1, §3.1.1)."""
DEVICE_NEEDS_RESET = 64
FAILED = 128
"""Set by the device when it cannot go on until reset, and by the driver when it has given up (§2.1)."""

F_INDIRECT_DESC = 28
F_RING_EVENT_IDX = 29
F_VERSION_1 = 32
F_RING_PACKED = 34
F_RING_RESET = 40
"""Feature bit numbers (virtio 1.2 §6)."""

DEVICE_IDS = {
    "net": 1, "block": 2, "console": 3, "rng": 4, "vsock": 19, "fs": 26, "i2c": 34, "gpio": 41, "generic": 0x3F,
}
"""Virtio device IDs (virtio 1.2 §5); "generic" is vmsim's own placeholder for a device of no given type."""
