"""Human mode (docs/protocol.md): requests typed without SEQ and CRC get answers a person can read
(decimal floats beside their exact hex, help with arguments, a line of numbers is a predict), and
the native program at a terminal echoes, keeps lines in place and ends on Ctrl-D, Ctrl-C or Ctrl-\\,
while the host's pipes and raw pseudo-terminals see the machine protocol byte for byte."""
from __future__ import annotations

import fcntl
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import termios
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import require
from tinygmm.device.fold import fold
from tinygmm.device.render import write_header
from tinygmm.device.twin import DeviceTwin
from tinygmm.link import Device, PipeTransport, PtyTransport
from tinygmm.link.protocol import crc16, frame, parse_line
from tinygmm.model import Model
from tinygmm.resources import firmware_dir

from _cdriver import LANGUAGES, have_host_compilers
from test_link_native import AVR_WARNINGS, UNO_LINE, UNO_RX, _demo_model, build_native

PROTO_DIR = firmware_dir() / "lib" / "tinygmm_proto"
# tp_internal.h TP_FLOAT_TEXT_MAX: the longest decimal, "-1.23456e-45" or "-0.000123456".
FLOAT_TEXT_MAX = 12
# A float in a human reply: "DECIMAL (HEX)".
HUMAN_FLOAT = re.compile(r"(\S+) \(([0-9a-f]{8})\)")


@dataclass
class Native:
    exe: Path
    model: Model

    @property
    def twin(self) -> DeviceTwin:
        return DeviceTwin(fold(self.model))


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> Native:
    """The native program (protocol core + stdin/stdout glue) for the demo model: D = 2, K = 3."""
    require(have_host_compilers(), "needs gcc and g++ on the host (apt-get install gcc g++)")
    out = tmp_path_factory.mktemp("human")
    model = _demo_model()
    write_header(fold(model), out / "tinygmm_model.h")
    return Native(build_native(out, "c99", out, UNO_LINE, UNO_RX), model)


def g6(bits: int) -> str:
    """What printf's %.6g writes for the float32 with these bits (Python rounds the exact value, ties
    to even, as glibc does); NaN without a sign."""
    v = float(np.array([bits], np.uint32).view(np.float32)[0])
    return "nan" if v != v else "%.6g" % v


