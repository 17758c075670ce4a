"""Transports to firmware run as a child process of this Python: one base that always reaps its child.

:class:`ChildTransport` is the base: on ``close()`` it hangs up (the child sees end of input or a
hang-up and exits; terminated, then killed after a grace period), from ``__del__`` as a last
resort, and through PR_SET_PDEATHSIG when this Python process dies without cleaning up.
:class:`FdTransport` talks through descriptors with select() and a write deadline;
:class:`PipeTransport` (stdin/stdout pipes) and :class:`PtyTransport` (a raw pseudo-terminal, as a
serial port would be) run the native build on it. The emulators (emulators.py) build on the same base.
"""
from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
import subprocess
import tempfile
import termios
import time
import tty
from typing import Sequence

from ..errors import TinyGMMError
from .protocol import LinkClosed, LinkTimeout

# Seconds a child gets to exit by itself after we hang up, then after SIGTERM, before SIGKILL.
CHILD_EXIT_GRACE = 2.0
# Seconds to wait for a child's exit code once the link closed (for the error message only).
EXIT_CODE_WAIT = 0.5
# A write that cannot be handed to the OS in this long means the other side is stuck.
WRITE_TIMEOUT = 5.0

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


class ChildTransport:
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
        if self._proc is not None:
            try:  # the link closes just before the child's exit is reaped: give its code a moment
                self._proc.wait(timeout=EXIT_CODE_WAIT)
            except subprocess.TimeoutExpired:
                pass
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


class FdTransport(ChildTransport):
    """Reads ``_rfd`` and writes ``_wfd`` (the same descriptor for a pty) with select().

    Writes are non-blocking, so WRITE_TIMEOUT holds for the whole write, however large: a
    blocking write of more than the pipe or pty buffer would wait for the reader forever."""

    _rfd: int | None = None
    _wfd: int | None = None

    def _set_fds(self, rfd: int, wfd: int) -> None:
        os.set_blocking(wfd, False)
        self._rfd, self._wfd = rfd, wfd

    def write(self, data: bytes) -> None:
        if self._wfd is None:
            raise LinkClosed(f"{self.what}: the link is closed")
        view = memoryview(data)
        deadline = time.monotonic() + WRITE_TIMEOUT
        while view:
            try:
                _, ready, _ = select.select([], [self._wfd], [], max(deadline - time.monotonic(), 0.0))
                if not ready:
                    raise LinkTimeout(f"{self.what}: write timed out after {WRITE_TIMEOUT} s (the device stopped reading)")
                n = os.write(self._wfd, view)
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    continue
                raise self._gone() from None
            view = view[n:]

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if self._rfd is None:
            raise LinkClosed(f"{self.what}: the link is closed")
        try:
            ready, _, _ = select.select([self._rfd], [], [], max(timeout, 0.0))
            if not ready:
                return b""
            data = os.read(self._rfd, max_bytes)
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
        fds = {fd for fd in (self._wfd, self._rfd) if fd is not None}
        self._rfd = self._wfd = None
        for fd in fds:  # closing the write end first: a pipe's child sees end of input
            os.close(fd)

    def _release(self) -> None:
        self._hang_up()


class PipeTransport(FdTransport):
    """A program (the native build) run as a child, spoken to over its stdin and stdout pipes.

    ``close()`` closes its stdin (the native firmware exits at end of input), then reaps it."""

    def __init__(self, argv: Sequence[str | os.PathLike], *, cwd: str | os.PathLike | None = None):
        self.argv = [str(a) for a in argv]
        self.what = f"the native device {self.argv[0]}"
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = _spawn(self.argv, "the native build", "build it with `tinygmm build DIR -e native`",
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, cwd=cwd,
                                bufsize=0)
        except BaseException:
            self.close()
            raise
        assert self._proc.stdin is not None and self._proc.stdout is not None
        # the descriptors are ours from now on; the file objects must not close them again
        self._set_fds(os.dup(self._proc.stdout.fileno()), os.dup(self._proc.stdin.fileno()))
        self._proc.stdin.close()
        self._proc.stdout.close()


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


class PtyTransport(FdTransport):
    """A program (the native build) run as a child with stdin and stdout on a raw pseudo-terminal.

    Like a serial port: no echo, no line-end rewriting, and the child sees a terminal (the
    native firmware switches it to raw mode itself too). Its stderr is kept for messages.
    ``close()`` hangs up the pty (the native firmware exits at EIO), then reaps the child.
    """

    def __init__(self, argv: str | os.PathLike | Sequence[str | os.PathLike], *,
                 cwd: str | os.PathLike | None = None):
        self.argv = [str(argv)] if isinstance(argv, (str, os.PathLike)) else [str(a) for a in argv]
        self.what = f"the native device {self.argv[0]}"
        self._stderr = tempfile.TemporaryFile()
        master, slave = os.openpty()
        try:
            tty.setraw(slave, termios.TCSANOW)
            self._set_fds(master, master)
            self._proc = _spawn(self.argv, "the native build", "build it with `tinygmm build DIR -e native`",
                                stdin=slave, stdout=slave, stderr=self._stderr, cwd=cwd, close_fds=True)
        except BaseException:
            os.close(slave)
            self.close()
            raise
        os.close(slave)  # the child holds it now: EIO on the master means the child is gone
