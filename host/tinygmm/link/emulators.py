"""Transports to firmware run as a child process: the Uno ELF in simavr or qemu-system-avr, the native
build on a pseudo-terminal.

Every transport here speaks the :class:`~tinygmm.link.transports.Transport` interface (``write``,
``read(max_bytes, timeout)``, ``close``), is a context manager, and always reaps its child: on
``close()`` (the child sees the hang-up and exits; killed after a grace period), when opening fails
half-way, from ``__del__`` as a last resort, and — through PR_SET_PDEATHSIG — when this Python
process dies without cleaning up.

- :class:`SimavrTransport`: ``firmware/emulator/simavr_bridge.c``, a small runner linking libsimavr,
  built on first use into ``~/.cache/tinygmm/bin`` (rebuilt when its source changes). UART0 is
  bridged to a pty; the firmware starts only once the pty is opened (the boot banner is not lost);
  wall-clock and cycle limits; optional real-time throttling; exact cycle counts on exit.
- :class:`QemuAvrTransport`: ``qemu-system-avr -machine uno`` with UART0 on a TCP chardev
  (``server=on,wait=on,nodelay=on``: the guest starts when we connect), TCP_NODELAY on our side.
- :class:`PtyTransport`: any program (the native build) with stdin/stdout on a raw pty, as a
  serial port would be, instead of pipes.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import tty
import termios
from pathlib import Path
from typing import Sequence

from ..errors import TinyGMMError
from ..resources import firmware_dir
from .protocol import LinkClosed, LinkTimeout

SIMAVR_PACKAGES = "simavr libsimavr-dev"
QEMU_PACKAGE = "qemu-system-misc"
RUNNER_NAME = "simavr_bridge"
RUNNER_CFLAGS = ("-O2", "-Wall", "-Wextra", "-I/usr/include/simavr")
RUNNER_LIBS = ("-lsimavr", "-lutil")
UNO_MCU = "atmega328p"
UNO_HZ = 16_000_000
# simavr_bridge's exit codes (see its header comment).
RUNNER_EXIT = {0: "hangup", 1: "setup error", 2: "crashed", 3: "cycle limit", 4: "wall-clock limit", 5: "halted"}
EXIT_CYCLE_LIMIT = 3
EXIT_WALL_LIMIT = 4

# Seconds a child gets to exit by itself after we hang up, then after SIGTERM, before SIGKILL.
CHILD_EXIT_GRACE = 2.0
# Seconds to wait for an emulator to come up (print its pty path / accept the TCP connection).
START_TIMEOUT = 15.0
# A write that cannot be handed to the OS in this long means the other side is stuck.
WRITE_TIMEOUT = 5.0
QEMU_PORT_ATTEMPTS = 3
# QemuAvrTransport paces its writes like a serial line: 8N1 is 10 bits per byte, in bursts of
# at most this many bytes (well under the 63 bytes the Uno's receive ring holds). 19200, not the
# firmware's 115200: see QemuAvrTransport.
QEMU_BAUD = 19200
BITS_PER_BYTE = 10
PACE_BURST = 16

_PR_SET_PDEATHSIG = 1
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL the child if this process dies (no orphaned emulators)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _spawn(argv: Sequence[str], what: str, install: str, **kwargs) -> subprocess.Popen:
    try:
        return subprocess.Popen(list(argv), preexec_fn=_die_with_parent, start_new_session=True, **kwargs)
    except FileNotFoundError:
        raise TinyGMMError(f"{what}: {argv[0]} not found ({install})") from None
    except OSError as e:
        raise TinyGMMError(f"{what}: cannot start {argv[0]}: {e.strerror or e}") from None


def _reap(proc: subprocess.Popen, grace: float = CHILD_EXIT_GRACE) -> int:
    """Wait for the child to exit; SIGTERM after `grace` s, SIGKILL after another `grace` s."""
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return proc.returncode


# -- the simavr runner --------------------------------------------------------------------


def runner_source() -> Path:
    return firmware_dir() / "emulator" / f"{RUNNER_NAME}.c"


def _bin_dir() -> Path:
    from ..project.pio import cache_dir

    return cache_dir() / "bin"


def simavr_runner(*, rebuild: bool = False, bin_dir: Path | None = None) -> Path:
    """The simavr_bridge executable, compiled on first use (and whenever its source or flags change)."""
    source = runner_source()
    try:
        text = source.read_bytes()
    except OSError as e:
        raise TinyGMMError(f"the simavr runner's source {source} is missing: {e.strerror}") from None
    digest = hashlib.sha256(text + " ".join(RUNNER_CFLAGS + RUNNER_LIBS).encode()).hexdigest()[:16]
    folder = Path(bin_dir) if bin_dir is not None else _bin_dir()
    exe = folder / f"{RUNNER_NAME}-{digest}"
    if exe.is_file() and os.access(exe, os.X_OK) and not rebuild:
        return exe
    gcc = shutil.which("gcc")
    if gcc is None:
        raise TinyGMMError(f"building the simavr runner needs a C compiler: apt-get install gcc {SIMAVR_PACKAGES}")
    if not Path("/usr/include/simavr/sim_avr.h").is_file():
        raise TinyGMMError(f"simavr is not installed (no /usr/include/simavr/sim_avr.h): apt-get install {SIMAVR_PACKAGES}")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{exe.name}.{os.getpid()}.tmp"
    cmd = [gcc, *RUNNER_CFLAGS, str(source), "-o", str(tmp), *RUNNER_LIBS]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        out = proc.stderr.strip()
        hint = (f"; apt-get install {SIMAVR_PACKAGES}"
                if re.search(r"simavr/|-lsimavr|-lutil|No such file", out) else "")
        raise TinyGMMError(f"cannot build the simavr runner ({' '.join(cmd)}){hint}:\n{out}")
    os.replace(tmp, exe)
    for old in folder.glob(f"{RUNNER_NAME}-*"):  # builds of older sources
        if old != exe:
            old.unlink(missing_ok=True)
    return exe


# -- transports over a file descriptor (pty) ----------------------------------------------


class _ChildTransport:
    """A child process plus the descriptor we talk to it through; always reaped."""

    _proc: subprocess.Popen | None = None
    _closed = False
    what = "the device"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        """The child's exit status once it exited (negative: killed by that signal), else None."""
        return self._proc.poll() if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _stderr_text(self) -> str:
        f = getattr(self, "_stderr", None)
        if f is None or f.closed:
            return getattr(self, "_stderr_final", "")
        f.seek(0)
        return f.read().decode(errors="replace").strip()

    def _gone(self, detail: str = "") -> LinkClosed:
        code = self.returncode
        state = "still running" if code is None else f"exit code {code}"
        err = self._stderr_text()
        return LinkClosed(f"{self.what} closed the link ({state}{', ' + detail if detail else ''})"
                          + (f": {err}" if err else ""))

    def _hang_up(self) -> None:  # close our end of the link (overridden)
        pass

    def _after_exit(self) -> None:  # collect what the child left (overridden)
        pass

    def close(self) -> None:
        """Hang up; the child exits by itself (else is terminated, then killed) and is reaped."""
        if self._closed:
            return
        self._closed = True
        try:
            self._hang_up()
        finally:
            if self._proc is not None:
                _reap(self._proc)
                self._after_exit()
            f = getattr(self, "_stderr", None)
            if f is not None and not f.closed:
                self._stderr_final = self._stderr_text()
                f.close()

    def __del__(self) -> None:  # last resort (never closed): no zombie, no running emulator, no open fd
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if not self._closed:
            self._closed = True
            self._release()

    def _release(self) -> None:  # close our descriptors without waiting for anything (overridden)
        pass


