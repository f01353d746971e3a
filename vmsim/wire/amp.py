"""The 2026 self-describing AMP shared-memory window ("vmamp shmem" version 1; L-amp26, Q-amp26).

One window holds a 64-byte layout header, one 8-byte queue head per peer, one element array per direction
and optional notification words. Each peer writes only its own queue head: `tail` is its producer index
into its own element array, `head` its consumer index into the *peer's* array (inverted with respect to
the 2024/2025 spsc naming, see `vmsim.wire.spsc`). One slot always stays unused.

Classes:
- `AmpLayout`: the header view; `AmpLayout.init(...)` places regions as the QEMU device does,
  `validate()` is what a reader checks before trusting any offset.
- `AmpQueueHead`: one peer's 8-byte queue head.
- `AmpQueue`: one direction (producer tail, consumer head, element array) with the common queue
  interface of `vmsim.wire.spsc` (`try_push`, `try_pop`, `capacity`, `len`).
- `AmpQueuePeer`: one side's endpoint: send/receive plus the INIT -> READY -> RUN handshake as steps.
- `AmpNotifier` (`vmsim.wire.amp_notify`): the toggle-bit notification words (pending = my.rx XOR peer.tx).

Byte accounting: `AmpQueue`, `AmpNotifier` accumulate `bytes_read` / `bytes_written`: the shared-memory
bytes each operation loads or stores (indices, elements, words; distinct bytes per op). `AmpQueue` also
describes what its next push or pop touches, place by place (`vmsim.wire.accesses`).
"""

from __future__ import annotations

from itertools import pairwise

from vmsim.errors import EncodeError
from vmsim.wire._view import U16, Field, View, bad_field, check_span, shared_bytes
from vmsim.wire.accesses import Access
from vmsim.wire.amp_notify import AmpNotifier

LAYOUT_MAGIC = 0x4C4F
"""`VMAMP_SHMEM_MAGIC_READY` ("LO"), stored last by the creator (L-amp26)."""
LAYOUT_SIZE = 64
VERSION_1 = 1
FEAT_MASKED_NOTIF = 0x1
"""The only feature bit defined: notification words come with a mask array (L-amp26)."""
NUM_NOTIF_MAX = 64
VQ_NOTIF_PER_DEVICE = (1, 2, 4, 8, 16)
"""Allowed `num_vq_notif_per_device`, checked only when `num_notif > 0` (L-amp26)."""

QUEUE_MAGIC = 0x514F
"""`QUEUE_MAGIC_READY` ("QO") in each queue head (L-amp26)."""
QUEUE_HEAD_SIZE = 8
STATE_MASK = 0x001F
FLAG_MASK = 0xF000
FLAG_DEBUGGABLE = 0x8000
INIT, READY, RUN, SHUTDOWN, PEER_DEAD = 0, 1, 2, 3, 4
"""Queue states in status bits 4:0 (L-amp26)."""

QEMU_ELEMENT_SIZE = 64
"""Element size in all code seen (L-amp26, Q-amp26)."""

_u16 = U16.unpack_from
_p16 = U16.pack_into


def _align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


