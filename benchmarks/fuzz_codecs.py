"""Codec fuzzing: mutated frames through every decoder of `vmsim.wire`, as bytes and as memoryviews.

The promise under test (vmsim.wire, DESIGN "Errors"): a decoder given any bytes returns a value or raises
`DecodeError`; nothing else escapes. Where a codec promises it, what decodes also re-encodes to exactly the
bytes it came from (encode(decode(b)) == b), and valid values survive decode(encode(x)) == x. The same bytes
behind a memoryview (a slice of a larger buffer, or cast to another format) give the same result.

Targets (one "frame" = one mutated input, decoded once as bytes and once through a memoryview):

* every message layout (`Layout.decode`; round trip through `encode_json` and `encode`), seeded with the
  golden v1 frames of tests/data/virtio-msg-v1.json and a valid frame of every message of every layout;
* "encode": random valid values of a random message of a random layout, decode(encode(x)) == x;
* vsock packets and both OP_SHMEM descriptor forms, the FF-A DIRECT_REQ2 register image, the FF-A
  sharing-attribute and bus-address words (each with its round trip);
* the shared-memory structures, set up valid with frames in flight, then mutated and read by the consumer:
  the AMP window (layout validation, queue heads, pops), the spsc-2024/2025 queues, the FF-A FIFO pair,
  split and packed virtqueue rings (device pops).

Mutations: random, flipped or boundary bytes; boundary u16/u32 values; truncation, extension, insertion,
deletion; splices of two seeds; a frame's head rewritten to another message's type and msg_id; msg_size
set to the new length (so mutants pass the header and reach the payload checks); now and then pure noise.

    python3 benchmarks/fuzz_codecs.py [--count 1000000] [--seed 1] [--show 5]

Prints frames per second and, per target, frames that decoded, documented errors, undocumented
exceptions and broken promises (the last two must be 0; the exit status is 1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import random
import time
import traceback
from collections import Counter
from pathlib import Path

from vmsim.wire import DecodeError, ffa, get_layout, layout_names, vsock
from vmsim.wire.amp import AmpQueuePeer
from vmsim.wire.fields import Blob, Scalar, Split
from vmsim.wire.fifo import create_fifo_pair, open_fifo_pair
from vmsim.wire.rings import PackedDevice, PackedDriver, PackedRing, SplitDevice, SplitDriver, SplitRing
from vmsim.wire.spsc import Spsc2024Queue, Spsc2025Queue, create_queue_pair

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "data" / "virtio-msg-v1.json"

BOUNDARY_U8 = (0x00, 0x01, 0x07, 0x08, 0x3F, 0x40, 0x7F, 0x80, 0xFE, 0xFF)
BOUNDARY_U16 = (0, 1, 2, 7, 8, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
BOUNDARY_U32 = (0, 1, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


class BrokenPromise(Exception):
    """A decoder returned, but what it returned breaks a round trip or disagrees across buffer kinds."""


# -- valid values ------------------------------------------------------------------------------------


def random_fields(rng: random.Random, spec) -> dict:
    """In-range values for every field of `spec`; the array's count is sometimes given, sometimes derived."""
    multiples = dict(spec.multiples)
    fields = {}
    for field in spec.fixed:
        if isinstance(field, Scalar):
            step = multiples.get(field.name, 1)
            fields[field.name] = rng.randrange(0, field.limit, step)
        elif isinstance(field, Blob):
            fields[field.name] = rng.randbytes(field.size)
        elif isinstance(field, Split):
            fields.update({name: rng.randrange(1 << bits) for name, bits in field.parts})
    array = spec.array
    if array is not None:
        fields.pop(array.count, None)
        if array.count is None:
            size = array.capacity
        else:
            size = rng.randrange((array.capacity or 24) + 1)
        if array.is_bytes:
            fields[array.name] = rng.randbytes(size)
        else:
            fields[array.name] = [rng.getrandbits(32) for _ in range(size)]
        if array.count is not None and rng.random() < 0.5:
            fields[array.count] = size * array.unit
    return fields


# -- targets -----------------------------------------------------------------------------------------


