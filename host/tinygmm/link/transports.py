"""Byte transports a Device talks through: the native build as a child process, and pyserial ports/URLs.

A transport has three methods: ``write(data)`` (all bytes, or raise), ``read(max_bytes, timeout)``
(what arrived within ``timeout`` seconds, b"" if nothing; LinkClosed when the other side is gone)
and ``close()``; every transport is also a context manager that closes it.
"""
from __future__ import annotations

import errno
import os
import select
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Protocol, Sequence

from ..errors import TinyGMMError
from .protocol import LinkClosed, LinkTimeout

# Seconds a child process gets to exit after its stdin closes, before it is killed.
CHILD_EXIT_GRACE = 2.0
# Seconds to wait for a child's exit code once its stdout closed (for the error message only).
EXIT_CODE_WAIT = 0.5
# DTR held low-high for a requested reset: the Uno's auto-reset capacitor needs a clear edge.
RESET_PULSE_SECONDS = 0.1
# A write that cannot be handed to the OS in this long means the link is stuck.
SERIAL_WRITE_TIMEOUT = 5.0


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...

    def read(self, max_bytes: int, timeout: float) -> bytes: ...

    def close(self) -> None: ...


class _ContextManager:
    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PipeTransport(_ContextManager):
    """The native firmware (firmware/src/native) run as a child process, spoken to over its stdin/stdout.

    The child is always reaped: ``close()`` closes its stdin (the firmware exits at end of input),
    waits briefly, then kills it. Its stderr is kept for error messages.
    """

    def __init__(self, argv: Sequence[str | os.PathLike], *, cwd: str | os.PathLike | None = None):
        self.argv = [str(a) for a in argv]
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=self._stderr, bufsize=0, cwd=cwd)
        except OSError as e:
            self._stderr.close()
            raise TinyGMMError(f"cannot start the native build {self.argv[0]}: {e.strerror or e}"
                               " (build it with `tinygmm build DIR -e native`)") from None
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._out_fd = self._proc.stdout.fileno()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _gone(self) -> LinkClosed:
        try:  # the pipe closes just before the exit is reaped: give the code a moment to appear
            code = self._proc.wait(timeout=EXIT_CODE_WAIT)
        except subprocess.TimeoutExpired:
            code = None
        self._stderr.seek(0)
        err = self._stderr.read().decode(errors="replace").strip()
        state = "still running" if code is None else f"exit code {code}"
        return LinkClosed(f"the native device {self.argv[0]} closed the link ({state})" + (f": {err}" if err else ""))

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                n = self._proc.stdin.write(view)  # raw FileIO: may write part
                view = view[n or 0 :]
        except (BrokenPipeError, ValueError, OSError):
            raise self._gone() from None

    def read(self, max_bytes: int, timeout: float) -> bytes:
        try:
            ready, _, _ = select.select([self._out_fd], [], [], max(timeout, 0.0))
        except (ValueError, OSError):
            raise self._gone() from None
        if not ready:
            return b""
        data = os.read(self._out_fd, max_bytes)
        if not data:
            raise self._gone()
        return data

    def close(self) -> None:
        proc = self._proc
        try:
            proc.stdin.close()  # end of input: the firmware exits by itself
        except OSError:
            pass
        try:
            proc.wait(timeout=CHILD_EXIT_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            self._stderr.close()

    def __del__(self) -> None:  # last resort: never leave a zombie behind
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


class SerialTransport(_ContextManager):
    """A serial port (``/dev/ttyACM0``) or any pyserial URL (``socket://host:port``, ``rfc2217://...``).

    Opened with DTR and RTS deasserted, so boards that reset on DTR are not reset by tinygmm
    (Linux itself raises DTR when a port is opened unless HUPCL is off: ``stty -F PORT -hupcl``);
    ``reset=True`` pulses DTR to reset such a board on purpose. The port is locked exclusively.
    """

    def __init__(self, url: str, baudrate: int = 115200, *, reset: bool = False):
        import serial  # pyserial: a dependency, imported here so the rest of tinygmm does not need it

        self.url = url
        self._serial_exception = serial.SerialException
        try:
            port = serial.serial_for_url(url, do_not_open=True, baudrate=baudrate, timeout=0,
                                         write_timeout=SERIAL_WRITE_TIMEOUT)
            port.dtr = False
            port.rts = False
            if hasattr(port, "exclusive"):
                port.exclusive = True
            port.open()
        except (serial.SerialException, OSError, ValueError) as e:
            raise TinyGMMError(_open_failure(url, e)) from None
        self._port = port
        if reset:
            try:
                self.reset()
            except TinyGMMError:
                port.close()
                raise

    def reset(self) -> None:
        """Pulse DTR (resets an Uno and most ESP32 boards); the caller then syncs by ping."""
        try:
            self._port.dtr = True
            time.sleep(RESET_PULSE_SECONDS)
            self._port.dtr = False
        except (self._serial_exception, OSError) as e:
            raise TinyGMMError(f"cannot reset {self.url} by DTR ({e}): this port has no modem lines; "
                               "reset the board by hand, or leave out the reset") from None

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except self._serial_exception as e:
            if "timeout" in str(e).lower():
                raise LinkTimeout(f"{self.url}: write timed out after {SERIAL_WRITE_TIMEOUT} s") from None
            raise LinkClosed(f"{self.url}: {e}") from None

    def read(self, max_bytes: int, timeout: float) -> bytes:
        try:
            self._port.timeout = max(timeout, 0.0)
            first = self._port.read(1)
            if not first:
                return b""
            self._port.timeout = 0
            return first + self._port.read(max_bytes - 1)
        except (self._serial_exception, OSError) as e:
            raise LinkClosed(f"{self.url}: {e}") from None

    def close(self) -> None:
        self._port.close()


def _open_failure(url: str, e: BaseException) -> str:
    code = getattr(e, "errno", None)
    text = str(e)
    if code == errno.ENOENT or "No such file" in text:
        return f"serial port {url} does not exist: is the board plugged in? (`tinygmm ports` lists ports)"
    if code == errno.EBUSY or "busy" in text.lower() or "lock" in text.lower():
        return f"serial port {url} is busy: another program (a serial monitor?) has it open"
    if code == errno.EACCES or "Permission denied" in text:
        return f"no permission to open {url}: add yourself to the dialout group (then log in again)"
    if code == errno.ECONNREFUSED or "refused" in text.lower():
        return f"cannot connect to {url}: connection refused (is the emulator or server running?)"
    return f"cannot open serial port {url}: {text}"


def native_transport(executable: str | os.PathLike) -> PipeTransport:
    """A PipeTransport for a native firmware executable (e.g. .pio/build/native/program)."""
    path = Path(executable)
    if not path.is_file():
        raise TinyGMMError(f"{path}: no native build here (build it with `tinygmm build DIR -e native`)")
    return PipeTransport([path])