class AmpLayout(View):
    """`struct vmamp_shmem_layout`, 64 bytes at the start of the window; offsets are window-relative."""

    __slots__ = ("_window",)
    NAME = "amp layout"
    magic = Field("H", 0)
    length = Field("H", 2)
    version = Field("H", 4)
    features = Field("H", 6)
    num_notif = Field("B", 8)
    num_vq_notif_per_device = Field("B", 9)
    num_queue_elements = Field("H", 10)
    size_queue_elements = Field("H", 12)
    reserved = Field("H", 14)
    dev_notif_offset = Field("Q", 16)
    dev_queue_head_offset = Field("Q", 24)
    dev_queue_elements_offset = Field("Q", 32)
    drv_notif_offset = Field("Q", 40)
    drv_queue_head_offset = Field("Q", 48)
    drv_queue_elements_offset = Field("Q", 56)

    def __init__(self, buf, offset: int = 0, window: int | None = None):
        """`window` is the window size in bytes (default: the rest of the buffer)."""
        super().__init__(buf, offset)
        buf = self._buf
        if window is None:
            window = len(buf) - offset
        check_span(buf, offset, window, "amp window")
        self._window = window

    @property
    def window(self) -> int:
        return self._window

    @classmethod
    def init(cls, buf, offset: int = 0, window: int | None = None, *, element_size: int = QEMU_ELEMENT_SIZE,
             num_notif: int = 0, vq_notif_per_device: int = 1, masked_notif: bool = False) -> AmpLayout:
        """Create the layout the way the QEMU device side does (`vmamp_shmem_dev_init`, Q-amp26).

        Queue heads right after the layout (dev @64, drv @72); elements at align8 of what follows;
        N = (window - elements_start) / (2 * element_size); device elements first. QEMU uses no
        notification words; with `num_notif > 0` vmsim puts the dev then drv tx,rx[,mask] arrays at 80,
        before the elements (no public code places them). The magic is written last, as the creator must.
        """
        buf = shared_bytes(buf, cls.NAME)
        if window is None:
            window = len(buf) - offset
        if offset < 0 or window < 0 or offset + window > len(buf):
            raise EncodeError(f"amp layout: window of {window} bytes at offset {offset} exceeds the buffer")
        if not 1 <= element_size <= 0xFFFF:
            raise EncodeError(f"amp layout: element_size {element_size} outside 1..65535")
        if not 0 <= num_notif <= NUM_NOTIF_MAX:
            raise EncodeError(f"amp layout: num_notif {num_notif} outside 0..{NUM_NOTIF_MAX}")
        if num_notif and vq_notif_per_device not in VQ_NOTIF_PER_DEVICE:
            raise EncodeError(f"amp layout: num_vq_notif_per_device {vq_notif_per_device} not in 1,2,4,8,16")
        dev_qh, drv_qh = LAYOUT_SIZE, LAYOUT_SIZE + QUEUE_HEAD_SIZE
        cursor = drv_qh + QUEUE_HEAD_SIZE
        dev_notif = drv_notif = 0
        notif_bytes = 8 * num_notif * (3 if masked_notif else 2)
        if num_notif:
            dev_notif, drv_notif = cursor, cursor + notif_bytes
            cursor = drv_notif + notif_bytes
        elems = _align(cursor, 8)
        n = (window - elems) // (2 * element_size)
        if not 2 <= n <= 0xFFFF:
            raise EncodeError(f"amp layout: window of {window} bytes gives {n} elements of {element_size} "
                              "bytes, need 2..65535")
        buf[offset:offset + elems] = bytes(elems)
        lay = cls(buf, offset, window)
        lay.length = LAYOUT_SIZE
        lay.version = VERSION_1
        lay.features = FEAT_MASKED_NOTIF if masked_notif else 0
        lay.num_notif = num_notif
        lay.num_vq_notif_per_device = vq_notif_per_device if num_notif else 0
        lay.num_queue_elements = n
        lay.size_queue_elements = element_size
        lay.dev_notif_offset = dev_notif
        lay.dev_queue_head_offset = dev_qh
        lay.dev_queue_elements_offset = elems
        lay.drv_notif_offset = drv_notif
        lay.drv_queue_head_offset = drv_qh
        lay.drv_queue_elements_offset = elems + n * element_size
        lay.magic = LAYOUT_MAGIC
        return lay

    @property
    def notif_words(self) -> int:
        """u64 words per peer region: tx and rx, plus mask with FEAT_MASKED_NOTIF."""
        return self.num_notif * (3 if self.features & FEAT_MASKED_NOTIF else 2)

    def validate(self) -> AmpLayout:
        """Check everything a reader must before using an offset (L-amp26); returns self.

        Raises DecodeError naming the field and its byte offset in the buffer.
        """
        o = self._off

        def expect(name: str, ok: bool, value, expected: str) -> None:
            if not ok:
                raise bad_field(self.NAME, name, o + getattr(AmpLayout, name).offset, value, expected)

        magic = self.magic
        expect("magic", magic == LAYOUT_MAGIC, magic, f"0x{LAYOUT_MAGIC:04X}")
        v = self.length
        expect("length", v == LAYOUT_SIZE, v, str(LAYOUT_SIZE))
        v = self.version
        expect("version", v == VERSION_1, v, str(VERSION_1))
        v = self.features
        expect("features", v & ~FEAT_MASKED_NOTIF == 0, v, "only bit 0 (FEAT_MASKED_NOTIF)")
        num_notif = self.num_notif
        expect("num_notif", num_notif <= NUM_NOTIF_MAX, num_notif, f"<= {NUM_NOTIF_MAX}")
        if num_notif:
            v = self.num_vq_notif_per_device
            expect("num_vq_notif_per_device", v in VQ_NOTIF_PER_DEVICE, v, "one of 1,2,4,8,16")
        n = self.num_queue_elements
        expect("num_queue_elements", n >= 2, n, ">= 2")
        size = self.size_queue_elements
        expect("size_queue_elements", size >= 1, size, ">= 1")
        v = self.reserved
        expect("reserved", v == 0, v, "0")

        regions = [("layout", 0, LAYOUT_SIZE)]
        checks = [("dev_queue_head_offset", 2, QUEUE_HEAD_SIZE), ("drv_queue_head_offset", 2, QUEUE_HEAD_SIZE),
                  ("dev_queue_elements_offset", 1, n * size), ("drv_queue_elements_offset", 1, n * size)]
        if num_notif:
            nbytes = 8 * self.notif_words
            checks += [("dev_notif_offset", 8, nbytes), ("drv_notif_offset", 8, nbytes)]
        for name, align, nbytes in checks:
            start = getattr(self, name)
            expect(name, start != 0, start, "non-zero")
            expect(name, start % align == 0, start, f"{align}-byte aligned")
            expect(name, start + nbytes <= self._window, start,
                   f"a {nbytes}-byte region inside the {self._window}-byte window")
            regions.append((name, start, nbytes))
        regions.sort(key=lambda r: r[1])
        for (prev, pstart, plen), (name, start, _) in pairwise(regions):
            expect(name, start >= pstart + plen, start,
                   f"no overlap with {prev} (0x{pstart:X}..0x{pstart + plen:X})")
        return self


