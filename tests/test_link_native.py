"""The native firmware (protocol core + stdin/stdout glue) built with the host compiler, driven through
tinygmm.link: every command against the float32 twin, every error reply, garbage, flow control."""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tinygmm.data import demo_data
from tinygmm.errors import TinyGMMError
from tinygmm.device.fold import DeviceModel, fold
from tinygmm.link import CRCMismatch, Device, DeviceError, LinkClosed, PipeTransport, SerialTransport
from tinygmm.link.client import vectors_per_line
from tinygmm.link.protocol import (
    PROTOCOL_VERSION, SEQ_MAX, batch_request, crc16, frame, hex_to_float, parse_line, vector_text,
)
from tinygmm.fit.mixture import GaussianMixture
from tinygmm.model import Model
from tinygmm.device.render import write_header
from tinygmm.resources import firmware_dir
from tinygmm.device.twin import (
    ERR_NONFINITE, ERR_OVERFLOW, OK, DeviceOutputs, DeviceTwin, proba_twin_tolerance, score_twin_tolerance,
)
from conftest import require

from _cdriver import LANGUAGES, have_host_compilers
from _gmm_cases import box_points, far_points, random_model, sample

PROTO_SOURCES = sorted((firmware_dir() / "lib" / "tinygmm_proto").glob("*.c"))  # all of them, as PlatformIO builds it
SOURCES = [*PROTO_SOURCES, firmware_dir() / "src" / "native" / "main.c"]
INCLUDES = [firmware_dir() / "lib" / "tinygmm", firmware_dir() / "lib" / "tinygmm_proto"]
# An Uno's line buffer (512 bytes) with the Arduino core's default 64-byte receive ring (63 usable).
UNO_LINE, UNO_RX = 512, 63
HOST_LINE, HOST_RX = 2048, 4096  # tinygmm_proto.h / native main.c defaults
# 115200 baud 8N1 moves 11,520 bytes/s; the raw payload is 4 bytes per float (issue 5's limit).
RAW_BYTES_PER_FLOAT = 4
DENSITY_TARGET = 0.60
# _cdriver's warning set minus -Wpedantic (avr-libc's PSTR is a GNU statement expression).
AVR_WARNINGS = ["-Wall", "-Wextra", "-Wdouble-promotion", "-Wconversion", "-Wshadow", "-Werror"]


@dataclass
class Firmware:
    name: str
    exe: Path
    model: Model
    dev: DeviceModel
    line_max: int
    rx: int
    points: np.ndarray  # float32 test vectors

    @property
    def twin(self) -> DeviceTwin:
        return DeviceTwin(self.dev)


def _demo_model() -> Model:
    X, _ = demo_data()
    X = X[:, :2]
    gmm = GaussianMixture(n_components=3, random_state=0).fit(X)
    return Model.from_gmm(gmm, X_train=X, threshold_percentile=2.0)


# (name, language, model factory, line buffer, rx buffer): an Uno-sized C++ build of a D=2 model
# with a threshold, and a host-sized C build of a tied, scaled, offset model without one.
BUILDS = {
    "uno-sized-c++": ("c++11", _demo_model, UNO_LINE, UNO_RX),
    "host-c99": ("c99", lambda: random_model(np.random.default_rng(5), "tied", 4, 3, scaler=True, offset=100.0,
                                             threshold=False), HOST_LINE, HOST_RX),
}


