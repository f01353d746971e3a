"""Wire codecs: encode+decode of every v1 message against hand-written ``struct`` code.

For each of the 30 golden v1 frames (tests/data/virtio-msg-v1.json) this times, in one run:

* baseline: a hand-written ``struct.Struct`` of that message (format below, written from the
  S-pr28 offset table), ``pack_into`` a preallocated buffer then ``unpack_from`` it;
* contract: ``layout.decode(layout.encode(name, kind, fields, dev_num=, token=))``;
* fast: ``layout.decode(spec.encode(fields, dev_num, token))`` with the spec looked up once;
* pack: ``layout.decode(spec.pack(dev_num, token, *values))`` (positional values).

and prints each as a ratio to the baseline (lower is better; 1.0 = as fast as raw struct),
with the median over all messages. It is a report, not a test: timings are noisy.

    python benchmarks/bench_wire.py [--number 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import timeit
from pathlib import Path

from vmsim.wire import get_layout

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "data" / "virtio-msg-v1.json"

# Hand-written formats: header <BBHHH (type, msg_id, dev_num, token, msg_size) + payload.
# Arrays are sized for the golden example (2 feature blocks, 6/2 config bytes, 2 bitmap bytes).
HAND_WRITTEN = {
    "GET_DEVICE_INFO.req": "<BBHHH",
    "GET_DEVICE_INFO.resp": "<BBHHH IIIII HH",
    "GET_DEVICE_FEATURES.req": "<BBHHH II",
    "GET_DEVICE_FEATURES.resp": "<BBHHH II 2I",
    "SET_DRIVER_FEATURES.req": "<BBHHH II 2I",
    "SET_DRIVER_FEATURES.resp": "<BBHHH",
    "GET_CONFIG.req": "<BBHHH II",
    "GET_CONFIG.resp": "<BBHHH III 6s",
    "SET_CONFIG.req": "<BBHHH III 2s",
    "SET_CONFIG.resp": "<BBHHH III 2s",
    "GET_DEVICE_STATUS.req": "<BBHHH",
    "GET_DEVICE_STATUS.resp": "<BBHHH I",
    "SET_DEVICE_STATUS.req": "<BBHHH I",
    "SET_DEVICE_STATUS.resp": "<BBHHH I",
    "GET_VQUEUE.req": "<BBHHH I",
    "GET_VQUEUE.resp": "<BBHHH IIII QQQ",
    "SET_VQUEUE.req": "<BBHHH IIII QQQ",
    "SET_VQUEUE.resp": "<BBHHH",
    "RESET_VQUEUE.req": "<BBHHH I",
    "RESET_VQUEUE.resp": "<BBHHH",
    "GET_SHM.req": "<BBHHH I",
    "GET_SHM.resp": "<BBHHH III",
    "EVENT_CONFIG": "<BBHHH IIII",
    "EVENT_AVAIL": "<BBHHH II",
    "EVENT_USED": "<BBHHH I",
    "BUS_GET_DEVICES.req": "<BBHHH HH",
    "BUS_GET_DEVICES.resp": "<BBHHH HHH 2s",
    "BUS_PING.req": "<BBHHH I",
    "BUS_PING.resp": "<BBHHH I",
    "BUS_EVENT_DEVICE": "<BBHHH HH",
}


def best_ns(function, number: int, repeat: int) -> float:
    return min(timeit.repeat(function, number=number, repeat=repeat)) / number * 1e9


def measure(number: int, repeat: int) -> list[tuple[str, float, float, float, float]]:
    layout = get_layout("v1")
    rows = []
    for entry in json.loads(GOLDEN.read_text())["entries"]:
        wire = bytes.fromhex(entry["hex"])
        hand = struct.Struct(HAND_WRITTEN[entry["name"]])
        assert hand.size == len(wire), entry["name"]
        hand_values = hand.unpack(wire)
        buffer = bytearray(hand.size)

        def baseline(hand=hand, buffer=buffer, values=hand_values):
            hand.pack_into(buffer, 0, *values)
            return hand.unpack_from(buffer, 0)

        frame = layout.decode(wire)
        name, kind, fields = frame.name, frame.kind, frame.fields
        dev_num, token = frame.dev_num, frame.token
        spec = layout.spec(name, kind)
        values = tuple(fields.values())

        def contract(name=name, kind=kind, fields=fields, dev_num=dev_num, token=token):
            return layout.decode(layout.encode(name, kind, fields, dev_num=dev_num, token=token))

        def fast(spec=spec, fields=fields, dev_num=dev_num, token=token):
            return layout.decode(spec.encode(fields, dev_num, token))

        def positional(spec=spec, values=values, dev_num=dev_num, token=token):
            return layout.decode(spec.pack(dev_num, token, *values))

        for check in (contract, fast, positional):
            assert layout.encode_json(check().to_json()) == wire, entry["name"]
        base = best_ns(baseline, number, repeat)
        rows.append(
            (
                entry["name"],
                base,
                best_ns(contract, number, repeat) / base,
                best_ns(fast, number, repeat) / base,
                best_ns(positional, number, repeat) / base,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per timing")
    parser.add_argument("--repeat", type=int, default=5, help="timings per figure (best is kept)")
    args = parser.parse_args()
    rows = measure(args.number, args.repeat)
    print(f"{'message':26} {'struct ns':>9} {'contract':>9} {'fast':>6} {'pack':>6}")
    for name, base, contract, fast, positional in rows:
        print(f"{name:26} {base:9.0f} {contract:9.2f} {fast:6.2f} {positional:6.2f}")
    medians = [statistics.median(row[i] for row in rows) for i in (2, 3, 4)]
    print(f"{'median ratio':26} {'':9} {medians[0]:9.2f} {medians[1]:6.2f} {medians[2]:6.2f}")


if __name__ == "__main__":
    main()