class Target:
    """One decoder: its seed inputs, how a mutant may be repaired to reach deeper, and the check itself.

    `check(buffer, original)` decodes `buffer` (bytes or a memoryview of `original`), verifies the
    codec's round trip against `original` and returns a comparable summary of what it decoded.
    """

    weight = 1
    writable = False  # shared memory: the consumer writes indices back, so it needs its own copy
    hot: tuple[tuple[int, int], ...] = ()  # byte ranges worth mutating more often (headers, indices)

    def __init__(self, name: str, seeds: list[bytes]):
        self.name = name
        self.seeds = seeds

    def repair(self, rng: random.Random, data: bytearray) -> None:
        """Undo some damage so a mutant passes the outer checks (default: none)."""

    def check(self, buffer, original: bytes):
        raise NotImplementedError


class LayoutTarget(Target):
    weight = 3

    def __init__(self, name: str, rng: random.Random, golden: list[bytes]):
        self.layout = get_layout(name)
        seeds = list(golden) if name == "v1" else []
        for spec in self.layout.messages:
            for _ in range(3):
                fields = random_fields(rng, spec)
                seeds.append(spec.encode(fields, rng.getrandbits(16), rng.getrandbits(16)))
        super().__init__(f"layout {name}", seeds)
        header = self.layout.header
        self.size_offset = header.offsets.get("msg_size")
        self.heads = [(spec.type, spec.msg_id) for spec in self.layout.messages]
        self.hot = ((0, header.size + 8),)

    def repair(self, rng, data):
        if len(data) >= 2 and rng.random() < 0.3:
            data[0], data[1] = rng.choice(self.heads)
        if self.size_offset is not None and len(data) >= self.size_offset + 2:
            size = len(data) & 0xFFFF
            data[self.size_offset : self.size_offset + 2] = size.to_bytes(2, "little")

    def check(self, buffer, original):
        layout = self.layout
        frame = layout.decode(buffer)
        if layout.encode_json(frame.to_json()) != original:
            raise BrokenPromise("encode_json(decode(b).to_json()) != b")
        if layout.encode(frame.name, frame.kind, frame.fields, frame.dev_num, frame.token or 0) != original:
            raise BrokenPromise("encode(decode(b)) != b")
        return frame.to_json()


class EncodeTarget(Target):
    """decode(encode(x)) == x for random valid x; the input bytes only seed the choice."""

    weight = 2

    def __init__(self, rng: random.Random):
        super().__init__("encode round trip", [b"\0"])
        self.rng = rng
        self.specs = [(get_layout(name), spec) for name in layout_names() for spec in get_layout(name).messages]

    def check(self, buffer, original):
        if isinstance(buffer, memoryview):  # the second pass: the frame just encoded, through a memoryview
            layout, wire = self.last
            return layout.decode(memoryview(b"\xa5" + wire)[1:]).to_json()
        rng = self.rng
        layout, spec = rng.choice(self.specs)
        fields = random_fields(rng, spec)
        dev_num, token = rng.getrandbits(16), rng.getrandbits(16)
        wire = spec.encode(fields, dev_num, token)
        frame = layout.decode(wire)
        if {name: frame[name] for name in fields} != fields or frame.dev_num != dev_num:
            raise BrokenPromise(f"decode(encode(x)) != x for {spec.where} {fields}")
        if layout.header.token_index is not None and frame.token != token:
            raise BrokenPromise(f"token lost for {spec.where}")
        self.last = (layout, wire)
        return frame.to_json()


class VsockPacketTarget(Target):
    def __init__(self, rng):
        seeds = []
        for op in (vsock.OP_RW, vsock.OP_SHMEM, vsock.OP_REQUEST):
            header = vsock.VsockHeader(2, 3, 1024, rng.getrandbits(32), 0, vsock.TYPE_STREAM, op)
            seeds.append(vsock.encode_packet(header, rng.randbytes(rng.randrange(40))))
        super().__init__("vsock packet", seeds)
        self.hot = ((24, 28),)

    def check(self, buffer, original):
        header, payload = vsock.decode_packet(buffer)
        if vsock.encode_packet(header, payload) != original[: vsock.HEADER_SIZE + header.len]:
            raise BrokenPromise("encode_packet(decode_packet(b)) != b")
        return header, payload