def build_native(out: Path, language: str, header_dir: Path, line_max: int, rx: int) -> Path:
    exe = out / f"native-{language.replace('+', 'p')}"
    cmd = [*LANGUAGES[language], *(f"-I{d}" for d in (*INCLUDES, header_dir)),
           f"-DTINYGMM_PROTO_LINE_MAX={line_max}", f"-DTINYGMM_RX_BUFFER_BYTES={rx}",
           *map(str, SOURCES), "-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"compile failed: {' '.join(cmd)}\n{proc.stderr}"
    return exe


@pytest.fixture(scope="module", params=list(BUILDS))
def fw(request, tmp_path_factory) -> Firmware:
    require(have_host_compilers(), "needs gcc and g++ on the host (apt-get install gcc g++)")
    language, make_model, line_max, rx = BUILDS[request.param]
    out = tmp_path_factory.mktemp(request.param)
    model = make_model()
    write_header(fold(model), out / "tinygmm_model.h")  # the name the protocol core includes
    rng = np.random.default_rng(11)
    data = sample(model, rng, 200)
    points = np.concatenate([data, box_points(data, rng, 60), far_points(data, rng, 20, factor=10.0),
                             far_points(data, rng, 20, factor=1000.0)])
    return Firmware(request.param, build_native(out, language, out, line_max, rx), model, fold(model),
                    line_max, rx, points)


@pytest.fixture
def device(fw):
    with Device(PipeTransport([fw.exe])) as dev:
        dev.sync()
        dev.hello()
        yield dev


def _bits(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def _special_rows(fw: Firmware) -> np.ndarray:
    """NaN, Inf and float32-overflowing inputs, whose statuses the twin predicts."""
    D = fw.dev.n_features
    rows = np.tile(fw.points[:1], (4, 1))
    rows[0, 0] = np.nan
    rows[1, -1] = np.inf
    rows[2, :] = 3.0e38
    rows[3, 0] = -3.0e38
    return rows.reshape(-1, D)


# -- hello, banner -------------------------------------------------------------------------


def test_hello_describes_the_compiled_model(fw, device):
    info = device.info
    assert (info.proto, info.model_id, info.n_components, info.n_features, info.covariance_type) == (
        PROTOCOL_VERSION, fw.model.model_id, fw.dev.n_components, fw.dev.n_features, fw.dev.covariance_type)
    assert (info.target, info.rx_buffer, info.line_max, info.clock_unit) == ("native", fw.rx, fw.line_max, "ns")
    assert info.has_threshold == (fw.model.anomaly_threshold is not None)
    assert not info.fma, "built with -ffp-contract=off: a*b-c must not be fused"
    assert info.float_size == 4 and info.compiler.startswith("gcc-")
    # the advertised batch fits in a line with the worst-case header
    worst = frame(65535, f"batch log_joint {info.batch_max} " + "A" * (-(-info.batch_max * 4 * info.n_features // 3) * 4 // 4 * 4))
    assert len(worst) - 1 <= info.line_max


def test_boot_banner_is_the_first_line_and_eof_exits(fw):
    proc = subprocess.run([fw.exe], input=b"", capture_output=True, timeout=10)
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    banner = parse_line(lines[0])
    assert (banner.seq, banner.kind) == (0, "boot")
    assert banner.fields() == {"proto": str(PROTOCOL_VERSION), "model": fw.model.model_id, "target": "native"}


# -- single vectors against the twin ---------------------------------------------------------


def _status_and_value(call, x):
    try:
        return OK, call(x)
    except DeviceError as e:
        assert e.status is not None, e
        return e.status, None


def _check_scores(fw: Firmware, out: DeviceOutputs, score: np.ndarray, proba: np.ndarray, ok: np.ndarray) -> None:
    K = fw.dev.n_components
    assert np.all(np.abs(score[ok] - out.score[ok]) <= score_twin_tolerance(out.score[ok], K))
    assert np.all(np.abs(proba[ok] - out.proba[ok]) <= proba_twin_tolerance(out.proba[ok], K))


def _away_from_threshold(fw: Firmware, out: DeviceOutputs) -> np.ndarray:
    thr = fw.model.anomaly_threshold
    return np.abs(out.score - thr) > score_twin_tolerance(out.score, fw.dev.n_components)


def test_single_commands_match_the_twin(fw, device):
    P = np.concatenate([fw.points[:150], fw.points[-20:], _special_rows(fw)])  # sample, far and special rows
    out = fw.twin.evaluate(P)
    N, K = P.shape[0], fw.dev.n_components
    score, proba = np.full(N, np.nan, np.float32), np.full((N, K), np.nan, np.float32)
    for i, x in enumerate(P):
        st, label = _status_and_value(device.predict, x)
        assert (st, label if st == OK else -1) == (out.status_predict[i], out.label[i]), i
        st, lj = _status_and_value(device.log_joint, x)
        # an overflow with K values (-inf where a component overflowed) is an ok reply; one without
        # values (the centred input itself overflowed: the twin's NaN row) an error reply
        with_values = out.status_log_joint[i] in (OK, ERR_OVERFLOW) and not np.isnan(out.log_joint[i]).all()
        assert st == (OK if with_values else out.status_log_joint[i]), i
        if st == OK:
            np.testing.assert_array_equal(_bits(lj), _bits(out.log_joint[i]))
        st, s = _status_and_value(device.score, x)
        assert st == out.status_score[i]
        score[i] = np.nan if s is None else s
        st, pr = _status_and_value(device.proba, x)
        assert st == out.status_proba[i]
        if pr is not None:
            proba[i] = pr
        if fw.model.anomaly_threshold is not None:
            st, flag = _status_and_value(device.anomaly, x)
            assert st == out.status_anomaly[i]
            if st == OK and _away_from_threshold(fw, out)[i]:
                assert flag == out.anomaly[i]
        else:
            with pytest.raises(DeviceError, match="no_threshold"):
                device.anomaly(x)
    _check_scores(fw, out, score, proba, out.status_score == OK)
    assert {ERR_NONFINITE, ERR_OVERFLOW} <= set(out.status_predict.tolist())  # the special rows took effect


def test_batches_match_the_twin_and_the_singles(fw, device):
    P = np.concatenate([fw.points, _special_rows(fw)])
    out = fw.twin.evaluate(P)
    res = {op: device.batch(op, P) for op in ("predict", "log_joint", "score", "proba")}
    np.testing.assert_array_equal(res["predict"].status, out.status_predict)
    np.testing.assert_array_equal(res["predict"].values, out.label)
    np.testing.assert_array_equal(res["log_joint"].status, out.status_log_joint)
    has_lj = (out.status_log_joint == OK) | (out.status_log_joint == ERR_OVERFLOW)
    np.testing.assert_array_equal(_bits(res["log_joint"].values[has_lj]), _bits(out.log_joint[has_lj]))
    np.testing.assert_array_equal(res["score"].status, out.status_score)
    np.testing.assert_array_equal(res["proba"].status, out.status_proba)
    _check_scores(fw, out, res["score"].values, res["proba"].values, out.status_score == OK)
    if fw.model.anomaly_threshold is not None:
        flags = device.batch("anomaly", P)
        np.testing.assert_array_equal(flags.status, out.status_anomaly)
        away = _away_from_threshold(fw, out) & (out.status_anomaly == OK)
        np.testing.assert_array_equal(flags.values[away], out.anomaly[away])
    # the same device gives the same bits one vector at a time
    for i in range(0, len(fw.points), 25):
        x = P[i]
        assert device.predict(x) == res["predict"].values[i]
        assert _bits(device.score(x)) == _bits(res["score"].values[i])
        np.testing.assert_array_equal(_bits(device.proba(x)), _bits(res["proba"].values[i]))


# -- flow control and density --------------------------------------------------------------


class RuleCheckingTransport:
    """Records, at every write, how many bytes are in flight beyond the end of the oldest request line
    whose reply has not arrived (docs/protocol.md, Flow control)."""

    def __init__(self, inner: PipeTransport):
        self.inner = inner
        self.sent = 0
        self.line_ends: list[int] = []
        self.replies = 0
        self.max_ahead = 0

    def write(self, data: bytes) -> None:
        for i, b in enumerate(data):
            if b == 0x0A:
                self.line_ends.append(self.sent + i + 1)
        self.sent += len(data)
        if self.replies < len(self.line_ends):
            self.max_ahead = max(self.max_ahead, self.sent - self.line_ends[self.replies])
        self.inner.write(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        data = self.inner.read(max_bytes, timeout)
        self.replies += data.count(b"\n")
        return data

    def close(self) -> None:
        self.inner.close()


def test_batches_keep_within_the_receive_buffer_and_beat_the_density_target(fw):
    checker = RuleCheckingTransport(PipeTransport([fw.exe]))
    with Device(checker) as device:
        device.sync()
        info = device.hello()
        checker.line_ends, checker.replies, checker.sent = [], 0, 0  # count the batch only
        X = np.repeat(fw.points, 5, axis=0)
        res = device.batch("predict", X)
        np.testing.assert_array_equal(res.values, fw.twin.predict(X))
        assert 0 < checker.max_ahead <= info.rx_buffer  # pipelined, and never beyond the buffer
        per_line = vectors_per_line("predict", info.n_features, info.batch_max, info.rx_buffer)
        assert checker.replies == -(-len(X) // per_line)
        bytes_per_vector = checker.sent / len(X)
    raw = RAW_BYTES_PER_FLOAT * fw.dev.n_features
    print(f"\n{fw.name}: D={fw.dev.n_features} batch predict {bytes_per_vector:.2f} bytes/vector on the wire "
          f"(raw {raw}): {raw / bytes_per_vector:.1%} of the raw payload limit")
    assert raw / bytes_per_vector >= DENSITY_TARGET


def test_batch_lines_are_cut_to_fit_the_receive_buffer() -> None:
    """A line that fits the receive buffer waits there whole while the one before is computed, so
    the host cuts lines to fit it; not below a third of the device's batch (line overhead)."""
    def length(op: str, n: int, d: int) -> int:
        return len(frame(SEQ_MAX, batch_request(op, np.zeros((n, d), dtype=np.float32))))

    for op, d, batch in (("predict", 2, 44), ("log_joint", 8, 11), ("score", 16, 5)):
        n = vectors_per_line(op, d, batch, 253)  # the Uno: a 256-byte ring, a 512-byte line
        assert length(op, n, d) <= 253 < length(op, n + 1, d) and batch / 3 <= n < batch
        assert vectors_per_line(op, d, batch, 4096) == batch  # a full line fits
    assert vectors_per_line("predict", 2, 44, 253) == 21
    assert vectors_per_line("predict", 2, 44, 61) == 44  # the core's default 64-byte ring: 2 vectors, too few


# -- errors and garbage ----------------------------------------------------------------------


def _error(device: Device, text: str) -> DeviceError:
    with pytest.raises(DeviceError) as info:
        device.request(text)
    return info.value


def test_error_replies(fw, device):
    D = fw.dev.n_features
    x = fw.points[0]
    assert (e := _error(device, "frobnicate 1 2")).code == "unknown_command" and e.detail == "frobnicate"
    assert _error(device, f"predict {vector_text(np.append(x, 1.0))}").detail == f"want {D} got {D + 1}"
    assert _error(device, "score").detail == f"want {D} got 0"
    assert _error(device, "predict " + " ".join(["1"] * 100)).code == "features"  # more than the core's x buffer
    ops = ("predict", "log_joint", "score", "proba") + (("anomaly",) if fw.model.anomaly_threshold is not None else ())
    for op in ops:
        for bad in (np.nan, np.inf, -np.inf):
            y = x.copy()
            y[-1] = bad
            assert _error(device, f"{op} {vector_text(y)}").status == ERR_NONFINITE
    assert (e := _error(device, "predict " + " ".join(["1.0"] * (D - 1) + ["1.0x"]))).code == "bad_number" and e.detail == f"arg={D}"
    assert _error(device, "ping").code == "bad_args"
    assert _error(device, "ping no!pe").code == "bad_args"
    assert _error(device, "batch predict 2 AAAAAAAAAAA=").code == "bad_args"  # 8 bytes, not 2 vectors
    assert _error(device, "batch predict 1 @@@@").detail == "base64"
    assert _error(device, "batch fit 1 AAAA").detail == "OP"
    assert _error(device, f"bench predict 0 {vector_text(x)}").code == "bad_args"
    y = x.copy()
    y[0] = np.nan
    assert _error(device, f"bench score 10 {vector_text(y)}").code == "nonfinite"
    assert device.predict(x) == fw.twin.predict(x)[0]  # still serving


def test_frame_errors_bad_crc_and_overlong_lines(fw, device):
    x = fw.points[0]
    good = frame(7, f"predict {vector_text(x)}")
    device.send_raw(good[:-5] + (b"0000" if good[-5:-1] != b"0000" else b"0001") + b"\n")
    line = device.read_line()
    assert (line.seq, line.kind, line.command) == (7, "err", "bad_crc")
    device.send_raw(b"8 predict 1 2\n")  # digits first but no *CRC
    assert (line := device.read_line()).seq == 8 and line.command == "bad_frame"
    device.send_raw(b"9 " + b"1" * (fw.line_max + 100) + b"\n")
    line = device.read_line()
    assert (line.seq, line.command, line.words[1]) == (9, "line_too_long", f"max={fw.line_max}")
    device.send_raw(b"x" * (3 * fw.line_max) + b"\r\n")
    assert (line := device.read_line()).seq == 0 and line.command == "line_too_long"
    device.send_raw(b"  \r\n\n\t\n")  # blank lines: no reply at all
    assert device.predict(x) == fw.twin.predict(x)[0]


def test_garbage_between_requests_is_survived(fw, device):
    rng = np.random.default_rng(3)
    x = fw.points[:20]
    want = fw.twin.predict(x)
    for i in range(20):
        garbage = rng.integers(0, 256, size=int(rng.integers(0, 400)), dtype=np.uint8).tobytes()
        if i % 5 == 0:
            garbage = bytes(rng.integers(0x21, 0x7F, size=3 * fw.line_max, dtype=np.uint8))  # no line end at all
        device.send_raw(garbage + b"\n")
        assert device.predict(x[i]) == want[i]
    assert "skipped" in device.transcript.text()


def test_request_split_across_writes(fw, device):
    x = fw.points[1]
    data = frame(321, f"log_joint {vector_text(x)}")
    for i in range(0, len(data), 3):
        device.send_raw(data[i : i + 3])
        time.sleep(0.001)
    line = device.read_line()
    assert (line.seq, line.kind, line.command) == (321, "ok", "log_joint")
    np.testing.assert_array_equal(np.array([int(w, 16) for w in line.words[1:]], np.uint32), _bits(fw.twin.log_joint(x)[0]))


def test_human_mode_decimal_and_hex_tokens(fw, device):
    x = fw.points[2]
    decimals = " ".join(repr(float(v)) for v in x)  # shortest repr: strtof reads back the same float32
    device.send_raw(f"predict {decimals}\r\n".encode())
    line = device.read_line()
    assert (line.seq, line.kind, line.words) == (0, "ok", ("predict", str(fw.twin.predict(x)[0])))
    ones = np.ones(fw.dev.n_features, np.float32)
    tokens = ["1", "3f800000", "1.0", "1e0"]
    device.send_raw(("log_joint " + " ".join(tokens[i % 4] for i in range(len(ones))) + "\n").encode())
    # a person gets each float as "DECIMAL (HEX)" (tests/test_human_mode.py checks the decimals)
    assert device.read_line().words[2::2] == tuple(f"({b:08x})" for b in _bits(device.log_joint(ones)))
    device.send_raw(b"help\r")
    assert "batch" in device.read_line().words


class CorruptingTransport(PipeTransport):
    """Flips one character of the first `count` replies that contain `marker`."""

    def __init__(self, argv, marker: bytes, count: int = 1):
        super().__init__(argv)
        self.marker, self.count = marker, count

    def read(self, max_bytes: int, timeout: float) -> bytes:
        data = super().read(max_bytes, timeout)
        at = data.find(self.marker)
        if self.count and at >= 0:
            self.count -= 1
            data = data[:at] + data[at : at + 1].swapcase() + data[at + 1 :]
        return data


def test_corrupted_reply_is_detected_and_the_request_retried(fw):
    x = fw.points[3]
    with Device(CorruptingTransport([fw.exe], b"ok predict")) as device:
        device.sync()
        assert device.predict(x) == fw.twin.predict(x)[0]
        assert "corrupted line" in device.transcript.text() and "retry 1" in device.transcript.text()
    with Device(CorruptingTransport([fw.exe], b"ok predict"), retries=0) as device:
        device.sync()
        with pytest.raises(CRCMismatch):
            device.predict(x)


def test_bench_counts_device_time(fw, device):
    x = fw.points[4]
    for op in ("predict", "score"):
        r = device.bench(op, x, 2000)
        assert (r.op, r.n, r.unit) == (op, 2000, "ns")
        assert 0 < r.per_call < 1e6  # well under a millisecond per call on a host CPU


def test_a_killed_device_is_reported_not_waited_for(fw):
    transport = PipeTransport([fw.exe])
    with Device(transport) as device:
        device.sync()
        transport._proc.kill()
        t0 = time.monotonic()
        with pytest.raises(LinkClosed, match="exit code"):
            device.predict(fw.points[0])
        assert time.monotonic() - t0 < 1.0


# -- the protocol core for the Uno's compiler ------------------------------------------------


@pytest.mark.parametrize("language", ["c99", "c++11"])
def test_protocol_core_builds_warning_free_with_avr_gcc(fw, language, tmp_path):
    """No RAM strings (.data stays empty: every constant string is PSTR) and no warnings under -Werror."""
    require(shutil.which("avr-gcc") is not None, "needs avr-gcc (apt-get install gcc-avr avr-libc)")
    header_dir = fw.exe.parent
    compiler = ["avr-gcc", "-std=c99"] if language == "c99" else ["avr-g++", "-x", "c++", "-std=c++11"]
    obj = tmp_path / "proto.o"
    cmd = [*compiler, "-mmcu=atmega328p", "-DF_CPU=16000000L", "-Os", "-ffp-contract=off", *AVR_WARNINGS,
           *(f"-I{d}" for d in (*INCLUDES, header_dir)), "-nostdlib", "-r", *map(str, PROTO_SOURCES), "-o", str(obj)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    size = subprocess.run(["avr-size", "-A", str(obj)], capture_output=True, text=True).stdout
    data = [line.split() for line in size.splitlines() if line.startswith(".data")]
    assert not data or int(data[0][1]) == 0, size


# -- transports without a device ---------------------------------------------------------------


def test_missing_native_binary_and_missing_serial_port_are_user_errors(tmp_path):
    with pytest.raises(TinyGMMError, match="the native build: .*nope not found"):
        PipeTransport([tmp_path / "nope"])
    with pytest.raises(TinyGMMError, match="does not exist"):
        SerialTransport(str(tmp_path / "ttyNOPE"))


def test_crc_of_the_firmware_equals_the_host_crc(fw, device):
    # every framed request above passed the device's CRC check; here the device's own reply CRCs
    reply = device.request("ping crc")
    body = reply.raw[:-5]
    assert int(reply.raw[-4:], 16) == crc16(body)
    assert hex_to_float("3f800000") == 1.0
