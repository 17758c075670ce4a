"""A firmware written the way a user writes one (tests/user_firmware: its own main and loop, a stand-in
sensor, the two hook calls), built against an exported model library through the offline core for
native and the Uno: its normal build holds no protocol and predicts what the host predicts; its test
build passes tinygmm's verification natively and in simavr, from tinygmm and from `pio test`. (The
Uno's normal build without the protocol: the example sketch's, tests/test_library.py.)"""
from __future__ import annotations

import contextlib
import io
import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from conftest import fit_demo_model, require
from tinygmm.data import demo_data
from tinygmm.device.fold import fold
from tinygmm.device.twin import DeviceTwin, score_twin_tolerance
from tinygmm.model import Model
from tinygmm.project.build import SIMAVR_HEADER
from tinygmm.project.firmware import read_firmware_project
from tinygmm.project.library import export_library
from tinygmm.project.pio import run_pio
from tinygmm.verify.session import verify_project
from test_pio_offline import NO_NETWORK

USER_FIRMWARE = Path(__file__).resolve().parent / "user_firmware"
# What a user adds to their platformio.ini: the library, -ffp-contract=off and tinygmm's test runner.
USER_INI = """\
[platformio]
default_envs = native

[env]
lib_deps = symlink://{library}
build_flags = -ffp-contract=off -Wall -Wextra -Wdouble-promotion
test_framework = custom

[env:native]
platform = native
build_src_filter = +<native/>

[env:uno]
platform = atmelavr @ 5.1.0
board = uno
framework = arduino
build_src_filter = +<arduino/>
"""
READING = re.compile(r"^sensor: x (\S+) (\S+) component (\d+) log-density (\S+)$", re.M)


@pytest.fixture(scope="module")
def model() -> Model:
    return fit_demo_model()


@pytest.fixture(scope="module")
def user_project(tmp_path_factory, model: Model, pio_core) -> Path:
    """The user's project beside the library (`tinygmm export --library`), set up as its README says."""
    root = tmp_path_factory.mktemp("user")
    library = root / "libs" / "room_sensor"
    export_library(model, library, X_train=demo_data()[0])
    proj = root / "sensor_node"
    shutil.copytree(USER_FIRMWARE, proj / "src")
    (proj / "test").mkdir()
    shutil.copy(library / "extras" / "test_custom_runner.py", proj / "test")
    (proj / "platformio.ini").write_text(USER_INI.format(library=library))
    with pytest.MonkeyPatch.context() as mp:  # every build through the offline core, with no network
        mp.setenv("TINYGMM_PIO_CORE", str(pio_core.core_dir))
        mp.setenv("PLATFORMIO_CORE_DIR", str(pio_core.core_dir))
        for key, value in NO_NETWORK.items():
            mp.setenv(key, value)
        yield proj


def _build(proj: Path, env: str) -> str:
    return run_pio(["run", "-e", env], proj, echo=io.StringIO()).output


def _protocol_symbols(nm: str, program: Path) -> list[str]:
    out = subprocess.run([nm, str(program)], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if re.search(r"\b(tinygmm_proto_\w+|tp_\w+)", line)]


def test_the_normal_native_build_has_no_protocol_and_predicts_what_the_host_predicts(user_project: Path,
                                                                                      model: Model) -> None:
    found = read_firmware_project(user_project)
    assert not found.exported and found.libraries["native"].name == "room_sensor"
    output = _build(user_project, "native")
    assert "warning:" not in output, output
    program = user_project / ".pio" / "build" / "native" / "program"
    assert _protocol_symbols("nm", program) == []
    run = subprocess.run([str(program)], capture_output=True, text=True, timeout=20, check=True)
    readings = READING.findall(run.stdout)
    assert len(readings) == 60 and "boot" not in run.stdout
    X = np.array([[float.fromhex(a), float.fromhex(b)] for a, b, _, _ in readings], dtype=np.float32)
    labels = np.array([int(r[2]) for r in readings])
    scores = np.array([float.fromhex(r[3]) for r in readings], dtype=np.float32)
    twin = DeviceTwin(fold(model))
    np.testing.assert_array_equal(labels, twin.predict(X))  # bit for bit what the host's float32 twin says
    np.testing.assert_array_equal(labels, model.predict(X.astype(np.float64)))  # and float64 alike here
    assert np.all(np.abs(scores - twin.score_samples(X)) <= score_twin_tolerance(twin.score_samples(X), 3))


def test_the_test_build_passes_verification_natively_and_in_simavr(user_project: Path, avr_toolchain) -> None:
    report = verify_project(user_project, "native", bench=False)
    assert report.passed and report.target == "native", report.checks
    require(SIMAVR_HEADER.is_file(), "needs simavr: apt-get install simavr libsimavr-dev")
    logs = []
    report = verify_project(user_project, "uno", emulator="simavr", on_log=logs.append)
    assert report.passed, [c for c in report.checks if not c.passed]
    assert report.target == "uno" and report.cycles  # timed on the device, in microseconds
    assert report.clock_unit == "us"
    # the user's own loop kept running while the host verified: its lines sit in the link log
    assert len(re.findall(r"sensor: component \d+ log-density", logs[0].read_text())) > 3
    assert _protocol_symbols("avr-nm", user_project / ".pio" / "build" / "uno" / "firmware.elf")


@contextlib.contextmanager
def _board_on_a_socket(program: Path) -> Iterator[str]:
    """A stand-in for a board on a serial port: ``program`` (a native test build) with its stdin and
    stdout on a TCP connection, reached as pyserial reaches a remote port (socket://HOST:PORT)."""
    server = socket.create_server(("127.0.0.1", 0))
    boards: list[subprocess.Popen] = []

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:  # closed before anyone connected
            return
        with conn:
            boards.append(subprocess.Popen([str(program)], stdin=conn, stdout=conn, stderr=subprocess.DEVNULL))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"socket://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        thread.join(5)
        for board in boards:
            board.kill()
            board.wait()


def test_the_library_alone_verifies_a_board_on_a_port(user_project: Path) -> None:
    """The Arduino IDE's way: the sketch's test build runs on a board, the library is what tinygmm knows."""
    found = read_firmware_project(user_project)
    program = found.firmware("native").artifact
    assert program is not None and program.is_file()  # the test build the previous test verified
    with _board_on_a_socket(program) as port:
        report = verify_project(found.libraries["native"], "uno", port=port, bench=False, timeout=60)
    assert report.passed and report.transport == f"port {port}"


def test_pio_test_runs_the_verification_in_the_users_project(user_project: Path) -> None:
    junit = user_project / "junit.xml"
    result = run_pio(["test", "-e", "native", "--junit-output-path", str(junit)], user_project, echo=io.StringIO())
    assert re.search(r"12 test cases: 12 succeeded", result.output), result.output
    assert 'failures="0"' in junit.read_text()
    # a board on test_port (uploaded before: --without-uploading), reached over TCP
    program = read_firmware_project(user_project).firmware("native").artifact
    with _board_on_a_socket(program) as port:
        result = run_pio(["test", "-e", "uno", "--test-port", port, "--without-building", "--without-uploading"],
                         user_project, echo=io.StringIO())
    assert re.search(r"12 test cases: 12 succeeded", result.output), result.output
