"""The serial protocol's bytes (docs/protocol.md): frames, CRC-16, float and batch codecs, typed replies. No I/O."""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import TinyGMMError
from ..status import ERR_FEATURES, ERR_MODEL, ERR_NO_THRESHOLD, ERR_NONFINITE, ERR_OVERFLOW, OK, OPS

# firmware/lib/tinygmm_proto/tinygmm_proto.h TINYGMM_PROTO_VERSION must agree (tests/test_protocol.py).
PROTOCOL_VERSION = 1

# CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor.
CRC_INIT = 0xFFFF
SEQ_MAX = 65535
# Lines the host did not ask for (boot banner, replies to human requests) carry seq 0.
UNSOLICITED_SEQ = 0
# "*XXXX" ends every line.
CRC_SUFFIX_LEN = 5
# Batch records (docs/protocol.md, "Batches"): byte records escape errors with 0xFF + status,
# float records carry the status in the low byte of this NaN.
BATCH_ERROR_BYTE = 0xFF
NAN_STATUS_BITS = 0x7FC00000
# Error codes of error replies that are tinygmm_status values of the core.
STATUS_OF_CODE = {
    "features": ERR_FEATURES, "nonfinite": ERR_NONFINITE, "overflow": ERR_OVERFLOW,
    "model": ERR_MODEL, "no_threshold": ERR_NO_THRESHOLD,
}
_NONCE = re.compile(r"[0-9A-Za-z_-]{1,32}\Z")


class ProtocolError(TinyGMMError):
    """The link broke the protocol: a corrupted or malformed line, or no reply in time."""


class CRCMismatch(ProtocolError):
    """A received line's CRC does not match its text (corrupted on the way)."""

    def __init__(self, message: str, seq_hint: int | None):
        super().__init__(message)
        self.seq_hint = seq_hint  # the seq the line claims (not trustworthy)


class LinkTimeout(ProtocolError):
    """No complete reply before the deadline."""


class LinkClosed(ProtocolError):
    """The device side went away (process exited, port closed, cable pulled)."""


class DeviceError(TinyGMMError):
    """The device answered with an error reply."""

    def __init__(self, code: str, detail: str = "", seq: int = 0):
        text = f"device error {code}" + (f": {detail}" if detail else "")
        super().__init__(text)
        self.code = code
        self.detail = detail
        self.seq = seq

    @property
    def status(self) -> int | None:
        """The core's tinygmm_status for inference errors (status.ERR_*), else None."""
        return STATUS_OF_CODE.get(self.code)


# -- CRC and floats ---------------------------------------------------------------------


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (check value: crc16(b"123456789") == 0x29B1).

    binascii.crc_hqx is this CRC (poly 0x1021, MSB first) with the initial value given."""
    return binascii.crc_hqx(data, crc)


def float_to_hex(value: float | np.floating) -> str:
    """The float32 bit pattern as 8 lower-case hex digits (exact, -0.0 and NaN payloads kept)."""
    return f"{int(np.float32(value).view(np.uint32)):08x}"


def hex_to_float(text: str) -> np.float32:
    """Inverse of :func:`float_to_hex`."""
    if len(text) != 8:
        raise ValueError(f"{text!r} is not 8 hex digits")
    return np.array([int(text, 16)], dtype=np.uint32).view(np.float32)[0]


def vector_text(x: np.ndarray) -> str:
    """A vector as space-separated hex floats (request arguments)."""
    bits = np.ascontiguousarray(np.asarray(x, dtype=np.float32).ravel()).view(np.uint32)
    return " ".join(f"{int(b):08x}" for b in bits)


def hex_floats(words: list[str]) -> np.ndarray:
    """Reply fields of hex floats as a float32 array."""
    try:
        return np.array([int(w, 16) for w in words], dtype=np.uint32).view(np.float32)
    except ValueError:
        raise ProtocolError(f"expected hex floats, got {' '.join(words)!r}") from None


# -- frames -----------------------------------------------------------------------------


def frame(seq: int, text: str) -> bytes:
    """A framed request line: ``SEQ TEXT*CRC\\n``."""
    if not 1 <= seq <= SEQ_MAX:
        raise ValueError(f"seq {seq} outside 1..{SEQ_MAX}")
    body = f"{seq} {text}".encode("ascii")
    return body + b"*%04X\n" % crc16(body)


@dataclass(frozen=True)
class Line:
    """One received, CRC-checked line: ``SEQ KIND WORDS...`` (KIND is ok, err or boot)."""

    seq: int
    kind: str
    words: tuple[str, ...]
    raw: bytes

    @property
    def command(self) -> str:
        return self.words[0] if self.words else ""

    def fields(self) -> dict[str, str]:
        """key=value words (hello, boot banner)."""
        return dict(w.split("=", 1) for w in self.words if "=" in w)

    def raise_if_error(self) -> None:
        if self.kind == "err":
            raise DeviceError(self.words[0] if self.words else "?", " ".join(self.words[1:]), self.seq)


def parse_line(raw: bytes) -> Line:
    """Check the CRC of a received line (no line end) and split it."""
    raw = raw.rstrip(b"\r")
    star = len(raw) - CRC_SUFFIX_LEN
    head = raw[: max(star, 0)]
    seq_hint = _leading_int(head)
    if star < 0 or raw[star : star + 1] != b"*":
        raise ProtocolError(f"not a protocol line (no *CRC end): {raw[:80]!r}")
    try:
        given = int(raw[star + 1 :], 16)
    except ValueError:
        raise ProtocolError(f"bad CRC digits in {raw[:80]!r}") from None
    if crc16(head) != given:
        raise CRCMismatch(f"CRC mismatch (got {given:04X}, want {crc16(head):04X}) in {raw[:80]!r}", seq_hint)
    try:
        words = head.decode("ascii").split()
    except UnicodeDecodeError:
        raise ProtocolError(f"non-ASCII line {raw[:80]!r}") from None
    if len(words) < 2 or seq_hint is None or words[1] not in ("ok", "err", "boot"):
        raise ProtocolError(f"malformed line {raw[:80]!r}")
    return Line(seq=seq_hint, kind=words[1], words=tuple(words[2:]), raw=raw)


def _leading_int(head: bytes) -> int | None:
    m = re.match(rb"(\d{1,5}) ", head)
    return int(m.group(1)) if m else None


def check_nonce(nonce: str) -> str:
    if not _NONCE.match(nonce):
        raise ValueError(f"nonce {nonce!r}: 1-32 characters of 0-9 A-Z a-z _ -")
    return nonce


# -- typed replies ----------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    """The device's hello reply (docs/protocol.md, Commands)."""

    proto: int
    model_id: str
    n_components: int
    n_features: int
    covariance_type: str
    target: str
    float_size: int
    double_size: int
    rx_buffer: int
    line_max: int
    batch_max: int
    has_threshold: bool
    fma: bool
    clock_unit: str
    optimisation: str
    compiler: str
    fields: dict[str, str] = field(default_factory=dict)  # every key, also ones this host does not know

    @classmethod
    def from_line(cls, line: Line) -> Hello:
        f = line.fields()
        try:
            return cls(
                proto=int(f["proto"]), model_id=f["model"], n_components=int(f["k"]), n_features=int(f["d"]),
                covariance_type=f["cov"], target=f["target"], float_size=int(f["float"]),
                double_size=int(f["double"]), rx_buffer=int(f["rx"]), line_max=int(f["line"]),
                batch_max=int(f["batch"]), has_threshold=f["thr"] == "1", fma=f["fma"] == "1",
                clock_unit=f["clock"], optimisation=f["opt"], compiler=f["cc"], fields=f,
            )
        except (KeyError, ValueError) as e:
            raise ProtocolError(f"hello reply without a valid {e}: {line.raw!r}") from None


