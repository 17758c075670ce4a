"""The serial protocol's codecs (tinygmm.link.protocol), no device: CRC, floats, frames, batches, versions."""
from __future__ import annotations

import base64
import re
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygmm.link.protocol import (
    BATCH_ERROR_BYTE, NAN_STATUS_BITS, PROTOCOL_VERSION, CRCMismatch, DeviceError, Hello, ProtocolError,
    batch_request, crc16, decode_batch, encode_vectors, float_to_hex, frame, hex_to_float, parse_line,
)
from tinygmm.resources import firmware_dir
from tinygmm.status import ERR_FEATURES, ERR_NONFINITE, ERR_OVERFLOW, OK

DOCS = firmware_dir().parent / "docs" / "protocol.md"
PROTO_HEADER = firmware_dir() / "lib" / "tinygmm_proto" / "tinygmm_proto.h"


def device_line(text: str) -> bytes:
    """A line as the device frames it (no line end)."""
    body = text.encode("ascii")
    return body + b"*%04X" % crc16(body)


def test_version_defined_once_in_firmware_and_host_and_equal():
    versions = re.findall(r"#define TINYGMM_PROTO_VERSION (\d+)", PROTO_HEADER.read_text())
    assert versions == [str(PROTOCOL_VERSION)]
    assert f"version {PROTOCOL_VERSION}" in DOCS.read_text().splitlines()[0]


@pytest.mark.parametrize("data, crc", [
    (b"123456789", 0x29B1),  # the CRC-16/CCITT-FALSE check value
    (b"", 0xFFFF),
    (b"A", 0xB915),
    (b"\x00", 0xE1F0),
])
def test_crc16_known_vectors(data, crc):
    assert crc16(data) == crc


def test_crc16_is_incremental():
    assert crc16(b"6789", crc16(b"12345")) == crc16(b"123456789")


def test_documented_examples_have_valid_crcs():
    examples = re.findall(r"`(\d+ [^`*]+)\*([0-9A-F]{4})`", DOCS.read_text())
    assert len(examples) >= 3
    for text, crc in examples:
        assert crc16(text.encode()) == int(crc, 16), text


@pytest.mark.parametrize("value, bits", [
    (1.0, "3f800000"), (-2.5, "c0200000"), (0.0, "00000000"), (-0.0, "80000000"),
    (np.float32(1.4e-45), "00000001"),  # smallest subnormal
    (np.uint32(0x007FFFFF).view(np.float32), "007fffff"),  # largest subnormal
    (np.finfo(np.float32).max, "7f7fffff"),
    (np.inf, "7f800000"), (-np.inf, "ff800000"),
])
def test_float_hex_exact(value, bits):
    assert float_to_hex(value) == bits
    back = hex_to_float(bits)
    assert back.view(np.uint32) == np.float32(value).view(np.uint32)  # -0.0 keeps its sign


def test_float_hex_keeps_nan_payloads():
    for bits in ("7fc00000", "7fc00002", "ffc00001", "7f800001"):
        assert float_to_hex(hex_to_float(bits)) == bits


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_float_hex_round_trips_every_bit_pattern(u):
    text = f"{u:08x}"
    assert float_to_hex(hex_to_float(text)) == text


def test_frame_layout_and_parse_round_trip():
    assert frame(1, "ping abc") == b"1 ping abc*A7EA\n"
    line = parse_line(device_line("17 ok predict 2"))
    assert (line.seq, line.kind, line.words, line.command) == (17, "ok", ("predict", "2"), "predict")
    assert parse_line(device_line("0 boot proto=1 model=abc") + b"\r").fields() == {"proto": "1", "model": "abc"}
    with pytest.raises(ValueError):
        frame(0, "ping x")  # seq 0 is the device's


def test_corrupted_line_is_a_crc_mismatch_with_a_seq_hint():
    raw = bytearray(device_line("42 ok score 3f800000"))
    raw[15] ^= 0x01
    with pytest.raises(CRCMismatch) as info:
        parse_line(bytes(raw))
    assert info.value.seq_hint == 42