# -- the decimal writer ------------------------------------------------------------------------

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tp_internal.h"
int main(void)
{
    char line[32], text[TP_FLOAT_TEXT_MAX + 1];
    while (fgets(line, sizeof line, stdin) != NULL) {
        const uint32_t u = (uint32_t)strtoul(line, NULL, 16);
        float v;
        memcpy(&v, &u, sizeof v);
        text[tp_format_float(v, text)] = '\0';
        puts(text);
    }
    return 0;
}
"""


def _ties() -> list[int]:
    """Floats exactly halfway between two 6-digit decimals (7 significant digits, the last a 5),
    which must round to the even one, and their neighbours. q * 10^p is a float32 only for
    -10 <= p <= 1 (5^-p must divide q < 10^7; q * 5^p below 2^24)."""
    rng = np.random.default_rng(7)
    out = []
    for p in range(-10, 2):
        step = 5 ** max(-p, 1)
        qs = np.arange(-(-1_000_000 // step) * step, 10_000_000, step)
        qs = qs[qs % 10 == 5]
        if len(qs) > 4000:
            qs = rng.choice(qs, 4000, replace=False)
        for q in qs.tolist():
            exact = Fraction(int(q)) * Fraction(10) ** p
            f = np.float32(float(exact))
            if Fraction(float(f)) == exact:
                out.append(int(np.array([f], np.float32).view(np.uint32)[0]))
    bits = np.array(out, np.uint32)
    assert len(bits) > 5000
    return np.concatenate([bits, bits + 1, bits - 1]).tolist()


@pytest.mark.parametrize("language", ["c99", "c++11"])
def test_decimal_floats_are_what_printf_g_writes(language, tmp_path):
    require(have_host_compilers(), "needs gcc and g++ on the host (apt-get install gcc g++)")
    (tmp_path / "driver.c").write_text(DRIVER)
    exe = tmp_path / "driver"
    cmd = [*LANGUAGES[language], f"-I{PROTO_DIR}", str(tmp_path / "driver.c"), str(PROTO_DIR / "tp_decimal.c"),
           "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rng = np.random.default_rng(1)
    powers = [(e << 23) | s for e in range(255) for s in (0, 1 << 31)]  # 0, every power of two
    special = [0x00000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000,
               0xFFC00000, 0x7F800001, 0x80000000, 0x3F800000, 0x49742400, 0x497423F8,  # 1e6, 999999.5
               0x38D1B717, 0x38D1B718]  # either side of 1e-4 (fixed or exponent notation)
    bits = [*special, *powers, *_ties(), *rng.integers(0, 1 << 32, 400_000, dtype=np.uint64).tolist()]
    res = subprocess.run([str(exe)], input="".join(f"{b:08x}\n" for b in bits), capture_output=True, text=True,
                         timeout=120)
    got = res.stdout.splitlines()
    assert len(got) == len(bits)
    wrong = [(f"{b:08x}", g, g6(b)) for b, g in zip(bits, got) if g != g6(b)]
    assert not wrong, f"{len(wrong)} differ from %.6g, e.g. {wrong[:5]}"
    assert max(map(len, got)) == FLOAT_TEXT_MAX
    assert got[:5] == ["1.4013e-45", "1.17549e-38", "1.17549e-38", "3.40282e+38", "inf"]
    assert got[5:13] == ["-inf", "nan", "nan", "nan", "-0", "1", "1e+06", "1e+06"]


# The writer on the Uno's CPU (8-bit, 16-bit int) in simavr: a bare program reads bit patterns in hex
# on UART0 and answers each with its decimal.
AVR_DRIVER = r"""
#include <avr/io.h>
#include "tp_internal.h"
static uint8_t get(void) { while (!(UCSR0A & _BV(RXC0))) {} return UDR0; }
static void put(char c) { while (!(UCSR0A & _BV(UDRE0))) {} UDR0 = (uint8_t)c; }
int main(void)
{
    char text[TP_FLOAT_TEXT_MAX];
    UCSR0A = _BV(U2X0);
    UBRR0 = 16; /* 115200 baud at 16 MHz */
    UCSR0B = _BV(RXEN0) | _BV(TXEN0);
    for (;;) {
        uint32_t u = 0;
        uint8_t c;
        size_t i, n;
        float v;
        while ((c = get()) != '\n') {
            u = u << 4 | (uint32_t)(c <= '9' ? c - '0' : c - 'a' + 10);
        }
        memcpy(&v, &u, sizeof v);
        n = tp_format_float(v, text);
        for (i = 0; i < n; ++i) {
            put(text[i]);
        }
        put('\n');
    }
}
"""


def test_decimal_floats_on_the_uno_cpu_in_simavr(tmp_path):
    from tinygmm.link.emulators import SimavrTransport
    from tinygmm.project.boards import get_emulator
    from tinygmm.project.build import SIMAVR_HEADER, simavr_runner

    require(shutil.which("avr-gcc") is not None, "needs avr-gcc (apt-get install gcc-avr avr-libc)")
    require(SIMAVR_HEADER.is_file(), "needs simavr: apt-get install simavr libsimavr-dev")
    (tmp_path / "driver.c").write_text(AVR_DRIVER)
    elf = tmp_path / "driver.elf"
    cmd = ["avr-gcc", "-std=c99", "-mmcu=atmega328p", "-DF_CPU=16000000L", "-Os", *AVR_WARNINGS, f"-I{PROTO_DIR}",
           str(tmp_path / "driver.c"), str(PROTO_DIR / "tp_decimal.c"), "-o", str(elf)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rng = np.random.default_rng(2)
    ties = _ties()
    bits = [0x00000001, 0x00000003, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0x7F800000, 0xFFC00000, 0x80000000,
            0x49742400, 0x497423F8, 0x38D1B717, *(e << 23 for e in range(0, 255, 7)),
            *rng.choice(ties, 1000, replace=False).tolist(), *rng.integers(0, 1 << 32, 1000, dtype=np.uint64).tolist(),
            *rng.integers(0, 1 << 23, 100, dtype=np.uint64).tolist()]  # subnormals: the longest work
    options = dict(get_emulator("simavr")[0].options)
    got = []
    with SimavrTransport(elf, runner=simavr_runner(), wall_limit=120, **options) as uart:
        start = time.monotonic()
        for b in bits:
            uart.write(b"%08x\n" % b)
            line = b""
            while not line.endswith(b"\n"):
                assert time.monotonic() - start < 100, f"no answer for {b:08x}"
                line += uart.read(64, 1.0)
            got.append(line.decode().strip())
    wrong = [(f"{b:08x}", g, g6(b)) for b, g in zip(bits, got) if g != g6(b)]
    assert not wrong, f"{len(wrong)} differ from %.6g on AVR, e.g. {wrong[:5]}"


# -- human requests and their replies ------------------------------------------------------------


def _human(dev: Device, text: str):
    dev.send_raw(text.encode() + b"\r\n")
    line = dev.read_line()
    assert line.seq == 0, line
    return line


def test_human_requests_get_decimal_answers_and_a_line_of_numbers_is_a_predict(native):
    x = np.array([25.0, 80.0], np.float32)
    twin = native.twin
    with Device(PipeTransport([native.exe])) as dev:
        dev.sync()
        assert _human(dev, "25 80").words == ("predict", str(twin.predict(x)[0]))
        assert _human(dev, "  25\t80 ").words == ("predict", str(twin.predict(x)[0]))
        for op in ("score", "log_joint", "proba"):
            text = " ".join(_human(dev, f"{op} 25 80").words)
            pairs = HUMAN_FLOAT.findall(text)
            framed = np.atleast_1d(getattr(dev, op)(x)).astype(np.float32)  # the machine's hex reply
            assert [h for _, h in pairs] == [f"{b:08x}" for b in framed.view(np.uint32)]
            assert [d for d, _ in pairs] == [g6(int(h, 16)) for _, h in pairs]
            assert text == " ".join([op, *(f"{d} ({h})" for d, h in pairs)])
        # numbers in any form of the grammar, a leading sign or point; hex patterns too
        assert _human(dev, "-1.5 2e1").command == "predict"
        assert _human(dev, ".5 3f800000").command == "predict"
        assert _human(dev, "nan 1").words[:1] == ("nonfinite",)
        assert _human(dev, "25").words == ("features", "want", "2", "got", "1")
        assert _human(dev, "-1 x").words == ("bad_number", "arg=2")
        # framed requests are answered as before: hex floats (above), help with the names only
        assert dev.predict(x) == twin.predict(x)[0]
        assert dev.request("help").words == ("help", "hello", "ping", "predict", "log_joint", "score", "proba",
                                             "anomaly", "batch", "bench")


def test_lines_starting_with_a_digit_are_framed_unless_they_hold_numbers_only(native):
    with Device(PipeTransport([native.exe])) as dev:
        dev.sync()
        for text, seq in (("8 predict 1 2", 8), ("25 8o", 25), ("25 80*", 25), ("3 1 2*00", 3)):
            dev.send_raw(text.encode() + b"\n")
            line = dev.read_line()
            assert (line.seq, line.kind, line.command) == (seq, "err", "bad_frame"), text
        body = b"7 25 80"  # framed: executed as the command "25", never as a human predict
        dev.send_raw(body + b"*%04X\n" % crc16(body))
        assert (line := dev.read_line()).seq == 7 and line.words == ("unknown_command", "25")
        dev.send_raw(body + b"*0000\n")
        assert (line := dev.read_line()).seq == 7 and line.command == "bad_crc"


def test_help_shows_every_command_with_its_arguments(native):
    with Device(PipeTransport([native.exe])) as dev:
        dev.sync()
        text = " ".join(_human(dev, "help").words)
    assert text == ("help hello, ping NONCE, predict x1..x2, log_joint x1..x2, score x1..x2, proba x1..x2, "
                    "anomaly x1..x2, batch OP N BASE64, bench OP N x1..x2; x1..x2 alone: predict")


def test_the_banner_says_to_type_help_and_keeps_its_fields(native):
    proc = subprocess.run([native.exe], input=b"", capture_output=True, timeout=10)
    banner = parse_line(proc.stdout.rstrip(b"\n"))
    assert banner.raw.endswith(b" (type help)*%04X" % crc16(banner.raw[:-5]))
    assert banner.fields() == {"proto": "1", "model": native.model.model_id, "target": "native"}


# -- the native program at a terminal --------------------------------------------------------------


class Terminal:
    """The native program on a fresh pseudo-terminal as a person's shell leaves it (line mode, echo,
    signals: the kernel's defaults), as its controlling terminal."""

    def __init__(self, exe: Path):
        self.master, self.slave = os.openpty()
        self.before = termios.tcgetattr(self.slave)
        assert self.before[3] & termios.ICANON and self.before[3] & termios.ECHO

        def child_setup() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # Ctrl-\ dumps no core
            # as a shell starts a job: a test run started in the background (`cmd &` in a script)
            # ignores SIGINT and SIGQUIT, which a program inherits
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGQUIT, signal.SIG_DFL)

        self.proc = subprocess.Popen([str(exe)], stdin=self.slave, stdout=self.slave, stderr=subprocess.PIPE,
                                     preexec_fn=child_setup, close_fds=True)
        self.seen = b""

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def screen_until(self, pattern: bytes, count: int = 1, timeout: float = 5.0) -> bytes:
        """Reads the screen until `pattern` is on it `count` times."""
        deadline = time.monotonic() + timeout
        while self.seen.count(pattern) < count:
            ready, _, _ = select.select([self.master], [], [], max(deadline - time.monotonic(), 0))
            assert ready, f"waited for {pattern!r}; the screen shows {self.seen!r}"
            self.seen += os.read(self.master, 4096)
        return self.seen

    def end(self, key: bytes) -> int:
        self.type(key)
        code = self.proc.wait(timeout=5)
        after = termios.tcgetattr(self.slave)
        assert after == self.before, "the terminal's settings changed"
        self.proc.stderr.close()
        os.close(self.master)
        os.close(self.slave)
        return code