class AmpQueueHead(View):
    """`struct vmamp_shmem_queue_head` (8 bytes): tail = my producer index, head = my consumer index."""

    __slots__ = ()
    NAME = "amp queue head"
    magic = Field("H", 0)
    status = Field("H", 2)
    tail = Field("H", 4)
    head = Field("H", 6)

    @property
    def state(self) -> int:
        return self.status & STATE_MASK

    @state.setter
    def state(self, value: int) -> None:
        """Stores the whole status word as Linux does (`set_queue_status`): flag bits read back 0."""
        if not 0 <= value <= STATE_MASK:
            raise EncodeError(f"{self.NAME}: state {value} outside 0..{STATE_MASK}")
        self.status = value

    @property
    def flags(self) -> int:
        return self.status & FLAG_MASK


class AmpQueue:
    """One direction of an AMP window: the producer's element array, its `tail` and the consumer's `head`.

    Full is (tail + 1) % N == head, empty is head == tail (L-amp26): `capacity` = N - 1.
    A push copies exactly the frame (Linux sends msg_size bytes; the rest of the element keeps stale
    bytes); a pop returns the whole element, as the Linux receiver reads it. Indices read back from
    shared memory that are >= N raise DecodeError.
    """

    __slots__ = (
        "_buf",
        "_elems",
        "_head_off",
        "_tail_off",
        "bytes_read",
        "bytes_written",
        "capacity",
        "element_size",
        "slots",
    )

    FORMAT = "amp-2026"

    def __init__(self, buf, producer_head: int, consumer_head: int, elements: int, n: int, element_size: int):
        """Offsets are absolute in `buf`: the producer's and consumer's queue heads and the element array."""
        buf = shared_bytes(buf, "amp queue")
        check_span(buf, producer_head, QUEUE_HEAD_SIZE, "amp producer queue head")
        check_span(buf, consumer_head, QUEUE_HEAD_SIZE, "amp consumer queue head")
        check_span(buf, elements, n * element_size, "amp queue elements")
        self._buf = buf
        self._tail_off = producer_head + 4
        self._head_off = consumer_head + 6
        self._elems = elements
        self.slots = n
        self.capacity = n - 1
        self.element_size = element_size
        self.bytes_read = 0
        self.bytes_written = 0

    def _indices(self) -> tuple[int, int]:
        """Both indices, checked (the hot paths re-check here only when one is out of range)."""
        buf = self._buf
        tail = _u16(buf, self._tail_off)[0]
        head = _u16(buf, self._head_off)[0]
        self.bytes_read += 4
        n = self.slots
        if tail >= n:
            raise bad_field("amp queue", "tail", self._tail_off, tail, f"< {n}")
        if head >= n:
            raise bad_field("amp queue", "head", self._head_off, head, f"< {n}")
        return tail, head

    def try_push(self, frame) -> bool:
        """Copy `frame` into the element at tail and publish tail+1; False when full."""
        size = len(frame)
        if not 0 < size <= self.element_size:
            raise EncodeError(f"amp queue: frame of {size} bytes, expected 1..{self.element_size}")
        buf, n = self._buf, self.slots
        tail = _u16(buf, self._tail_off)[0]
        head = _u16(buf, self._head_off)[0]
        if tail >= n or head >= n:
            self._indices()
        nxt = tail + 1
        if nxt == n:
            nxt = 0
        if nxt == head:
            self.bytes_read += 4
            return False
        start = self._elems + tail * self.element_size
        buf[start:start + size] = frame
        _p16(buf, self._tail_off, nxt)
        self.bytes_read += 4
        self.bytes_written += size + 2
        return True

    def try_pop(self) -> bytes | None:
        """The whole element at head (a copy), then publish head+1; None when empty."""
        buf, n = self._buf, self.slots
        tail = _u16(buf, self._tail_off)[0]
        head = _u16(buf, self._head_off)[0]
        if tail >= n or head >= n:
            self._indices()
        if head == tail:
            self.bytes_read += 4
            return None
        esize = self.element_size
        start = self._elems + head * esize
        data = bytes(buf[start:start + esize])
        head += 1
        _p16(buf, self._head_off, 0 if head == n else head)
        self.bytes_read += 4 + esize
        self.bytes_written += 2
        return data

    def __len__(self) -> int:
        buf, n = self._buf, self.slots
        tail = _u16(buf, self._tail_off)[0]
        head = _u16(buf, self._head_off)[0]
        if tail >= n or head >= n:
            self._indices()
        self.bytes_read += 4
        return (tail - head) % n

    def next_push(self) -> tuple[int, bool]:
        """The element at tail; nothing is cached, so nothing is reloaded: both indices are read every time."""
        tail = _u16(self._buf, self._tail_off)[0]
        if tail >= self.slots:
            self._indices()
        return self._elems + tail * self.element_size, False

    def next_pop(self) -> tuple[int, bool]:
        """The element at head (both indices are read every time)."""
        head = _u16(self._buf, self._head_off)[0]
        if head >= self.slots:
            self._indices()
        return self._elems + head * self.element_size, False

    def push_accesses(self, element: int, nbytes: int, reload: bool = False) -> tuple[Access, ...]:
        """Reads both 16-bit indices (the producer's tail and the consumer's head, in the two queue heads that
        share the 16 bytes at offset 64); writes the frame into the element and tail."""
        return (Access(self._tail_off, 2, False), Access(self._head_off, 2, False), Access(element, nbytes, True),
                Access(self._tail_off, 2, True))

    def pop_accesses(self, element: int, reload: bool = False) -> tuple[Access, ...]:
        """Reads both indices and the whole element (`element_size` bytes, where the elements follow the queue
        heads: at offset 80 in the QEMU layout, so not on a line boundary); writes head."""
        return (Access(self._tail_off, 2, False), Access(self._head_off, 2, False),
                Access(element, self.element_size, False), Access(self._head_off, 2, True))

    def look_accesses(self) -> tuple[Access, ...]:
        """An empty pop reads both indices."""
        return Access(self._tail_off, 2, False), Access(self._head_off, 2, False)


