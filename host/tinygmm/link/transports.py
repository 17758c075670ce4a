"""Byte transports a Device talks through: the Transport interface and pyserial ports/URLs (child processes: child.py).

A transport has three methods: ``write(data)`` (all bytes, or raise), ``read(max_bytes, timeout)``
(what arrived within ``timeout`` seconds, b"" if nothing; LinkClosed when the other side is gone)
and ``close()``; every transport is also a context manager that closes it.
"""
from __future__ import annotations

import errno
import os
import time
import warnings
from typing import Protocol

from ..errors import TinyGMMError
from .protocol import LinkClosed, LinkTimeout

# DTR held low-high for a requested reset: the Uno's auto-reset capacitor needs a clear edge.
RESET_PULSE_SECONDS = 0.1
# A write that cannot be handed to the OS in this long means the link is stuck.
SERIAL_WRITE_TIMEOUT = 5.0
# Over RFC 2217: the longest a read waits past its own timeout (pyserial's timeout is fixed there).
REMOTE_POLL = 0.02


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
        remote = _is_rfc2217(url)
        if not _has_port(url):
            raise TinyGMMError(f"{url} names no TCP port: give it as {url.rstrip('/')}:PORT (ser2net's accepter "
                               "port, e.g. rfc2217://lab-2:4001)")
        port = None
        try:
            # pyserial's RFC 2217 client has no write timeout (its socket's own 5 s timeout bounds a write)
            port = serial.serial_for_url(_rfc2217_url(url) if remote else url, do_not_open=True, baudrate=baudrate,
                                         timeout=REMOTE_POLL if remote else 0,
                                         write_timeout=None if remote else SERIAL_WRITE_TIMEOUT)
            port.dtr = False
            port.rts = False
            if hasattr(port, "exclusive"):
                port.exclusive = True
            with warnings.catch_warnings():  # pyserial's RFC 2217 client names its thread the deprecated way
                warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"serial\.")
                port.open()
        except (serial.SerialException, OSError, ValueError) as e:
            if port is not None:  # pyserial's RFC 2217 client keeps its socket when the negotiation fails
                port.close()
            raise TinyGMMError(_open_failure(url, e)) from None
        # The exclusive lock stops programs that also lock (pyserial, PlatformIO's monitor), not a
        # plain open (cat, screen): such a reader would take bytes meant for us.
        others = holders(url)
        if others:
            port.close()
            raise TinyGMMError(f"serial port {url} is busy: "
                               + ", ".join(f"process {pid} ({name})" for pid, name in others)
                               + " has it open; close that program (a serial monitor?) first")
        self._port = port
        self._remote = remote
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
            if self._remote:
                return self._read_remote(max_bytes, timeout)
            self._port.timeout = max(timeout, 0.0)
            first = self._port.read(1)
            if not first:
                return b""
            self._port.timeout = 0
            return first + self._port.read(max_bytes - 1)
        except (self._serial_exception, OSError) as e:
            if _is_rfc2217(self.url) and "reader thread died" in str(e):
                raise LinkClosed(f"{self.url}: the connection was closed from the other end (the RFC 2217 "
                                 "server, or the network to it, went away)") from None
            raise LinkClosed(f"{self.url}: {e}") from None

    def _read_remote(self, max_bytes: int, timeout: float) -> bytes:
        """Over RFC 2217 every change of pyserial's timeout renegotiates the port settings with the
        server (a round trip each: reads of 2 bytes per 0.3 s): the timeout stays REMOTE_POLL and we poll."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            waiting = self._port.in_waiting
            if waiting:
                return self._port.read(min(waiting, max_bytes))
            if time.monotonic() >= deadline:
                return b""
            first = self._port.read(1)  # returns at the first byte, or after REMOTE_POLL
            if first:
                waiting = self._port.in_waiting
                return first + (self._port.read(min(waiting, max_bytes - 1)) if waiting and max_bytes > 1 else b"")

    def close(self) -> None:
        self._port.close()


def _is_rfc2217(url: str) -> bool:
    return url.lower().startswith("rfc2217://")


def _has_port(url: str) -> bool:
    """Whether a network URL (rfc2217://, socket://) names its TCP port; device URLs (loop://, spy://
    and the like) have none to name."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme.lower() not in ("rfc2217", "socket"):
        return True
    try:
        return parts.port is not None
    except ValueError:  # a port that is not a number: pyserial names it
        return True


def _rfc2217_url(url: str) -> str:
    """``url`` with pyserial's ``ign_set_control``: tinygmm never waits on a modem line, and a server in
    front of a pseudo-terminal or a line without modem control (ser2net's ``local``) never acknowledges
    one, so the open would stall for the acknowledgement. The request itself is still sent."""
    if "ign_set_control" in url:
        return url
    return url + ("&" if "?" in url else "?") + "ign_set_control"


def _open_failure(url: str, e: BaseException) -> str:
    code = getattr(e, "errno", None)
    text = str(e)
    if code == errno.ENOENT or "No such file" in text:
        return f"serial port {url} does not exist: is the board plugged in? (`tinygmm ports` lists ports)"
    if code == errno.EBUSY or "busy" in text.lower() or "lock" in text.lower():
        return f"serial port {url} is busy: another program (a serial monitor?) has it open"
    if code == errno.EACCES or "Permission denied" in text:
        return f"no permission to open {url}: add yourself to the dialout group (then log in again)"
    if code == errno.ENOTTY or "Inappropriate ioctl" in text:
        return f"{url} is not a serial port (it does not answer terminal ioctls): give the board's port"
    if code == errno.ECONNREFUSED or "refused" in text.lower():
        return f"cannot connect to {url}: connection refused (is the emulator or server running?)"
    if "Name or service not known" in text or "Temporary failure in name resolution" in text:
        return f"cannot connect to {url}: its host name is not known here (a typo, or no DNS for the lab?)"
    if "not seem to support RFC2217" in text:
        return (f"{url} answers but does not speak RFC 2217 (a plain TCP server? then use "
                f"socket://{url.split('://', 1)[1]}; for ser2net give the accepter telnet(rfc2217))")
    return f"cannot open serial port {url}: {text}"


def holders(device: str) -> list[tuple[int, str]]:
    """The other processes that hold the device file open, as (pid, program name), read from Linux's
    /proc ([] for a URL, elsewhere, or among processes this user may not look into). Two programs on
    one serial port steal each other's bytes: a monitor beside tinygmm, an upload beside a monitor."""
    if "://" in device:
        return []
    try:
        target = os.path.realpath(device)
        entries = list(os.scandir("/proc")) if os.path.exists(target) else []
    except OSError:
        return []
    found = []
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{entry.name}/fd")
            if any(os.readlink(f"/proc/{entry.name}/fd/{fd}") == target for fd in fds):
                with open(f"/proc/{entry.name}/comm") as comm:
                    found.append((int(entry.name), comm.read().strip()))
        except OSError:  # gone meanwhile, or not ours to look into
            continue
    return found