@pytest.mark.parametrize("raw", [b"", b"hello", b"12 ok x*zzzz", b"ok predict*" + b"%04X" % crc16(b"ok predict"),
                                 device_line("5 maybe x"), b"\xff\xfe*0000"])
def test_malformed_lines_are_protocol_errors(raw):
    with pytest.raises(ProtocolError):
        parse_line(raw)


def test_error_reply_raises_device_error_with_status():
    line = parse_line(device_line("3 err features want 2 got 3"))
    with pytest.raises(DeviceError) as info:
        line.raise_if_error()
    assert (info.value.code, info.value.detail, info.value.seq, info.value.status) == ("features", "want 2 got 3", 3, ERR_FEATURES)
    assert DeviceError("unknown_command").status is None


def test_hello_parses_and_names_a_missing_field():
    text = ("1 ok hello proto=1 model=0123456789abcdef k=3 d=2 cov=full target=uno float=4 double=4 rx=64 "
            "line=512 batch=44 thr=1 fma=0 clock=cycles opt=size cc=gcc-5.4.0 new=ignored")
    info = Hello.from_line(parse_line(device_line(text)))
    assert (info.model_id, info.n_components, info.n_features, info.rx_buffer, info.batch_max) == ("0123456789abcdef", 3, 2, 64, 44)
    assert info.has_threshold and not info.fma and info.fields["new"] == "ignored"
    with pytest.raises(ProtocolError, match="'rx'"):
        Hello.from_line(parse_line(device_line(text.replace("rx=64 ", ""))))


def test_batch_request_is_base64_of_little_endian_float32():
    X = np.array([[1.0, -0.0], [np.inf, 2.5]], dtype=np.float32)
    text = batch_request("score", X)
    op, n, payload = text.split()[1:]
    assert (op, n) == ("score", "2")
    assert base64.b64decode(payload) == struct.pack("<4f", 1.0, -0.0, np.inf, 2.5)
    assert encode_vectors(X) == payload
    with pytest.raises(ValueError):
        batch_request("fit", X)


def test_batch_byte_records_with_error_escapes():
    payload = base64.b64encode(bytes([2, BATCH_ERROR_BYTE, ERR_NONFINITE, 0, BATCH_ERROR_BYTE, ERR_OVERFLOW, 1])).decode()
    res = decode_batch("predict", 5, payload, 3)
    assert res.status.tolist() == [OK, ERR_NONFINITE, OK, ERR_OVERFLOW, OK]
    assert res.values.tolist() == [2, -1, 0, -1, 1]
    flags = decode_batch("anomaly", 5, base64.b64encode(bytes([1, 0, BATCH_ERROR_BYTE, 2, 1, 0])).decode(), 3)
    assert flags.status.tolist() == [OK, OK, ERR_NONFINITE, OK, OK] and flags.values.tolist() == [True, False, False, True, False]
    with pytest.raises(ProtocolError):
        decode_batch("predict", 6, payload, 3)  # one record short
    with pytest.raises(ProtocolError):
        decode_batch("predict", 4, payload, 3)  # a byte left over


def test_batch_float_records_with_nan_status_and_overflow():
    err = np.uint32(NAN_STATUS_BITS | ERR_NONFINITE).view(np.float32)
    lj = np.array([[-1.5, -2.0], [err, err], [-np.inf, -3.0]], dtype="<f4")
    res = decode_batch("log_joint", 3, base64.b64encode(lj.tobytes()).decode(), 2)
    assert res.status.tolist() == [OK, ERR_NONFINITE, ERR_OVERFLOW]
    np.testing.assert_array_equal(res.values[[0, 2]], lj[[0, 2]])
    assert np.all(np.isnan(res.values[1]))
    score = decode_batch("score", 3, base64.b64encode(lj[:, :1].copy().tobytes()).decode(), 2)
    assert score.status.tolist() == [OK, ERR_NONFINITE, OK] and score.values.shape == (3,)
    with pytest.raises(ProtocolError):
        decode_batch("score", 3, "not base64!", 2)