class VsockSgTarget(Target):
    def __init__(self, rng):
        seeds = [
            vsock.encode_shmem_sg(
                vsock.ShmemSgList(vsock.SHMEM_OFFER, vsock.SHMEM_TYPE_FFA,
                                  tuple((rng.getrandbits(64), rng.getrandbits(32)) for _ in range(n)))
            )
            for n in range(4)
        ]
        super().__init__("vsock shmem sg", seeds)
        self.hot = ((8, 16),)

    def check(self, buffer, original):
        desc = vsock.decode_shmem_sg(buffer)
        encoded = vsock.encode_shmem_sg(desc)
        if encoded != original[: len(encoded)]:
            raise BrokenPromise("encode_shmem_sg(decode_shmem_sg(b)) != b")
        return desc


class VsockDmaTarget(Target):
    def __init__(self, rng):
        desc = vsock.ShmemDmaBuf(vsock.SHMEM_OFFER, vsock.SHMEM_TYPE_FFA, rng.getrandbits(64), 4096)
        super().__init__("vsock shmem dma", [vsock.encode_shmem_dma(desc)])
        self.hot = ((8, 12),)

    def check(self, buffer, original):
        desc = vsock.decode_shmem_dma(buffer)
        encoded = vsock.encode_shmem_dma(desc)
        if encoded != original[: len(encoded)]:
            raise BrokenPromise("encode_shmem_dma(decode_shmem_dma(b)) != b")
        return desc


class DirectReq2Target(Target):
    def __init__(self, rng, frames: list[bytes]):
        images = [ffa.pack_direct_req2(frame) for frame in frames if 8 <= len(frame) <= ffa.MAX_FRAME]
        super().__init__("ffa direct_req2", [bytes(ffa.DIRECT_REQ2_BYTES), *images])
        self.hot = ((0, 16),)

    def check(self, buffer, original):
        frame = ffa.unpack_direct_req2(buffer)
        if frame is not None and ffa.pack_direct_req2(frame) != original:
            raise BrokenPromise("pack_direct_req2(unpack_direct_req2(b)) != b")
        registers = ffa.image_to_registers(buffer)
        if ffa.registers_to_image(registers) != original:
            raise BrokenPromise("registers_to_image(image_to_registers(b)) != b")
        return frame, registers


class FfaWordsTarget(Target):
    """The sharing-attribute word (32 bits) and a bus address (64 bits), read little-endian from the input."""

    def __init__(self):
        attrs = ffa.SharingAttrs().encode().to_bytes(4, "little")
        address = ffa.bus_address(3, 0x1000).to_bytes(8, "little")
        super().__init__("ffa words", [attrs, address])

    def check(self, buffer, original):
        word = int.from_bytes(buffer, "little")
        attrs = ffa.SharingAttrs.decode(word) if len(original) <= 8 else None
        if attrs is not None and attrs.encode() != word:
            raise BrokenPromise("SharingAttrs.decode(w).encode() != w")
        for shift in (ffa.AREA_SHIFT, ffa.AREA_SHIFT_RFC2025):
            if ffa.bus_address(*ffa.split_bus_address(word, shift), shift) != word:
                raise BrokenPromise("bus_address(split_bus_address(a)) != a")
        return attrs


def _frames(count: int) -> list[bytes]:
    v1 = get_layout("v1")
    return [v1.encode("EVENT_AVAIL", "event", {"vq_index": i, "next_offset": 0}, dev_num=i) for i in range(count)]


class SharedTarget(Target):
    """A shared-memory structure set up valid with frames in flight; `read` attaches and consumes."""

    writable = True

    def __init__(self, name: str, memory: bytearray, hot, read):
        super().__init__(name, [bytes(memory)])
        self.hot = hot
        self.read = read

    def check(self, buffer, original):
        return self.read(buffer)


def amp_target() -> SharedTarget:
    memory = bytearray(1024)
    to_device, _ = create_queue_pair("amp-2026", memory)
    for frame in _frames(3):
        to_device.try_push(frame)

    def read(buffer):
        device = AmpQueuePeer(buffer, 0, "device")
        popped = [device.receive() for _ in range(4)]
        return popped, len(device.rx), device.poll_handshake()

    return SharedTarget("amp-2026 window", memory, ((0, 96),), read)


