"""The toggle-bit notification words of the 2026 AMP shared-memory window (L-amp26), apart from the window
and its queues (`vmsim.wire.amp`), which hand each peer one `AmpNotifier` when the layout has words.

Byte accounting: `bytes_read` / `bytes_written` are the shared-memory bytes each operation loads or stores.
"""

from __future__ import annotations

import struct

from vmsim.errors import EncodeError
from vmsim.wire._view import U64, check_span, shared_bytes

_u64 = U64.unpack_from
_p64 = U64.pack_into


class AmpNotifier:
    """Toggle-bit notification words of one peer (L-amp26).

    Each peer owns tx[num_notif], rx[num_notif] and, with FEAT_MASKED_NOTIF, mask[num_notif] u64 words.
    Raising bit b toggles my.tx; the receiver sees pending = my.rx XOR peer.tx and acknowledges with
    my.rx ^= pending. A set bit in the receiver's mask suppresses the interrupt but not the pending bit.
    """

    __slots__ = ("_buf", "_my", "_peer", "bytes_read", "bytes_written", "masked", "num_notif")

    def __init__(self, buf, my_notif: int, peer_notif: int, num_notif: int, masked: bool):
        words = num_notif * (3 if masked else 2)
        buf = shared_bytes(buf, "amp notification words")
        check_span(buf, my_notif, 8 * words, "amp notification words")
        check_span(buf, peer_notif, 8 * words, "amp notification words")
        self._buf = buf
        self._my = my_notif
        self._peer = peer_notif
        self.num_notif = num_notif
        self.masked = masked
        self.bytes_read = 0
        self.bytes_written = 0

    def _word(self, bit: int) -> tuple[int, int]:
        if not 0 <= bit < 64 * self.num_notif:
            raise EncodeError(f"amp notify: bit {bit} outside 0..{64 * self.num_notif - 1}")
        return bit >> 6, 1 << (bit & 63)

    def notify(self, bit: int) -> bool:
        """Raise `bit` toward the peer; True if an interrupt is due (newly raised and not masked).

        Raising makes the bit pending (my.tx != peer.rx); a bit that is still pending stays so, since
        toggling it again would cancel the first notification before the peer saw it.
        """
        n, m = self._word(bit)
        off = self._my + 8 * n
        tx = _u64(self._buf, off)[0]
        peer_rx = _u64(self._buf, self._peer + 8 * (self.num_notif + n))[0]
        self.bytes_read += 16
        if (tx ^ peer_rx) & m:
            return False
        _p64(self._buf, off, tx ^ m)
        self.bytes_written += 8
        if not self.masked:
            return True
        self.bytes_read += 8
        return not _u64(self._buf, self._peer + 8 * (2 * self.num_notif + n))[0] & m

    def pending(self, word: int) -> int:
        """Bits of `word` the peer raised and I have not acknowledged: my.rx[word] XOR peer.tx[word]."""
        self._word(64 * word)
        self.bytes_read += 16
        rx = _u64(self._buf, self._my + 8 * (self.num_notif + word))[0]
        return rx ^ _u64(self._buf, self._peer + 8 * word)[0]

    def acknowledge(self, word: int) -> int:
        """Clear what is pending in `word` (my.rx ^= pending) and return those bits."""
        bits = self.pending(word)
        if bits:
            off = self._my + 8 * (self.num_notif + word)
            _p64(self._buf, off, _u64(self._buf, off)[0] ^ bits)
            self.bytes_written += 8
        return bits

    def set_mask(self, word: int, bits: int) -> None:
        """Store my mask word: set bits suppress the peer's interrupts for those notifications."""
        if not self.masked:
            raise EncodeError("amp notify: the layout has no mask words (FEAT_MASKED_NOTIF clear)")
        self._word(64 * word)
        off = self._my + 8 * (2 * self.num_notif + word)
        try:
            _p64(self._buf, off, bits)
        except struct.error as exc:
            raise EncodeError(f"amp notify: cannot store mask {bits!r} at offset {off} ({exc})") from None
        self.bytes_written += 8
