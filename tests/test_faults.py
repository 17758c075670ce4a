"""Faults a hardware-in-the-loop run meets: resets, busy ports, noise between replies. Never a hang."""
from __future__ import annotations

import os
import pty
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tinygmm.errors import TinyGMMError
from tinygmm.device.fold import fold
from tinygmm.link.client import Device
from tinygmm.link.protocol import LinkClosed, LinkTimeout
from tinygmm.link import PipeTransport, SerialTransport
from tinygmm.model import load
from tinygmm.device.twin import DeviceTwin
from tinygmm.verify.vectors import load_vectors


@pytest.fixture
def native(demo_project: Path, pio_core):
    """(program, model, vectors) of the demo project built for native (rebuilt if another test's
    build of the shared project made PlatformIO clean its build folder)."""
    from tinygmm.project.build import ensure_built
    from tinygmm.project.firmware import read_firmware_project

    project = demo_project
    program = ensure_built(read_firmware_project(project).firmware("native"), pio_core.core_dir)
    return program, load(project / "model.json"), load_vectors(project / "test_vectors.json")


class ResettingTransport(PipeTransport):
    """The device reboots once, after ``after`` request bytes: the request in flight is lost and a
    boot banner arrives instead, as when a board resets (brown-out, watchdog, DTR) mid-run."""

    def __init__(self, program: Path, after: int):
        super().__init__([program])
        self.program, self.after, self.written, self.resets = program, after, 0, 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if self.resets == 0 and self.written > self.after:
            self.resets = 1
            super().close()
            PipeTransport.__init__(self, [self.program])  # the rebooted firmware, banner first
            return  # these bytes went to the dead device
        super().write(data)


class NoisyTransport(PipeTransport):
    """Garbage (boot noise, a half line, binary junk) arrives between the device's replies."""

    NOISE = b"\x00\xffgarbage \xfe\r\n9 ok predict 1*0000\n"

    def read(self, max_bytes: int, timeout: float) -> bytes:
        data = super().read(max_bytes, timeout)
        return data.replace(b"\n", b"\n" + self.NOISE, 1) if data.endswith(b"\n") else data


def test_a_reset_mid_run_is_resynced_by_retrying(native) -> None:
    program, model, vectors = native
    X = vectors.of_kind("sample")[:30]
    with Device(ResettingTransport(program, after=400), timeout=0.5) as dev:
        dev.sync()
        labels = [dev.predict(x) for x in X]
        assert dev.transport.resets == 1
        assert "boot" in dev.transcript.text()  # the banner of the reboot was seen and logged
    np.testing.assert_array_equal(labels, DeviceTwin(fold(model)).predict(X))


def test_a_reset_mid_batch_still_returns_every_answer(native) -> None:
    program, model, vectors = native
    X = vectors.X[:300]
    with Device(ResettingTransport(program, after=2000), timeout=0.5) as dev:
        dev.sync()
        res = dev.batch("predict", X)
        assert dev.transport.resets == 1
    twin = DeviceTwin(fold(model)).evaluate(X)
    np.testing.assert_array_equal(res.status, twin.status_predict)
    np.testing.assert_array_equal(res.values[res.status == 0], twin.label[res.status == 0])


def test_a_device_that_never_comes_back_fails_clearly_and_fast(native) -> None:
    program, _, vectors = native
    transport = PipeTransport([program])
    with Device(transport, timeout=0.3, retries=1) as dev:
        dev.sync()
        os.kill(transport.pid, 19)  # SIGSTOP: alive but silent, like a hung board
        t0 = time.monotonic()
        with pytest.raises((LinkTimeout, LinkClosed), match="no reply to 'predict'"):
            dev.predict(vectors.X[0])
        assert time.monotonic() - t0 < 2.0
        os.kill(transport.pid, 18)  # SIGCONT, so the transport can reap it


def test_garbage_between_replies_is_skipped_and_logged(native) -> None:
    program, model, vectors = native
    X = vectors.of_kind("box")[:20]
    with Device(NoisyTransport([program])) as dev:
        dev.sync()
        labels = [dev.predict(x) for x in X]
        scores = dev.batch("score", X)
        assert "garbage" in dev.transcript.text()
    twin = DeviceTwin(fold(model)).evaluate(X)
    np.testing.assert_array_equal(labels, twin.label)
    np.testing.assert_array_equal(scores.status, twin.status_score)


def test_a_busy_port_is_named() -> None:
    master, slave = pty.openpty()
    path = os.ttyname(slave)
    try:
        first = SerialTransport(path)
        try:
            with pytest.raises(TinyGMMError, match=f"serial port {path} is busy"):
                SerialTransport(path)
        finally:
            first.close()
    finally:
        os.close(master)
        os.close(slave)


def test_a_missing_port_is_named() -> None:
    with pytest.raises(TinyGMMError, match="does not exist: is the board plugged in"):
        SerialTransport("/dev/ttyNOSUCHPORT")


def test_a_network_port_url_that_cannot_work_says_why() -> None:
    """Remote boards are URLs (docs/board-farm.md); the mistakes made typing them are named plainly."""
    with pytest.raises(TinyGMMError, match=r"rfc2217://lab-2 names no TCP port: give it as rfc2217://lab-2:PORT"):
        SerialTransport("rfc2217://lab-2")
    with pytest.raises(TinyGMMError, match="names no TCP port"):
        SerialTransport("socket://127.0.0.1")
    with pytest.raises(TinyGMMError, match="its host name is not known here"):
        SerialTransport("rfc2217://nosuchhost.invalid:4001")
    plain = socket.create_server(("127.0.0.1", 0))  # accepts, but speaks no RFC 2217
    held: list[socket.socket] = []  # the accepted connection stays open, silent
    threading.Thread(target=lambda: held.append(plain.accept()[0]), daemon=True).start()
    url = f"rfc2217://127.0.0.1:{plain.getsockname()[1]}"
    try:
        with pytest.raises(TinyGMMError, match=r"answers but does not speak RFC 2217 \(a plain TCP server\? then "
                                               r"use socket://127\.0\.0\.1:\d+"):
            SerialTransport(url)
    finally:
        plain.close()
        for c in held:
            c.close()


def test_a_reset_on_a_port_without_modem_lines_is_a_clear_error() -> None:
    master, slave = pty.openpty()
    try:
        with pytest.raises(TinyGMMError, match="cannot reset .* by DTR"):
            SerialTransport(os.ttyname(slave), reset=True)
    finally:
        os.close(master)
        os.close(slave)