def spsc_target(fmt: str, queue_class) -> SharedTarget:
    memory = bytearray(2048)
    to_device, _ = create_queue_pair(fmt, memory)
    for frame in _frames(3):
        to_device.try_push(frame)

    def read(buffer):
        queue = queue_class(buffer, 0, 1024)
        return [queue.try_pop() for _ in range(4)], len(queue)

    return SharedTarget(f"{fmt} queue", memory, ((0, 8), (64, 72), (1024, 1032), (1088, 1096)), read)


def fifo_target() -> SharedTarget:
    memory = bytearray(2 * (0xC0 + 104 * 4))
    tx, _ = create_fifo_pair(memory, 0, len(memory))
    for frame in _frames(2):
        tx.try_push(frame)
    half = len(memory) // 2

    def read(buffer):
        tx, rx = open_fifo_pair(buffer)
        return [tx.try_pop() for _ in range(3)], len(tx), len(rx), tx.was_full

    return SharedTarget("ffa fifo pair", memory, ((0, 32), (64, 66), (128, 130), (half, half + 32)), read)


def split_ring_target() -> SharedTarget:
    memory = bytearray(512)
    ring = SplitRing.contiguous(memory, 0, 8, 16).init()
    driver = SplitDriver(ring)
    driver.add([(0x1000, 64, False), (0x2000, 64, True)])
    driver.add([(0x3000, 16, False)])

    def read(buffer):
        device = SplitDevice(SplitRing.contiguous(buffer, 0, 8, 16))
        return [device.pop() for _ in range(3)], device.pending()

    return SharedTarget("split ring", memory, ((0, 16 * 8 + 24),), read)


def packed_ring_target() -> SharedTarget:
    memory = bytearray(16 * 8 + 8)
    ring = PackedRing.contiguous(memory, 0, 8).init()
    driver = PackedDriver(ring)
    driver.add([(0x1000, 64, False), (0x2000, 64, True)])
    driver.add([(0x3000, 16, False)])

    def read(buffer):
        device = PackedDevice(PackedRing.contiguous(buffer, 0, 8))
        return [device.pop() for _ in range(3)]

    return SharedTarget("packed ring", memory, ((0, len(memory)),), read)


def build_targets(rng: random.Random) -> list[Target]:
    golden = [bytes.fromhex(entry["hex"]) for entry in json.loads(GOLDEN.read_text())["entries"]]
    layouts = [LayoutTarget(name, rng, golden) for name in layout_names()]
    ffa_frames = [frame for target in layouts if target.layout.name == "ffa-2026" for frame in target.seeds]
    return [
        *layouts,
        EncodeTarget(rng),
        VsockPacketTarget(rng),
        VsockSgTarget(rng),
        VsockDmaTarget(rng),
        DirectReq2Target(rng, ffa_frames),
        FfaWordsTarget(),
        amp_target(),
        spsc_target("spsc-2025", Spsc2025Queue),
        spsc_target("spsc-2024", Spsc2024Queue),
        fifo_target(),
        split_ring_target(),
        packed_ring_target(),
    ]


# -- mutation ----------------------------------------------------------------------------------------


def position(rng: random.Random, data: bytearray, hot) -> int:
    if hot and rng.random() < 0.7:
        start, end = rng.choice(hot)
        if start < len(data):
            return rng.randrange(start, min(end, len(data)))
    return rng.randrange(len(data))


def mutate(rng: random.Random, target: Target) -> bytes:
    """One mutant of one of the target's seeds (now and then pure noise)."""
    if rng.random() < 0.03:
        return rng.randbytes(rng.randrange(130))
    data = bytearray(rng.choice(target.seeds))
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        how = rng.randrange(12)
        if not data and how < 9:
            how = 9
        if how == 0:
            data[position(rng, data, target.hot)] = rng.getrandbits(8)
        elif how == 1:
            data[position(rng, data, target.hot)] ^= 1 << rng.randrange(8)
        elif how == 2:
            data[position(rng, data, target.hot)] = rng.choice(BOUNDARY_U8)
        elif how in (3, 4):
            at = position(rng, data, target.hot)
            value = rng.choice((*BOUNDARY_U16, len(data), len(data) + 1, max(len(data) - 1, 0))) & 0xFFFF
            data[at : at + 2] = value.to_bytes(2, "little")[: len(data) - at]
        elif how == 5:
            at = position(rng, data, target.hot)
            data[at : at + 4] = rng.choice(BOUNDARY_U32).to_bytes(4, "little")[: len(data) - at]
        elif how == 6:
            del data[rng.randrange(len(data)) :]
        elif how == 7:
            del data[rng.randrange(len(data))]
        elif how == 8:
            other = rng.choice(target.seeds)
            cut = rng.randrange(len(data) + 1)
            data[cut:] = other[rng.randrange(len(other) + 1) :]
        elif how == 9:
            data += rng.randbytes(rng.randrange(1, 17))
        elif how == 10:
            data.insert(rng.randrange(len(data) + 1), rng.getrandbits(8))
        else:
            data += rng.choice(target.seeds)[: rng.randrange(1, 9)]
    if rng.random() < 0.6:
        target.repair(rng, data)
    return bytes(data)