@dataclass(frozen=True)
class BenchResult:
    op: str
    n: int
    elapsed: int  # in `unit`, on the device's clock
    unit: str  # "cycles", "us" or "ns"

    @property
    def per_call(self) -> float:
        return self.elapsed / self.n


@dataclass
class BatchResult:
    """Per-vector core status (status.OK, ERR_*) and values (-1 / NaN / False where not OK, as the twin)."""

    op: str
    status: np.ndarray  # (N,) int
    values: np.ndarray  # predict (N,) int; anomaly (N,) bool; score (N,) float32; log_joint/proba (N, K) float32


# -- batches ----------------------------------------------------------------------------


def encode_vectors(X: np.ndarray) -> str:
    """Base64 of the rows of X as little-endian float32, row after row."""
    return base64.b64encode(np.ascontiguousarray(X, dtype="<f4").tobytes()).decode("ascii")


def batch_request(op: str, X: np.ndarray) -> str:
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; one of {', '.join(OPS)}")
    return f"batch {op} {len(X)} {encode_vectors(X)}"


def decode_batch(op: str, n: int, payload: str, n_components: int) -> BatchResult:
    """The records of a batch reply (docs/protocol.md, Batches)."""
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"batch reply payload is not base64: {payload[:40]!r}") from None
    if op in ("predict", "anomaly"):
        return _decode_byte_records(op, n, data)
    width = 1 if op == "score" else n_components
    if len(data) != 4 * n * width:
        raise ProtocolError(f"batch {op} reply holds {len(data)} bytes, want {4 * n * width}")
    bits = np.frombuffer(data, dtype="<u4").reshape(n, width)
    values = bits.view("<f4").astype(np.float32)
    is_err = np.isnan(values[:, 0])
    status = np.where(is_err, (bits[:, 0] & 0xFF).astype(np.int64), OK)
    values[is_err] = np.nan
    if op == "log_joint":
        status = np.where(~is_err & np.any(values == -np.inf, axis=1), ERR_OVERFLOW, status)
    return BatchResult(op, status, values[:, 0] if op == "score" else values)


def _decode_byte_records(op: str, n: int, data: bytes) -> BatchResult:
    status = np.zeros(n, dtype=np.int64)
    values = np.full(n, -1, dtype=np.int64)
    i = 0
    for row in range(n):
        if i >= len(data):
            raise ProtocolError(f"batch {op} reply ends after {row} of {n} records")
        if data[i] == BATCH_ERROR_BYTE:
            if i + 1 >= len(data):
                raise ProtocolError(f"batch {op} reply ends inside an error record")
            status[row] = data[i + 1]
            i += 2
        else:
            values[row] = data[i]
            i += 1
    if i != len(data):
        raise ProtocolError(f"batch {op} reply has {len(data) - i} bytes after its {n} records")
    if op == "anomaly":
        return BatchResult(op, status, (values == 1) & (status == OK))
    return BatchResult(op, status, values)

