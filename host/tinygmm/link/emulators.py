"""Emulators as transports: an AVR firmware ELF in simavr (through our runner) or in qemu-system-avr,
and a CPU class's bare-metal firmware in qemu-system-arm or qemu-system-riscv32.

Both build on :class:`~tinygmm.link.child.ChildTransport` (always reaped). Which emulator runs which
board, with which CPU and clock, is the board table's (project/boards.py); the runner executable is
built by project/build.py and handed in.

- :class:`SimavrTransport`: ``firmware/emulator/simavr_bridge.c``, a small runner linking libsimavr.
  UART0 is bridged to a pty; the firmware starts only once the pty is opened (the boot banner is
  not lost); wall-clock and cycle limits; optional real-time throttling; exact cycle counts on exit.
- :class:`SimavrBoard`: the same runner as a board that outlives its clients: its bootloader in
  flash, reset on request (the DTR pulse a pty cannot carry), its pty handed in turn to an uploader
  (avrdude) and to :meth:`SimavrBoard.connect`'s links.
- :class:`QemuTransport`: a firmware ELF in ``qemu-system-ARCH -machine M`` with UART0 on a TCP
  chardev (``server=on,wait=on,nodelay=on``: the guest starts when we connect), TCP_NODELAY on our
  side; with ``icount_shift`` QEMU counts instructions exactly (``-icount shift=N,align=off,sleep=off``:
  each instruction lasts 2**N ns of virtual time, whatever the host's speed).
- :class:`QemuAvrTransport`: the Uno's firmware in ``qemu-system-avr -machine uno``, writes paced.
"""
from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from ..errors import TinyGMMError
from .child import EXIT_CODE_WAIT, WRITE_TIMEOUT, ChildTransport, FdTransport, PtyTransport, _open_pty_slave, _spawn
from .protocol import LinkClosed, LinkTimeout

# simavr_bridge's exit codes (see its header comment).
RUNNER_EXIT = {0: "hangup", 1: "setup error", 2: "crashed", 3: "cycle limit", 4: "wall-clock limit", 5: "halted"}
EXIT_CYCLE_LIMIT = 3
EXIT_WALL_LIMIT = 4

# Seconds to wait for an emulator to come up (print its pty path / accept the TCP connection).
START_TIMEOUT = 15.0
QEMU_PORT_ATTEMPTS = 3
# QemuAvrTransport paces its writes like a serial line: 8N1 is 10 bits per byte, in bursts of
# at most this many bytes (well under the 63 bytes the Uno's receive ring holds). 19200, not the
# firmware's baud: see QemuAvrTransport.
QEMU_BAUD = 19200
BITS_PER_BYTE = 10
PACE_BURST = 16

def _runner_argv(runner: str | os.PathLike, mcu: str, frequency: int, *, wall_limit: float | None = None,
                 cycle_limit: int | None = None, realtime: float | None = None,
                 service_interval: int | None = None) -> list[str]:
    argv = [str(runner), "-m", mcu, "-f", str(int(frequency))]
    if wall_limit is not None:
        argv += ["-t", repr(float(wall_limit))]
    if cycle_limit is not None:
        argv += ["-c", str(int(cycle_limit))]
    if realtime is not None:
        argv += ["-r", repr(float(realtime))]
    if service_interval is not None:
        argv += ["-i", str(int(service_interval))]
    return argv