class _FdTransport(_ChildTransport):
    _fd: int | None = None

    def write(self, data: bytes) -> None:
        if self._fd is None:
            raise LinkClosed(f"{self.what}: the link is closed")
        view = memoryview(data)
        deadline = time.monotonic() + WRITE_TIMEOUT
        while view:
            try:
                _, ready, _ = select.select([], [self._fd], [], max(deadline - time.monotonic(), 0.0))
                if not ready:
                    raise LinkTimeout(f"{self.what}: write timed out after {WRITE_TIMEOUT} s (the device stopped reading)")
                n = os.write(self._fd, view)
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    continue
                raise self._gone() from None
            view = view[n:]

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if self._fd is None:
            raise LinkClosed(f"{self.what}: the link is closed")
        try:
            ready, _, _ = select.select([self._fd], [], [], max(timeout, 0.0))
            if not ready:
                return b""
            data = os.read(self._fd, max_bytes)
        except InterruptedError:
            return b""
        except OSError as e:
            if e.errno == errno.EAGAIN:
                return b""
            raise self._gone() from None  # EIO: the other side of the pty is closed
        if not data:
            raise self._gone()
        return data

    def _hang_up(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _release(self) -> None:
        self._hang_up()


def _open_pty_slave(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd, termios.TCSANOW)
        attrs = termios.tcgetattr(fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except termios.error:
        os.close(fd)
        raise
    return fd


class SimavrTransport(_FdTransport):
    """An AVR firmware ELF (the Uno's, by default) in simavr, UART0 bridged to a pty by simavr_bridge.

    The firmware starts when this transport opens the pty, so the boot banner is the first line
    read. ``wall_limit`` (seconds) and ``cycle_limit`` stop the emulation (the link then closes:
    LinkClosed naming the limit); ``realtime`` throttles to that multiple of real time (1.0 = an
    actual 16 MHz Uno); ``service_interval``: AVR instructions between two moves of bytes
    (runner default 2048). After :meth:`close`: ``cycles`` (exact, emulated), ``exit_reason``,
    ``exit_code`` and ``emulated_mhz`` from the runner's report.
    """

    def __init__(self, elf: str | os.PathLike, *, mcu: str = UNO_MCU, frequency: int = UNO_HZ,
                 wall_limit: float | None = None, cycle_limit: int | None = None,
                 realtime: float | None = None, service_interval: int | None = None,
                 runner: str | os.PathLike | None = None, start_timeout: float = START_TIMEOUT):
        self.elf = Path(elf)
        self.what = f"simavr running {self.elf.name}"
        self.report: dict[str, str] = {}
        if not self.elf.is_file():
            raise TinyGMMError(f"{self.elf}: no firmware ELF here (build it with `tinygmm build DIR -e uno`)")
        exe = Path(runner) if runner is not None else simavr_runner()
        argv = [str(exe), "-m", mcu, "-f", str(int(frequency))]
        if wall_limit is not None:
            argv += ["-t", repr(float(wall_limit))]
        if cycle_limit is not None:
            argv += ["-c", str(int(cycle_limit))]
        if realtime is not None:
            argv += ["-r", repr(float(realtime))]
        if service_interval is not None:
            argv += ["-i", str(int(service_interval))]
        argv.append(str(self.elf))
        self.argv = argv
        self._stderr = tempfile.TemporaryFile()
        self._stdout_rest = b""
        try:
            self._proc = _spawn(argv, "simavr", f"apt-get install {SIMAVR_PACKAGES}", stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=self._stderr)
            self.pty_path = self._read_pty_path(start_timeout)
            try:
                self._fd = _open_pty_slave(self.pty_path)
            except OSError as e:
                raise TinyGMMError(f"cannot open simavr's pty {self.pty_path}: {e.strerror or e}") from None
        except BaseException:
            self.close()
            raise

    def _read_pty_path(self, timeout: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(remaining, 0.0))
            if not ready:
                raise TinyGMMError(f"simavr_bridge printed no pty path within {timeout} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                self._proc.wait()
                raise TinyGMMError(f"simavr_bridge failed to start (exit code {self._proc.returncode}): "
                                   f"{self._stderr_text()}")
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

    def _gone(self, detail: str = "") -> LinkClosed:
        if self._proc is not None:
            try:  # the runner exits right after closing its side: give it a moment for its message
                self._proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        code = self.returncode
        if code is not None and code in RUNNER_EXIT and code != 0:
            detail = RUNNER_EXIT[code]
        return super()._gone(detail)

    @property
    def cycles(self) -> int | None:
        """Emulated cycles from reset to the end of the run (after close), exact."""
        return int(self.report["cycles"]) if "cycles" in self.report else None

    @property
    def exit_reason(self) -> str | None:
        """hangup, crashed, cycle_limit, wall_limit, halted or signal (after close)."""
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


class PtyTransport(_FdTransport):
    """A program (the native build) run as a child with stdin and stdout on a raw pseudo-terminal.

    Like a serial port: no echo, no line-end rewriting, and the child sees a terminal (the
    native firmware switches it to raw mode itself too). Its stderr is kept for messages.
    ``close()`` hangs up the pty (the native firmware exits at EIO), then reaps the child.
    """

    def __init__(self, argv: Sequence[str | os.PathLike], *, cwd: str | os.PathLike | None = None):
        self.argv = [str(a) for a in argv]
        self.what = f"the native device {self.argv[0]}"
        self._stderr = tempfile.TemporaryFile()
        master, slave = os.openpty()
        try:
            tty.setraw(slave, termios.TCSANOW)
            self._fd = master
            self._proc = _spawn(self.argv, "the native build", "build it with `tinygmm build DIR -e native`",
                                stdin=slave, stdout=slave, stderr=self._stderr, cwd=cwd, close_fds=True)
        except BaseException:
            os.close(slave)
            self.close()
            raise
        os.close(slave)  # the child holds it now: EIO on the master means the child is gone


class QemuAvrTransport(_ChildTransport):
    """An Uno firmware ELF in qemu-system-avr (``-machine uno``), UART0 on a TCP socket.

    QEMU waits for our connection before starting the guest (``wait=on``), so the boot banner
    is not lost; both sides set TCP_NODELAY. QEMU has no cycle counts and runs its timers on
    the host clock.

    QEMU's USART has no baud rate: it hands the guest the next byte as soon as the previous one
    is read, and the sketch's loop then falls behind the receive interrupt, overflowing the
    Arduino's 64-byte ring even with the device idle. Measured here (150 pairs of 499-byte batch
    lines each): unpaced and 115200-paced writes lost bytes in 5-25% of lines, 38400 and 19200
    none. So writes are paced to ``baud`` (8N1, bursts of at most ``PACE_BURST`` bytes), by
    default QEMU_BAUD = 19200; ``baud=None`` sends at once. Use simavr for link-speed figures.
    """

    def __init__(self, elf: str | os.PathLike, *, machine: str = "uno", qemu: str = "qemu-system-avr",
                 baud: int | None = QEMU_BAUD, start_timeout: float = START_TIMEOUT,
                 extra_args: Sequence[str] = ()):
        self.elf = Path(elf)
        self.baud = baud
        self._line_free = 0.0  # time.monotonic() when the paced line has sent everything given so far
        self.what = f"qemu-system-avr running {self.elf.name}"
        self._sock: socket.socket | None = None
        if not self.elf.is_file():
            raise TinyGMMError(f"{self.elf}: no firmware ELF here (build it with `tinygmm build DIR -e uno`)")
        exe = shutil.which(qemu)
        if exe is None:
            raise TinyGMMError(f"{qemu} not found: apt-get install {QEMU_PACKAGE}")
        failure = ""
        for _ in range(QEMU_PORT_ATTEMPTS):
            port = _free_port()
            self.argv = [exe, "-machine", machine, "-bios", str(self.elf), "-display", "none", "-monitor", "none",
                         "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on", *extra_args]
            self._stderr = tempfile.TemporaryFile()
            self._closed = False
            try:
                self._proc = _spawn(self.argv, "qemu", f"apt-get install {QEMU_PACKAGE}",
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
        raise TinyGMMError(f"qemu-system-avr did not start: {failure or 'no output'}")

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
                    raise TinyGMMError(f"qemu-system-avr did not listen on 127.0.0.1:{port} within {timeout} s: "
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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- by name ------------------------------------------------------------------------------

EMULATORS = ("native", "simavr", "qemu")


def emulator_transport(name: str, program: str | os.PathLike, **kwargs) -> _ChildTransport:
    """A transport by emulator name: ``native`` (PtyTransport of the native program), ``simavr`` or
    ``qemu`` (an Uno firmware ELF)."""
    if name == "native":
        path = Path(program)
        if not path.is_file():
            raise TinyGMMError(f"{path}: no native build here (build it with `tinygmm build DIR -e native`)")
        return PtyTransport([path], **kwargs)
    if name == "simavr":
        return SimavrTransport(program, **kwargs)
    if name == "qemu":
        return QemuAvrTransport(program, **kwargs)
    raise TinyGMMError(f"unknown emulator {name!r}: one of {', '.join(EMULATORS)}")


__all__ = [
    "SimavrTransport", "QemuAvrTransport", "PtyTransport", "simavr_runner", "emulator_transport", "EMULATORS",
    "SIMAVR_PACKAGES", "QEMU_PACKAGE",
]
