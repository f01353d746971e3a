"""`vmsim codec`: decode, encode and list frames from the shell, user errors on one line with exit 2."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from vmsim.cli import main

GET_CONFIG_RESP = "0105010034121a00070000000000000006000000525400123456"  # golden v1 frame


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Run `vmsim` in-process; return (exit status, stdout, stderr)."""
    try:
        main(list(argv))
        status = 0
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def test_decode_prints_the_frame_as_json_with_spec_field_names(capsys):
    status, out, _ = run(capsys, "codec", "decode", GET_CONFIG_RESP)
    assert status == 0
    assert json.loads(out) == {
        "layout": "v1",
        "name": "GET_CONFIG",
        "kind": "response",
        "header": {"type": 1, "msg_id": 5, "dev_num": 1, "token": 0x1234, "msg_size": 26},
        "fields": {"generation": 7, "offset": 0, "length": 6, "data": "525400123456"},
    }


def test_decode_then_encode_gives_the_original_bytes(capsys, monkeypatch):
    """The JSON decode prints is what encode reads, here through stdin ('-')."""
    _, decoded, _ = run(capsys, "codec", "decode", GET_CONFIG_RESP)
    monkeypatch.setattr(sys, "stdin", io.StringIO(decoded))
    status, out, _ = run(capsys, "codec", "encode", "-")
    assert (status, out.strip()) == (0, GET_CONFIG_RESP)


def test_encode_takes_the_json_as_an_argument_and_its_layout_from_it(capsys):
    message = {
        "layout": "draft-6b",
        "name": "EVENT_USED",
        "header": {"dev_num": 2},
        "fields": {"vq_index": 3},
    }
    status, out, _ = run(capsys, "codec", "encode", json.dumps(message))
    # 6-byte header: type 00, msg_id 42, dev_num 0200, msg_size 6 + 4 = 0a00; vq_index 03000000
    assert (status, out.strip()) == (0, "004202000a0003000000")


@pytest.mark.parametrize(
    "pasted",
    [
        "00 41 01 00 00 00 10 00 00 00 00 00 05 00 00 80",
        "00:41:01:00:00:00:10:00:00:00:00:00:05:00:00:80",
        "0x00 0x41 0x01 0x00 0x00 0x00 0x10 0x00 0x00 0x00 0x00 0x00 0x05 0x00 0x00 0x80",
        "{0x0, 0x41, 0x1, 0x0, 0x0, 0x0, 0x10, 0x0, 0x0, 0x0, 0x0, 0x0, 0x5, 0x0, 0x0, 0x80}",
        "0x00410100000010000000000005000080",
    ],
)
def test_decode_accepts_hex_as_pasted_from_a_debugger(capsys, pasted):
    status, out, _ = run(capsys, "codec", "decode", pasted)
    assert status == 0
    assert json.loads(out)["fields"] == {"vq_index": 0, "next_offset": 0x80000005}


def test_layout_option_selects_the_ffa_bus_messages(capsys):
    """ERROR (0x87, 2026 only): bus response 03, dev_num 3, token 5, msg_size 10, original_msg_id 5."""
    status, out, _ = run(capsys, "codec", "decode", "--layout", "ffa-2026", "03870300 0500 0a00 0500")
    assert status == 0
    frame = json.loads(out)
    assert (frame["name"], frame["kind"], frame["fields"]) == ("ERROR", "response", {"original_msg_id": 5})
    status, _, err = run(capsys, "codec", "decode", "--layout", "ffa-2025", "03870300 0500 0a00 0500")
    assert status == 2 and "msg_id" in err