def test_a_terminal_session_echoes_edits_keeps_lines_in_place_and_ends_on_ctrl_d(native):
    term = Terminal(native.exe)
    try:
        term.screen_until(b"(type help)*")
        term.type(b"help\r")
        term.screen_until(b"alone: predict*")
        term.type(b"25 8x\x7f0\r")  # a typo rubbed out with backspace
        term.screen_until(b"\r\n", count=5)  # banner, help typed and answered, 25 80 typed and answered
    finally:
        code = term.end(b"\x04")
    want = str(native.twin.predict(np.array([25.0, 80.0], np.float32))[0]).encode()
    lines = term.seen.split(b"\r\n")
    assert lines[0].startswith(b"0 boot proto=1 ")  # every line ends with CR LF: lines stay in place
    assert lines[1] == b"help" and lines[2].startswith(b"0 ok help hello, ping NONCE")
    assert lines[3] == b"25 8x\b \b0" and parse_line(lines[4]).words == ("predict", want.decode())
    assert b"\n" not in term.seen.replace(b"\r\n", b"")
    assert code == 0


@pytest.mark.parametrize("key, sig", [(b"\x03", signal.SIGINT), (b"\x1c", signal.SIGQUIT)], ids=["ctrl-c", "ctrl-backslash"])
def test_a_terminal_session_ends_on_ctrl_c_and_ctrl_backslash(native, key, sig):
    term = Terminal(native.exe)
    term.screen_until(b"(type help)*")
    term.type(b"score 25 8")  # half a line typed
    term.screen_until(b"score 25 8")
    assert term.end(key) == -sig


def test_the_hosts_pty_and_pipes_see_no_echo_and_bare_line_feeds(native):
    for transport in (PtyTransport([native.exe]), PipeTransport([native.exe])):
        with transport:
            transport.write(b"help\r" + frame(5, "ping abc"))
            data = b""
            deadline = time.monotonic() + 5
            while data.count(b"\n") < 3 and time.monotonic() < deadline:
                data += transport.read(4096, 0.5)
        lines = data.split(b"\n")
        assert [parse_line(x).seq for x in lines[:3]] == [0, 0, 5] and lines[3] == b""
        assert b"\r" not in data and b"help\r" not in data  # nothing echoed, no CR added