def memoryview_of(rng: random.Random, data: bytes, writable: bool) -> memoryview:
    """`data` behind a memoryview whose items are not its bytes unless read as bytes."""
    pad = rng.randrange(1, 9)
    backing = bytearray(b"\xa5" * pad + data + b"\x5a" * pad) if writable else b"\xa5" * pad + data + b"\x5a" * pad
    view = memoryview(backing)[pad : pad + len(data)]
    choice = rng.randrange(4)
    if choice == 1 and len(data) % 4 == 0 and data:
        return memoryview(bytearray(data) if writable else data).cast("I")
    if choice == 2:
        return view.cast("c")
    return view


# -- run ---------------------------------------------------------------------------------------------


def run_once(target: Target, buffer, original: bytes):
    """('ok', summary) or ('error', message) for a documented DecodeError; anything else propagates."""
    try:
        return "ok", target.check(buffer, original)
    except DecodeError as exc:
        return "error", str(exc)


def fuzz(count: int, seed: int, show: int) -> int:
    rng = random.Random(seed)
    targets = build_targets(rng)
    schedule = [target for target in targets for _ in range(target.weight)]
    counts = {target.name: Counter() for target in targets}
    shown = 0
    start = time.perf_counter()
    for _ in range(count):
        target = rng.choice(schedule)
        data = mutate(rng, target)
        tally = counts[target.name]
        tally["frames"] += 1
        try:
            first = run_once(target, bytearray(data) if target.writable else data, data)
            second = run_once(target, memoryview_of(rng, data, target.writable), data)
            if first != second:
                raise BrokenPromise(f"bytes gave {first!r:.200}, a memoryview {second!r:.200}")
        except BrokenPromise as exc:
            tally["broken"] += 1
            problem = exc
        except Exception as exc:  # noqa: BLE001 - anything but DecodeError is what we hunt
            tally["undocumented"] += 1
            problem = exc
        else:
            tally["ok" if first[0] == "ok" else "documented"] += 1
            continue
        if shown < show:
            shown += 1
            where = traceback.extract_tb(problem.__traceback__)[-1]
            print(f"{target.name}: {type(problem).__name__}: {problem} at {where.filename}:{where.lineno}")
            print(f"    input: {data.hex()}")
    elapsed = time.perf_counter() - start
    report(counts, count, elapsed, seed)
    bad = sum(tally["undocumented"] + tally["broken"] for tally in counts.values())
    return 1 if bad else 0


def report(counts: dict[str, Counter], count: int, elapsed: float, seed: int) -> None:
    print(f"{count:,} frames (each decoded as bytes and through a memoryview), seed {seed}, "
          f"{elapsed:.1f} s: {count / elapsed:,.0f} frames/s")
    print(f"{'target':22} {'frames':>9} {'decoded':>9} {'DecodeError':>11} {'undocumented':>12} {'broken':>6}")
    total = Counter()
    for name, tally in counts.items():
        total.update(tally)
        print(f"{name:22} {tally['frames']:>9,} {tally['ok']:>9,} {tally['documented']:>11,} "
              f"{tally['undocumented']:>12,} {tally['broken']:>6,}")
    print(f"{'total':22} {total['frames']:>9,} {total['ok']:>9,} {total['documented']:>11,} "
          f"{total['undocumented']:>12,} {total['broken']:>6,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="mutated frames (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", type=int, default=5, help="print the first N failures with their input")
    args = parser.parse_args()
    raise SystemExit(fuzz(args.count, args.seed, args.show))


if __name__ == "__main__":
    main()