def test_list_shows_names_ids_and_sizes(capsys):
    status, out, _ = run(capsys, "codec", "list")
    assert status == 0
    rows = [line.split() for line in out.splitlines()[2:]]
    assert ["GET_VQUEUE", "response", "transport", "0x09", "48"] in rows
    assert ["GET_CONFIG", "response", "transport", "0x05", ">=20"] in rows
    assert ["GET_DEVICES", "request", "bus", "0x02", "12"] in rows
    assert len(rows) == 30
    status, out, _ = run(capsys, "codec", "list", "--layout", "ffa-2025")
    assert ["AREA_RELEASE", "event", "bus", "0xc0", "10"] in [line.split() for line in out.splitlines()]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["codec", "decode", "0041010"], "odd number of hex digits"),
        (["codec", "decode", "00zz"], "not hexadecimal"),
        (["codec", "decode", ""], "no hex digits"),
        (["codec", "decode", "00410100000011000000000005000080"], "'msg_size' at offset 6"),
        (["codec", "decode", "--layout", "v9", "00"], "unknown layout 'v9'"),
        (["codec", "encode", "{not json"], "JSON:"),
        (["codec", "encode", '{"name": "EVENT_USED", "fields": {}}'], "vq_index"),
        (["codec", "list", "--layout", "nope"], "choose one of"),
        (["codec", "encode", '{"name": ["PING"]}'], "'name' must be a string, got array"),
        (["codec", "encode", '{"name": "PING", "kind": {}}'], "'kind' must be a string, got object"),
        (["codec", "encode", '{"name": "PING", "kind": "request", "fields": {"x": 1, "data": 1}}'], "'x'"),
        (["codec", "encode", '{"name": "PING", "fields": {"data": 1' + "0" * 5000 + "}}"], "digits"),
        (["codec", "encode", "[" * 9 + "]" * 9], "nested deeper than 8 levels at line 1 column 9"),
        (["codec", "encode", '"' + "x" * (1 << 20) + '"'], "more than the 1,048,576"),
        (["codec", "decode", "00" * (1 << 19) + "0"], "more than the 1,048,576"),
        (["codec", "decode", "--layout", "", "0002010034120800"], "unknown layout ''"),
        (["codec", "encode", "--layout", "", '{"name": "PING", "kind": "request"}'], "unknown layout ''"),
        (["codec", "encode", '{"layout": "", "name": "PING", "kind": "request"}'], "unknown layout ''"),
        (["codec", "list", "--layout", ""], "unknown layout ''"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(capsys, argv, says):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and says in err and "Traceback" not in err, err


def test_a_json_array_nested_a_thousand_deep_on_stdin_is_one_line(capsys, monkeypatch):
    """Refused before parsing: the JSON parser would recurse past Python's limit."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("[" * 1000 + "]" * 1000))
    status, out, err = run(capsys, "codec", "encode", "-")
    assert (status, out) == (2, "")
    assert err == "vmsim: error: JSON: nested deeper than 8 levels at line 1 column 9\n"


def test_brackets_inside_strings_do_not_count_as_nesting(capsys):
    message = {"name": "PING", "kind": "request", "header": {"dev_num": 1}, "fields": {"data": 2}, "[[[[": 0}
    status, _, err = run(capsys, "codec", "encode", json.dumps(message).replace('"[[[[": 0', '"[[[[[[[[[[": 0'))
    assert status == 2 and err.startswith("vmsim: error: encode v1: unknown key '[[[[[[[[[['"), err


def test_every_problem_of_a_codec_json_is_its_own_line(capsys):
    message = {"name": "PING", "kind": "request", "header": {"dev_num": "1", "token": None}, "fields": {"data": []}}
    status, out, err = run(capsys, "codec", "encode", json.dumps(message))
    assert (status, out) == (2, "")
    assert err.splitlines() == [
        "vmsim: error: encode v1: header.dev_num must be an integer, got string",
        "vmsim: error: encode v1: header.token must be an integer, got null",
    ]


def test_the_installed_command_line_decodes(tmp_path):
    """A real process: `python -m vmsim.cli codec decode HEX`, and its error path."""
    command = [sys.executable, "-m", "vmsim.cli", "codec", "decode"]
    done = subprocess.run([*command, GET_CONFIG_RESP], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and json.loads(done.stdout)["name"] == "GET_CONFIG"
    failed = subprocess.run([*command, "01"], capture_output=True, text=True, check=False)
    assert (
        failed.returncode == 2
        and failed.stderr.startswith("vmsim: error:")
        and "Traceback" not in failed.stderr
    )