class _SimavrRunner(ChildTransport):
    """simavr_bridge as a child: its stdout lines (the pty path first, the exit report last)."""

    report: dict[str, str]
    _stdout_rest = b""

    def _start(self, argv: list[str], install_hint: str, start_timeout: float, stdin: Any) -> None:
        self.argv = argv
        self.report = {}
        self._stderr = tempfile.TemporaryFile()
        self._proc = _spawn(argv, "simavr", install_hint, stdin=stdin, stdout=subprocess.PIPE, stderr=self._stderr)
        self.pty_path = self._read_line(start_timeout, "printed no pty path")

    def _read_line(self, timeout: float, missing: str) -> str:
        """The runner's next stdout line (TinyGMMError saying ``missing`` when none comes in time)."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        buf = self._stdout_rest
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(remaining, 0.0))
            if not ready:
                raise TinyGMMError(f"simavr_bridge {missing} within {timeout} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                self._proc.wait()
                raise TinyGMMError(f"simavr_bridge stopped (exit code {self._proc.returncode}"
                                   f"{', ' + RUNNER_EXIT[self._proc.returncode] if self._proc.returncode in RUNNER_EXIT else ''}"
                                   f"): {self._stderr_text()}")
            buf += chunk
        line, _, self._stdout_rest = buf.partition(b"\n")
        return line.decode().strip()

    def _after_exit(self) -> None:
        out = self._proc.stdout if self._proc is not None else None
        if out is None:
            return
        rest = self._stdout_rest + out.read()
        out.close()
        for line in rest.decode(errors="replace").splitlines():
            if line.startswith("exit "):
                self.report = dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)

    def _exit_detail(self) -> str:
        if self._proc is not None:
            try:  # the runner exits right after closing its side: give it a moment for its message
                self._proc.wait(timeout=EXIT_CODE_WAIT)
            except subprocess.TimeoutExpired:
                pass
        code = self.returncode
        return RUNNER_EXIT[code] if code is not None and code in RUNNER_EXIT and code != 0 else ""

    @property
    def cycles(self) -> int | None:
        """Emulated cycles from reset to the end of the run (after close), exact."""
        return int(self.report["cycles"]) if "cycles" in self.report else None

    @property
    def exit_reason(self) -> str | None:
        """hangup, closed, crashed, cycle_limit, wall_limit, halted or signal (after close)."""
        return self.report.get("reason")

    @property
    def exit_code(self) -> int | None:
        return self.returncode

    @property
    def emulated_mhz(self) -> float | None:
        """Emulated cycles per wall-clock microsecond over the run (after close)."""
        return float(self.report["mhz"]) if "mhz" in self.report else None

    @property
    def wall_seconds(self) -> float | None:
        return float(self.report["seconds"]) if "seconds" in self.report else None


class SimavrTransport(_SimavrRunner, FdTransport):
    """An AVR firmware ELF (the Uno's, by default) in simavr, UART0 bridged to a pty by simavr_bridge.

    The firmware starts when this transport opens the pty, so the boot banner is the first line
    read. ``wall_limit`` (seconds) and ``cycle_limit`` stop the emulation (the link then closes:
    LinkClosed naming the limit); ``realtime`` throttles to that multiple of real time (1.0 = an
    actual 16 MHz Uno); ``service_interval``: AVR instructions between two moves of bytes
    (runner default 2048). After :meth:`close`: ``cycles`` (exact, emulated), ``exit_reason``,
    ``exit_code`` and ``emulated_mhz`` from the runner's report.
    """

    def __init__(self, elf: str | os.PathLike, *, runner: str | os.PathLike, mcu: str, frequency: int,
                 wall_limit: float | None = None, cycle_limit: int | None = None,
                 realtime: float | None = None, service_interval: int | None = None,
                 start_timeout: float = START_TIMEOUT, install_hint: str = ""):
        self.elf = Path(elf)
        self.what = f"simavr running {self.elf.name}"
        self.report = {}
        if not self.elf.is_file():
            raise TinyGMMError(f"{self.elf}: no firmware ELF here (build it with `tinygmm build DIR -e uno`)")
        argv = _runner_argv(runner, mcu, frequency, wall_limit=wall_limit, cycle_limit=cycle_limit,
                            realtime=realtime, service_interval=service_interval) + [str(self.elf)]
        try:
            self._start(argv, install_hint, start_timeout, subprocess.DEVNULL)
            try:
                fd = _open_pty_slave(self.pty_path)
                self._set_fds(fd, fd)
            except OSError as e:
                raise TinyGMMError(f"cannot open simavr's pty {self.pty_path}: {e.strerror or e}") from None
        except BaseException:
            self.close()
            raise

    def _gone(self, detail: str = "") -> LinkClosed:
        return super()._gone(self._exit_detail() or detail)


class SimavrBoard(_SimavrRunner):
    """A board emulated in simavr that outlives its clients, as a board on a serial port does.

    Its flash holds ``bootloader`` (Intel hex, burned at its own addresses; the chip resets to
    ``boot_address``) and, if given, the application ``elf``; without one the application flash is
    empty (erased). The board's UART0 is the pty :attr:`port`, which an uploader (avrdude) and the
    links of :meth:`connect` take in turn: while nobody holds it the board pauses, so the next
    client finds it as the last one left it. :meth:`reset` is an external reset (the reset button,
    or the DTR pulse with which a USB Uno resets itself when its port opens, which a pty cannot
    carry): the bootloader then waits for its uploader. Code in the boot section runs at most at
    real time (its timeouts are the uploader's seconds); the application as ``realtime`` says.
    :meth:`close` stops the board.
    """

    def __init__(self, *, runner: str | os.PathLike, mcu: str, frequency: int, bootloader: str | os.PathLike | None,
                 boot_address: int = 0, elf: str | os.PathLike | None = None, realtime: float | None = None,
                 service_interval: int | None = None, start_timeout: float = START_TIMEOUT, install_hint: str = "",
                 title: str = "board"):
        argv = _runner_argv(runner, mcu, frequency, realtime=realtime, service_interval=service_interval) + ["-k"]
        if bootloader is not None:
            argv += ["-b", str(bootloader), "-B", hex(boot_address)]
        if elf is not None:
            argv.append(str(elf))
        self.what = f"the emulated {title} (simavr)"
        try:
            self._start(argv, install_hint, start_timeout, subprocess.PIPE)
        except BaseException:
            self.close()
            raise
        self.what += f" on {self.pty_path}"

    @property
    def port(self) -> str:
        """The board's serial port: what avrdude's -P and a link open."""
        return self.pty_path

    def reset(self, timeout: float = START_TIMEOUT) -> None:
        """Reset the board as its reset pin would; returns once the runner has done it."""
        self._command("reset", timeout)

    def _command(self, command: str, timeout: float) -> str:
        if self._proc is None or self._proc.stdin is None or self._closed:
            raise TinyGMMError(f"{self.what} is stopped")
        try:
            self._proc.stdin.write(command.encode() + b"\n")
            self._proc.stdin.flush()
        except OSError:
            raise TinyGMMError(f"{self.what} stopped ({self._exit_detail() or 'exited'}): {self._stderr_text()}") from None
        return self._read_line(timeout, f"did not acknowledge `{command}`")

    def connect(self) -> BoardLink:
        """A link to the board's UART (closing it leaves the board running, paused)."""
        return BoardLink(self)

    def _hang_up(self) -> None:
        # End of input stops the runner ("closed"); PDEATHSIG covers a Python that dies first.
        if self._proc is not None and self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()


class BoardLink(FdTransport):
    """One client's link to a :class:`SimavrBoard`'s pty; closing it leaves the board be."""

    def __init__(self, board: SimavrBoard):
        self.board = board
        self.what = board.what
        if not board.alive():
            raise TinyGMMError(f"{board.what} is stopped ({board._exit_detail() or 'exited'}): {board._stderr_text()}")
        try:
            fd = _open_pty_slave(board.port)
        except OSError as e:
            raise TinyGMMError(f"cannot open {board.what}'s pty: {e.strerror or e}") from None
        self._set_fds(fd, fd)

    def _gone(self, detail: str = "") -> LinkClosed:
        err = self.board._stderr_text()
        return LinkClosed(f"{self.what} closed the link ({self.board._exit_detail() or detail or 'hung up'})"
                          + (f": {err}" if err else ""))


class QemuTransport(ChildTransport):
    """A firmware ELF in ``qemu`` (``-machine machine``), UART0 on a TCP socket.

    QEMU waits for our connection before starting the guest (``wait=on``), so the boot banner is not
    lost; both sides set TCP_NODELAY. ``firmware_option`` is how the machine loads the ELF
    (``-kernel`` for Cortex-M and RISC-V virt, ``-bios`` for the AVR); ``icount_shift`` turns on
    exact instruction counting; ``baud`` paces writes like a serial line (None: sent at once, right
    for UART models that take a byte only once the firmware has read the last).
    """

    def __init__(self, elf: str | os.PathLike, *, qemu: str, machine: str, firmware_option: str = "-kernel",
                 icount_shift: int | None = None, baud: int | None = None, start_timeout: float = START_TIMEOUT,
                 extra_args: Sequence[str] = (), install_hint: str = ""):
        self.elf = Path(elf)
        self.baud = baud
        self._line_free = 0.0  # time.monotonic() when the paced line has sent everything given so far
        self.what = f"{qemu} running {self.elf.name}"
        self._sock: socket.socket | None = None
        if not self.elf.is_file():
            raise TinyGMMError(f"{self.elf}: no firmware ELF here (build it with `tinygmm build DIR -e ENV`)")
        exe = shutil.which(qemu)
        if exe is None:
            raise TinyGMMError(f"{qemu} not found" + (f" ({install_hint})" if install_hint else ""))
        icount = ["-icount", f"shift={icount_shift},align=off,sleep=off"] if icount_shift is not None else []
        failure = ""
        for _ in range(QEMU_PORT_ATTEMPTS):
            port = _free_port()
            self.argv = [exe, "-machine", machine, *icount, *extra_args, firmware_option, str(self.elf),
                         "-display", "none", "-monitor", "none",
                         "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"]
            self._stderr = tempfile.TemporaryFile()
            self._closed = False
            try:
                self._proc = _spawn(self.argv, "qemu", install_hint,
                                    stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr)
                self._sock = self._connect(port, start_timeout)
            except BaseException:
                self.close()
                raise
            if self._sock is not None:
                self.port = port
                return
            failure = self._stderr_text()
            self.close()
            if "in use" not in failure.lower():
                break
        raise TinyGMMError(f"{qemu} did not start: {failure or 'no output'}")

    def _connect(self, port: int, timeout: float) -> socket.socket | None:
        """Connected socket, or None if QEMU exited (its stderr says why)."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                return None
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=0.5)
            except (ConnectionRefusedError, socket.timeout):
                if time.monotonic() > deadline:
                    raise TinyGMMError(f"{self.argv[0]} did not listen on 127.0.0.1:{port} within {timeout} s: "
                                       f"{self._stderr_text()}") from None
                time.sleep(0.02)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(True)
            return sock

    def write(self, data: bytes) -> None:
        if self._sock is None:
            raise LinkClosed(f"{self.what}: the link is closed")
        try:
            self._sock.settimeout(WRITE_TIMEOUT)
            if self.baud is None:
                self._sock.sendall(data)
            else:
                self._paced_send(memoryview(data), BITS_PER_BYTE / self.baud)
        except socket.timeout:
            raise LinkTimeout(f"{self.what}: write timed out after {WRITE_TIMEOUT} s") from None
        except OSError:
            raise self._gone() from None

    def _paced_send(self, view: memoryview, byte_time: float) -> None:
        assert self._sock is not None
        while view:
            now = time.monotonic()
            # an idle line earns at most one burst of credit
            self._line_free = max(self._line_free, now - PACE_BURST * byte_time)
            allowed = min(int((now - self._line_free) / byte_time), PACE_BURST, len(view))
            if allowed <= 0:
                time.sleep(self._line_free + byte_time - now)
                continue
            self._sock.sendall(view[:allowed])
            self._line_free += allowed * byte_time
            view = view[allowed:]

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if self._sock is None:
            raise LinkClosed(f"{self.what}: the link is closed")
        try:
            ready, _, _ = select.select([self._sock], [], [], max(timeout, 0.0))
            if not ready:
                return b""
            data = self._sock.recv(max_bytes)
        except InterruptedError:
            return b""
        except OSError:
            raise self._gone() from None
        if not data:
            raise self._gone()
        return data

    def _hang_up(self) -> None:
        # QEMU keeps running (and would wait for another client) when we disconnect: stop it.
        if self._sock is not None:
            sock, self._sock = self._sock, None
            sock.close()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def _release(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class QemuAvrTransport(QemuTransport):
    """An Uno firmware ELF in qemu-system-avr (``-machine uno``), UART0 on a TCP socket.

    QEMU has no cycle counts for the AVR and runs its timers on the host clock.

    QEMU's USART has no baud rate: it hands the guest the next byte as soon as the previous one
    is read, and the sketch's loop then falls behind the receive interrupt, overflowing the
    Arduino's 64-byte ring even with the device idle. Measured here (150 pairs of 499-byte batch
    lines each): unpaced and 115200-paced writes lost bytes in 5-25% of lines, 38400 and 19200
    none. So writes are paced to ``baud`` (8N1, bursts of at most ``PACE_BURST`` bytes), by
    default QEMU_BAUD = 19200; ``baud=None`` sends at once. Use simavr for link-speed figures.
    """

    def __init__(self, elf: str | os.PathLike, *, machine: str = "uno", qemu: str = "qemu-system-avr",
                 baud: int | None = QEMU_BAUD, start_timeout: float = START_TIMEOUT,
                 extra_args: Sequence[str] = (), install_hint: str = ""):
        super().__init__(elf, qemu=qemu, machine=machine, firmware_option="-bios", baud=baud,
                         start_timeout=start_timeout, extra_args=extra_args, install_hint=install_hint)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- by kind ------------------------------------------------------------------------------

# The transports an emulator entry of the board table may name (Emulator.transport).
TRANSPORTS: dict[str, type[ChildTransport]] = {"pty": PtyTransport, "simavr": SimavrTransport, "qemu": QemuAvrTransport,
                                               "qemu-system": QemuTransport}