class AmpQueuePeer:
    """One side ("driver" or "device") of an AMP window: its queues, handshake and notifications.

    The handshake of `vmamp_shmem_queue_init` (L-amp26) without sleeping: `start()` once, then
    `poll_handshake()` whenever the simulated peer would re-check; it returns my new state and reaches
    RUN when both sides got there. `peer_dead()` / `shutdown()` are the teardown steps.
    """

    __slots__ = ("layout", "me", "notif", "peer", "role", "rx", "tx")

    def __init__(self, buf, offset: int = 0, role: str = "driver", window: int | None = None):
        """Reads and validates the layout at `offset` (DecodeError if it is not a usable window)."""
        if role not in ("driver", "device"):
            raise EncodeError(f"amp peer: role {role!r} is neither 'driver' nor 'device'")
        buf = shared_bytes(buf, "amp window")
        layout = AmpLayout(buf, offset, window).validate()
        mine, theirs = ("drv", "dev") if role == "driver" else ("dev", "drv")
        qh = {"drv": offset + layout.drv_queue_head_offset, "dev": offset + layout.dev_queue_head_offset}
        el = {"drv": offset + layout.drv_queue_elements_offset, "dev": offset + layout.dev_queue_elements_offset}
        n, size = layout.num_queue_elements, layout.size_queue_elements
        self.layout = layout
        self.role = role
        self.me = AmpQueueHead(buf, qh[mine])
        self.peer = AmpQueueHead(buf, qh[theirs])
        self.tx = AmpQueue(buf, qh[mine], qh[theirs], el[mine], n, size)
        self.rx = AmpQueue(buf, qh[theirs], qh[mine], el[theirs], n, size)
        self.notif = None
        if layout.num_notif:
            nf = {"drv": offset + layout.drv_notif_offset, "dev": offset + layout.dev_notif_offset}
            self.notif = AmpNotifier(buf, nf[mine], nf[theirs], layout.num_notif,
                                     bool(layout.features & FEAT_MASKED_NOTIF))

    def send(self, frame) -> bool:
        """Push one frame into my queue; False when the peer has not made room yet."""
        return self.tx.try_push(frame)

    def receive(self) -> bytes | None:
        """Pop one whole element from the peer's queue; None when empty."""
        return self.rx.try_pop()

    @property
    def state(self) -> int:
        return self.me.state

    @property
    def peer_state(self) -> int:
        """The peer's state, or -1 while its queue head carries no magic yet."""
        return self.peer.state if self.peer.magic == QUEUE_MAGIC else -1

    def start(self) -> int:
        """First handshake step: clear my element array and notification words (as `vmamp_shmem_init`),
        set my status INIT, then my magic, so the peer never sees the magic with a stale state."""
        tx = self.tx
        start = tx._elems
        tx._buf[start:start + tx.slots * tx.element_size] = bytes(tx.slots * tx.element_size)
        if self.notif is not None:
            nf = self.notif
            nbytes = 8 * self.layout.notif_words
            nf._buf[nf._my:nf._my + nbytes] = bytes(nbytes)
        self.me.state = INIT
        self.me.magic = QUEUE_MAGIC
        return INIT

    def poll_handshake(self) -> int:
        """Advance the handshake as far as the peer's head allows; returns my (new) state.

        INIT -> READY once the peer's magic is there (my head/tail zeroed first); READY -> RUN once the
        peer left INIT. A peer already beyond RUN sends me to SHUTDOWN (the -EIO case).
        """
        me = self.me
        state = me.state
        if state == INIT:
            peer = self.peer_state
            if peer < 0:
                return INIT
            if peer > RUN:
                me.state = SHUTDOWN
                return SHUTDOWN
            me.tail = 0
            me.head = 0
            me.state = state = READY
        if state == READY:
            peer = self.peer_state
            if peer > RUN:
                me.state = SHUTDOWN
                return SHUTDOWN
            if peer in (READY, RUN):
                me.state = state = RUN
        return state

    def peer_dead(self) -> bool:
        """Mark the link PEER_DEAD (`queue_dead`); True once the peer is back at READY or below."""
        self.me.state = PEER_DEAD
        return self.peer.state <= READY

    def shutdown(self) -> None:
        """Unregister: my status SHUTDOWN."""
        self.me.state = SHUTDOWN

    @property
    def bytes_read(self) -> int:
        return self.tx.bytes_read + self.rx.bytes_read

    @property
    def bytes_written(self) -> int:
        return self.tx.bytes_written + self.rx.bytes_written

